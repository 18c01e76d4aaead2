"""Runtime types of the generated register modules (``rocket_regs.py``, ``etnaviv_regs.py``).

``util/gen_regs.py`` turns a register XML into a module whose per-register ``pack``/``unpack``
functions hold their shifts and masks as literals (that is the generated code); this module
holds what every generated module shares: the :class:`Field` and :class:`Register` descriptors,
the :class:`Domain` and :class:`StructDomain` bases, and the error helpers the generated
packers call. The decoder (``util/regdump.py``) reads registers through these descriptors only.

Mesa counterpart: the ``struct fd_reg_pair`` / ``__MASK``/``__SHIFT`` helpers of freedreno's
generated headers, except that our packers raise where the C helpers mask silently.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, NamedTuple, NoReturn

index = operator.index  # the generated packers' int check: rejects floats, accepts numpy ints


def overflow(where: str, field: str, value: int, lo: int, hi: int, step: int = 1) -> NoReturn:
    """Raise the error of a generated packer for a field value that does not fit."""
    if lo <= value <= hi:
        raise ValueError(f"{where}: {field}={value:#x} is not a multiple of {step:#x}")
    raise ValueError(f"{where}: {field}={value} does not fit ({lo}..{hi})")


def unknown_fields(where: str, names: dict[str, Any]) -> NoReturn:
    raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(names))}")


def bad_value(where: str, value: int, width: int) -> NoReturn:
    raise ValueError(f"{where}: value {value:#x} does not fit {width} bits")


@dataclass(frozen=True, slots=True)
class Field:
    """One bitfield of a register: bits ``high..low``; ``mask`` is in place."""

    name: str
    low: int
    high: int
    signed: bool = False
    boolean: bool = False
    shr: int = 0
    enum: type[IntEnum] | None = None
    reserved: bool = False
    default: int = 0
    doc: str = ""

    @property
    def width(self) -> int:
        return self.high - self.low + 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.low

    def extract(self, value: int) -> int | bool | IntEnum:
        """This field of a register value, decoded (sign, shr, enum, bool). Generic and slow:
        hot paths use the register's generated ``unpack``."""
        raw = (value & self.mask) >> self.low
        if self.signed and raw >> (self.width - 1):
            raw -= 1 << self.width
        if self.boolean:
            return bool(raw)
        if self.enum is not None:
            try:
                return self.enum(raw)
            except ValueError:
                return raw
        return raw << self.shr


@dataclass(frozen=True, slots=True, eq=False)
class Register:
    """A register (or a word of a structure) and its generated packer and unpacker.

    ``pack(**fields) -> int`` raises ``ValueError`` naming the register and field when a value
    does not fit or a field name is unknown; omitted fields take their XML default (else 0).
    ``unpack(value)`` returns the register's frozen record (a NamedTuple) of every field.
    """

    domain: str
    name: str
    offset: int
    width: int
    access: str
    fields: tuple[Field, ...]
    pack: Callable[..., int]
    unpack: Callable[[int], Any]
    record: type
    doc: str = ""

    @property
    def path(self) -> str:
        return f"{self.domain}.{self.name}"

    @property
    def defined_mask(self) -> int:
        """Bits owned by non-reserved fields; every other set bit is a reserved bit."""
        mask = 0
        for f in self.fields:
            if not f.reserved:
                mask |= f.mask
        return mask

    @property
    def reserved_mask(self) -> int:
        return ((1 << self.width) - 1) & ~self.defined_mask

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.path} has no field {name}")

    def __repr__(self) -> str:
        return f"<Register {self.path} @ {self.offset:#06x}>"


class JoinPart(NamedTuple):
    register: str
    field: str
    low: int  # position of the part's least significant bit in the joined value
    width: int


@dataclass(frozen=True, slots=True)
class Join:
    """A value split over several fields of a structure (see util/regxml.py)."""

    name: str
    parts: tuple[JoinPart, ...]
    signed: bool = False
    enum: type[IntEnum] | None = None
    doc: str = ""

    @property
    def width(self) -> int:
        return sum(p.width for p in self.parts)


class Domain:
    """A block of registers. Generated subclasses hold each register as a class attribute;
    the module exposes one instance per domain (``CNA.CONV_CON3``)."""

    __slots__ = ()
    name: ClassVar[str]
    doc: ClassVar[str] = ""
    registers: ClassVar[tuple[Register, ...]] = ()

    def __iter__(self) -> Iterator[Register]:
        return iter(self.registers)

    def __len__(self) -> int:
        return len(self.registers)

    def __getitem__(self, name: str) -> Register:
        for r in self.registers:
            if r.name == name:
                return r
        raise KeyError(f"{self.name} has no register {name}")

    def __repr__(self) -> str:
        return f"<Domain {self.name}: {len(self.registers)} registers>"


class StructDomain(Domain):
    """A fixed-size structure of little-endian words (a job descriptor, a command word).

    Generated subclasses add ``pack_words(**fields) -> bytes`` and ``unpack_words(buf)``,
    which take and return every non-reserved field of every word by name, with joined values
    (``joins``) in place of their parts.
    """

    __slots__ = ()
    size: ClassVar[int]
    layout: ClassVar[struct.Struct]  # one item per register, in offset order; gaps are padding
    joins: ClassVar[tuple[Join, ...]] = ()
    field_names: ClassVar[tuple[str, ...]] = ()

    def values(self, buf: Any) -> tuple[int, ...]:
        """The register values of one structure in ``buf`` (bytes, bytearray, memoryview or a
        numpy array), in the order of ``registers``."""
        return struct_values(self.layout, buf, self.name)


def struct_values(layout: struct.Struct, buf: Any, name: str) -> tuple[int, ...]:
    raw = memoryview(buf).cast("B")
    if raw.nbytes != layout.size:
        raise ValueError(f"{name}: expected {layout.size} bytes, got {raw.nbytes}")
    return layout.unpack(raw)
