"""Run models through libteflon.so inside LiteRT, as a user would (``teflon run``, ``teflon demo``).

Each model of a chain gets its own delegate (so its stats are its own) and an interpreter whose
CPU kernels are ``ref`` (BUILTIN_REF, the default, so unclaimed nodes are exact too), ``builtin``
or ``xnnpack``. The first model's input is an image or a seeded random tensor; each later model
takes the previous one's first output (the classic MobileNet v1 is an embedding extractor
chained into a head). Results carry the delegate's per-partition host times and the cost
model's hardware time estimate (:func:`delegate.estimated_hardware_ms`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ai_edge_litert.interpreter import Interpreter, load_delegate

from . import litert
from .delegate import DelegateStats, delegate_stats, estimated_hardware_ms, library_path
from .images import load_image
from .tflite import ModelError


@dataclass(frozen=True, slots=True)
class Output:
    name: str
    value: np.ndarray
    scale: float
    zero_point: int

    def real(self) -> np.ndarray:
        """Dequantized values (float outputs as they are)."""
        if self.value.dtype.kind == "f" or not self.scale:
            return self.value.astype(np.float64)
        return (self.value.astype(np.float64) - self.zero_point) * self.scale


@dataclass(frozen=True, slots=True)
class StageResult:
    model: str
    outputs: tuple[Output, ...]
    times_ms: tuple[float, ...]  # every invoke, in order
    nodes: int
    stats: DelegateStats

    @property
    def invoke_ms(self) -> float:
        """Mean invoke time (the first one includes lazy device set-up)."""
        return float(np.mean(self.times_ms))


def open_delegate(device: str | None, debug: bool = False, cache: str | None = None):
    opts = {}
    if device:
        opts["device"] = device
    if debug:
        opts["debug"] = "verbose"
    if cache:
        opts["cache"] = cache
    try:
        return load_delegate(library_path(), opts)
    except ValueError as e:
        lines = [line for line in str(e).splitlines() if line.startswith("teflon")]
        raise ModelError(lines[-1] if lines else " ".join(str(e).split())) from None


def _interpreter(model: str | bytes, delegate, resolver: str) -> Interpreter:
    source = {"model_content": model} if isinstance(model, bytes) else {"model_path": model}
    name = "<memory>" if isinstance(model, bytes) else os.path.basename(model)
    try:
        it = Interpreter(
            **source,
            experimental_delegates=[delegate],
            experimental_op_resolver_type=litert.RESOLVERS[resolver],
        )
        it.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        text = " ".join(str(e).split())
        raise ModelError(f"{name}: LiteRT cannot apply the delegate: {text}") from None
    return it


def _feed(it: Interpreter, name: str, value: np.ndarray | None, image: str | None, seed: int):
    details = it.get_input_details()
    if value is None:
        inputs = litert.random_inputs(it, seed)
        if image is not None:
            d = details[0]
            inputs[d["index"]] = load_image(image, tuple(d["shape"]), d["dtype"])
        return inputs
    d = details[0]
    if len(details) != 1 or value.dtype != d["dtype"] or value.size != np.prod(d["shape"]):
        raise ModelError(
            f"{name}: cannot chain a {value.dtype} {list(value.shape)} output into input "
            f"{np.dtype(d['dtype'])} {list(d['shape'])}"
        )
    return {d["index"]: value.reshape(d["shape"])}


def run_chain(
    models: Sequence[str | bytes],
    *,
    device: str | None = None,
    image: str | None = None,
    seed: int = 0,
    invokes: int = 1,
    resolver: str = "ref",
    debug: bool = False,
    first_input: np.ndarray | None = None,
) -> list[StageResult]:
    """Run ``models`` one after the other through the delegate."""
    results: list[StageResult] = []
    value = first_input
    for model in models:
        name = "<memory>" if isinstance(model, bytes) else os.path.basename(model)
        delegate = open_delegate(device, debug)
        it = _interpreter(model, delegate, resolver)
        litert.set_inputs(it, _feed(it, name, value, image if not results else None, seed))
        times = []
        for _ in range(max(invokes, 1)):
            start = time.perf_counter()
            litert.invoke(it, name)
            times.append((time.perf_counter() - start) * 1e3)
        outputs = tuple(
            Output(d["name"], it.get_tensor(d["index"]).copy(), *d["quantization"])
            for d in it.get_output_details()
        )
        nodes = delegate_stats(delegate).plan_size
        results.append(
            StageResult(
                name,
                outputs,
                tuple(times),
                nodes,
                delegate_stats(delegate),
            )
        )
        value = outputs[0].value
        del it, delegate
    return results


def read_labels(path: str | None) -> list[str]:
    if path is None:
        return []
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except OSError as e:
        raise ModelError(f"cannot read labels {path}: {e.strerror}") from None


def label(labels: Sequence[str], index: int) -> str:
    return labels[index] if 0 <= index < len(labels) else f"class {index}"


def top_classes(output: Output, labels: Sequence[str], k: int) -> list[tuple[float, str]]:
    scores = output.real().reshape(-1)
    order = np.argsort(-scores, kind="stable")[:k]
    return [(float(scores[i]), label(labels, int(i))) for i in order]


def is_detection(outputs: Sequence[Output]) -> bool:
    """The four float outputs of TFLite_Detection_PostProcess (boxes, classes, scores, count)."""
    return len(outputs) == 4 and all(o.value.dtype.kind == "f" for o in outputs)


def detections(
    outputs: Sequence[Output], labels: Sequence[str], threshold: float
) -> list[tuple[float, str, tuple[float, ...]]]:
    boxes, classes, scores, count = (o.value.reshape(-1) for o in outputs)
    found = []
    for i in range(int(count[0])):
        if scores[i] >= threshold:
            box = tuple(float(v) for v in boxes[4 * i : 4 * i + 4])
            found.append((float(scores[i]), label(labels, int(classes[i])), box))
    return found


def format_stage(result: StageResult) -> str:
    """The per-partition table for the last invoke: host time per partition (copy in, run, copy
    out), the rest of the invoke (the CPU nodes), and the hardware estimate."""
    stats = result.stats
    claimed = len(stats.claimed)
    lines = [
        f"{result.model}: {claimed} of {result.nodes} nodes on {stats.device} in "
        f"{len(stats.partitions)} partitions",
        f"{'partition':>9} {'nodes':<16} {'host ms':>9} {'hardware ms':>12}",
    ]
    delegated_ms = 0.0
    for p in stats.partitions:
        nodes = p.node_ids
        span = f"{nodes[0]}" if len(nodes) == 1 else f"{nodes[0]}..{nodes[-1]} ({len(nodes)})"
        estimate = estimated_hardware_ms(p, stats.device)
        hw = "n/a" if estimate is None else f"{estimate:.3f}"
        lines.append(f"{p.number:>9} {span:<16} {p.last_invoke_ms:>9.3f} {hw:>12}")
        delegated_ms += p.last_invoke_ms
    cpu_ms = max(result.times_ms[-1] - delegated_ms, 0.0)
    cpu_nodes = f"{result.nodes - claimed} nodes"
    lines.append(f"{'cpu':>9} {cpu_nodes:<16} {cpu_ms:>9.3f}")
    return "\n".join(lines)


def estimate_note(results: Sequence[StageResult]) -> str | None:
    """Why the hardware column is empty, once per report."""
    parts = [(p, r.stats.device) for r in results for p in r.stats.partitions]
    if any(estimated_hardware_ms(p, device) is None for p, device in parts):
        return (
            "hardware ms: n/a where the device has no SoC row for the cost model or reports no "
            "counters (teflon profile shows the estimate per layer)"
        )
    return None
