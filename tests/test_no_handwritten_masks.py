"""Register access goes through the generated accessors: drivers/ and drm_shim/ hold no
hand-written register masks or shifts (DESIGN.md "Register access goes through generated code";
STYLE.md rule 7). The register XML is the one place bit positions live.

The scan reads Python tokens, so strings and comments never match. It flags

- a shift by an integer literal of 2 or more (``t << 48``, ``v >> 16``, ``x <<= 8``);
- ``&`` or ``|`` next to a hexadecimal or binary literal (``& 0xffff``, ``0x1000 | reg``);
- ``&`` next to a decimal literal of 3 or more (``& 255``).

and leaves ordinary arithmetic alone: halving and doubling (``>> 1``, ``1 << n``), alignment
(``x & ~63``, ``(x + 15) // 16``), offsets (``0x80 - zp``) and the int8/uint8 sign flip
(``^ 0x80``).
"""

from __future__ import annotations

import io
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("drivers", "drm_shim")

# Modules whose job is bitstream coding, not register programming: their shifts and masks build
# entropy-coded weight streams whose layout lives in the codec itself, not in a register XML.
ALLOWLIST = (
    # The etnaviv weight codecs (issue 6): the v7 zero-run-length tokens packed LSB-first, the v8
    # Huffman codes, symbol map and pair interleave, their shared bit writer/reader, decoders
    # and searches. All live in codec_*.py; a register write in such a file would hide here, so
    # keep register code out of them.
    "drivers/etnaviv/codec_*.py",
)

_MASK_OPS = {"&", "|", "&=", "|="}
_SHIFT_OPS = {"<<", ">>", "<<=", ">>="}


def _literal(token: tokenize.TokenInfo) -> int | None:
    if token.type != tokenize.NUMBER:
        return None
    try:
        return int(token.string.replace("_", ""), 0)
    except ValueError:  # a float or complex literal
        return None


def violations(source: str) -> list[tuple[int, str]]:
    """(line, reason) for each hand-written register mask or shift in ``source``."""
    tokens = [
        t
        for t in tokenize.generate_tokens(io.StringIO(source).readline)
        if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT)
    ]
    found = []
    for i, tok in enumerate(tokens):
        if tok.type != tokenize.OP:
            continue
        after = _literal(tokens[i + 1]) if i + 1 < len(tokens) else None
        before = _literal(tokens[i - 1]) if i > 0 else None
        if tok.string in _SHIFT_OPS and after is not None and after >= 2:
            found.append((tok.start[0], f"shift by literal {tokens[i + 1].string}"))
        elif tok.string in _MASK_OPS:
            for lit, text in ((after, tokens[i + 1]), (before, tokens[i - 1])):
                if lit is None:
                    continue
                radix = text.string[:2].lower()
                if radix in ("0x", "0b") or (tok.string.startswith("&") and lit >= 3):
                    found.append((tok.start[0], f"mask {tok.string} {text.string}"))
                    break
    return found


def scanned_files() -> list[Path]:
    files = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if path.name.endswith("_regs.py") or any(rel.match(p) for p in ALLOWLIST):
                continue  # generated accessors, or a bitstream codec
            files.append(path)
    return files


def test_drivers_and_shims_have_no_handwritten_register_bits():
    files = scanned_files()
    assert any(p.match("drivers/reference/*.py") for p in files)  # the scan sees the tree
    report = []
    for path in files:
        for line, reason in violations(path.read_text(encoding="utf-8")):
            report.append(f"{path.relative_to(ROOT)}:{line}: {reason}")
    assert not report, "hand-written register bits; use the generated *_regs accessors:\n" + (
        "\n".join(report)
    )


@pytest.mark.parametrize("line", [
    "word = (target << 48) | (value << 16) | offset",
    "value = word >> 16",
    "low = value & 0xffff",
    "op = 0x1000 | target",
    "cfg |= 0x80",
    "byte = value & 255",
    "value <<= 8",
    "flag = value & 0b100",
    "x = value >> 0x10",
])  # fmt: skip
def test_scanner_catches_register_bit_twiddling(line):
    assert violations(line + "\n")


@pytest.mark.parametrize("line", [
    "half = size >> 1",
    "bit = 1 << n",
    "aligned = size & ~63",
    "blocks = (channels + 15) // 16",
    "offset = 0x80 - zero_point",
    "flipped = data ^ 0x80",
    "both = a & b",
    "odd = n & 1",
    "text = 'value & 0xffff << 16'",
    "pass  # word >> 48 & 0xffff",
    "ratio = 1.5 * 2",
])  # fmt: skip
def test_scanner_leaves_ordinary_arithmetic_alone(line):
    assert violations(line + "\n") == []
