"""The ABI subset header and the plausibility check that refuses a mismatched runtime.

A deliberately wrong build (``TfLiteTensor`` 8 bytes longer, as a runtime with a new field would
look to us) is loaded into LiteRT next to the right one: by default it claims nothing and warns,
with ``strict`` the interpreter refuses it, and the process carries on either way.
"""

from __future__ import annotations

import ctypes
import importlib.resources
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType, load_delegate

from mesa_npu.frontends.teflon import library_path, litert
from mesa_npu.frontends.teflon.delegate import MODULE_NAME, delegate_stats
from mesa_npu.frontends.teflon.delegate.build_ffi import make_builder
from mesa_npu.frontends.teflon.writer import ModelBuilder, options
from mesa_npu.gallium import ElementType

WRONG_MODULE = "_mesa_npu_teflon_abitest"
U8 = {"scale": 0.1, "zero_point": 128}

# sizeof on LP64 Linux with the upstream LiteRT headers (shared/reference/delegate-poc.md, where
# a generated program compared every sizeof and offsetof against tflite/core/c/common.h).
UPSTREAM_SIZES = {
    "TfLiteTensor": 112,
    "TfLiteNode": 80,
    "TfLiteRegistration": 88,
    "TfLiteDelegate": 56,
    "TfLiteDelegateParams": 32,
    "TfLiteAffineQuantization": 24,
}


def source(name: str) -> Path:
    return Path(os.fspath(importlib.resources.files("mesa_npu.frontends.teflon.delegate") / name))


def model() -> bytes:
    b = ModelBuilder()
    x = b.tensor((1, 3, 4, 2), ElementType.UINT8, **U8)
    perm = b.tensor((4,), ElementType.INT32, data=np.array([0, 2, 1, 3]))
    y = b.tensor((1, 4, 3, 2), ElementType.UINT8, **U8)
    b.op("TRANSPOSE", [x, perm], [y], options("TRANSPOSE"))
    z = b.tensor((1, 4, 3, 2), ElementType.UINT8, **U8)
    b.op("RELU", [y], [z])
    return b.build([x], [z])


def loaded_ffi():
    load_delegate(library_path(), {"device": "reference"})  # makes sure the library is loaded
    return sys.modules[MODULE_NAME].library.ffi


def test_header_has_no_preprocessor_lines() -> None:
    lines = source("tflite_abi.h").read_text().splitlines()
    assert not [line for line in lines if line.lstrip().startswith("#")]


@pytest.mark.skipif(ctypes.sizeof(ctypes.c_void_p) != 8, reason="sizes are for LP64")
def test_struct_sizes_match_upstream() -> None:
    """The compiler's layout of our header (cffi API mode), against the upstream sizes."""
    ffi = loaded_ffi()
    assert {name: ffi.sizeof(name) for name in UPSTREAM_SIZES} == UPSTREAM_SIZES


def test_emitted_c_is_reproducible(tmp_path: Path) -> None:
    header = source("tflite_abi.h").read_text()
    first, second = tmp_path / "a.c", tmp_path / "b.c"
    make_builder(header).emit_c_code(str(first))
    make_builder(header).emit_c_code(str(second))
    assert first.read_bytes() == second.read_bytes()
    assert str(tmp_path) not in first.read_text()


@pytest.fixture(scope="module")
def wrong_library(tmp_path_factory) -> str:
    """libteflon built with an 8-byte-longer TfLiteTensor."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None or not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        pytest.skip("needs a C compiler and a shared libpython")
    out = tmp_path_factory.mktemp("wrong_abi")
    header = source("tflite_abi.h").read_text()
    marker = "  const TfLiteIntArray *dims_signature;\n} TfLiteTensor;"
    assert marker in header
    wrong = header.replace(marker, marker.replace("\n}", "\n  int64_t not_upstream;\n}"))
    (out / "tflite_abi.h").write_text(wrong)
    shutil.copy(source("shim.h"), out / "shim.h")
    make_builder(wrong, WRONG_MODULE).emit_c_code(str(out / "wrong.c"))
    libdir = sysconfig.get_config_var("LIBDIR")
    library = out / "libteflon_wrong.so"
    subprocess.run(
        [
            gcc,
            "-shared",
            "-fPIC",
            "-O1",
            "-fvisibility=hidden",
            "-I",
            str(out),
            "-I",
            sysconfig.get_paths()["include"],
            str(out / "wrong.c"),
            str(source("shim.c")),
            "-o",
            str(library),
            "-L",
            libdir,
            f"-lpython{sysconfig.get_config_var('LDVERSION')}",
            f"-Wl,-rpath,{libdir}",
            "-ldl",
            "-lpthread",
        ],
        check=True,
    )
    return str(library)


def exact_on(it: Interpreter, raw: bytes) -> bool:
    inputs = litert.random_inputs(it, seed=9)
    ref = litert.interpreter(raw, "ref")
    for interp in (it, ref):
        litert.set_inputs(interp, inputs)
        interp.invoke()
    index = ref.get_output_details()[0]["index"]
    return bool(np.array_equal(it.get_tensor(index), ref.get_tensor(index)))


def delegated(raw: bytes, d) -> Interpreter:
    it = Interpreter(
        model_content=raw,
        experimental_delegates=[d],
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
    )
    it.allocate_tensors()
    return it


def test_wrong_abi_claims_nothing_and_warns(wrong_library: str, capfd) -> None:
    raw = model()
    d = load_delegate(wrong_library, {"device": "reference"})
    it = delegated(raw, d)
    stats = delegate_stats(d, module=WRONG_MODULE)
    assert stats.claimed == ()
    assert stats.abi_problem is not None and stats.abi_problem.startswith("tensor ")
    err = capfd.readouterr().err
    assert "does not match the delegate's ABI" in err and "claiming no nodes" in err
    assert not [o for o in it._get_ops_details() if o["op_name"] == "DELEGATE"]
    assert exact_on(it, raw)  # everything ran on the CPU
    # The right build in the same process still claims and is exact.
    good = load_delegate(library_path(), {"device": "reference"})
    it_good = delegated(raw, good)
    assert delegate_stats(good).claimed and delegate_stats(good).abi_problem is None
    assert exact_on(it_good, raw)


def test_wrong_abi_strict_fails_and_the_process_lives(wrong_library: str) -> None:
    raw = model()
    d = load_delegate(wrong_library, {"device": "reference", "strict": "1"})
    with pytest.raises((RuntimeError, ValueError)) as e:
        delegated(raw, d)
    assert "does not match the delegate's ABI" in str(e.value)
    assert "failing (strict)" in str(e.value)
    assert exact_on(litert.interpreter(raw, "ref"), raw)
