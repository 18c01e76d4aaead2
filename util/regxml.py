"""The register database: a parser and frozen model for the rules-ng-ng XML dialect.

Mirrors the parsing half of Mesa's ``src/freedreno/registers/gen_header.py`` (which the rocket
driver copies): ``database``, ``import``, ``enum``/``value``, ``bitset``, ``domain``, ``reg32``,
``reg64``, ``array`` and ``bitfield`` (``low``/``high`` or ``pos``), with ``doc`` and ``brief``
for documentation. Unlike the Mesa script this parser is strict: an unknown element or attribute,
a field that overlaps another or leaves its register, a duplicate name or offset, an unknown type
or a value that does not fit is a :class:`RegisterXmlError` whose one-line message names the file,
the line and the element.

Conventions of our dialect (all documented here, none implicit elsewhere):

- Offsets are byte offsets. ``width`` on a domain is informational (32 or 64).
- A field named ``RESERVED`` or ``RESERVED_<x>`` is reserved: decoders flag it when non-zero.
  Bits covered by no field are reserved too.
- A register without bitfields but with a ``type`` gets one implicit field spanning the
  register, named like the register; without a type it has no fields (all bits reserved).
- ``shr="N"`` on a bitfield: the field stores ``value >> N`` (an address or size in 2^N units);
  packers take the unshifted value and reject one whose low N bits are set.
- A domain with ``size="BYTES"`` is a *structure* (a job descriptor or command word in memory),
  not part of the register file: its registers are words of the structure, its non-reserved
  field names are unique across the domain (so a whole structure packs from one set of names),
  and it stays out of the offset-to-register map.
- ``<join name=… type=…><part field=…/>…</join>`` (extension, structures only) names a value
  whose bits are split over several fields, listed least significant part first, e.g. the NN
  job's post_multiplier. Packers for the whole structure take the joined value.
- ``access="r"`` marks a read-only register (decoders flag writes to it).
"""

from __future__ import annotations

import itertools
import keyword
import re
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from .regmodel import (
    BASIC_TYPES,
    Array,
    Bitset,
    Database,
    Domain,
    Enum,
    EnumValue,
    Field,
    Join,
    JoinPart,
    Register,
    RegisterInstance,
)

__all__ = [  # the model is re-exported: ``from mesa_npu.util.regxml import parse, Field``
    "Array",
    "Bitset",
    "Database",
    "Domain",
    "Enum",
    "EnumValue",
    "Field",
    "Join",
    "JoinPart",
    "Register",
    "RegisterInstance",
    "RegisterXmlError",
    "parse",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class RegisterXmlError(ValueError):
    """A bad register XML file: ``file:line: <element name="…">: what is wrong``."""

    def __init__(self, file: str, line: int, element: str, message: str) -> None:
        self.file, self.line, self.element = file, line, element
        super().__init__(f"{file}:{line}: <{element}>: {message}")


# --------------------------------------------------------------------------------------------
# A tiny element tree with line numbers (ElementTree drops them)
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    tag: str
    attrib: dict[str, str]
    line: int
    file: str
    children: list[_Node] = field(default_factory=list)
    text: str = ""

    def label(self) -> str:
        name = self.attrib.get("name") or self.attrib.get("file") or self.attrib.get("field")
        return f'{self.tag} name="{name}"' if name else self.tag

    def error(self, message: str) -> RegisterXmlError:
        return RegisterXmlError(self.file, self.line, self.label(), message)


def _read_tree(path: Path, display: str) -> _Node:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RegisterXmlError(display, 0, "database", f"cannot read: {e.strerror}") from None
    parser = xml.parsers.expat.ParserCreate()
    stack: list[_Node] = []
    root: list[_Node] = []

    def start(tag: str, attrib: dict[str, str]) -> None:
        node = _Node(tag, attrib, parser.CurrentLineNumber, display)
        (stack[-1].children if stack else root).append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        if stack:
            stack[-1].text += data

    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as e:
        message = xml.parsers.expat.ErrorString(e.code)
        raise RegisterXmlError(display, e.lineno, "xml", message) from None
    if root[0].tag != "database":
        raise root[0].error("the root element must be <database>")
    return root[0]


# Allowed attributes and children per element. Anything else is an error.
_ATTRS: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {
        "database": frozenset({"xmlns", "xmlns:xsi", "xsi:schemaLocation"}),
        "copyright": frozenset({"year"}),
        "author": frozenset({"name", "email"}),
        "nick": frozenset({"name"}),
        "license": frozenset(),
        "import": frozenset({"file"}),
        "doc": frozenset(),
        "enum": frozenset({"name", "brief"}),
        "value": frozenset({"name", "value", "brief"}),
        "bitset": frozenset({"name", "inline", "brief"}),
        "domain": frozenset({"name", "width", "size", "brief"}),
        "reg32": frozenset({"name", "offset", "type", "access", "brief", "usage", "variants"}),
        "reg64": frozenset({"name", "offset", "type", "access", "brief", "usage", "variants"}),
        "array": frozenset({"name", "offset", "stride", "length", "brief", "usage", "variants"}),
        "bitfield": frozenset(
            {"name", "low", "high", "pos", "type", "shr", "default", "brief", "usage", "variants"}
        ),
        "join": frozenset({"name", "type", "brief"}),
        "part": frozenset({"field"}),
    }
)
_CHILDREN: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {
        "database": frozenset({"copyright", "import", "doc", "enum", "bitset", "domain"}),
        "copyright": frozenset({"author", "license"}),
        "author": frozenset({"nick"}),
        "nick": frozenset(),
        "license": frozenset(),
        "import": frozenset(),
        "doc": frozenset(),
        "enum": frozenset({"value", "doc"}),
        "value": frozenset({"doc"}),
        "bitset": frozenset({"bitfield", "doc"}),
        "domain": frozenset({"reg32", "reg64", "array", "join", "doc"}),
        "reg32": frozenset({"bitfield", "doc"}),
        "reg64": frozenset({"bitfield", "doc"}),
        "array": frozenset({"reg32", "reg64", "doc"}),
        "bitfield": frozenset({"doc"}),
        "join": frozenset({"part", "doc"}),
        "part": frozenset(),
    }
)
_REQUIRED: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "import": ("file",),
        "enum": ("name",),
        "value": ("name", "value"),
        "bitset": ("name",),
        "domain": ("name",),
        "reg32": ("name", "offset"),
        "reg64": ("name", "offset"),
        "array": ("name", "offset", "stride", "length"),
        "bitfield": ("name",),
        "join": ("name",),
        "part": ("field",),
    }
)


def _check_shape(node: _Node) -> None:
    allowed = _ATTRS.get(node.tag)
    if allowed is None:
        raise node.error(f"unknown element <{node.tag}>")
    for attr in node.attrib:
        if attr not in allowed:
            raise node.error(f"unknown attribute '{attr}' on <{node.tag}>")
    for attr in _REQUIRED.get(node.tag, ()):
        if attr not in node.attrib:
            raise node.error(f"missing attribute '{attr}'")
    if "name" in node.attrib and node.tag not in ("author", "nick"):
        name = node.attrib["name"]
        if not _NAME.match(name) or keyword.iskeyword(name):
            raise node.error(f"'{name}' is not a valid identifier")
    for child in node.children:
        if child.tag not in _CHILDREN[node.tag]:
            raise child.error(f"unknown element <{child.tag}> inside <{node.tag}>")
        _check_shape(child)


def _int(node: _Node, attr: str, minimum: int = 0) -> int:
    text = node.attrib[attr]
    try:
        value = int(text, 0)
    except ValueError:
        raise node.error(f"{attr}='{text}' is not an integer") from None
    if value < minimum:
        raise node.error(f"{attr}={value} is below {minimum}")
    return value


def _doc(node: _Node) -> str:
    parts = [node.attrib.get("brief", "")]
    parts += [" ".join(c.text.split()) for c in node.children if c.tag == "doc"]
    return " ".join(p for p in parts if p)


# --------------------------------------------------------------------------------------------
# Building the model
# --------------------------------------------------------------------------------------------


def parse(path: str | Path) -> Database:
    """Read a register database (and everything it imports)."""
    return _Builder(Path(path)).build()


class _Builder:
    def __init__(self, main: Path) -> None:
        self.main = main
        self.files: list[str] = []
        self.seen: set[Path] = set()
        self.enum_nodes: list[_Node] = []
        self.bitset_nodes: list[_Node] = []
        self.domain_nodes: list[_Node] = []
        self.license = ""

    def build(self) -> Database:
        self._read(self.main, str(self.main), self.main.name, ())
        enums = self._enums()
        bitsets = self._bitsets(enums)
        lines: dict[int, _Node] = {}
        domains = self._domains(enums, bitsets, lines)
        _check_global_offsets(domains, lines)
        return Database(
            str(self.main),
            tuple(self.files),
            tuple(enums.values()),
            tuple(b for b, _ in bitsets.values()),
            domains,
            self.license,
        )

    def _read(self, path: Path, display: str, relative: str, stack: tuple[Path, ...]) -> None:
        resolved = path.resolve()
        self.seen.add(resolved)
        self.files.append(relative)
        root = _read_tree(path, display)
        _check_shape(root)
        for child in root.children:
            if child.tag == "import":
                target = path.parent / child.attrib["file"]
                if target.resolve() in (*stack, resolved):
                    raise child.error("import cycle")
                if not target.is_file():
                    raise child.error(f"imported file '{child.attrib['file']}' not found")
                if target.resolve() not in self.seen:
                    rel = (Path(relative).parent / child.attrib["file"]).as_posix()
                    disp = (Path(display).parent / child.attrib["file"]).as_posix()
                    self._read(target, disp, rel, (*stack, resolved))
            elif child.tag == "enum":
                self.enum_nodes.append(child)
            elif child.tag == "bitset":
                self.bitset_nodes.append(child)
            elif child.tag == "domain":
                self.domain_nodes.append(child)
            elif child.tag == "copyright":
                for c in child.children:
                    if c.tag == "license" and not self.license:
                        self.license = c.text.strip()

    def _enums(self) -> dict[str, Enum]:
        enums: dict[str, Enum] = {}
        value_owner: dict[str, str] = {}
        for node in self.enum_nodes:
            name = node.attrib["name"]
            if name in enums or name in BASIC_TYPES:
                raise node.error(f"duplicate enum name '{name}'")
            values: list[EnumValue] = []
            for v in node.children:
                if v.tag != "value":
                    continue
                vname, number = v.attrib["name"], _int(v, "value")
                # C headers print enum values bare (rules-ng-ng style), so names are global.
                if vname in value_owner:
                    owner = value_owner[vname]
                    raise v.error(f"duplicate value name '{vname}' (also in enum {owner})")
                if any(x.value == number for x in values):
                    raise v.error(f"duplicate value {number:#x} in enum {name}")
                value_owner[vname] = name
                values.append(EnumValue(vname, number, _doc(v)))
            enums[name] = Enum(name, tuple(values), _doc(node))
        return enums

    def _bitsets(self, enums: dict[str, Enum]) -> dict[str, tuple[Bitset, _Node]]:
        bitsets: dict[str, tuple[Bitset, _Node]] = {}
        for node in self.bitset_nodes:
            name = node.attrib["name"]
            if name in bitsets or name in enums or name in BASIC_TYPES:
                raise node.error(f"duplicate type name '{name}'")
            if node.attrib.get("inline", "no") not in ("yes", "no"):
                raise node.error("inline must be 'yes' or 'no'")
            fields = _fields(node, 64, enums, f"bitset {name}")
            bitsets[name] = (Bitset(name, fields, _doc(node)), node)
        return bitsets

    def _domains(self, enums: dict[str, Enum], bitsets: dict, lines: dict) -> tuple[Domain, ...]:
        merged: dict[str, list[_Node]] = {}
        for node in self.domain_nodes:
            merged.setdefault(node.attrib["name"], []).append(node)
        return tuple(_domain(nodes, enums, bitsets, lines) for nodes in merged.values())


def _field(node: _Node, reg_width: int, enums: dict[str, Enum], where: str) -> Field:
    a = node.attrib
    if "pos" in a:
        if "low" in a or "high" in a:
            raise node.error("use either pos or low/high, not both")
        low = high = _int(node, "pos")
    elif "low" in a and "high" in a:
        low, high = _int(node, "low"), _int(node, "high")
        if high < low:
            raise node.error(f"high={high} is below low={low}")
    else:
        raise node.error("needs pos, or low and high")
    if high >= reg_width:
        raise node.error(f"bits {high}:{low} are outside the {reg_width}-bit register ({where})")
    kind = a.get("type", "boolean" if low == high else "uint")
    enum = None
    if kind in enums:
        enum, kind = enums[kind], "enum"
    elif kind not in BASIC_TYPES:
        raise node.error(f"unknown type '{kind}'")
    if kind == "boolean" and high != low:
        raise node.error("a boolean field must be one bit wide")
    shr = _int(node, "shr") if "shr" in a else 0
    if shr and kind in ("boolean", "enum"):
        raise node.error(f"shr does not apply to a {kind} field")
    f = Field(a["name"], low, high, kind, enum, shr, None, _doc(node), node.line)
    if enum is not None:
        for v in enum.values:
            if not _fits(f, v.value):
                raise node.error(
                    f"value {v.name}={v.value:#x} of enum {enum.name} does not fit the "
                    f"{f.width}-bit field ({where})"
                )
    if "default" in a:
        text = a["default"]
        named = {v.name: v.value for v in enum.values} if enum else {}
        try:
            default = named[text] if text in named else int(text, 0)
        except ValueError:
            raise node.error(f"default='{text}' is not an integer or a value name") from None
        if not _fits(f, default):
            raise node.error(f"default {text} does not fit the {f.width}-bit field ({where})")
        f = Field(f.name, low, high, kind, enum, shr, default, f.doc, node.line)
    return f


def _fits(f: Field, value: int) -> bool:
    return f.min_value <= value <= f.max_value and value % (1 << f.shr) == 0


def _fields(node: _Node, width: int, enums: dict[str, Enum], where: str) -> tuple[Field, ...]:
    """The bitfield children of ``node``, checked for duplicates and overlaps."""
    fields: list[Field] = []
    for child in node.children:
        if child.tag != "bitfield":
            continue
        f = _field(child, width, enums, where)
        for other in fields:
            if other.name == f.name:
                raise child.error(f"duplicate field name '{f.name}' ({where})")
            if other.mask & f.mask:
                raise child.error(
                    f"bits {f.high}:{f.low} overlap field {other.name} "
                    f"(bits {other.high}:{other.low}) ({where})"
                )
        fields.append(f)
    return tuple(sorted(fields, key=lambda f: f.low))


def _register(node: _Node, domain: str, enums: dict, bitsets: dict) -> Register:
    width = 64 if node.tag == "reg64" else 32
    name, offset = node.attrib["name"], _int(node, "offset")
    where = f"register {domain}.{name}"
    if offset % (width // 8):
        raise node.error(f"offset {offset:#x} is not aligned to {width // 8} bytes")
    access = node.attrib.get("access", "rw")
    if access not in ("r", "w", "rw"):
        raise node.error(f"access='{access}' must be r, w or rw")
    fields = _fields(node, width, enums, where)
    kind = node.attrib.get("type")
    if kind is not None:
        if fields:
            raise node.error("a register with bitfields cannot also have a type")
        if kind in bitsets:
            bitset, bnode = bitsets[kind]
            for f in bitset.fields:
                if f.high >= width:
                    raise RegisterXmlError(
                        bnode.file,
                        f.line,
                        f'bitfield name="{f.name}"',
                        f"bits {f.high}:{f.low} of bitset {kind} are outside the "
                        f"{width}-bit {where}",
                    )
            fields = bitset.fields
        else:
            # A typed register without bitfields is one field spanning the register.
            implicit = _Node("bitfield", {"name": name, "low": "0", "high": str(width - 1)}, 0, "")
            implicit.attrib["type"], implicit.line, implicit.file = kind, node.line, node.file
            fields = (_field(implicit, width, enums, where),)
    return Register(name, offset, width, fields, access, _doc(node), node.line)


def _domain(nodes: list[_Node], enums: dict, bitsets: dict, lines: dict[int, _Node]) -> Domain:
    first = nodes[0]
    name = first.attrib["name"]
    width = _int(first, "width") if "width" in first.attrib else 32
    size = _int(first, "size", 1) if "size" in first.attrib else None
    for node in nodes:
        w = _int(node, "width") if "width" in node.attrib else 32
        s = _int(node, "size", 1) if "size" in node.attrib else None
        if w not in (32, 64):
            raise node.error(f"width={w} must be 32 or 64")
        if (w, s) != (width, size):
            raise node.error(f"domain {name} is declared again with another width or size")
    items: list[tuple[Register | Array, _Node]] = []
    join_nodes: list[_Node] = []
    for node in nodes:
        for child in node.children:
            if child.tag in ("reg32", "reg64"):
                items.append((_register(child, name, enums, bitsets), child))
            elif child.tag == "array":
                items.append((_array(child, name, enums, bitsets), child))
            elif child.tag == "join":
                join_nodes.append(child)
    names: dict[str, _Node] = {}
    for item, node in items:
        if item.name in names:
            raise node.error(f"duplicate register name '{item.name}' in domain {name}")
        names[item.name] = node
    domain = Domain(name, width, tuple(i for i, _ in items), size, (), _doc(first))
    lines.update((id(item), node) for item, node in items)
    _check_overlaps(domain.instances(), lambda inst: lines[id(inst.array or inst.register)])
    if size is None:
        if join_nodes:
            raise join_nodes[0].error("<join> is only allowed in a structure domain (size=…)")
        return domain
    for inst in domain.instances():
        if inst.offset + inst.register.width // 8 > size:
            raise lines[id(inst.array or inst.register)].error(
                f"offset {inst.offset:#x} is outside the {size}-byte structure {name}"
            )
    owners = _struct_namespace(domain, lines)
    joins = tuple(_join(n, domain, owners, enums) for n in join_nodes)
    parts = [(p.register, p.field) for j in joins for p in j.parts]
    for j, node in zip(joins, join_nodes, strict=True):
        if j.name in owners and (owners[j.name].name, j.name) not in parts:
            raise node.error(f"join name '{j.name}' is already a field of {name}")
        if sum(1 for other in joins if other.name == j.name) > 1:
            raise node.error(f"duplicate join name '{j.name}'")
    if len(parts) != len(set(parts)):
        raise join_nodes[0].error("a field is part of more than one join")
    return Domain(name, width, domain.items, size, joins, domain.doc)


def _array(node: _Node, domain: str, enums: dict, bitsets: dict) -> Array:
    name = node.attrib["name"]
    offset, stride = _int(node, "offset"), _int(node, "stride", 1)
    length = _int(node, "length", 1)
    regs = []
    for child in node.children:
        if child.tag in ("reg32", "reg64"):
            reg = _register(child, f"{domain}.{name}", enums, bitsets)
            if reg.offset + reg.width // 8 > stride:
                raise child.error(f"register is outside the array element (stride {stride:#x})")
            if any(r.name == reg.name for r in regs):
                raise child.error(f"duplicate register name '{reg.name}' in array {name}")
            regs.append(reg)
    return Array(name, offset, stride, length, tuple(regs), _doc(node), node.line)


def _check_overlaps(instances, node_of) -> None:
    spans = sorted(instances, key=lambda i: i.offset)
    for a, b in itertools.pairwise(spans):
        if b.offset < a.offset + a.register.width // 8:
            raise node_of(b).error(
                f"offset {b.offset:#x} of {b.path} duplicates or overlaps {a.path} at {a.offset:#x}"
            )


def _struct_namespace(domain: Domain, lines: dict) -> dict[str, Register]:
    """Field name -> register for a structure, whose non-reserved fields share one namespace."""
    owners: dict[str, Register] = {}
    for reg in domain.registers:
        for f in reg.fields:
            if f.reserved:
                continue
            if f.name in owners:
                node = lines[id(reg)]
                raise RegisterXmlError(
                    node.file,
                    f.line or node.line,
                    f'bitfield name="{f.name}"',
                    f"field name already used in {domain.name}.{owners[f.name].name} "
                    f"(a structure's fields share one namespace)",
                )
            owners[f.name] = reg
    return owners


def _join(node: _Node, domain: Domain, owners: dict[str, Register], enums: dict) -> Join:
    kind = node.attrib.get("type", "uint")
    enum = None
    if kind in enums:
        enum, kind = enums[kind], "enum"
    elif kind not in BASIC_TYPES or kind == "boolean":
        raise node.error(f"unknown type '{kind}' for a join")
    parts: list[JoinPart] = []
    low = 0
    for child in node.children:
        if child.tag != "part":
            continue
        fname = child.attrib["field"]
        reg = owners.get(fname)
        if reg is None:
            raise child.error(f"no field '{fname}' in structure {domain.name}")
        f = next(f for f in reg.fields if f.name == fname)
        if f.signed or f.shr or f.enum is not None:
            raise child.error("a join part must be a plain unsigned field")
        parts.append(JoinPart(reg.name, fname, low, f.width))
        low += f.width
    if len(parts) < 2:
        raise node.error("a join needs at least two parts")
    j = Join(node.attrib["name"], kind, enum, tuple(parts), _doc(node), node.line)
    for v in enum.values if enum else ():
        if v.value >> j.width:
            raise node.error(f"value {v.name}={v.value:#x} does not fit the {j.width}-bit join")
    return j


def _check_global_offsets(domains: tuple[Domain, ...], lines: dict[int, _Node]) -> None:
    """Register-file offsets are unique across domains (Mesa's rkt_get_target relies on it)."""
    instances = [i for d in domains if not d.is_struct for i in d.instances()]
    _check_overlaps(instances, lambda inst: lines[id(inst.array or inst.register)])
