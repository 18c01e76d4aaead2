"""``teflon check``: every device partition against LiteRT's reference kernels.

LiteRT runs the model with ``BUILTIN_REF`` and every tensor preserved; each partition is
compiled for the device and fed the reference values of its inputs, so a difference is the
partition's own. For a partition that differs, the check recompiles it with every tensor exposed
and names the first operation whose output differs.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from ...gallium.device import MlDevice
from ...gallium.loader import open_device
from . import litert
from .images import load_image
from .partition import Partition, check_quantized, make_partition, partition, query_support
from .tflite import TfliteModel, load_model


@dataclass(frozen=True, slots=True)
class TensorDiff:
    index: int
    op_index: int  # producing operation
    op_name: str
    elements: int
    exact: int
    max_lsb: int


@dataclass(frozen=True, slots=True)
class PartitionResult:
    number: int
    op_indices: tuple[int, ...]
    outputs: tuple[TensorDiff, ...]
    first_divergent: TensorDiff | None
    compile_s: float
    invoke_s: float

    @property
    def elements(self) -> int:
        return sum(d.elements for d in self.outputs)

    @property
    def exact(self) -> int:
        return sum(d.exact for d in self.outputs)

    @property
    def max_lsb(self) -> int:
        return max((d.max_lsb for d in self.outputs), default=0)


@dataclass(frozen=True, slots=True)
class CheckReport:
    model: str
    device: str
    claimed: int
    total_ops: int
    partitions: tuple[PartitionResult, ...] = field(default=())

    @property
    def elements(self) -> int:
        return sum(p.elements for p in self.partitions)

    @property
    def exact(self) -> int:
        return sum(p.exact for p in self.partitions)

    @property
    def max_lsb(self) -> int:
        return max((p.max_lsb for p in self.partitions), default=0)

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {
            "elements": self.elements,
            "exact": self.exact,
            "max_lsb": self.max_lsb,
        }


def compare(got: np.ndarray, want: np.ndarray) -> tuple[int, int]:
    """(exact element count, largest difference in LSB)."""
    diff = np.abs(got.astype(np.int64).reshape(-1) - want.astype(np.int64).reshape(-1))
    return int((diff == 0).sum()), int(diff.max(initial=0))


def reference_values(model: TfliteModel, image: str | None, seed: int) -> dict[int, np.ndarray]:
    it = litert.interpreter(model.path, "ref", preserve=True)
    inputs = litert.random_inputs(it, seed)
    if image is not None:
        d = it.get_input_details()[0]
        inputs[d["index"]] = load_image(image, tuple(d["shape"]), d["dtype"])
    litert.set_inputs(it, inputs)
    litert.invoke(it, model.name)
    return litert.all_tensors(it)


def run_partition(
    device: MlDevice, part: Partition, ref: dict[int, np.ndarray]
) -> tuple[list[np.ndarray], float, float]:
    """Compile (through a serialized blob, as a user would), invoke once, read outputs."""
    t0 = time.perf_counter()
    blob = device.subgraph_create(part.ops).serialize()
    t1 = time.perf_counter()
    ctx = device.create_context()
    try:
        subgraph = ctx.subgraph_deserialize(blob)
        ctx.subgraph_invoke(subgraph, {i: ref[i] for i in part.inputs})
        outs = ctx.subgraph_read_outputs(subgraph)
        order = [t.index for t in subgraph.outputs]
    finally:
        ctx.destroy()
    by_index = dict(zip(order, outs, strict=True))
    return [by_index[i] for i in part.outputs], t1 - t0, time.perf_counter() - t1


def _diffs(
    model: TfliteModel, part: Partition, outs: list[np.ndarray], ref: dict[int, np.ndarray]
) -> list[TensorDiff]:
    producer = {t: op.index for op in model.ops for t in op.outputs}
    result = []
    for index, got in zip(part.outputs, outs, strict=True):
        exact, lsb = compare(got, ref[index])
        op = model.ops[producer[index]]
        result.append(TensorDiff(index, op.index, op.name, got.size, exact, lsb))
    return result


def check_model(
    model_path: str,
    device_name: str | None = None,
    *,
    image: str | None = None,
    seed: int = 0,
    locate: bool = True,
) -> CheckReport:
    model = load_model(model_path)
    check_quantized(model)
    device = open_device(device_name)
    support = query_support(model, device)
    parts = partition(model, support)
    ref = reference_values(model, image, seed)
    results = []
    for number, part in enumerate(parts):
        outs, compile_s, invoke_s = run_partition(device, part, ref)
        diffs = _diffs(model, part, outs, ref)
        first = None
        if locate and any(d.exact != d.elements for d in diffs):
            # Expose every tensor to find the first operation that differs.
            every = [t for n in part.op_indices for t in model.ops[n].outputs]
            full = make_partition(model, support, part.op_indices, every)
            full_outs, _, _ = run_partition(device, full, ref)
            order = {t: i for i, t in enumerate(every)}
            divergent = [d for d in _diffs(model, full, full_outs, ref) if d.exact != d.elements]
            first = min(divergent, key=lambda d: order[d.index], default=None)
        results.append(
            PartitionResult(number, part.op_indices, tuple(diffs), first, compile_s, invoke_s)
        )
    claimed = sum(1 for s in support if s.supported)
    return CheckReport(model.name, device.name, claimed, len(model.ops), tuple(results))


def format_report(report: CheckReport) -> str:
    lines = [
        f"teflon check: {report.model} on {report.device}: "
        f"{report.claimed} of {report.total_ops} operations in "
        f"{len(report.partitions)} partitions",
        f"{'part':>4} {'ops':<16} {'elements':>9} {'exact':>9} {'max LSB':>7} "
        f"{'compile ms':>10} {'invoke ms':>9}",
    ]
    for p in report.partitions:
        ops = p.op_indices
        span = f"{ops[0]}" if len(ops) == 1 else f"{ops[0]}..{ops[-1]} ({len(ops)})"
        lines.append(
            f"{p.number:>4} {span:<16} {p.elements:>9} {p.exact:>9} {p.max_lsb:>7} "
            f"{p.compile_s * 1e3:>10.1f} {p.invoke_s * 1e3:>9.1f}"
        )
        if p.first_divergent is not None:
            d = p.first_divergent
            lines.append(
                f"     first divergent: tensor {d.index} from op {d.op_index} "
                f"({d.op_name}): {d.elements - d.exact} of {d.elements} differ, "
                f"max {d.max_lsb} LSB"
            )
    share = 100.0 * report.exact / report.elements if report.elements else 100.0
    lines.append(
        f"total: {report.exact} of {report.elements} elements exact ({share:.2f}%), "
        f"max difference {report.max_lsb} LSB"
    )
    return "\n".join(lines)
