"""One operation of a model as a model of its own, and its host time in LiteRT.

``teflon profile`` times the operations left on the CPU this way: each becomes a one-node
``.tflite`` (same tensors, quantization, options and constant buffers; its non-constant inputs
become the graph inputs) and LiteRT invokes it repeatedly on seeded random inputs. The time is
this host's, with the kernels the caller picks, not the board's CPU.
"""

from __future__ import annotations

import statistics
import time

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from . import litert
from .tflite import ModelError


def _has_data(model, tensor) -> bool:
    buf = model.buffers[tensor.buffer] if 0 < tensor.buffer < len(model.buffers) else None
    return buf is not None and buf.data is not None and len(buf.data) > 0


def single_op_model(raw: bytes, op_index: int) -> bytes:
    """The model's operation ``op_index`` (first subgraph) as a one-operation model."""
    model = schema.ModelT.InitFromPackedBuf(raw, 0)
    graph = model.subgraphs[0]
    if not 0 <= op_index < len(graph.operators or []):
        raise ModelError(f"op {op_index}: no such operation")
    op = graph.operators[op_index]
    ins = [int(t) for t in (op.inputs if op.inputs is not None else ())]
    outs = [int(t) for t in (op.outputs if op.outputs is not None else ())]
    remap: dict[int, int] = {}
    tensors, buffers = [], [schema.BufferT()]  # buffer 0 is the empty sentinel
    for old in dict.fromkeys(t for t in ins + outs if t >= 0):
        t = graph.tensors[old]
        if _has_data(model, t):
            buffers.append(model.buffers[t.buffer])
            t.buffer = len(buffers) - 1
        else:
            t.buffer = 0
        remap[old] = len(tensors)
        tensors.append(t)
    op.inputs = np.asarray([remap.get(t, -1) for t in ins], dtype=np.int32)
    op.outputs = np.asarray([remap[t] for t in outs], dtype=np.int32)
    graph.tensors, graph.operators = tensors, [op]
    graph.inputs = np.asarray(
        [remap[t] for t in dict.fromkeys(ins) if t >= 0 and tensors[remap[t]].buffer == 0],
        dtype=np.int32,
    )
    graph.outputs = np.asarray([remap[t] for t in outs], dtype=np.int32)
    model.subgraphs, model.buffers = [graph], buffers
    model.metadata, model.metadataBuffer, model.signatureDefs = None, None, None
    fb = flatbuffers.Builder(1024)
    fb.Finish(model.Pack(fb), file_identifier=b"TFL3")
    return bytes(fb.Output())


def random_feed(it, seed: int) -> dict[int, np.ndarray]:
    """Seeded inputs: integers over the type's range, floats from a unit normal."""
    rng = np.random.default_rng(seed)
    feed = {}
    for d in it.get_input_details():
        dtype = np.dtype(d["dtype"])
        if dtype.kind == "f":
            feed[d["index"]] = rng.standard_normal(d["shape"]).astype(dtype)
        else:
            info = np.iinfo(dtype)
            feed[d["index"]] = rng.integers(info.min, info.max, d["shape"], dtype, endpoint=True)
    return feed


def host_ms(model: bytes, *, kernels: str = "builtin", repeat: int = 20, seed: int = 0) -> float:
    """Median wall time of ``repeat`` invokes (after one warm-up), in milliseconds."""
    it = litert.interpreter(model, kernels)
    litert.set_inputs(it, random_feed(it, seed))
    litert.invoke(it, "single-op model")
    times = []
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        it.invoke()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
