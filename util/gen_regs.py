"""Generate register accessors from a register XML: a Python module or a C header in Mesa's style.

Mirrors Mesa's ``src/freedreno/registers/gen_header.py`` (copied by the rocket driver), with the
layout in mako templates (``util/templates/*.mako``) and this module preparing a view of the
database for them. The output is a pure function of the XML and the templates: the banner names
both by repository-relative path, with no timestamp, year or absolute path, so two runs give the
same bytes.

Meson runs this file as a script from the source tree before the package is installed::

    python util/gen_regs.py --python drivers/rocket/registers.xml -o rocket_regs.py
    python util/gen_regs.py --c-header drivers/rocket/registers.xml --prefix rkt -o rocket_regs.h

and ``teflon regs gen`` calls :func:`generate` for the same output outside the build.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from mako.template import Template

UTIL_DIR = Path(__file__).resolve().parent
TEMPLATES = {"python": "python_regs.mako", "c-header": "c_header.mako"}

if __package__:
    from . import regxml
    from .regmodel import Database, Domain, Field, Join, Register
else:  # run as a script by meson: load util/ as a package so its relative imports work
    _spec = importlib.util.spec_from_file_location(
        "_gen_regs_util", UTIL_DIR / "__init__.py", submodule_search_locations=[str(UTIL_DIR)]
    )
    _pkg = importlib.util.module_from_spec(_spec)
    sys.modules["_gen_regs_util"] = _pkg
    _spec.loader.exec_module(_pkg)
    regxml = importlib.import_module("_gen_regs_util.regxml")
    _model = importlib.import_module("_gen_regs_util.regmodel")
    Database, Domain, Field, Join, Register = (
        _model.Database,
        _model.Domain,
        _model.Field,
        _model.Join,
        _model.Register,
    )


def generate(xml_path: str | Path, kind: str, *, prefix: str | None = None) -> str:
    """The generated source for ``kind`` (``"python"`` or ``"c-header"``) of a register XML.

    ``prefix`` names the C offset-to-target function (``<prefix>_get_target``) and the include
    guard; it defaults to the XML's folder name.
    """
    if kind not in TEMPLATES:
        raise ValueError(f"unknown output kind '{kind}' (expected one of {', '.join(TEMPLATES)})")
    db = regxml.parse(xml_path)
    template_name = f"util/templates/{TEMPLATES[kind]}"
    template = Template(
        filename=str(UTIL_DIR / "templates" / TEMPLATES[kind]),
        strict_undefined=True,
        output_encoding=None,
    )
    view = View(db, Path(xml_path), template_name, prefix)
    return template.render(v=view)


# --------------------------------------------------------------------------------------------
# The view the templates read: names, literals and code fragments, computed once here
# --------------------------------------------------------------------------------------------


def class_name(enum_name: str) -> str:
    """``conv_mode`` -> ``ConvMode``: the Python IntEnum for an XML enum."""
    return "".join(p[:1].upper() + p[1:] for p in enum_name.split("_"))


def hexlit(value: int, width: int = 32) -> str:
    digits = 16 if width > 32 else 8
    return f"0x{value:0{digits}x}"


def pystr(text: str) -> str:
    """A double-quoted Python string literal."""
    return json.dumps(text, ensure_ascii=False)


def comment(text: str) -> str:
    """Text safe inside a C block comment or a Python comment (one line)."""
    return " ".join(text.replace("*/", "* /").split())


@dataclass(frozen=True)
class FieldView:
    """One field, with the literals and Python fragments the templates paste."""

    f: Field
    where: str  # "CNA.CONV_CON3" for error messages
    cname: str  # "CNA_CONV_CON3_CONV_X_STRIDE"
    enum_class: str | None

    @property
    def name(self) -> str:
        return self.f.name

    @property
    def default(self) -> int:
        return self.f.default or 0

    @property
    def default_lit(self) -> str:
        return f"{self.default:#x}" if self.default > 9 else str(self.default)

    @property
    def reg_name(self) -> str:
        return self.where.rsplit(".", 1)[1]

    @property
    def lo(self) -> int:
        return self.f.min_value

    @property
    def hi(self) -> int:
        return self.f.max_value

    @property
    def value_mask(self) -> int:
        return (1 << self.f.width) - 1

    def py_check(self) -> list[str]:
        """Statements that validate the keyword argument ``name`` in a packer."""
        n, step = self.name, 1 << self.f.shr
        cond = f"not {self.lo} <= {n} <= {self.hi}"
        args = f'"{self.where}", "{n}", {n}, {self.lo}, {self.hi}'
        if self.f.shr:
            cond += f" or {n} & {step - 1:#x}"
            args += f", {step:#x}"
        return [f"{n} = index({n})", f"if {cond}:", f"    overflow({args})"]

    def py_insert(self) -> str:
        """Expression placing the checked value in the register."""
        v = self.name
        if self.f.shr:
            v = f"({v} >> {self.f.shr})"
        if self.f.signed:
            v = f"({v} & {self.value_mask:#x})"
        return f"{v} << {self.f.low}" if self.f.low else v

    def py_extract(self, value: str = "value") -> str:
        """Expression decoding this field from the register value ``value``."""
        raw = f"{value} >> {self.f.low} & {self.value_mask:#x}" if self.f.low else None
        raw = raw or f"{value} & {self.value_mask:#x}"
        if self.f.boolean:
            return f"bool({raw})"
        if self.f.signed:
            sign = 1 << (self.f.width - 1)
            raw = f"(({raw}) ^ {sign:#x}) - {sign:#x}"
        if self.f.shr:
            return f"({raw}) << {self.f.shr}"
        if self.enum_class:
            return f"_{self.enum_class}_by_value.get({raw}, {raw})"
        return raw

    def py_descriptor(self) -> str:
        f = self.f
        args = [pystr(f.name), str(f.low), str(f.high)]
        if f.signed:
            args.append("signed=True")
        if f.boolean:
            args.append("boolean=True")
        if f.shr:
            args.append(f"shr={f.shr}")
        if self.enum_class:
            args.append(f"enum={self.enum_class}")
        if f.reserved:
            args.append("reserved=True")
        if f.default:
            args.append(f"default={f.default:#x}")
        if f.doc:
            args.append(f"doc={pystr(f.doc)}")
        return f"Field({', '.join(args)})"


@dataclass(frozen=True)
class RegView:
    """One register (or the register of an array element) of a domain."""

    r: Register
    domain: str
    cname: str  # "CNA_CONV_CON3", or "CNA_DCOMP_AMOUNT" inside array DCOMP
    fields: tuple[FieldView, ...]

    @property
    def name(self) -> str:
        return self.r.name

    @property
    def width(self) -> int:
        return self.r.width

    @property
    def ctype(self) -> str:
        return "uint64_t" if self.r.width > 32 else "uint32_t"

    @property
    def max_value(self) -> int:
        return (1 << self.r.width) - 1

    def c_mask(self, value: int) -> str:
        return hexlit(value, self.r.width) + ("ULL" if self.r.width > 32 else "")


@dataclass(frozen=True)
class ArrayView:
    name: str
    cname: str
    offset: int
    stride: int
    length: int
    registers: tuple[RegView, ...]
    doc: str


@dataclass(frozen=True)
class JoinView:
    j: Join
    enum_class: str | None

    @property
    def name(self) -> str:
        return self.j.name

    @property
    def lo(self) -> int:
        return -(1 << (self.j.width - 1)) if self.j.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.j.width - 1 if self.j.signed else self.j.width)) - 1


@dataclass(frozen=True)
class DomainView:
    d: Domain
    items: tuple[RegView | ArrayView, ...]
    joins: tuple[JoinView, ...]

    @property
    def name(self) -> str:
        return self.d.name

    @property
    def registers(self) -> tuple[RegView, ...]:
        return tuple(i for i in self.items if isinstance(i, RegView))

    @property
    def arrays(self) -> tuple[ArrayView, ...]:
        return tuple(i for i in self.items if isinstance(i, ArrayView))

    def struct_layout(self) -> str:
        """struct format of one structure: one item per register in offset order, pad bytes
        for the gaps."""
        fmt, pos = "<", 0
        for r in sorted(self.registers, key=lambda r: r.r.offset):
            if r.r.offset > pos:
                fmt += f"{r.r.offset - pos}x"
            fmt += "Q" if r.width > 32 else "I"
            pos = r.r.offset + r.width // 8
        if self.d.size > pos:
            fmt += f"{self.d.size - pos}x"
        return fmt

    def struct_registers(self) -> tuple[RegView, ...]:
        return tuple(sorted(self.registers, key=lambda r: r.r.offset))

    def struct_used(self) -> list[tuple[int, RegView]]:
        """(position, register) of the words unpack_words reads fields from."""
        regs = self.struct_registers()
        return [(i, r) for i, r in enumerate(regs) if any(not f.f.reserved for f in r.fields)]

    def join_of(self, field: str) -> JoinView | None:
        for j in self.joins:
            if any(p.field == field for p in j.j.parts):
                return j
        return None

    def flat_fields(self) -> list[FieldView | JoinView]:
        """A structure's names for pack_words/unpack_words: every non-reserved field, with a
        join in place of its first part and its other parts left out."""
        out: list[FieldView | JoinView] = []
        for r in self.struct_registers():
            for f in r.fields:
                if f.f.reserved:
                    continue
                j = self.join_of(f.name)
                if j is None:
                    out.append(f)
                elif j not in out:
                    out.append(j)
        return out

    def part_source(self, reg: RegView, f: FieldView) -> str:
        """In pack_words: the expression giving part ``f`` of its join."""
        j = self.join_of(f.name)
        part = next(p for p in j.j.parts if p.field == f.name)
        mask = (1 << part.width) - 1
        return f"{j.name} >> {part.low} & {mask:#x}" if part.low else f"{j.name} & {mask:#x}"

    def join_value(self, j: JoinView, regs: dict[str, int]) -> str:
        """In unpack_words: the expression assembling join ``j`` from the word records."""
        terms = []
        for p in j.j.parts:
            term = f"r{regs[p.register]}.{p.field}"
            terms.append(f"{term} << {p.low}" if p.low else term)
        raw = " | ".join(terms)
        if j.j.signed:
            sign = 1 << (j.j.width - 1)
            return f"(({raw}) ^ {sign:#x}) - {sign:#x}"
        if j.enum_class:
            return f"_{j.enum_class}_by_value.get({raw}, {raw})"
        return raw


class View:
    """What the templates see."""

    def __init__(self, db: Database, xml_path: Path, template: str, prefix: str | None) -> None:
        self.db = db
        self.template = template
        self.source = source_name(xml_path)
        base = self.source.rsplit("/", 1)[0] + "/" if "/" in self.source else ""
        self.imports = tuple(base + f for f in db.files[1:])
        self.prefix = prefix or xml_path.resolve().parent.name
        self.guard = f"{self.prefix.upper()}_REGS_H"
        self.license = [comment(line) for line in db.license.splitlines()]
        self.enums = db.enums
        self.enum_classes = {e.name: class_name(e.name) for e in db.enums}
        self.domains = tuple(self._domain(d) for d in db.domains)
        target = next((e for e in db.enums if e.name == "target"), None)
        self.target = target
        names = {d.name for d in db.domains if not d.is_struct}
        self.target_domains = [v for v in target.values if v.name in names] if target else []
        self.has_structs = any(d.is_struct for d in db.domains)
        self.has_joins = any(d.joins for d in db.domains)

    def enum_class(self, f: Field | Join) -> str | None:
        return self.enum_classes[f.enum.name] if f.enum is not None else None

    def _reg(self, r: Register, domain: str, cname: str) -> RegView:
        where = f"{domain}.{r.name}"
        fields = tuple(
            FieldView(f, where, f"{cname}_{f.name}", self.enum_class(f)) for f in r.fields
        )
        return RegView(r, domain, cname, fields)

    def _domain(self, d: Domain) -> DomainView:
        items: list[RegView | ArrayView] = []
        for item in d.items:
            if isinstance(item, Register):
                items.append(self._reg(item, d.name, f"{d.name}_{item.name}"))
                continue
            acname = f"{d.name}_{item.name}"
            regs = tuple(
                self._reg(r, f"{d.name}.{item.name}[]", f"{acname}_{r.name}")
                for r in item.registers
            )
            items.append(
                ArrayView(item.name, acname, item.offset, item.stride, item.length, regs, item.doc)
            )
        joins = tuple(JoinView(j, self.enum_class(j)) for j in d.joins)
        return DomainView(d, tuple(items), joins)

    hexlit = staticmethod(hexlit)
    comment = staticmethod(comment)
    pystr = staticmethod(pystr)


def source_name(xml_path: Path) -> str:
    """The XML's path relative to the tree it belongs to: this generator's root (the repository,
    or the installed package), else the nearest parent folder holding util/gen_regs.py (a
    source tree seen from an installed package). Elsewhere just the file name: never an
    absolute path."""
    xml = xml_path.resolve()
    roots = [UTIL_DIR.parent] + [p for p in xml.parents if (p / "util" / "gen_regs.py").is_file()]
    for root in roots:
        try:
            return xml.relative_to(root).as_posix()
        except ValueError:
            continue
    return xml_path.name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("xml")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--python", dest="kind", action="store_const", const="python")
    kind.add_argument("--c-header", dest="kind", action="store_const", const="c-header")
    parser.add_argument("--prefix", help="C prefix for <prefix>_get_target (default: folder)")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    try:
        text = generate(args.xml, args.kind, prefix=args.prefix)
    except regxml.RegisterXmlError as e:
        print(f"gen_regs: {e}", file=sys.stderr)
        return 1
    Path(args.output).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
