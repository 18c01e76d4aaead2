"""Graph mutation keeps producer/consumer links; the validator and serializer hold."""

from __future__ import annotations

import numpy as np
import pytest

from mesa_npu.gallium import AxisParams, ElementType, Quant
from mesa_npu.nir_tensor import serialize
from mesa_npu.nir_tensor.evaluate import evaluate
from mesa_npu.nir_tensor.ir import Graph, Node, Op, Tensor
from mesa_npu.nir_tensor.printer import format_graph
from mesa_npu.nir_tensor.validate import ValidationError, validate

Q = Quant(0.5, 3)


def t(*shape: int, data=None) -> Tensor:
    return Tensor(shape=shape, dtype=ElementType.UINT8, quant=Q, data=data)


def chain() -> tuple[Graph, list[Tensor]]:
    x, y, z = t(1, 2, 2, 3), t(1, 4, 1, 3), t(1, 4, 1, 6)
    const = t(1, 4, 1, 3, data=np.arange(12, dtype=np.uint8).reshape(1, 4, 1, 3))
    g = Graph.build(
        [
            Node(Op.RESHAPE, (x,), (y,), origin=0),
            Node(Op.CONCAT, (y, const), (z,), AxisParams(3), origin=1),
        ],
        [x],
        [z],
    )
    return g, [x, y, z, const]


def test_links_follow_mutation():
    g, (_, y, _, _) = chain()
    reshape, concat = g.nodes
    assert g.producer(y) is reshape and g.consumers(y) == [concat]
    y2 = t(1, 4, 1, 3)
    copy = Node(Op.RESHAPE, (y,), (y2,), origin=1)
    g.insert_after(reshape, copy)
    g.replace_tensor(y, y2, skip=copy)
    assert g.consumers(y) == [copy]
    assert g.consumers(y2)[0].op is Op.CONCAT
    validate(g)
    g.remove(copy)
    with pytest.raises(ValidationError, match="used before it is produced"):
        validate(g)


def test_validator_names_shape_errors():
    x, y = t(1, 2, 2, 3), t(1, 2, 2, 7)
    g = Graph.build([Node(Op.CONCAT, (x, x), (y,), AxisParams(3), origin=5)], [x], [y])
    with pytest.raises(ValidationError, match=r"node 0 concat#5: output shape"):
        validate(g)


def test_serialize_round_trip_is_the_same_graph():
    g, _ = chain()
    blob = serialize.dumps(g)
    g2, _ = serialize.loads(blob)
    assert format_graph(g2) == format_graph(g)
    inp = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    (a,), (b,) = evaluate(g, [inp]), evaluate(g2, [inp])
    np.testing.assert_array_equal(a, b)


def test_serialize_refuses_other_drivers_blob():
    g, _ = chain()
    with pytest.raises(ValueError, match="compiled for 'nir_tensor', not 'rocket'"):
        serialize.loads(serialize.dumps(g), "rocket")
