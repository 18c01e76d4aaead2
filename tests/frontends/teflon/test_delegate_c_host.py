"""libteflon.so in a C program with no Python of its own: the delegate starts CPython itself.

The host (``c_host/teflon_host.c``, built here with gcc) mocks the TfLiteContext calls TFLite
makes: create -> Prepare -> Replace -> init/prepare -> invoke x N -> free -> destroy, with the
buffers moved between invokes and half the invokes from a second thread. It reads its graph
from a file this test writes from a generated model (one convolution, or one data-movement op
if the reference device does not run convolutions), with the expected outputs from LiteRT
BUILTIN_REF.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import cffi
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from mesa_npu.frontends.teflon import library_path, litert
from mesa_npu.frontends.teflon.delegate.abi import type_names
from mesa_npu.frontends.teflon.partition import query_support
from mesa_npu.frontends.teflon.tflite import TfliteModel, parse_model
from mesa_npu.frontends.teflon.writer import ModelBuilder, options
from mesa_npu.gallium import ElementType, open_device

HOST_SOURCE = Path(__file__).parent / "c_host" / "teflon_host.c"
U8 = {"scale": 0.05, "zero_point": 120}


def delegate_source(name: str) -> Path:
    return Path(os.fspath(importlib.resources.files("mesa_npu.frontends.teflon.delegate") / name))


def conv_model() -> bytes:
    rng = np.random.default_rng(5)
    b = ModelBuilder()
    x = b.tensor((1, 5, 6, 3), ElementType.UINT8, **U8)
    y = b.tensor((1, 5, 6, 4), ElementType.UINT8, scale=0.1, zero_point=100)
    w = b.tensor(
        (4, 3, 3, 3),
        ElementType.UINT8,
        scale=0.02,
        zero_point=128,
        data=rng.integers(0, 256, (4, 3, 3, 3)),
    )
    bias = b.tensor((4,), ElementType.INT32, scale=0.05 * 0.02, data=rng.integers(-500, 500, 4))
    opts = options(
        "CONV_2D",
        padding=schema.Padding.SAME,
        strideH=1,
        strideW=1,
        fusedActivationFunction=schema.ActivationFunctionType.RELU,
    )
    b.op("CONV_2D", [x, w, bias], [y], opts)
    return b.build([x], [y])


def transpose_model() -> bytes:
    b = ModelBuilder()
    x = b.tensor((1, 5, 6, 3), ElementType.UINT8, **U8)
    perm = b.tensor((4,), ElementType.INT32, data=np.array([0, 2, 1, 3]))
    y = b.tensor((1, 6, 5, 3), ElementType.UINT8, **U8)
    b.op("TRANSPOSE", [x, perm], [y], options("TRANSPOSE"))
    return b.build([x], [y])


def one_op_model() -> tuple[bytes, TfliteModel]:
    """The convolution when the reference device runs it, else the transpose."""
    device = open_device("reference")
    for raw in (conv_model(), transpose_model()):
        model = parse_model(raw)
        if all(s.supported for s in query_support(model, device)):
            return raw, model
    pytest.fail("the reference device runs neither a convolution nor a transpose")


def builtin_data(ffi: cffi.FFI, lib_values: dict[str, int], op) -> bytes:
    """The node's builtin_data struct, as TFLite's parser fills it from the options."""
    if op.name != "CONV_2D":
        return b""
    o = op.options
    padding = {
        schema.Padding.SAME: "kTfLitePaddingSame",
        schema.Padding.VALID: "kTfLitePaddingValid",
    }
    params = ffi.new(
        "TfLiteConvParams *",
        {
            "padding": lib_values[padding[o.padding]],
            "stride_width": o.strideW,
            "stride_height": o.strideH,
            "activation": o.fusedActivationFunction,  # the same codes in both enums
            "dilation_width_factor": o.dilationWFactor,
            "dilation_height_factor": o.dilationHFactor,
        },
    )
    return bytes(ffi.buffer(params))


def write_graph(path: Path, model: TfliteModel, inputs: list, expected: list) -> None:
    """The graph file teflon_host.c reads (little-endian int32 / float32 fields)."""
    ffi = cffi.FFI()
    ffi.cdef(delegate_source("tflite_abi.h").read_text())
    codes = {name: value for value, name in type_names(ffi).items()}
    values = {}
    for enum in ("TfLitePadding", "TfLiteAllocationType"):
        values.update({n: v for v, n in ffi.typeof(enum).elements.items()})
    out = bytearray(b"TFHG")

    def i32(*v: int) -> None:
        out.extend(struct.pack(f"<{len(v)}i", *v))

    def f32(*v: float) -> None:
        out.extend(struct.pack(f"<{len(v)}f", *v))

    i32(len(model.tensors))
    for t in model.tensors:
        p = t.pipe
        i32(codes[t.type_name])
        i32(values["kTfLiteMmapRo"] if p.is_constant else values["kTfLiteArenaRw"])
        i32(len(t.shape), *t.shape)
        f32(p.quant.scale)
        i32(p.quant.zero_point)
        i32(p.size * p.type.size)
        if p.quant.scale:
            n = len(p.quant.scales) if p.quant.scales else 1
            i32(n)
            f32(*(p.quant.scales or (p.quant.scale,)))
            i32(*(p.quant.zero_points or (p.quant.zero_point,) * n))
            i32(p.quant.axis - (4 - p.rank))
        else:
            i32(0)
        if p.is_constant:
            out.extend(np.ascontiguousarray(p.data).tobytes())
    i32(len(model.ops))
    for op in model.ops:
        i32(getattr(schema.BuiltinOperator, op.name), op.version)
        i32(len(op.inputs), *op.inputs)
        i32(len(op.outputs), *op.outputs)
        data = builtin_data(ffi, values, op)
        i32(len(data))
        out.extend(data)
    i32(len(model.inputs), *model.inputs)
    i32(len(model.outputs), *model.outputs)
    for a in (*inputs, *expected):
        out.extend(np.ascontiguousarray(a).tobytes())
    path.write_bytes(bytes(out))


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Path:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler")
    exe = tmp_path_factory.mktemp("c_host") / "teflon_host"
    include = delegate_source("tflite_abi.h").parent
    subprocess.run(
        [
            gcc,
            "-O2",
            "-Wall",
            "-Werror",
            "-I",
            str(include),
            str(HOST_SOURCE),
            "-o",
            str(exe),
            "-ldl",
            "-lpthread",
        ],
        check=True,
    )
    return exe


def run_host(host: Path, graph: Path, invokes: int, *options: str) -> subprocess.CompletedProcess:
    # A clean environment: no PYTHONPATH, no Python in the host; TEFLON_PYTHON names the
    # interpreter whose environment holds mesa_npu (needed for an editable install, where the
    # library lives in the build directory, not in site-packages).
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TEFLON_PYTHON": sys.executable}
    return subprocess.run(
        [str(host), library_path(), str(graph), str(invokes), *options],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_c_host_runs_one_op_graph(host: Path, tmp_path: Path) -> None:
    raw, model = one_op_model()
    ref = litert.interpreter(raw, "ref")
    inputs = litert.random_inputs(ref, seed=3)
    litert.set_inputs(ref, inputs)
    ref.invoke()
    expected = [ref.get_tensor(i) for i in model.outputs]
    graph = tmp_path / "graph.bin"
    write_graph(graph, model, [inputs[i] for i in model.inputs], expected)
    result = run_host(host, graph, 40, "device=reference")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok invokes=40"), result.stdout
    assert "errors=0" in result.stdout
    print(result.stdout.strip())  # the measured times, shown with pytest -s
    # The host itself has no libpython: the delegate brought it.
    ldd = subprocess.run(["ldd", str(host)], capture_output=True, text=True)
    assert "libpython" not in ldd.stdout


def test_c_host_wrong_output_is_detected(host: Path, tmp_path: Path) -> None:
    """The host's check can fail: a wrong expected output makes it exit 1."""
    raw, model = one_op_model()
    ref = litert.interpreter(raw, "ref")
    inputs = litert.random_inputs(ref, seed=3)
    litert.set_inputs(ref, inputs)
    ref.invoke()
    expected = [ref.get_tensor(i).copy() for i in model.outputs]
    expected[0].reshape(-1)[0] ^= 1
    graph = tmp_path / "graph.bin"
    write_graph(graph, model, [inputs[i] for i in model.inputs], expected)
    result = run_host(host, graph, 4, "device=reference")
    assert result.returncode == 1
    assert "gave wrong outputs" in result.stdout


def test_c_host_bad_option_fails_cleanly(host: Path, tmp_path: Path) -> None:
    raw, model = one_op_model()
    graph = tmp_path / "graph.bin"
    ref = litert.interpreter(raw, "ref")
    inputs = litert.random_inputs(ref)
    out = model.tensor(model.outputs[0]).pipe
    expected = [np.zeros(out.size * out.type.size, np.uint8)]
    write_graph(graph, model, [inputs[i] for i in model.inputs], expected)
    result = run_host(host, graph, 1, "device=no-such-device")
    assert result.returncode == 1
    assert "create_delegate failed" in result.stdout
    assert "unknown device 'no-such-device'" in result.stderr
