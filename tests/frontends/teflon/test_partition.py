"""Partitioning: connected, acyclic groups; constants never inputs; outside uses exposed."""

from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from mesa_npu.frontends.teflon.partition import partition, query_support
from mesa_npu.frontends.teflon.tflite import parse_model
from mesa_npu.frontends.teflon.writer import ModelBuilder, options
from mesa_npu.gallium import ElementType, open_device

U8 = {"scale": 0.1, "zero_point": 128}


def add_custom(b: ModelBuilder, inputs: list[int], outputs: list[int]) -> None:
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = "HostOnly"
    b.model.operatorCodes.append(code)
    op = schema.OperatorT()
    op.opcodeIndex = len(b.model.operatorCodes) - 1
    op.inputs, op.outputs = np.array(inputs), np.array(outputs)
    b.graph.operators.append(op)


def reshape(b: ModelBuilder, src: int, shape: tuple[int, ...]) -> int:
    out = b.tensor(shape, ElementType.UINT8, **U8)
    b.op("RESHAPE", [src], [out], options("RESHAPE", newShape=list(shape)))
    return out


def model():
    """x -> a (reshape) -> custom -> b -> c (reshape); x -> d (reshape), in that op order."""
    b = ModelBuilder()
    x = b.tensor((1, 4, 4, 2), ElementType.UINT8, **U8)
    a = reshape(b, x, (1, 32))
    mid = b.tensor((1, 32), ElementType.UINT8, **U8)
    add_custom(b, [a], [mid])
    c = reshape(b, mid, (1, 2, 16))
    d = reshape(b, x, (1, 8, 4))
    return parse_model(b.build([x], [c, d]), "parts.tflite"), (x, a, mid, c, d)


def test_phases_and_exposed_outputs():
    m, (x, a, mid, c, d) = model()
    support = query_support(m, open_device("reference"))
    assert [s.supported for s in support] == [True, False, True, True]
    parts = partition(m, support)
    # a and d run before the host op and share the input x: one partition; c comes after.
    assert [p.op_indices for p in parts] == [(0, 3), (2,)]
    first, second = parts
    assert first.inputs == (x,)
    assert set(first.outputs) == {a, d}  # a feeds the host op, d is a model output
    assert second.inputs == (mid,) and second.outputs == (c,)
    flags = {t.index: t.is_external_output for op in first.ops for t in op.outputs}
    assert flags == {a: True, d: True}


def test_constants_are_not_partition_inputs():
    b = ModelBuilder()
    x = b.tensor((1, 2, 2, 3), ElementType.UINT8, **U8)
    k = b.tensor((1, 2, 2, 3), ElementType.UINT8, **U8, data=np.arange(12))
    y = b.tensor((1, 2, 4, 3), ElementType.UINT8, **U8)
    b.op("CONCATENATION", [x, k], [y], options("CONCATENATION", axis=2))
    m = parse_model(b.build([x], [y]))
    parts = partition(m, query_support(m, open_device("reference")))
    assert len(parts) == 1 and parts[0].inputs == (x,) and parts[0].outputs == (y,)


def test_no_cycle_through_host_op():
    """a -> host -> c, with c also reading a: a and c must not share a partition."""
    b = ModelBuilder()
    x = b.tensor((1, 4), ElementType.UINT8, **U8)
    a = reshape(b, x, (1, 2, 2))
    mid = b.tensor((1, 2, 2), ElementType.UINT8, **U8)
    add_custom(b, [a], [mid])
    c = b.tensor((1, 4, 2), ElementType.UINT8, **U8)
    b.op("CONCATENATION", [a, mid], [c], options("CONCATENATION", axis=1))
    m = parse_model(b.build([x], [c]))
    parts = partition(m, query_support(m, open_device("reference")))
    assert [p.op_indices for p in parts] == [(0,), (2,)]
    assert parts[1].inputs == (a, mid)
