"""Graph <-> bytes. Used for compiled reference subgraphs and, in debug mode, by the pass
manager to round-trip a graph after each pass (which catches passes that alias state)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import numpy as np

from ..gallium import operation
from ..gallium.tensor import ElementType, Quant
from ..util import blob
from . import params
from .ir import Graph, Layout, LayoutKind, Node, Op, Tensor

# Every record type that may appear in params, by name: the gallium records and the IR's own.
_PARAM_TYPES: dict[str, type] = {
    cls.__name__: cls
    for module in (operation, params)
    for cls in vars(module).values()
    if isinstance(cls, type) and (dataclasses.is_dataclass(cls) or issubclass(cls, enum.Enum))
}


def _encode(v: Any) -> Any:
    if isinstance(v, enum.Enum):
        return {"__enum__": type(v).__name__, "name": v.name}
    if dataclasses.is_dataclass(v):
        fields = {f.name: _encode(getattr(v, f.name)) for f in dataclasses.fields(v)}
        return {"__type__": type(v).__name__, **fields}
    if isinstance(v, tuple | list):
        return [_encode(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def _decode(v: Any) -> Any:
    if isinstance(v, dict) and "__enum__" in v:
        return _PARAM_TYPES[v["__enum__"]][v["name"]]
    if isinstance(v, dict) and "__type__" in v:
        cls = _PARAM_TYPES[v["__type__"]]
        return cls(**{k: _decode(x) for k, x in v.items() if k != "__type__"})
    if isinstance(v, list):
        return tuple(_decode(x) for x in v)
    return v


def _tensor_meta(t: Tensor) -> dict[str, Any]:
    q = t.quant
    return {
        "shape": list(t.shape),
        "dtype": t.dtype.name,
        "rank": t.rank,
        "index": t.index,
        "name": t.name,
        "layout": [t.layout.kind.value, t.layout.c2],
        "quant": [q.scale, q.zero_point, q.scales, q.zero_points, q.axis],
    }


def _tensor_from_meta(m: dict[str, Any], data: np.ndarray | None) -> Tensor:
    scale, zp, scales, zps, axis = m["quant"]
    quant = Quant(scale, zp, tuple(scales) if scales else None, tuple(zps) if zps else None, axis)
    return Tensor(
        shape=tuple(m["shape"]),
        dtype=ElementType[m["dtype"]],
        quant=quant,
        data=data,
        layout=Layout(LayoutKind(m["layout"][0]), m["layout"][1]),
        rank=m["rank"],
        index=m["index"],
        name=m["name"],
    )


def dumps(graph: Graph, driver: str = "nir_tensor", extra: dict | None = None) -> bytes:
    ids = {id(t): i for i, t in enumerate(graph.tensors())}
    tensors = list(graph.tensors())
    meta = {
        "tensors": [_tensor_meta(t) for t in tensors],
        "nodes": [
            {
                "op": n.op.name,
                "origin": n.origin,
                "params": _encode(n.params),
                "inputs": [None if t is None else ids[id(t)] for t in n.inputs],
                "outputs": [ids[id(t)] for t in n.outputs],
            }
            for n in graph.nodes
        ],
        "inputs": [ids[id(t)] for t in graph.inputs],
        "outputs": [ids[id(t)] for t in graph.outputs],
        "extra": extra or {},
    }
    arrays = {f"t{i}": t.data for i, t in enumerate(tensors) if t.data is not None}
    return blob.pack(driver, meta, arrays)


def loads(data: bytes, driver: str = "nir_tensor") -> tuple[Graph, dict]:
    meta, arrays = blob.unpack(data, driver)
    tensors = [_tensor_from_meta(m, arrays.get(f"t{i}")) for i, m in enumerate(meta["tensors"])]

    def get(i: int | None) -> Tensor | None:
        return None if i is None else tensors[i]

    nodes = [
        Node(
            Op[n["op"]],
            tuple(get(i) for i in n["inputs"]),
            tuple(get(i) for i in n["outputs"]),
            _decode(n["params"]),
            n["origin"],
        )
        for n in meta["nodes"]
    ]
    graph = Graph.build(nodes, [get(i) for i in meta["inputs"]], [get(i) for i in meta["outputs"]])
    return graph, meta["extra"]
