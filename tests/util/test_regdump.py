"""The decoder and ``teflon dump``: random streams round-trip through JSON to the same bytes,
decoded fields are the values that were packed, odd entries are flagged, bad files give one-line
errors naming the offset."""

from __future__ import annotations

import json
import random
import struct

import pytest

from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.drivers.rocket import rocket_regs as R
from mesa_npu.frontends.teflon import cli
from mesa_npu.util.regdump import DumpError, decode, encode

# DDMA, SDMA and GLOBAL targets do not fit the regcmd op (reference brief section 1): MMIO only.
MMIO_ONLY = {"DDMA", "SDMA", "GLOBAL"}


def random_value(rng: random.Random, width: int, signed: bool = False, shr: int = 0) -> int:
    if signed:
        return rng.randint(-(1 << (width - 1)), (1 << (width - 1)) - 1)
    return rng.randint(0, (1 << width) - 1) << shr


def random_fields(rng: random.Random, reg) -> dict[str, int]:
    return {
        f.name: bool(rng.getrandbits(1))
        if f.boolean
        else random_value(rng, f.width, f.signed, f.shr)
        for f in reg.fields
        if not f.reserved
    }


def regcmd(reg, **fields) -> int:
    return R.REGCMD.ENTRY.pack(
        BLOCK=R.target_of(reg.offset), UNK48=True, OFFSET=reg.offset, VALUE=reg.pack(**fields)
    )


def roundtrip(data: bytes, hw: str, fmt: str | None = None):
    dump = decode(data, hw, fmt)
    as_json = json.loads(json.dumps(dump.to_json()))
    assert encode(as_json) == data
    return dump


@pytest.mark.parametrize("seed", range(5))
def test_rocket_regcmd_roundtrip(seed):
    rng = random.Random(seed)
    regs = [r for r in R.REGISTERS if r.domain not in MMIO_ONLY]
    words, expected = [], []
    for _ in range(200):
        reg = rng.choice(regs)
        values = random_fields(rng, reg)
        words.append(regcmd(reg, **values))
        expected.append((reg.path, values))
    # The task tail Mesa emits: chain address, amounts, the 0x0041 entry, op_en (0x1D).
    words += [
        regcmd(R.PC.BASE_ADDRESS, PC_SOURCE_ADDR=0x1000_0040),
        regcmd(R.PC.REGISTER_AMOUNTS, PC_DATA_AMOUNT=54),
        R.REGCMD.ENTRY.pack(UNK48=True, UNK54=True),
        R.REGCMD.ENTRY.pack(
            UNK48=True,
            OP_EN=True,
            OFFSET=R.PC.OPERATION_ENABLE.offset,
            VALUE=R.PC.OPERATION_ENABLE.pack(OP_EN=1, CORE_OP_EN=1, DPU_OP_EN=1, DPU_RDMA_OP_EN=1),
        ),
        0,
    ]
    data = struct.pack(f"<{len(words)}Q", *words)
    dump = roundtrip(data, "rocket")
    assert len(dump.entries) == len(words)
    for entry, (path, values) in zip(dump.entries, expected, strict=False):
        assert (entry.kind, entry.register) == ("write", path)
        assert {k: v for k, v in entry.fields if k in values} == values
        assert not entry.warnings or all("read-only" in w for w in entry.warnings)
    tail = dump.entries[-5:]
    assert [e.kind for e in tail] == ["write", "write", "control", "op_en", "nop"]
    assert tail[3].register == "PC.OPERATION_ENABLE" and tail[3].value == 0x1D


def test_rocket_vendor_oddities_are_flagged_and_still_roundtrip():
    words = [
        # Reserved bits: an uncovered bit of CONV_CON1, and S_POINTER's named reserved range.
        regcmd(R.CNA.CONV_CON1, CONV_MODE=3) | 1 << (16 + 31),
        regcmd(R.CNA.S_POINTER, RESERVED_CORE_INDEX=1, POINTER_PP_EN=1),
        # A write the XML does not describe (vendor dumps: op 0x0401 to offset 0x2004).
        R.REGCMD.ENTRY.pack(BLOCK=R.Target.UNK400, UNK48=True, OFFSET=0x2004, VALUE=0xE),
        # A DPU register sent to the CNA block, and a reserved op bit.
        R.REGCMD.ENTRY.pack(BLOCK=R.Target.CNA, UNK48=True, OFFSET=R.DPU.S_POINTER.offset),
        regcmd(R.DPU.OUT_CVT_SCALE, OUT_CVT_SCALE=1) | 1 << 50,
        # A write to a read-only register.
        regcmd(R.PC.VERSION, VERSION=1),
    ]
    dump = roundtrip(struct.pack("<6Q", *words), "rocket")
    warnings = [e.warnings for e in dump.entries]
    assert "CNA.CONV_CON1: reserved bits 0x80000000 set" in warnings[0]
    assert "CNA.S_POINTER: reserved bits 0x10000000 set (RESERVED_CORE_INDEX)" in warnings[1]
    assert warnings[2] == ("write to unknown offset 0x2004",)
    assert warnings[3] == ("block CNA does not own DPU.S_POINTER (block DPU)",)
    assert warnings[4] == ("regcmd op: reserved bits 0x4000000000000 set",)
    assert warnings[5] == ("PC.VERSION: write to a read-only register",)
    assert dump.entries[0].extra_bits == 0x8000_0000


def test_rocket_text_reads_like_the_manual(tmp_path, capsys):
    path = tmp_path / "task.regcmd"
    path.write_bytes(struct.pack("<Q", regcmd(R.CNA.CONV_CON3, CONV_X_STRIDE=1, CONV_Y_STRIDE=1)))
    assert cli.main(["dump", str(path), "--hw", "rocket"]) == 0
    out = capsys.readouterr().out
    # Reference brief section 2: CONV_CON3 with stride 1 encodes as 0x0201_00000009_1014.
    assert "0x0201000000091014" in out
    assert "CNA.CONV_CON3 = 0x00000009 (CONV_X_STRIDE=1, CONV_Y_STRIDE=1)" in out
    assert cli.main(["dump", str(path), "--hw", "rocket", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["entries"][0]
    assert entry["register"] == "CNA.CONV_CON3" and entry["op"]["BLOCK"] == "CNA"
    assert entry["fields"]["CONV_X_STRIDE"] == 1 and entry["fields"]["NN_MODE"] == 0


def test_cli_encodes_a_json_dump(tmp_path):
    raw = struct.pack("<2Q", regcmd(R.DPU.BS_CFG, BS_ALU_ALGO=R.AluAlgo.ALU_ADD), 0)
    (tmp_path / "a.bin").write_bytes(raw)
    assert cli.main(["dump", str(tmp_path / "a.bin"), "--hw", "rocket", "--json",
                     "-o", str(tmp_path / "a.json")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "a.json").read_text())["entries"][0]["fields"]["BS_ALU_ALGO"] == (
        "ALU_ADD"
    )
    assert cli.main(["dump", str(tmp_path / "a.json"), "--encode", "-o", str(tmp_path / "b")]) == 0
    assert (tmp_path / "b").read_bytes() == raw


def struct_fields(domain, rng: random.Random) -> dict[str, int]:
    """Random values for every name a structure's pack_words takes."""
    joins = {j.name: j for j in domain.joins}
    fields = {f.name: f for r in domain.registers for f in r.fields}
    values = {}
    for name in domain.field_names:
        if name in joins:
            values[name] = random_value(rng, joins[name].width, joins[name].signed)
        else:
            f = fields[name]
            values[name] = random_value(rng, f.width, f.signed, f.shr)
    return values


@pytest.mark.parametrize(
    ("domain", "fmt"), [(E.NN_CONFIG, "nn-config"), (E.TP_CONFIG, "tp-config")]
)
@pytest.mark.parametrize("seed", range(5))
def test_etnaviv_config_roundtrip(domain, fmt, seed):
    values = struct_fields(domain, random.Random(seed))
    data = domain.pack_words(**values)
    assert len(data) == domain.size
    assert domain.unpack_words(data)._asdict() == values
    dump = roundtrip(data, "etnaviv")  # the format follows from the size
    assert dump.format == fmt
    assert dict(dump.joins) == {j.name: values[j.name] for j in domain.joins}
    assert [e.register for e in dump.entries] == [f"{domain.name}.WORD{i}" for i in range(
        domain.size // 4)]  # fmt: skip


def load_state(reg, *values: int) -> list[int]:
    header = E.FE_LOAD_STATE.HEADER.pack(
        OP=E.FeOpcode.LOAD_STATE, COUNT=len(values), OFFSET=reg.offset
    )
    words = [header, *values]
    return words + [0] * (len(words) % 2)


@pytest.mark.parametrize("seed", range(3))
def test_etnaviv_cmdstream_roundtrip(seed):
    rng = random.Random(seed)
    words = [0] * 8
    for _ in range(40):
        reg = rng.choice(E.REGISTERS)
        words += load_state(reg, reg.pack(**random_fields(rng, reg)))
    words += load_state(E.VIVS.GL_OCB_REMAP_START, 0, 0)  # two states, then a padding word
    words += [E.FE_NOP.HEADER.pack(OP=E.FeOpcode.NOP), 0]
    words += [E.FE_LINK.HEADER.pack(OP=E.FeOpcode.LINK, PREFETCH=8), 0x1000]
    dump = roundtrip(struct.pack(f"<{len(words)}I", *words), "etnaviv", "cmdstream")
    kinds = [e.kind for e in dump.entries]
    assert kinds[:8] == ["zero"] * 8 and kinds[8:10] == ["LOAD_STATE", "state"]
    assert kinds[-8:] == ["LOAD_STATE", "state", "state", "pad", "NOP", "pad", "LINK", "arg"]
    assert dump.entries[-6].register == "VIVS.GL_OCB_REMAP_END"
    assert not [w for e in dump.entries for w in e.warnings]


@pytest.mark.parametrize(("data", "hw", "fmt", "message"), [
    (b"\0" * 12, "rocket", None, "12 bytes is not a whole number of 64-bit entries "
     "(trailing bytes at offset 0x8)"),
    (b"\0" * 140, "etnaviv", "nn-config", "NN_CONFIG: 140 bytes is not a whole number of "
     "136-byte configurations (stops at offset 0x88)"),
    (b"\0" * 4, "etnaviv", "tp-config", "TP_CONFIG: 4 bytes"),
    (b"\0" * 12, "etnaviv", "cmdstream", "not 64-bit padded (trailing bytes at offset 0x8)"),
    (struct.pack("<4I", 0, 0, 0x20000000, 0), "etnaviv", "cmdstream",
     "unsupported opcode DRAW_2D (4) at offset 0x8"),
    (struct.pack("<2I", 0xF0000000, 0), "etnaviv", "cmdstream", "unknown opcode 30 at offset 0x0"),
    (struct.pack("<4I", 0, 0, 0x08040E4C, 0), "etnaviv", "cmdstream",
     "LOAD_STATE at offset 0x8: 4 values run past the end of the stream (16 bytes)"),
])  # fmt: skip
def test_bad_files_name_the_offset(data, hw, fmt, message):
    with pytest.raises(DumpError) as info:
        decode(data, hw, fmt)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_cli_bad_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "short.bin"
    path.write_bytes(b"\1" * 9)
    assert cli.main(["dump", str(path), "--hw", "rocket"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "offset 0x8" in err
