"""``teflon graph MODEL --device D -o graph.svg [--after PASS] [--pipeline NAME]``: pictures.

Without ``--after``/``--pipeline`` it draws the model: one box per operation, each NPU
partition in its own colour and cluster, operations left to the CPU in grey with the reason.
With them it draws, inside each partition's cluster, the partition's nir_tensor graph after
the named pipeline (or after its pass ``--after``), so a user can see what a lowering did.
The format follows the output's extension: ``.dot`` is written directly, anything else
(``.svg``, ``.png``, ``.pdf``) is drawn by graphviz's ``dot``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ....drivers.reference.pipelines import PIPELINES, load_pipeline
from ....gallium.loader import open_device
from ....nir_tensor.builder import build_graph
from ....nir_tensor.dot import (
    CPU_FILL,
    PARTITION_FILLS,
    cluster,
    digraph,
    graph_body,
    quote,
    render,
)
from ....nir_tensor.ir import Graph
from ....nir_tensor.pipeline import Pipeline, run_pipeline
from ..partition import NodeSupport, Partition, check_quantized, partition, query_support
from ..tflite import ModelError, TfliteModel, load_model


def add_parser(sub) -> None:
    p = sub.add_parser("graph", help="draw the model's partitions, or its lowered graph")
    p.add_argument("model")
    p.add_argument("--device", "-d", help="device name (default: the first one present)")
    p.add_argument("-o", "--output", default="graph.svg", help="output file (.svg, .png, .dot)")
    p.add_argument("--pipeline", help="draw the nir_tensor graph after this lowering pipeline")
    p.add_argument("--after", metavar="PASS", help="stop the pipeline after this pass")
    p.set_defaults(run=run)


def _pipeline_for(args: argparse.Namespace, device_name: str) -> Pipeline | None:
    if args.pipeline is None and args.after is None:
        return None
    _, _, suffix = device_name.partition(":")
    name = args.pipeline or suffix or device_name
    pipeline = load_pipeline(name)
    if pipeline is None:
        known = ", ".join(n for n in PIPELINES if load_pipeline(n) is not None)
        raise ModelError(f"no lowering pipeline '{name}' (available: {known}); use --pipeline")
    return pipeline


def _tensor_text(model: TfliteModel, index: int) -> str:
    t = model.tensor(index)
    return "x".join(map(str, t.shape)) + f" {t.short_type}"


def model_dot(
    model: TfliteModel,
    support: Sequence[NodeSupport],
    parts: Sequence[Partition],
    lowered: dict[int, Graph],
    title: str,
) -> str:
    """The model's operations by partition; a partition with a lowered graph shows that."""
    owner = {op: n for n, p in enumerate(parts) for op in p.op_indices}
    producer = {t: op.index for op in model.ops for t in op.outputs}
    body: list[str] = []
    for i, index in enumerate(model.inputs):
        text = "input " + _tensor_text(model, index)
        body.append(f"in{i} [label={quote(text)} shape=ellipse];")
    for n, part in enumerate(parts):
        fill = PARTITION_FILLS[n % len(PARTITION_FILLS)]
        label = f"NPU partition {n}: ops {part.op_indices[0]}..{part.op_indices[-1]}"
        if n in lowered:
            inner = graph_body(lowered[n], prefix=f"p{n}_")
            body += cluster(f"p{n}", label + " (lowered)", inner, fill)
            continue
        inner = []
        for op_index in part.op_indices:
            op = model.ops[op_index]
            text = f"{op.index} {op.name}\n" + _tensor_text(model, op.outputs[0])
            inner.append(f"op{op.index} [label={quote(text)} {_BOX} fillcolor=white];")
        body += cluster(f"p{n}", label, inner, fill)
    for s in support:
        if s.op.index not in owner:
            text = f"{s.op.index} {s.op.name} (CPU)\n{s.reason}"
            body.append(f"op{s.op.index} [label={quote(text)} {_BOX} fillcolor={CPU_FILL}];")

    def source(t: int) -> str | None:
        """The DOT node a tensor comes out of."""
        if t in producer:
            n = owner.get(producer[t])
            if n in lowered:
                outs = [x.index for x in lowered[n].outputs]
                return f"p{n}__out{outs.index(t)}" if t in outs else None
            return f"op{producer[t]}"
        return f"in{model.inputs.index(t)}" if t in model.inputs else None

    def sink(op: int, t: int) -> str | None:
        """The DOT node an operation reads a tensor at (None: inside a lowered partition)."""
        n = owner.get(op)
        if n not in lowered:
            return f"op{op}"
        if t in producer and owner.get(producer[t]) == n:
            return None
        ins = [x.index for x in lowered[n].inputs]
        return f"p{n}__in{ins.index(t)}" if t in ins else None

    edges: dict[tuple[str, str], str] = {}
    for op in model.ops:
        for t in op.inputs:
            pipe = model.pipe(t) if t >= 0 else None
            if t < 0 or (pipe is not None and pipe.is_constant):
                continue
            src, dst = source(t), sink(op.index, t)
            if src is not None and dst is not None:
                edges[(src, dst)] = _tensor_text(model, t)
    for i, index in enumerate(model.outputs):
        text = "output " + _tensor_text(model, index)
        body.append(f"out{i} [label={quote(text)} shape=ellipse];")
        src = source(index)
        if src is not None:
            edges[(src, f"out{i}")] = ""
    body += [f"{a} -> {b} [label={quote(text)}];" for (a, b), text in edges.items()]
    return digraph(title, body)


_BOX = 'shape=box style="rounded,filled"'


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    check_quantized(model)
    device = open_device(args.device)
    pipeline = _pipeline_for(args, device.name)
    support = query_support(model, device)
    parts = partition(model, support)
    lowered: dict[int, Graph] = {}
    title = f"{model.name} on {device.name}"
    if pipeline is not None:
        for n, part in enumerate(parts):
            result = run_pipeline(build_graph(part.ops), pipeline, stop_after=args.after)
            lowered[n] = result.graph
        title += f", after {args.after or 'pipeline'} ({pipeline.name})"
    path = render(model_dot(model, support, parts, lowered, title), args.output)
    print(f"teflon graph: wrote {path} ({len(parts)} NPU partitions, {len(model.ops)} operations)")
    return 0
