"""Graph pictures: a nir_tensor graph as graphviz DOT text, and rendering through ``dot``.

The picture is for seeing what a lowering did: lowered forms (SPACE_TO_DEPTH, CONV_ADD) and
layout changes stand out by colour, views are dashed (they move no data), and edges carry
the tensor's shape, type and physical layout. Constants are not drawn; a node lists its
weight shape instead. Graphviz is optional: :func:`render` writes ``.dot`` text itself and
calls ``dot`` only for other formats, with a one-line error when it is missing.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from .ir import NHWC, Graph, Node, Op, OpGroup, Tensor
from .params import VIEW_PARAMS


class DotError(RuntimeError):
    """Graphviz is missing or failed; the message is one line."""


# Fill colours by what a node is; graphviz X11 colour names.
LOWERED_FILL = "gold"
LAYOUT_FILL = "orange"
VIEW_FILL = "white"
DEFAULT_FILL = "lightblue"
CPU_FILL = "lightgray"
# One fill per NPU partition, cycled.
PARTITION_FILLS = ("lightblue", "palegreen", "lightpink", "khaki", "plum", "lightcyan")

LOWERED_OPS = frozenset({Op.SPACE_TO_DEPTH, Op.CONV_ADD})


def quote(text: str) -> str:
    """A DOT string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def tensor_label(t: Tensor) -> str:
    shape = "x".join(map(str, t.shape))
    layout = "" if t.layout == NHWC else f" {t.layout}"
    return f"{shape} {t.dtype.short}{layout}"


def _param_summary(node: Node) -> str:
    p = node.params
    conv = getattr(p, "conv", p)  # CONV_ADD wraps its ConvParams
    parts = []
    if node.op in (Op.CONV, Op.CONV_ADD):
        w = node.inputs[1]
        kind = "dw " if conv.depthwise else ""
        parts.append(f"{kind}k{w.shape[1]}x{w.shape[2]} s{conv.stride[0]}x{conv.stride[1]}")
        if not conv.padding.is_zero:
            pad = conv.padding
            parts.append(f"pad {pad.top},{pad.bottom},{pad.left},{pad.right}")
    elif isinstance(p, VIEW_PARAMS):
        parts.append("view @" + ",".join(map(str, p.offsets)))
    elif dataclasses.is_dataclass(p) and hasattr(p, "axis"):
        parts.append(f"axis {p.axis}")
    clamp = getattr(p, "clamp", None) if p is not None else None
    if clamp is not None:
        parts.append(f"clamp {clamp.lo}..{clamp.hi}")
    return " ".join(parts)


def node_label(node: Node) -> str:
    summary = _param_summary(node)
    line = f"{node.op.debug_name} #{node.origin}"
    return line + (f"\n{summary}" if summary else "")


def node_style(node: Node) -> str:
    if isinstance(node.params, VIEW_PARAMS):
        return f'shape=box style="rounded,dashed,filled" fillcolor={VIEW_FILL}'
    if node.op is Op.LAYOUT:
        fill = LAYOUT_FILL
    elif node.op in LOWERED_OPS:
        fill = LOWERED_FILL
    elif node.op.group & OpGroup.DATA:
        fill = "white"
    else:
        fill = DEFAULT_FILL
    return f'shape=box style="rounded,filled" fillcolor={fill}'


def graph_body(graph: Graph, prefix: str = "n") -> list[str]:
    """DOT statements (nodes and edges) of ``graph``; ids start with ``prefix``."""
    lines: list[str] = []
    ids: dict[int, str] = {}
    for i, t in enumerate(graph.inputs):
        ids[id(t)] = f"{prefix}_in{i}"
        lines.append(f"{ids[id(t)]} [label={quote('input ' + tensor_label(t))} shape=ellipse];")
    for i, node in enumerate(graph.nodes):
        name = f"{prefix}{i}"
        lines.append(f"{name} [label={quote(node_label(node))} {node_style(node)}];")
        for t in node.outputs:
            ids[id(t)] = name
    for i, node in enumerate(graph.nodes):
        for t in node.inputs:
            if t is None or t.is_constant or id(t) not in ids:
                continue
            lines.append(f"{ids[id(t)]} -> {prefix}{i} [label={quote(tensor_label(t))}];")
    for i, t in enumerate(graph.outputs):
        out = f"{prefix}_out{i}"
        lines.append(f"{out} [label={quote('output ' + tensor_label(t))} shape=ellipse];")
        if id(t) in ids:
            lines.append(f"{ids[id(t)]} -> {out};")
    return lines


def graph_dot(graph: Graph, title: str = "nir_tensor") -> str:
    """A whole DOT document for one graph."""
    return digraph(title, graph_body(graph))


def cluster(name: str, label: str, body: Iterable[str], fill: str = "white") -> list[str]:
    """A DOT subgraph cluster (a partition's box)."""
    head = [f"subgraph cluster_{name} {{", f"label={quote(label)};", "style=filled;"]
    return [*head, f"fillcolor={fill};", *body, "}"]


def digraph(title: str, body: Sequence[str]) -> str:
    head = [
        f"digraph {quote(title)} {{",
        "rankdir=TB;",
        'node [fontname="Helvetica" fontsize=10];',
        'edge [fontname="Helvetica" fontsize=8];',
        f"label={quote(title)};",
        "labelloc=t;",
    ]
    return "\n".join([*head, *("  " + line for line in body), "}"]) + "\n"


def render(text: str, path: str | Path) -> Path:
    """Write DOT ``text`` to ``path``: as is for ``.dot``/``.gv``, else through ``dot -T<ext>``."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt in ("dot", "gv"):
        path.write_text(text)
        return path
    exe = shutil.which("dot")
    if exe is None:
        raise DotError(
            f"graphviz 'dot' is not installed, so {path.name} cannot be drawn; install "
            "graphviz (e.g. apt-get install graphviz) or write DOT text with -o graph.dot"
        )
    done = subprocess.run(
        [exe, f"-T{fmt}", "-o", str(path)], input=text.encode(), capture_output=True, check=False
    )
    if done.returncode != 0:
        message = " ".join(done.stderr.decode(errors="replace").split())
        raise DotError(f"dot -T{fmt} failed: {message or 'no message'}")
    return path


__all__ = [
    "DotError",
    "cluster",
    "digraph",
    "graph_body",
    "graph_dot",
    "node_label",
    "quote",
    "render",
    "tensor_label",
]
