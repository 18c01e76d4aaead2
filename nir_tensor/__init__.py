"""nir_tensor: a tensor IR with an exact reference evaluator and shared lowering passes."""

from .builder import build_graph
from .ir import Graph, Layout, LayoutKind, Node, Op, OpGroup, Tensor

__all__ = ["Graph", "Layout", "LayoutKind", "Node", "Op", "OpGroup", "Tensor", "build_graph"]
