"""The register-XML parser: both databases parse, the dialect's features work, and every error
class names the file, the line and the element."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

import pytest

from mesa_npu.util.regxml import RegisterXmlError, parse

ROCKET_XML = importlib.resources.files("mesa_npu.drivers.rocket") / "registers.xml"
ETNAVIV_XML = importlib.resources.files("mesa_npu.drivers.etnaviv") / "registers.xml"

HEAD = '<?xml version="1.0"?>\n<database xmlns="http://nouveau.freedesktop.org/">\n'
TAIL = "</database>\n"


def write(tmp_path: Path, body: str, name: str = "regs.xml") -> Path:
    path = tmp_path / name
    path.write_text(HEAD + body + TAIL)
    return path


def marked_line(path: Path) -> int:
    """The 1-based line of the element marked with <!--HERE--> (the bad one)."""
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if "<!--HERE-->" in line:
            return i
    raise AssertionError("snippet has no <!--HERE--> marker")


def test_rocket_database_parses_with_mesas_blocks():
    db = parse(str(ROCKET_XML))
    # Register counts per block of Mesa's registers.xml (reference brief section 1), plus the
    # two registers Mesa writes raw (CORE 0x3030, DPU 0x40C4).
    counts = {d.name: len(d.instances()) for d in db.domains if not d.is_struct}
    assert counts == {
        "PC": 12,
        "CNA": 52,
        "CORE": 8 + 1,
        "DPU": 52 + 1,
        "DPU_RDMA": 20,
        "PPU": 20,
        "PPU_RDMA": 10,
        "DDMA": 12,
        "SDMA": 12,
        "GLOBAL": 1,
    }
    spans = {d.name: (d.instances()[0].offset, d.instances()[-1].offset) for d in db.domains}
    assert spans["CNA"] == (0x1000, 0x1184)
    assert spans["DPU"] == (0x4000, 0x412C)
    assert spans["PC"] == (0x0000, 0x003C)
    regcmd = db.domain("REGCMD")
    assert regcmd.is_struct and regcmd.size == 8 and regcmd.registers[0].width == 64


def test_etnaviv_database_parses_with_imports():
    db = parse(str(ETNAVIV_XML))
    assert db.files == ("registers.xml", "ml_config.xml")
    nn, tp = db.domain("NN_CONFIG"), db.domain("TP_CONFIG")
    assert (nn.size, len(nn.registers)) == (136, 34)
    assert (tp.size, len(tp.registers)) == (124, 31)
    assert {j.name for j in nn.joins} >= {"POST_MULTIPLIER", "POST_SHIFT", "IN_IMAGE_X_OFFSET"}
    post = next(j for j in nn.joins if j.name == "POST_MULTIPLIER")
    assert [(p.register, p.low, p.width) for p in post.parts] == [
        ("WORD2", 0, 1),
        ("WORD15", 1, 6),
        ("WORD17", 7, 8),
        ("WORD22", 15, 8),
    ]
    assert db.domain("VIVS").register("GL_NN_CONFIG").offset == 0x3930


def test_dialect_features(tmp_path):
    write(
        tmp_path,
        """<enum name="mode"><value name="A" value="0"/><value name="B" value="2"/></enum>
<bitset name="flags" inline="no">
  <bitfield name="EN" pos="0"/><bitfield name="M" low="1" high="2" type="mode"/>
</bitset>
<domain name="D" width="32">
  <reg32 offset="0x10" name="R" type="flags" access="r"/>
  <reg64 offset="0x18" name="WIDE">
    <bitfield name="ADDR" low="4" high="47" type="address" shr="4"/>
  </reg64>
  <array offset="0x100" name="ARR" stride="0x8" length="3">
    <reg32 offset="0x4" name="V" type="int"/>
  </array>
</domain>""",
        "sub.xml",
    )
    body = '<import file="sub.xml"/>\n<domain name="D"><reg32 offset="0" name="Z"/></domain>'
    main = write(tmp_path, body)
    db = parse(main)
    d = db.domain("D")
    assert [i.path for i in d.instances()] == [
        "D.R",
        "D.WIDE",
        "D.ARR[0].V",
        "D.ARR[1].V",
        "D.ARR[2].V",
        "D.Z",
    ]
    assert [i.offset for i in d.instances()] == [0x10, 0x18, 0x104, 0x10C, 0x114, 0]
    r = d.register("R")
    assert r.access == "r" and [f.name for f in r.fields] == ["EN", "M"]
    assert r.fields[0].boolean and r.fields[1].enum.name == "mode"
    wide = d.register("WIDE").fields[0]
    assert (wide.width, wide.shr, wide.max_value) == (44, 4, ((1 << 44) - 1) << 4)
    v = d.arrays[0].registers[0].fields[0]
    assert (v.name, v.width, v.signed, v.min_value) == ("V", 32, True, -(1 << 31))
    assert d.register("Z").fields == ()  # untyped, no bitfields: every bit reserved
    assert d.register("Z").reserved_mask == 0xFFFFFFFF


# One snippet per error class: (id, body, fragment expected in the message). The bad element
# carries <!--HERE--> so the test knows which line the error must name.
ERRORS = [
    (
        "overlapping-fields",
        """<domain name="D"><reg32 offset="0" name="R">
  <bitfield name="A" low="0" high="3"/>
  <bitfield name="B" low="3" high="5"/><!--HERE-->
</reg32></domain>""",
        ('bitfield name="B"', "overlap field A"),
    ),
    (
        "field-outside-register",
        """<domain name="D"><reg32 offset="0" name="R">
  <bitfield name="A" low="30" high="32"/><!--HERE-->
</reg32></domain>""",
        ('bitfield name="A"', "outside the 32-bit register"),
    ),
    (
        "bitset-field-outside-register",
        """<bitset name="wide"><bitfield name="A" low="0" high="40"/><!--HERE--></bitset>
<domain name="D"><reg32 offset="0" name="R" type="wide"/></domain>""",
        ('bitfield name="A"', "outside the 32-bit register D.R"),
    ),
    (
        "duplicate-field-name",
        """<domain name="D"><reg32 offset="0" name="R">
  <bitfield name="A" low="0" high="3"/>
  <bitfield name="A" low="4" high="5"/><!--HERE-->
</reg32></domain>""",
        ('bitfield name="A"', "duplicate field name"),
    ),
    (
        "duplicate-register-name",
        """<domain name="D">
  <reg32 offset="0" name="R"/>
  <reg32 offset="4" name="R"/><!--HERE-->
</domain>""",
        ('reg32 name="R"', "duplicate register name"),
    ),
    (
        "duplicate-offset",
        """<domain name="D">
  <reg32 offset="0x8" name="R"/>
  <reg32 offset="0x8" name="S"/><!--HERE-->
</domain>""",
        ('reg32 name="S"', "offset 0x8 of D.S duplicates"),
    ),
    (
        "overlapping-reg64",
        """<domain name="D">
  <reg64 offset="0x8" name="R"/>
  <reg32 offset="0xc" name="S"/><!--HERE-->
</domain>""",
        ('reg32 name="S"', "overlaps D.R"),
    ),
    (
        "duplicate-offset-across-domains",
        """<domain name="A"><reg32 offset="0x100" name="R"/></domain>
<domain name="B"><reg32 offset="0x100" name="S"/><!--HERE--></domain>""",
        ('reg32 name="S"', "duplicates or overlaps A.R"),
    ),
    (
        "unknown-type",
        """<domain name="D"><reg32 offset="0" name="R">
  <bitfield name="A" low="0" high="3" type="flaot"/><!--HERE-->
</reg32></domain>""",
        ('bitfield name="A"', "unknown type 'flaot'"),
    ),
    (
        "enum-value-does-not-fit",
        """<enum name="e"><value name="BIG" value="4"/></enum>
<domain name="D"><reg32 offset="0" name="R">
  <bitfield name="A" low="0" high="1" type="e"/><!--HERE-->
</reg32></domain>""",
        ('bitfield name="A"', "BIG=0x4 of enum e does not fit the 2-bit field"),
    ),
    (
        "default-does-not-fit",
        """<domain name="D"><reg32 offset="0" name="R">
  <bitfield name="A" low="0" high="3" default="16"/><!--HERE-->
</reg32></domain>""",
        ('bitfield name="A"', "default 16 does not fit the 4-bit field"),
    ),
    (
        "unknown-element",
        """<domain name="D"><reg32 offset="0" name="R">
  <bitfeld name="A" low="0" high="3"/><!--HERE-->
</reg32></domain>""",
        ('bitfeld name="A"', "unknown element <bitfeld> inside <reg32>"),
    ),
    (
        "unknown-attribute",
        """<domain name="D"><reg32 offset="0" name="R">
  <bitfield name="A" low="0" hihg="3"/><!--HERE-->
</reg32></domain>""",
        ('bitfield name="A"', "unknown attribute 'hihg'"),
    ),
    (
        "malformed-xml",
        """<domain name="D"><reg32 offset="0" name="R">
</domain><!--HERE-->""",
        ("<xml>", "mismatched tag"),
    ),
    (
        "struct-field-names-shared",
        """<domain name="S" size="8">
  <reg32 offset="0" name="W0"><bitfield name="A" low="0" high="3"/></reg32>
  <reg32 offset="4" name="W1"><bitfield name="A" low="0" high="3"/><!--HERE--></reg32>
</domain>""",
        ('bitfield name="A"', "field name already used in S.W0"),
    ),
    (
        "join-outside-structure",
        """<domain name="D">
  <reg32 offset="0" name="R">
    <bitfield name="A" low="0" high="3"/><bitfield name="B" low="4" high="5"/>
  </reg32>
  <join name="J"><part field="A"/><part field="B"/></join><!--HERE-->
</domain>""",
        ('join name="J"', "only allowed in a structure domain"),
    ),
    (
        "misaligned-register",
        """<domain name="D"><reg32 offset="0x2" name="R"/><!--HERE--></domain>""",
        ('reg32 name="R"', "not aligned to 4 bytes"),
    ),
]


@pytest.mark.parametrize(("body", "expected"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_error_names_file_line_and_element(tmp_path, body, expected):
    path = write(tmp_path, body)
    with pytest.raises(RegisterXmlError) as info:
        parse(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{marked_line(path)}: <"), message
    for fragment in expected:
        assert fragment in message


def test_import_errors_name_the_import(tmp_path):
    (tmp_path / "a.xml").write_text(HEAD + '<import file="b.xml"/>\n' + TAIL)
    (tmp_path / "b.xml").write_text(HEAD + '<import file="a.xml"/>\n' + TAIL)
    with pytest.raises(RegisterXmlError, match=r"b\.xml:3: <import name=\"a\.xml\">: import cycle"):
        parse(tmp_path / "a.xml")
    path = write(tmp_path, '<import file="missing.xml"/>\n')
    with pytest.raises(RegisterXmlError, match=r"regs\.xml:3: .*'missing\.xml' not found"):
        parse(path)


def test_error_in_imported_file_names_that_file(tmp_path):
    bad = '<domain name="D"><reg32 offset="0" name="R" typo="1"/></domain>\n'
    (tmp_path / "sub.xml").write_text(HEAD + bad + TAIL)
    path = write(tmp_path, '<import file="sub.xml"/>\n')
    with pytest.raises(RegisterXmlError) as info:
        parse(path)
    where = rf"{re.escape(str(tmp_path))}/sub\.xml:3: <reg32 name=\"R\">: unknown attribute"
    assert re.match(where, str(info.value))
