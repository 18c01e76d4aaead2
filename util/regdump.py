"""Decode and re-encode register streams by register and field name, through the generated
register modules: rocket regcmd streams, etnaviv NN/TP job configurations and etnaviv front-end
command streams.

Mirrors what Mesa's ``rkt_regcmd.c`` debug dumps and freedreno's ``cffdump`` do: every entry
reads as ``BLOCK.REGISTER = 0x… (FIELD=value, …)`` with enum names, and the decoder flags writes
to unknown offsets, to read-only registers, to the wrong block, and set reserved bits. A
:class:`Dump` turns into JSON that :func:`encode` turns back into the same bytes, so two dumps
(ours and one captured from the vendor stack) can be diffed field by field. Simulators and tests
call :func:`decode` directly; ``teflon dump`` is the command line.
"""

from __future__ import annotations

import importlib
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType, ModuleType
from typing import Any

from .regs import Register, StructDomain

FORMATS = MappingProxyType(
    {"rocket": ("regcmd",), "etnaviv": ("nn-config", "tp-config", "cmdstream")}
)
_MODULES = MappingProxyType(
    {
        "rocket": "mesa_npu.drivers.rocket.rocket_regs",
        "etnaviv": "mesa_npu.drivers.etnaviv.etnaviv_regs",
    }
)
_STRUCTS = MappingProxyType({"nn-config": "NN_CONFIG", "tp-config": "TP_CONFIG"})


class DumpError(ValueError):
    """A file that does not decode: one line naming the byte offset and the problem."""


def regs_module(hw: str) -> ModuleType:
    """The generated register module of a hardware family."""
    if hw not in _MODULES:
        raise DumpError(f"unknown hardware '{hw}' (expected {' or '.join(_MODULES)})")
    return importlib.import_module(_MODULES[hw])


@dataclass(frozen=True, slots=True)
class Entry:
    """One decoded word of a stream.

    ``kind`` says what the word is (``write`` for a rocket regcmd entry, ``word`` for a job
    configuration word, ``LOAD_STATE``/``state``/``pad``/``zero``/an opcode name for an etnaviv
    command stream). ``register`` is the register path or ``None`` when unknown; ``fields`` are
    its decoded fields (all of them, reserved ones included); ``extra_bits`` the set bits no
    field covers. ``op`` holds the regcmd entry's own fields (block, flags).
    """

    at: int
    kind: str
    raw: int
    register: str | None = None
    address: int | None = None
    value: int = 0
    fields: tuple[tuple[str, Any], ...] = ()
    extra_bits: int = 0
    op: tuple[tuple[str, Any], ...] = ()
    op_extra_bits: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Dump:
    hw: str
    format: str
    entries: tuple[Entry, ...]
    joins: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def warnings(self) -> list[str]:
        return [f"@{e.at:#06x}: {w}" for e in self.entries for w in e.warnings]

    def to_json(self) -> dict[str, Any]:
        return {
            "hw": self.hw,
            "format": self.format,
            "entries": [_entry_json(e) for e in self.entries],
            **({"joins": {k: _json_value(v) for k, v in self.joins}} if self.joins else {}),
        }

    def text(self, *, all_fields: bool = False) -> str:
        lines = [_entry_text(e, all_fields) for e in self.entries]
        if self.joins:
            joined = ", ".join(f"{k}={_text_value(v)}" for k, v in self.joins)
            lines.append(f"joined: {joined}")
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def decode(data: bytes, hw: str, fmt: str | None = None) -> Dump:
    """Decode a file's bytes. ``fmt`` defaults to ``regcmd`` for rocket and, for etnaviv, to a
    job configuration when the size matches one (136 or 124 bytes), else a command stream."""
    regs = regs_module(hw)
    fmt = fmt or default_format(hw, len(data), regs)
    if fmt not in FORMATS[hw]:
        raise DumpError(f"format '{fmt}' is not one of {hw}'s: {', '.join(FORMATS[hw])}")
    if fmt == "regcmd":
        return Dump(hw, fmt, tuple(_decode_regcmd(data, regs)))
    if fmt == "cmdstream":
        return Dump(hw, fmt, tuple(_decode_cmdstream(data, regs)))
    domain = getattr(regs, _STRUCTS[fmt])
    entries = tuple(_decode_struct(data, domain))
    joins = ()
    if len(data) == domain.size:
        record = domain.unpack_words(data)
        joins = tuple((j.name, getattr(record, j.name)) for j in domain.joins)
    return Dump(hw, fmt, entries, joins)


def default_format(hw: str, size: int, regs: ModuleType | None = None) -> str:
    if hw == "rocket":
        return "regcmd"
    regs = regs or regs_module(hw)
    for fmt, name in _STRUCTS.items():
        if size == getattr(regs, name).size:
            return fmt
    return "cmdstream"


def _fields(reg: Register, value: int) -> tuple[tuple[tuple[str, Any], ...], int, list[str]]:
    """(fields, extra bits, warnings) of a register value."""
    record = reg.unpack(value)
    fields = tuple(zip(record._fields, record, strict=True))
    covered = 0
    for f in reg.fields:
        covered |= f.mask
    warnings = []
    reserved = value & reg.reserved_mask
    if reserved:
        names = [f.name for f in reg.fields if f.reserved and value & f.mask]
        where = f" ({', '.join(names)})" if names else ""
        warnings.append(f"{reg.path}: reserved bits {reserved:#x} set{where}")
    return fields, value & ~covered, warnings


def _decode_write(
    at: int, kind: str, raw: int, reg: Register | None, address: int | None, value: int
) -> Entry:
    """An Entry for ``value`` written to ``reg`` (None: unknown address)."""
    if reg is None:
        return Entry(at, kind, raw, None, address, value,
                     warnings=(f"write to unknown offset {address:#06x}",))  # fmt: skip
    fields, extra, warnings = _fields(reg, value)
    if reg.access == "r":
        warnings.append(f"{reg.path}: write to a read-only register")
    return Entry(at, kind, raw, reg.path, address, value, fields, extra, warnings=tuple(warnings))


def _decode_regcmd(data: bytes, regs: ModuleType):
    if len(data) % 8:
        raise DumpError(
            f"regcmd stream: {len(data)} bytes is not a whole number of 64-bit entries "
            f"(trailing bytes at offset {len(data) - len(data) % 8:#x})"
        )
    entry_reg = regs.REGCMD.ENTRY
    op_fields = [f for f in entry_reg.fields if f.name not in ("OFFSET", "VALUE")]
    for i, (word,) in enumerate(struct.iter_unpack("<Q", data)):
        e = entry_reg.unpack(word)
        op = tuple((f.name, _target_name(regs, getattr(e, f.name))) for f in op_fields)
        op_extra = word & entry_reg.reserved_mask
        warnings = [f"regcmd op: reserved bits {op_extra:#x} set"] if op_extra else []
        if not e.BLOCK and not e.OP_EN:
            # No block addressed: the all-zero padding entry or the 0x0041 entry the TRM asks
            # for before op_en. Nothing is written.
            kind = "nop" if word == 0 else "control"
            yield Entry(i * 8, kind, word, None, e.OFFSET, e.VALUE, op=op, op_extra_bits=op_extra,
                        warnings=tuple(warnings))  # fmt: skip
            continue
        reg = regs.register_at(e.OFFSET)
        w = _decode_write(i * 8, "op_en" if e.OP_EN else "write", word, reg, e.OFFSET, e.VALUE)
        warnings += w.warnings
        if reg is not None and e.BLOCK and not e.OP_EN:
            owner = regs.target_of(e.OFFSET)
            if owner != e.BLOCK:
                block = _text_value(_target_name(regs, e.BLOCK))
                warnings.append(f"block {block} does not own {reg.path} (block {owner.name})")
        yield Entry(w.at, w.kind, word, w.register, w.address, w.value, w.fields, w.extra_bits,
                    op, op_extra, tuple(warnings))  # fmt: skip


def _target_name(regs: ModuleType, value: Any) -> Any:
    """A regcmd BLOCK value as its target name when it is one."""
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    try:
        return regs.Target(value)
    except ValueError:
        return value


def _decode_struct(data: bytes, domain: StructDomain):
    if not data or len(data) % domain.size:
        raise DumpError(
            f"{domain.name}: {len(data)} bytes is not a whole number of {domain.size}-byte "
            f"configurations (stops at offset {len(data) - len(data) % domain.size:#x})"
        )
    regs = sorted(domain.registers, key=lambda r: r.offset)
    for base in range(0, len(data), domain.size):
        values = domain.values(data[base : base + domain.size])
        for reg, value in zip(regs, values, strict=True):
            yield _decode_write(base + reg.offset, "word", value, reg, reg.offset, value)


def _decode_cmdstream(data: bytes, regs: ModuleType):
    if len(data) % 8:
        raise DumpError(
            f"command stream: {len(data)} bytes is not 64-bit padded "
            f"(trailing bytes at offset {len(data) - len(data) % 8:#x})"
        )
    words = [w for (w,) in struct.iter_unpack("<I", data)]
    opcode = regs.FeOpcode
    pos = 0
    while pos < len(words):
        at, word = pos * 4, words[pos]
        if word == 0:
            # Mesa emits bare zero words to match the blob's padding ("to make diff'ing easier").
            yield Entry(at, "zero", 0)
            pos += 1
            continue
        op = regs.FE.HEADER.unpack(word).OP
        if op == opcode.LOAD_STATE:
            header = regs.FE_LOAD_STATE.HEADER
            h = header.unpack(word)
            if h.COUNT == 0:
                raise DumpError(f"LOAD_STATE at offset {at:#x}: count 0 (meaning unverified)")
            size = (h.COUNT + 2) // 2 * 2  # header + values, padded to 64 bits
            if pos + size > len(words):
                raise DumpError(
                    f"LOAD_STATE at offset {at:#x}: {h.COUNT} values run past the end of the "
                    f"stream ({len(data)} bytes)"
                )
            yield _decode_write(at, "LOAD_STATE", word, header, None, word)
            for i in range(h.COUNT):
                address = h.OFFSET + 4 * i
                value = words[pos + 1 + i]
                reg = regs.register_at(address)
                yield _decode_write(at + 4 + 4 * i, "state", value, reg, address, value)
            if size > h.COUNT + 1:
                pad = words[pos + size - 1]
                warn = (f"non-zero padding word {pad:#x}",) if pad else ()
                yield Entry(at + 4 * (size - 1), "pad", pad, value=pad, warnings=warn)
            pos += size
            continue
        name = op.name if isinstance(op, opcode) else None
        domain = getattr(regs, f"FE_{name}", None) if name else None
        if domain is None:
            what = f"unsupported opcode {name} ({int(op)})" if name else f"unknown opcode {op}"
            raise DumpError(f"{what} at offset {at:#x}")
        if pos + domain.size // 4 > len(words):
            raise DumpError(f"{name} at offset {at:#x} runs past the end of the stream")
        for reg in sorted(domain.registers, key=lambda r: r.offset):
            value = words[pos + reg.offset // 4]
            kind = name if reg.offset == 0 else "arg"
            yield _decode_write(at + reg.offset, kind, value, reg, None, value)
        covered = {r.offset for r in domain.registers}
        for off in range(0, domain.size, 4):
            if off not in covered:
                pad = words[pos + off // 4]
                warn = (f"non-zero padding word {pad:#x}",) if pad else ()
                yield Entry(at + off, "pad", pad, value=pad, warnings=warn)
        pos += domain.size // 4


# --------------------------------------------------------------------------------------------
# JSON and text
# --------------------------------------------------------------------------------------------


def _json_value(v: Any) -> Any:
    if isinstance(v, IntEnum):
        return v.name
    return v


def _text_value(v: Any) -> str:
    if isinstance(v, IntEnum):
        return v.name
    if isinstance(v, bool):
        return str(int(v))
    return str(v) if -10 < v < 10 else f"{v:#x}"


def _entry_json(e: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {"at": e.at, "kind": e.kind, "raw": f"{e.raw:#0{18 if e.op else 10}x}"}
    if e.op:
        out["op"] = {k: _json_value(v) for k, v in e.op}
        if e.op_extra_bits:
            out["op_extra_bits"] = f"{e.op_extra_bits:#x}"
    if e.address is not None:
        out["address"] = f"{e.address:#06x}"
    out["register"] = e.register
    out["value"] = f"{e.value:#010x}"
    if e.register is not None:
        out["fields"] = {k: _json_value(v) for k, v in e.fields}
        out["extra_bits"] = f"{e.extra_bits:#x}"
    out["warnings"] = list(e.warnings)
    return out


def _entry_text(e: Entry, all_fields: bool) -> str:
    head = f"{e.at:06x}  {e.raw:#0{18 if e.op else 10}x}"
    if e.op:
        flags = [_text_value(v) for k, v in e.op if k == "BLOCK" and v]
        flags += [k for k, v in e.op if k != "BLOCK" and v is True]
        head += f"  {'|'.join(flags) or '-':<16}"
    if e.register is None and e.kind in ("zero", "pad", "nop"):
        body = e.kind
    elif e.kind == "control":
        body = f"control (offset {e.address:#06x}, value {e.value:#010x})"
    elif e.register is None:
        body = f"{e.address:#06x} = {e.value:#010x} (unknown register)"
    else:
        shown = [(k, v) for k, v in e.fields if all_fields or v]
        inner = ", ".join(f"{k}={_text_value(v)}" for k, v in shown)
        body = f"{e.register} = {e.value:#010x}" + (f" ({inner})" if inner else "")
    text = f"{head}  {body}"
    for w in e.warnings:
        text += f"\n{'':8}!! {w}"
    return text


# --------------------------------------------------------------------------------------------
# Re-encoding a JSON dump
# --------------------------------------------------------------------------------------------


def encode(dump: dict[str, Any]) -> bytes:
    """The bytes a JSON dump (from :meth:`Dump.to_json`) describes, rebuilt from its decoded
    fields (not from its ``raw`` or ``value`` words, except for unknown registers)."""
    try:
        hw, fmt, entries = dump["hw"], dump["format"], dump["entries"]
    except (KeyError, TypeError):
        raise DumpError("not a register dump (needs hw, format and entries)") from None
    regs = regs_module(hw)
    out = bytearray()
    for e in entries:
        try:
            value = _encode_value(regs, fmt, e)
            if fmt == "regcmd":
                out += struct.pack("<Q", _encode_regcmd(regs, e, value))
            else:
                out += struct.pack("<I", value)
        except (KeyError, ValueError, TypeError) as err:
            raise DumpError(f"entry at {e.get('at', '?')}: cannot encode: {err}") from None
    return bytes(out)


def _lookup(regs: ModuleType, path: str) -> Register:
    domain, _, name = path.partition(".")
    return getattr(regs, domain)[name]


def _encode_value(regs: ModuleType, fmt: str, e: dict[str, Any]) -> int:
    path = e.get("register")
    if path is None:
        return int(e["value"], 16)
    reg = _lookup(regs, path)
    kwargs = {}
    for name, v in e["fields"].items():
        f = reg.field(name)
        kwargs[name] = f.enum[v] if isinstance(v, str) else int(v)
    return reg.pack(**kwargs) | int(e.get("extra_bits", "0x0"), 16)


def _encode_regcmd(regs: ModuleType, e: dict[str, Any], value: int) -> int:
    entry = regs.REGCMD.ENTRY
    op = {}
    for name, v in e["op"].items():
        op[name] = regs.Target[v] if isinstance(v, str) else v
    if e.get("register") is None and e["kind"] in ("nop", "control"):
        value = int(e["value"], 16)
    return entry.pack(OFFSET=int(e["address"], 16), VALUE=value, **op) | int(
        e.get("op_extra_bits", "0x0"), 16
    )
