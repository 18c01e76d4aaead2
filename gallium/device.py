"""The ML device and context interface every driver implements.

Mirrors Mesa's v2 split (``pipe_ml_device`` from ``pipe_screen->get_ml_device()`` plus the ML
hooks of ``pipe_context``):

* :class:`MlDevice` answers support queries and compiles operations into a subgraph. Compiling
  needs no hardware, and the result serializes to bytes.
* :class:`MlContext` deserializes a subgraph, invokes it with host buffers and reads outputs.
  Hardware buffers are made lazily on the first invoke.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .operation import PipeMlOperation
from .tensor import PipeTensor


class DeviceError(RuntimeError):
    """A failure reported by the device: a job fault, a timeout, a bad buffer."""


class CompileError(RuntimeError):
    """The driver could not compile an operation it had claimed to support."""


@dataclass(frozen=True, slots=True)
class JobCounters:
    """What a device measured for one job (one hardware submission unit).

    ``op_index`` is the source-model operation the job came from; ``bytes_read`` and
    ``bytes_written`` are keyed by buffer role (``input``, ``weights``, ``bias``, ``output``...).
    For the cost model (``util/performance.py``): ``kind`` names the hardware unit or job type
    the driver reports (a ``util.performance.JobKind`` value such as ``nn``, ``tp``, ``conv``,
    ``depthwise``; empty when unknown), and ``reads``/``writes`` identify the buffers the job
    reads and writes (BO handles or any ids unique within one invoke) so that the model can
    tell which jobs may overlap; empty when unknown, and then jobs run in order.
    """

    op_index: int
    name: str
    macs: int = 0
    bytes_read: Mapping[str, int] = field(default_factory=dict)
    bytes_written: Mapping[str, int] = field(default_factory=dict)
    tasks: int = 1
    cores: tuple[int, ...] = (0,)
    sram_hits: int = 0
    weight_bytes: int = 0
    extra: Mapping[str, int] = field(default_factory=dict)
    kind: str = ""
    reads: tuple[int, ...] = ()
    writes: tuple[int, ...] = ()


def subgraph_io(ops: Sequence[PipeMlOperation]) -> tuple[list[PipeTensor], list[PipeTensor]]:
    """Inputs (consumed, not produced, not constant) and outputs of an operation list.

    An output is a produced tensor that no operation of the list consumes, or one the
    frontend marked ``is_external_output`` because something outside uses it.
    """
    produced = {t.index: t for op in ops for t in op.outputs}
    consumed: dict[int, PipeTensor] = {}
    for op in ops:
        for t in op.inputs:
            if t is not None and not t.is_constant:
                consumed.setdefault(t.index, t)
    inputs = [t for i, t in consumed.items() if i not in produced]
    outputs = [t for i, t in produced.items() if t.is_external_output or i not in consumed]
    return inputs, outputs


class MlSubgraph(ABC):
    """A compiled subgraph. Drivers subclass it; ``serialize`` gives a self-contained blob."""

    driver: str
    inputs: tuple[PipeTensor, ...]
    outputs: tuple[PipeTensor, ...]

    @abstractmethod
    def serialize(self) -> bytes: ...


class MlContext(ABC):
    """Runs compiled subgraphs. One context owns its buffers; several may coexist."""

    @abstractmethod
    def subgraph_deserialize(self, blob: bytes) -> MlSubgraph: ...

    @abstractmethod
    def subgraph_invoke(self, subgraph: MlSubgraph, inputs: Mapping[int, np.ndarray]) -> None:
        """Copy NHWC host inputs (keyed by tensor index) in and run the subgraph."""

    @abstractmethod
    def subgraph_read_outputs(self, subgraph: MlSubgraph) -> list[np.ndarray]:
        """The outputs of the last invoke, NHWC, in ``subgraph.outputs`` order."""

    def last_counters(self) -> list[JobCounters]:
        """Per-job counters of the last invoke (empty when the device measures nothing)."""
        return []

    def destroy(self) -> None:  # noqa: B027 - optional hook
        """Release buffers and device handles."""


class MlDevice(ABC):
    """A device that can say what it supports and compile it."""

    name: str

    @abstractmethod
    def operation_supported(self, op: PipeMlOperation) -> str | None:
        """None when the operation is supported, else a one-line reason. No side effects."""

    @abstractmethod
    def subgraph_create(self, ops: Sequence[PipeMlOperation]) -> MlSubgraph: ...

    @abstractmethod
    def create_context(self) -> MlContext: ...

    def destroy(self) -> None:  # noqa: B027 - optional hook
        pass
