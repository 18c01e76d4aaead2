"""The tensor IR: one node type, one op enum, and a graph that keeps its edges consistent.

A :class:`Node` is an :class:`Op`, typed params (the gallium parameter records, plus the IR's
own for lowered forms) and its input and output :class:`Tensor` s. Both are frozen: a pass
changes the graph only through :class:`Graph` methods (``replace``, ``insert_before``,
``remove``, ``replace_tensor``), which keep producer and consumer links in step, the way Vela's
``add_input_tensor``/``set_output_tensor`` do. Every node records ``origin``, the index of the
source-model operation it came from, which ``teflon check`` and ``teflon profile`` report.

Tensors have a logical NHWC shape and a physical :class:`Layout`; the evaluator computes on the
logical view and stores the physical one, so a layout change is visible only where a consumer
needs it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..gallium.tensor import NO_QUANT, ElementType, Quant


class OpGroup(enum.Flag):
    NONE = 0
    CONV = enum.auto()  # reads weights, accumulates
    ELEMENTWISE = enum.auto()  # same-shaped inputs and output (with broadcast)
    ACTIVATION = enum.auto()  # one input, one output, pointwise: a lookup table can do it
    DATA = enum.auto()  # moves bytes only, no arithmetic on values
    REDUCE = enum.auto()


class Op(enum.Enum):
    """Every operation the IR knows; the value is (debug name, group)."""

    CONV = ("conv", OpGroup.CONV)
    FULLY_CONNECTED = ("fc", OpGroup.CONV)
    ADD = ("add", OpGroup.ELEMENTWISE)
    SUB = ("sub", OpGroup.ELEMENTWISE)
    MUL = ("mul", OpGroup.ELEMENTWISE)
    POOL = ("pool", OpGroup.REDUCE)
    MEAN = ("mean", OpGroup.REDUCE)
    SOFTMAX = ("softmax", OpGroup.REDUCE)
    CLAMP = ("clamp", OpGroup.ACTIVATION)
    ABS = ("abs", OpGroup.ACTIVATION)
    LOGISTIC = ("logistic", OpGroup.ACTIVATION)
    TANH = ("tanh", OpGroup.ACTIVATION)
    HARD_SWISH = ("hard_swish", OpGroup.ACTIVATION)
    QUANTIZE = ("quantize", OpGroup.ACTIVATION)
    CONCAT = ("concat", OpGroup.DATA)
    SPLIT = ("split", OpGroup.DATA)
    PAD = ("pad", OpGroup.DATA)
    RESHAPE = ("reshape", OpGroup.DATA)
    TRANSPOSE = ("transpose", OpGroup.DATA)
    STRIDED_SLICE = ("strided_slice", OpGroup.DATA)
    RESIZE = ("resize", OpGroup.DATA)
    # Forms that only lowering passes create.
    SPACE_TO_DEPTH = ("space_to_depth", OpGroup.DATA)  # etnaviv "reshuffle"
    LAYOUT = ("layout", OpGroup.DATA)  # physical layout change, logical identity
    CONV_ADD = ("conv_add", OpGroup.CONV)  # rocket: ADD fused into its producing conv

    def __init__(self, debug_name: str, group: OpGroup) -> None:
        self.debug_name = debug_name
        self.group = group

    def __repr__(self) -> str:
        return f"Op.{self.name}"


class LayoutKind(enum.Enum):
    NHWC = "nhwc"
    NCHW = "nchw"  # planar: one H x W plane per channel
    NC1HWC2 = "nc1hwc2"  # channel groups of c2, the rocket feature layout


@dataclass(frozen=True, slots=True)
class Layout:
    """A physical layout. ``c2`` is the channel-group size of NC1HWC2."""

    kind: LayoutKind = LayoutKind.NHWC
    c2: int = 0

    def __str__(self) -> str:
        return f"nc1hwc2/{self.c2}" if self.kind is LayoutKind.NC1HWC2 else self.kind.value

    def physical_shape(self, shape: tuple[int, int, int, int]) -> tuple[int, ...]:
        n, h, w, c = shape
        if self.kind is LayoutKind.NCHW:
            return (n, c, h, w)
        if self.kind is LayoutKind.NC1HWC2:
            return (n, -(-c // self.c2), h, w, self.c2)
        return shape

    def to_physical(self, logical: np.ndarray, fill: int = 0) -> np.ndarray:
        """NHWC array -> this layout (padding channels of NC1HWC2 get ``fill``)."""
        if self.kind is LayoutKind.NCHW:
            return np.ascontiguousarray(logical.transpose(0, 3, 1, 2))
        if self.kind is LayoutKind.NC1HWC2:
            n, h, w, c = logical.shape
            groups = -(-c // self.c2)
            padded = np.full((n, h, w, groups * self.c2), fill, dtype=logical.dtype)
            padded[..., :c] = logical
            return np.ascontiguousarray(
                padded.reshape(n, h, w, groups, self.c2).transpose(0, 3, 1, 2, 4)
            )
        return logical

    def to_logical(self, physical: np.ndarray, shape: tuple[int, int, int, int]) -> np.ndarray:
        """This layout -> NHWC array of ``shape``."""
        if self.kind is LayoutKind.NCHW:
            return physical.transpose(0, 2, 3, 1)
        if self.kind is LayoutKind.NC1HWC2:
            n, h, w, c = shape
            merged = physical.transpose(0, 2, 3, 1, 4).reshape(n, h, w, -1)
            return merged[..., :c]
        return physical


NHWC = Layout()
NCHW = Layout(LayoutKind.NCHW)


@dataclass(frozen=True, slots=True, eq=False)
class Tensor:
    """A value in the graph. Constants carry ``data`` shaped like ``shape`` (logical NHWC)."""

    shape: tuple[int, int, int, int]
    dtype: ElementType
    quant: Quant = NO_QUANT
    data: np.ndarray | None = None
    layout: Layout = NHWC
    rank: int = 4
    index: int = -1  # the pipe tensor index, -1 for tensors a pass created
    name: str = ""

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.size

    def with_(self, **changes: Any) -> Tensor:
        """A new tensor with some fields changed (tensors are immutable)."""
        return replace(self, **changes)

    def __repr__(self) -> str:
        tag = f"t{self.index}" if self.index >= 0 else f"t@{id(self) % 10000:04d}"
        return f"{tag}<{'x'.join(map(str, self.shape))} {self.dtype.short}>"


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """One operation. ``inputs`` may hold None for an absent optional input (a bias)."""

    op: Op
    inputs: tuple[Tensor | None, ...]
    outputs: tuple[Tensor, ...]
    params: Any = None
    origin: int = -1  # source-model operation index

    @property
    def input(self) -> Tensor:
        assert self.inputs[0] is not None
        return self.inputs[0]

    @property
    def output(self) -> Tensor:
        return self.outputs[0]

    def with_(self, **changes: Any) -> Node:
        return replace(self, **changes)

    def __repr__(self) -> str:
        return f"{self.op.debug_name}#{self.origin}"


class GraphError(ValueError):
    pass


@dataclass(eq=False)
class Graph:
    """Nodes in topological order plus the graph's inputs and outputs.

    ``producer`` and ``consumers`` are maintained by the mutation methods; never edit
    ``nodes`` directly.
    """

    nodes: list[Node] = field(default_factory=list)
    inputs: list[Tensor] = field(default_factory=list)
    outputs: list[Tensor] = field(default_factory=list)
    _producer: dict[Tensor, Node] = field(default_factory=dict, repr=False)
    _consumers: dict[Tensor, list[Node]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls, nodes: Iterable[Node], inputs: Sequence[Tensor], outputs: Sequence[Tensor]
    ) -> Graph:
        graph = cls(inputs=list(inputs), outputs=list(outputs))
        for node in nodes:
            graph.append(node)
        return graph

    # -- queries ----------------------------------------------------------------------------

    def producer(self, tensor: Tensor) -> Node | None:
        return self._producer.get(tensor)

    def consumers(self, tensor: Tensor) -> list[Node]:
        return list(self._consumers.get(tensor, ()))

    def is_output(self, tensor: Tensor) -> bool:
        return any(t is tensor for t in self.outputs)

    def tensors(self) -> Iterator[Tensor]:
        """Every tensor once: graph inputs, then node inputs and outputs in order."""
        seen: set[int] = set()
        for t in [*self.inputs, *(t for n in self.nodes for t in (*n.inputs, *n.outputs))]:
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                yield t

    def position(self, node: Node) -> int:
        for i, n in enumerate(self.nodes):
            if n is node:
                return i
        raise GraphError(f"{node!r} is not in the graph")

    def __iter__(self) -> Iterator[Node]:
        return iter(list(self.nodes))

    def __len__(self) -> int:
        return len(self.nodes)

    # -- mutation ---------------------------------------------------------------------------

    def _link(self, node: Node) -> None:
        for t in node.outputs:
            if t in self._producer:
                raise GraphError(f"{t!r} already produced by {self._producer[t]!r}")
            self._producer[t] = node
        for t in node.inputs:
            if t is not None:
                self._consumers.setdefault(t, []).append(node)

    def _unlink(self, node: Node) -> None:
        for t in node.outputs:
            if self._producer.get(t) is node:
                del self._producer[t]
        for t in node.inputs:
            if t is not None:
                users = self._consumers.get(t, [])
                users[:] = [n for n in users if n is not node]
                if not users:
                    self._consumers.pop(t, None)

    def append(self, node: Node) -> Node:
        self._link(node)
        self.nodes.append(node)
        return node

    def insert_before(self, anchor: Node, node: Node) -> Node:
        self._link(node)
        self.nodes.insert(self.position(anchor), node)
        return node

    def insert_after(self, anchor: Node, node: Node) -> Node:
        self._link(node)
        self.nodes.insert(self.position(anchor) + 1, node)
        return node

    def remove(self, node: Node) -> None:
        pos = self.position(node)
        self._unlink(node)
        del self.nodes[pos]

    def replace(self, node: Node, new_nodes: Sequence[Node]) -> None:
        """Put ``new_nodes`` (in order) where ``node`` was."""
        pos = self.position(node)
        self._unlink(node)
        del self.nodes[pos]
        for i, new in enumerate(new_nodes):
            self._link(new)
            self.nodes.insert(pos + i, new)

    def replace_tensor(self, old: Tensor, new: Tensor, *, skip: Node | None = None) -> None:
        """Make every consumer of ``old`` (but ``skip``) and the graph outputs use ``new``."""
        for user in dict.fromkeys(self.consumers(old)):  # a node may read ``old`` twice
            if user is skip:
                continue
            inputs = tuple(new if t is old else t for t in user.inputs)
            self.replace(user, [user.with_(inputs=inputs)])
        self.outputs = [new if t is old else t for t in self.outputs]
        self.inputs = [new if t is old else t for t in self.inputs]

    def sort(self) -> None:
        """Restore topological order after insertions that broke it."""
        ready = {id(t) for t in self.inputs} | {id(t) for t in self.tensors() if t.is_constant}
        pending, order = list(self.nodes), []
        while pending:
            for i, node in enumerate(pending):
                if all(t is None or id(t) in ready for t in node.inputs):
                    order.append(node)
                    ready.update(id(t) for t in node.outputs)
                    del pending[i]
                    break
            else:
                raise GraphError(f"cycle or missing producer at {pending[0]!r}")
        self.nodes = order

    def copy(self) -> Graph:
        """A shallow copy: new node list and links, same (immutable) nodes and tensors."""
        return Graph.build(self.nodes, self.inputs, self.outputs)
