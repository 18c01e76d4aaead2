"""C/Python cross-check: the generated C header, compiled with ``gcc -Wall -Werror`` into a small
library through cffi, packs every field of every register to the same bits as the generated
Python (edge values 0 and max, every single bit, and random values), and agrees on offsets,
masks, shifts and the offset-to-target lookup."""

from __future__ import annotations

import importlib.resources
import importlib.util
import random
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest

from mesa_npu.drivers.etnaviv import etnaviv_regs
from mesa_npu.drivers.rocket import rocket_regs
from mesa_npu.util.gen_regs import generate

cffi = pytest.importorskip("cffi", reason="the cross-check builds its C library with cffi")

if shutil.which("gcc") is None:
    pytest.skip("gcc not found: the cross-check needs a C compiler", allow_module_level=True)
if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
    pytest.skip("Python.h not found: cffi API mode needs it", allow_module_level=True)


def c_name(reg) -> str:
    """The C name of a register: domain and register, arrays without their index."""
    name = reg.name
    if "[" in name:  # "CH[2].B" -> "CH_B"
        name = name.split("[", 1)[0] + "_" + name.rsplit(".", 1)[1]
    return f"{reg.domain}_{name}"


def field_cdecls(reg) -> list[str]:
    ctype = "uint64_t" if reg.width > 32 else "uint32_t"
    out = []
    for f in reg.fields:
        name = f"{c_name(reg)}_{f.name}"
        if f.boolean:
            out.append(f"#define {name} ...")
            continue
        ptype = ("int64_t" if reg.width > 32 else "int32_t") if f.signed else ctype
        # Enum parameters are passed as plain integers (C converts them implicitly).
        out += [f"#define {name}__MASK ...", f"#define {name}__SHIFT ..."]
        out.append(f"{ctype} {name}({ptype});")
    return out


def build(tmp_path: Path, tag: str, header: str, regs: ModuleType, prefix: str | None):
    """Compile the header alone with -Wall -Werror, then a cffi library exposing every offset,
    mask, shift and pack function it defines."""
    (tmp_path / f"{tag}_regs.h").write_text(header)
    tu = tmp_path / f"{tag}_only.c"
    tu.write_text(f'#include "{tag}_regs.h"\nint main(void) {{ return 0; }}\n')
    result = subprocess.run(
        ["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-c", str(tu), "-o", str(tu) + ".o"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    cdefs, seen_arrays = [], set()
    for domain in regs.DOMAINS:
        for reg in domain.registers:
            cname = c_name(reg)
            if "[" in reg.name:
                if cname not in seen_arrays:
                    seen_arrays.add(cname)
                    cdefs.append(f"uint32_t REG_{cname}(uint32_t);")
                    cdefs += field_cdecls(reg)
                continue
            cdefs.append(f"#define REG_{cname} ...")
            cdefs += field_cdecls(reg)
    if prefix:
        cdefs.append(f"uint32_t {prefix}_get_target(uint32_t);")
    ffi = cffi.FFI()
    ffi.cdef("\n".join(cdefs))
    module = f"_regs_xcheck_{tag}"
    ffi.set_source(
        module,
        f'#include "{tag}_regs.h"',
        include_dirs=[str(tmp_path)],
        extra_compile_args=["-Wall", "-Werror", "-O0"],
    )
    path = ffi.compile(tmpdir=str(tmp_path))
    spec = importlib.util.spec_from_file_location(module, path)
    lib_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lib_module)
    return lib_module.lib


def field_values(f, rng: random.Random) -> list[int]:
    """Edge values, every single bit and random values, in the packer's own units."""
    if f.signed:
        lo, hi = -(1 << (f.width - 1)), (1 << (f.width - 1)) - 1
        values = {0, lo, hi, -1, *(1 << b for b in range(f.width - 1))}
        values |= {rng.randint(lo, hi) for _ in range(8)}
        return sorted(values)
    hi = (1 << f.width) - 1
    values = {0, hi, *(1 << b for b in range(f.width))} | {rng.randint(0, hi) for _ in range(8)}
    return sorted(v << f.shr for v in values)


def crosscheck(lib, regs: ModuleType, prefix: str | None) -> tuple[int, int]:
    """(fields, values) checked."""
    rng = random.Random(4)
    fields = values = 0
    for domain in regs.DOMAINS:
        for reg in domain.registers:
            cname = c_name(reg)
            if "[" in reg.name:
                index = int(reg.name.split("[", 1)[1].split("]", 1)[0])
                assert getattr(lib, f"REG_{cname}")(index) == reg.offset, reg.path
            else:
                assert getattr(lib, f"REG_{cname}") == reg.offset, reg.path
            zeros = {f.name: 0 for f in reg.fields}  # override the XML defaults
            for f in reg.fields:
                name = f"{cname}_{f.name}"
                fields += 1
                if f.boolean:
                    assert getattr(lib, name) == reg.pack(**{**zeros, f.name: True}) == f.mask
                    assert reg.pack(**zeros) == 0
                    values += 2
                    continue
                assert getattr(lib, f"{name}__MASK") == f.mask, name
                assert getattr(lib, f"{name}__SHIFT") == f.low, name
                c_pack = getattr(lib, name)
                for v in field_values(f, rng):
                    assert c_pack(v) == reg.pack(**{**zeros, f.name: v}), f"{name}({v:#x})"
                    values += 1
    if prefix:
        get_target = getattr(lib, f"{prefix}_get_target")
        for reg in regs.REGISTERS:
            assert get_target(reg.offset) == regs.target_of(reg.offset), reg.path
        assert get_target(0xFFFC) == 0
    return fields, values


def all_fields(regs: ModuleType) -> int:
    return sum(len(r.fields) for d in regs.DOMAINS for r in d.registers)


def test_rocket_c_header_matches_python(tmp_path):
    header = (importlib.resources.files("mesa_npu.drivers.rocket") / "rocket_regs.h").read_text()
    lib = build(tmp_path, "rocket", header, rocket_regs, "rkt")
    fields, values = crosscheck(lib, rocket_regs, "rkt")
    assert fields == all_fields(rocket_regs) > 500 and values > 5_000


def test_etnaviv_c_header_matches_python(tmp_path):
    header = (importlib.resources.files("mesa_npu.drivers.etnaviv") / "etnaviv_regs.h").read_text()
    lib = build(tmp_path, "etnaviv", header, etnaviv_regs, None)
    fields, values = crosscheck(lib, etnaviv_regs, None)
    assert fields == all_fields(etnaviv_regs) > 150 and values > 2_000


def test_feature_c_header_matches_python(tmp_path, features_xml, load_generated):
    """Arrays, signed and shifted fields, enums, 64-bit registers and structures."""
    regs = load_generated(generate(str(features_xml), "python"))
    header = generate(str(features_xml), "c-header", prefix="feat")
    lib = build(tmp_path, "features", header, regs, "feat")
    fields, values = crosscheck(lib, regs, "feat")
    assert fields == all_fields(regs) == 4 + 2 + 1 + 4 * 3 + 3 + 4 and values > 300
    sys.modules.pop(regs.__name__, None)
