"""A readable text form of a graph, one line per node (what ``print_after`` shows)."""

from __future__ import annotations

import dataclasses
import enum

from .ir import Graph, Node, Tensor


def _name(t: Tensor | None, names: dict[int, str]) -> str:
    if t is None:
        return "-"
    if id(t) not in names:
        names[id(t)] = f"%{t.index}" if t.index >= 0 else f"%n{len(names)}"
    return names[id(t)]


def _value(v) -> str:
    if isinstance(v, enum.Enum):
        return v.name.lower()
    if dataclasses.is_dataclass(v):
        return "(" + ",".join(_value(getattr(v, f.name)) for f in dataclasses.fields(v)) + ")"
    if isinstance(v, tuple):
        return "x".join(_value(x) for x in v)
    return str(v)


def format_params(params) -> str:
    if params is None:
        return ""
    if not dataclasses.is_dataclass(params):
        return str(params)
    return " ".join(
        f"{f.name}={_value(getattr(params, f.name))}" for f in dataclasses.fields(params)
    )


def format_tensor(t: Tensor, name: str) -> str:
    shape = "x".join(map(str, t.shape))
    const = " const" if t.is_constant else ""
    layout = "" if str(t.layout) == "nhwc" else f" {t.layout}"
    return f"{name}: {shape} {t.dtype.short} {t.quant.describe()}{layout}{const}"


def format_node(node: Node, names: dict[int, str]) -> str:
    outs = ", ".join(_name(t, names) for t in node.outputs)
    ins = ", ".join(_name(t, names) for t in node.inputs)
    params = format_params(node.params)
    return f"{outs} = {node.op.debug_name}({ins}) {params}".rstrip() + f"  ; op {node.origin}"


def format_graph(graph: Graph, *, tensors: bool = True) -> str:
    names: dict[int, str] = {}
    lines = ["inputs: " + ", ".join(_name(t, names) for t in graph.inputs)]
    lines += [format_node(n, names) for n in graph.nodes]
    lines.append("outputs: " + ", ".join(_name(t, names) for t in graph.outputs))
    if tensors:
        lines += [format_tensor(t, _name(t, names)) for t in graph.tensors() if not t.is_constant]
    return "\n".join(lines)
