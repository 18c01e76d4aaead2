"""The register generator: deterministic output, the build's outputs equal the CLI's, and the
generated Python API packs and unpacks by field name, raising on what does not fit."""

from __future__ import annotations

import importlib.resources
import re
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.drivers.rocket import rocket_regs
from mesa_npu.frontends.teflon import cli
from mesa_npu.util.gen_regs import generate

ROCKET = importlib.resources.files("mesa_npu.drivers.rocket")
ETNAVIV = importlib.resources.files("mesa_npu.drivers.etnaviv")
DATABASES = {
    "rocket": (ROCKET / "registers.xml", "drivers/rocket/registers.xml", "rkt"),
    "etnaviv": (ETNAVIV / "registers.xml", "drivers/etnaviv/registers.xml", "etna"),
}
TEMPLATES = {
    "python": "util/templates/python_regs.mako",
    "c-header": "util/templates/c_header.mako",
}


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
@pytest.mark.parametrize("hw", sorted(DATABASES))
def test_generation_is_deterministic_and_names_its_sources(hw, kind, tmp_path):
    xml, source, prefix = DATABASES[hw]
    first = generate(str(xml), kind, prefix=prefix)
    second = generate(str(xml), kind, prefix=prefix)
    assert first == second
    banner = first[:800]
    assert source in banner and TEMPLATES[kind] in banner
    assert not re.search(r"\d{4}-\d\d-\d\d|\d\d?:\d\d:\d\d", first), "a date or a time"
    assert not re.search(r"\b(19|20)\d\d\b", banner), "a year in the banner"
    for absolute in (str(Path(str(xml)).parent), str(Path.cwd()), str(tmp_path), "/home/"):
        assert absolute not in first


@pytest.mark.parametrize(("hw", "kind", "output"), [
    ("rocket", "python", "rocket_regs.py"),
    ("rocket", "c-header", "rocket_regs.h"),
    ("etnaviv", "python", "etnaviv_regs.py"),
    ("etnaviv", "c-header", "etnaviv_regs.h"),
])  # fmt: skip
def test_cli_output_equals_the_build_output(hw, kind, output, tmp_path):
    xml, _, prefix = DATABASES[hw]
    out = tmp_path / output
    assert cli.main(["regs", "gen", str(xml), f"--{kind}", "--prefix", prefix, "-o", str(out)]) == 0
    package = ROCKET if hw == "rocket" else ETNAVIV
    assert out.read_text() == (package / output).read_text()


def test_cli_reports_a_bad_xml_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.xml"
    bad.write_text(
        '<database><domain name="D"><reg32 offset="0" name="R" bogus="1"/></domain>\n</database>\n'
    )
    assert cli.main(["regs", "gen", str(bad), "--python"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}:1: <reg32" in err and "unknown attribute" in err


def test_generated_api_on_every_feature(features_xml, load_generated):
    m = load_generated(generate(str(features_xml), "python"))
    ctrl = m.T.CTRL
    assert (ctrl.offset, ctrl.domain, ctrl.name, ctrl.path) == (0x100, "T", "CTRL", "T.CTRL")
    # Positions from the XML above: EN bit 0, MODE 2:1, OFS 11:4 (signed), ADDR 31:12 (shr 12).
    assert ctrl.pack(EN=True) == 1
    assert ctrl.pack(MODE=m.Mode.MODE_B) == 3 << 1
    assert ctrl.pack(OFS=-1) == 0xFF << 4
    assert ctrl.pack(OFS=-128) == 0x80 << 4
    assert ctrl.pack(ADDR=0xFFFFF000) == 0xFFFFF000
    assert ctrl.pack(ADDR=0x12345000) == 0x12345 << 12
    fields = ctrl.unpack(0x12345000 | 0xFF0 | 3 << 1 | 1)
    assert fields == (True, m.Mode.MODE_B, -1, 0x12345000)
    assert fields.MODE is m.Mode.MODE_B and fields.OFS == -1
    assert ctrl.unpack(2 << 1).MODE == 2  # not an enum value: the plain number
    # A bitset-typed register and a typed register without bitfields.
    assert m.T.FLAGS.pack(EN=1, LVL=5) == 1 | 5 << 1
    assert m.T.RAW.pack(RAW=0xDEADBEEF) == 0xDEADBEEF
    # Arrays: one Register per element, named and placed by index.
    b2 = m.T.CH[2].B
    assert (b2.name, b2.offset) == ("CH[2].B", 0x120 + 2 * 8 + 4)
    assert m.register_at(0x134) is b2 and m.register_at(0x130) is m.T.CH[2].A
    assert m.T.CH[3].A.pack(X=0xFFFF, Y=-2) == 0xFFFF | 0xFFFE << 16
    assert len(m.T.registers) == 3 + 4 * 2
    # 64-bit registers, reserved fields.
    wide = m.U.WIDE
    assert wide.pack(HI=-1, LO=0x80) == (0xFFFFFF << 40) | 0x80
    assert wide.reserved_mask == ((1 << 64) - 1) & ~(0xFF | 0xFFFFFF << 40)
    assert wide.unpack(1 << 63).HI == -(1 << 23)
    # Offset -> target, like rkt_get_target().
    assert m.target_of(0x104) is m.Target.T and m.target_of(0x200) is m.Target.U
    with pytest.raises(ValueError, match="no register at offset 0x0300"):
        m.target_of(0x300)


def test_generated_structures_pack_whole_words(features_xml, load_generated):
    m = load_generated(generate(str(features_xml), "python"))
    s = m.S
    assert (s.size, s.field_names) == (12, ("J", "F", "G"))
    data = s.pack_words(J=-3, G=True)
    # J = -3 is 0b1111_1101 in 8 bits: low part (P0, W0 bits 3:0) 0xD, high part (P1, W2 31:28)
    # 0xF. F keeps its XML default 0x2a; the word at offset 4 is padding.
    assert struct.unpack("<3I", data) == (0xD | 0x2A << 4, 0, 0xF << 28 | 1)
    assert s.unpack_words(data) == (-3, 0x2A, True)
    assert s.unpack_words(bytearray(data)).J == -3
    with pytest.raises(ValueError, match=r"S: J=-129 does not fit \(-128\.\.127\)"):
        s.pack_words(J=-129)
    with pytest.raises(ValueError, match="S: expected 12 bytes, got 8"):
        s.unpack_words(data[:8])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"OFS": 128}, r"T\.CTRL: OFS=128 does not fit \(-128\.\.127\)"),
    ({"OFS": -129}, r"T\.CTRL: OFS=-129 does not fit"),
    ({"MODE": 4}, r"T\.CTRL: MODE=4 does not fit \(0\.\.3\)"),
    ({"EN": 2}, r"T\.CTRL: EN=2 does not fit \(0\.\.1\)"),
    ({"ADDR": 0x12345001}, r"T\.CTRL: ADDR=0x12345001 is not a multiple of 0x1000"),
    ({"ADDR": 1 << 32}, r"T\.CTRL: ADDR=4294967296 does not fit"),
    ({"ADDRESS": 0}, r"T\.CTRL: unknown field\(s\) ADDRESS"),
    ({"EN": 1, "ZZ": 1, "AA": 2}, r"T\.CTRL: unknown field\(s\) AA, ZZ"),
])  # fmt: skip
def test_pack_raises_on_what_does_not_fit(features_xml, load_generated, kwargs, message):
    m = load_generated(generate(str(features_xml), "python"))
    with pytest.raises(ValueError, match=message):
        m.T.CTRL.pack(**kwargs)


def test_pack_rejects_non_integers_and_unpack_rejects_wide_values(features_xml, load_generated):
    m = load_generated(generate(str(features_xml), "python"))
    with pytest.raises(TypeError):
        m.T.CTRL.pack(OFS=1.5)
    with pytest.raises(ValueError, match=r"T\.CTRL: value 0x100000000 does not fit 32 bits"):
        m.T.CTRL.unpack(1 << 32)


def test_rocket_pack_rejects_overflow_by_name():
    message = r"CNA\.CONV_CON3: CONV_X_STRIDE=8 does not fit \(0\.\.7\)"
    with pytest.raises(ValueError, match=message):
        rocket_regs.CNA.CONV_CON3.pack(CONV_X_STRIDE=8)
    with pytest.raises(ValueError, match=r"CNA\.CONV_CON3: unknown field\(s\) CONV_STRIDE"):
        rocket_regs.CNA.CONV_CON3.pack(CONV_STRIDE=1)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_rocket_unpack_inverts_pack(data):
    """For any register and any in-range field values, unpack(pack(values)) gives them back."""
    reg = data.draw(st.sampled_from(rocket_regs.REGISTERS + rocket_regs.REGCMD.registers))
    values = {}
    for f in reg.fields:
        if f.boolean:
            values[f.name] = data.draw(st.booleans())
        elif f.signed:
            half = 1 << (f.width - 1)
            values[f.name] = data.draw(st.integers(-half, half - 1))
        else:
            values[f.name] = data.draw(st.integers(0, (1 << f.width) - 1)) << f.shr
    assert reg.unpack(reg.pack(**values))._asdict() == values
