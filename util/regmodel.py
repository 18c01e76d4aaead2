"""The frozen model of a register database, as read by :mod:`.regxml`.

A :class:`Database` holds enums, bitsets and domains; a domain holds registers and arrays (and,
for structure domains, joins); a register holds fields. The generators (``util/gen_regs.py``) and
the decoder (``util/regdump.py``) read only this model. Mirrors the object model inside Mesa's
``src/freedreno/registers/gen_header.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BASIC_TYPES = frozenset({"uint", "int", "hex", "boolean", "address", "waddress"})
_RESERVED = re.compile(r"RESERVED(_\w+)?\Z")


@dataclass(frozen=True, slots=True)
class EnumValue:
    name: str
    value: int
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Enum:
    name: str
    values: tuple[EnumValue, ...]
    doc: str = ""

    @property
    def bits(self) -> int:
        """Bits needed to hold the largest value."""
        return max((v.value.bit_length() for v in self.values), default=0)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    low: int
    high: int
    type: str  # one of BASIC_TYPES, or "enum"
    enum: Enum | None = None
    shr: int = 0
    default: int | None = None
    doc: str = ""
    line: int = 0

    @property
    def width(self) -> int:
        return self.high - self.low + 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.low

    @property
    def signed(self) -> bool:
        return self.type == "int"

    @property
    def boolean(self) -> bool:
        return self.type == "boolean"

    @property
    def reserved(self) -> bool:
        return _RESERVED.match(self.name) is not None

    @property
    def min_value(self) -> int:
        return -(1 << (self.width - 1)) << self.shr if self.signed else 0

    @property
    def max_value(self) -> int:
        bits = self.width - 1 if self.signed else self.width
        return ((1 << bits) - 1) << self.shr


@dataclass(frozen=True, slots=True)
class Bitset:
    name: str
    fields: tuple[Field, ...]
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Register:
    """A register, or a word of a structure. For registers inside an :class:`Array` the offset
    is relative to the array element."""

    name: str
    offset: int
    width: int
    fields: tuple[Field, ...]
    access: str = "rw"
    doc: str = ""
    line: int = 0

    @property
    def defined_mask(self) -> int:
        """Bits owned by non-reserved fields."""
        mask = 0
        for f in self.fields:
            if not f.reserved:
                mask |= f.mask
        return mask

    @property
    def reserved_mask(self) -> int:
        return ((1 << self.width) - 1) & ~self.defined_mask


@dataclass(frozen=True, slots=True)
class Array:
    name: str
    offset: int
    stride: int
    length: int
    registers: tuple[Register, ...]
    doc: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class JoinPart:
    register: str
    field: str
    low: int  # position of this part's least significant bit in the joined value
    width: int


@dataclass(frozen=True, slots=True)
class Join:
    name: str
    type: str
    enum: Enum | None
    parts: tuple[JoinPart, ...]
    doc: str = ""
    line: int = 0

    @property
    def width(self) -> int:
        return sum(p.width for p in self.parts)

    @property
    def signed(self) -> bool:
        return self.type == "int"


@dataclass(frozen=True, slots=True)
class RegisterInstance:
    """One concrete register of a domain: a plain register or one element of an array."""

    domain: Domain
    register: Register
    offset: int  # absolute byte offset
    array: Array | None = None
    index: int = 0

    @property
    def name(self) -> str:
        if self.array is None:
            return self.register.name
        return f"{self.array.name}[{self.index}].{self.register.name}"

    @property
    def path(self) -> str:
        return f"{self.domain.name}.{self.name}"


@dataclass(frozen=True, slots=True)
class Domain:
    name: str
    width: int
    items: tuple[Register | Array, ...]
    size: int | None = None
    joins: tuple[Join, ...] = ()
    doc: str = ""

    @property
    def is_struct(self) -> bool:
        return self.size is not None

    @property
    def registers(self) -> tuple[Register, ...]:
        return tuple(i for i in self.items if isinstance(i, Register))

    @property
    def arrays(self) -> tuple[Array, ...]:
        return tuple(i for i in self.items if isinstance(i, Array))

    def instances(self) -> tuple[RegisterInstance, ...]:
        out = []
        for item in self.items:
            if isinstance(item, Register):
                out.append(RegisterInstance(self, item, item.offset))
                continue
            for i in range(item.length):
                base = item.offset + i * item.stride
                for reg in item.registers:
                    out.append(RegisterInstance(self, reg, base + reg.offset, item, i))
        return tuple(out)

    def register(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise KeyError(f"{self.name}.{name}")


@dataclass(frozen=True, slots=True)
class Database:
    path: str  # the main file, as given
    files: tuple[str, ...]  # every file read, relative to the main file's folder
    enums: tuple[Enum, ...]
    bitsets: tuple[Bitset, ...]
    domains: tuple[Domain, ...]
    license: str = ""

    def enum(self, name: str) -> Enum:
        for e in self.enums:
            if e.name == name:
                return e
        raise KeyError(name)

    def domain(self, name: str) -> Domain:
        for d in self.domains:
            if d.name == name:
                return d
        raise KeyError(name)

    def instances(self) -> tuple[RegisterInstance, ...]:
        """Every register of the register file (structure domains excluded)."""
        return tuple(i for d in self.domains if not d.is_struct for i in d.instances())
