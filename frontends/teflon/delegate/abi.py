"""Plausibility checks of the TFLite ABI, run in Prepare before anything is claimed.

Nothing in ``TfLiteContext`` carries a version, so a runtime whose structs differ from
``tflite_abi.h`` can only be recognised by what it hands us (shared/reference/delegate-poc.md,
pitfall 3). Every tensor is checked in order, the last one too (a stride error piles up there),
non-pointer fields first and pointers only once those look sane; then every node of the
execution plan. Bools are read as bytes, because cffi refuses a ``_Bool`` that is not 0 or 1.
The answer is ``None`` or a one-line reason naming the first implausible field.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any

# Bounds with headroom for runtimes newer than the header (which lists 24 types, 9 allocation
# types and 3 quantization types): an ABI mismatch produces values far outside them.
MAX_TENSOR_TYPE = 63
MAX_ALLOCATION_TYPE = 15
MAX_QUANTIZATION_TYPE = 7
MAX_RANK = 16
MAX_BUILTIN_CODE = 1023  # builtin_ops.h has ~210 builtins
MAX_OP_VERSION = 64
MAX_NODE_TENSORS = 1 << 16

# Element sizes (bytes) by TfLiteType name for types whose size is fixed (C type sizes).
ELEMENT_SIZES = {
    "FLOAT32": 4,
    "INT32": 4,
    "UINT8": 1,
    "INT64": 8,
    "BOOL": 1,
    "INT16": 2,
    "COMPLEX64": 8,
    "INT8": 1,
    "FLOAT16": 2,
    "FLOAT64": 8,
    "COMPLEX128": 16,
    "UINT64": 8,
    "UINT32": 4,
    "UINT16": 2,
    "BFLOAT16": 2,
}

# LiteRT Python runtimes this delegate has been run with (for the verbose log only).
TESTED_RUNTIMES = {"ai-edge-litert": ("2.3.0",)}


def type_names(ffi: Any) -> dict[int, str]:
    """TfLiteType code -> schema-style name (``kTfLiteUInt8`` -> ``UINT8``), from the header."""
    return {
        value: name.removeprefix("kTfLite").upper()
        for value, name in ffi.typeof("TfLiteType").elements.items()
    }


@dataclass(frozen=True, slots=True)
class Runtime:
    package: str
    version: str

    @property
    def tested(self) -> bool:
        return self.version in TESTED_RUNTIMES.get(self.package, ())

    def describe(self) -> str:
        return f"{self.package} {self.version} ({'tested' if self.tested else 'untested'})"


def python_runtime() -> Runtime | None:
    """The LiteRT Python package in this process, if any (a C host has none)."""
    for package in ("ai-edge-litert", "tflite-runtime"):
        try:
            return Runtime(package, importlib.metadata.version(package))
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _check_tensor(ffi: Any, base: Any, names: dict[int, str], index: int) -> str | None:
    size = ffi.sizeof("TfLiteTensor")
    raw = base + index * size  # unsigned char*: no field is interpreted before it is checked

    def field(name: str, ctype: str) -> int:
        return ffi.cast(ctype + " *", raw + ffi.offsetof("TfLiteTensor", name))[0]

    where = f"tensor {index}"
    kind = field("type", "int")
    if not 0 <= kind <= MAX_TENSOR_TYPE:
        return f"{where}: type {kind} out of range"
    allocation = field("allocation_type", "int")
    if not 0 <= allocation <= MAX_ALLOCATION_TYPE:
        return f"{where}: allocation_type {allocation} out of range"
    handle = field("buffer_handle", "int")
    if handle < -1:
        return f"{where}: buffer_handle {handle} below -1"
    for flag in ("data_is_stale", "is_variable"):
        value = field(flag, "unsigned char")
        if value > 1:
            return f"{where}: {flag} byte is {value}, not a bool"
    quant = ffi.cast("int *", raw + ffi.offsetof("TfLiteTensor", "quantization"))[0]
    if not 0 <= quant <= MAX_QUANTIZATION_TYPE:
        return f"{where}: quantization type {quant} out of range"
    tensor = ffi.cast("TfLiteTensor *", raw)
    if kind == 0:  # kTfLiteNoType: a placeholder, nothing more to check
        return None
    if tensor.dims == ffi.NULL:
        return f"{where}: no dims"
    rank = tensor.dims.size
    if not 0 <= rank <= MAX_RANK:
        return f"{where}: rank {rank} out of range"
    dims = list(tensor.dims.data[0:rank])
    if any(d < 0 for d in dims):
        return f"{where}: negative dimension in {dims}"
    element = ELEMENT_SIZES.get(names.get(kind, ""))
    if element is not None and tensor.data.raw != ffi.NULL:
        count = 1
        for d in dims:
            count *= d
        if tensor.bytes != count * element:
            return f"{where}: {tensor.bytes} bytes for shape {dims} of {names[kind].lower()}"
    return None


def _check_node(ffi: Any, ctx: Any, node_index: int) -> str | None:
    node_p = ffi.new("TfLiteNode **")
    reg_p = ffi.new("TfLiteRegistration **")
    where = f"node {node_index}"
    if ctx.GetNodeAndRegistration(ctx, node_index, node_p, reg_p) != 0:
        return f"{where}: GetNodeAndRegistration failed"
    node, reg = node_p[0], reg_p[0]
    if node == ffi.NULL or reg == ffi.NULL:
        return f"{where}: no node or registration"
    if not 0 <= reg.builtin_code <= MAX_BUILTIN_CODE:
        return f"{where}: builtin_code {reg.builtin_code} out of range"
    if not 1 <= reg.version <= MAX_OP_VERSION:
        return f"{where}: version {reg.version} out of range"
    for what in ("inputs", "outputs"):
        array = getattr(node, what)
        if array == ffi.NULL:
            return f"{where}: no {what}"
        if not 0 <= array.size <= MAX_NODE_TENSORS:
            return f"{where}: {array.size} {what}"
        for t in array.data[0 : array.size]:
            if not -1 <= t < ctx.tensors_size:
                return f"{where}: {what[:-1]} tensor {t} out of range ({ctx.tensors_size} tensors)"
    return None


def check_context(ffi: Any, ctx: Any, plan: list[int]) -> str | None:
    """None when the context looks like the one ``tflite_abi.h`` describes, else the reason."""
    if ctx.tensors == ffi.NULL and ctx.tensors_size:
        return "the context has no tensor array"
    if ctx.tensors_size > 1 << 24:
        return f"tensors_size {ctx.tensors_size} out of range"
    names = type_names(ffi)
    base = ffi.cast("unsigned char *", ctx.tensors)
    for index in range(ctx.tensors_size):
        problem = _check_tensor(ffi, base, names, index)
        if problem:
            return problem
    for node_index in plan:
        problem = _check_node(ffi, ctx, node_index)
        if problem:
            return problem
    return None
