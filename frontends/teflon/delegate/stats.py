"""What a delegate can tell about itself: claimed nodes and per-partition timings.

Snapshots (frozen) taken by :func:`mesa_npu.frontends.teflon.delegate.delegate_stats`, used by
``teflon run``, the examples and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from ....gallium.device import JobCounters
from ....util.performance import device_soc, estimate_invoke


@dataclass(frozen=True, slots=True)
class PartitionStats:
    number: int
    node_ids: tuple[int, ...]  # the TFLite nodes the partition replaced
    inputs: tuple[int, ...]  # tensor indices, constants excluded
    outputs: tuple[int, ...]
    compile_ms: float  # subgraph_create + serialize + deserialize (or cache load)
    invokes: int
    last_invoke_ms: float  # host time of the last invoke: copy in, run, copy out
    total_invoke_ms: float
    counters: tuple[JobCounters, ...]  # the device's per-job counters of the last invoke


@dataclass(frozen=True, slots=True)
class DelegateStats:
    device: str
    claimed: tuple[int, ...]  # node indices claimed by the last Prepare
    plan_size: int  # nodes in the execution plan the last Prepare saw
    partitions: tuple[PartitionStats, ...]
    abi_problem: str | None  # why the last Prepare refused the runtime, if it did


def estimated_hardware_ms(partition: PartitionStats, device: str | None = None) -> float | None:
    """The hardware time the cost model (``util/performance.py``) estimates for the partition's
    last invoke on ``device`` (a delegate's ``DelegateStats.device``): the device's per-job
    counters through the SoC row of the chip it runs or simulates. None when there is no
    estimate: no device named, a device without a SoC row (``reference``), or no counters (a
    kernel device measures nothing)."""
    row = device_soc(device) if device else None
    if row is None or not partition.counters:
        return None
    return estimate_invoke(partition.counters, row).ms
