"""``teflon profile`` output: the per-layer table, the comparison table and the PNG chart.

The chart needs matplotlib, an optional dependency (``pip install matplotlib``); without it
:func:`write_chart` raises :class:`ChartUnavailable` with that one line.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...util.performance import Bound
from .profile import SUBMIT, Profile

KIB = 1024
MIB = 1024 * 1024
JOB_NAMES = 22  # characters of the job-name column
BOUND_COLOURS = {
    Bound.COMPUTE: "#4878d0",
    Bound.DRAM: "#d65f5f",
    Bound.SRAM: "#ee854a",
    Bound.OVERHEAD: "#8c8c8c",
}
CPU_COLOUR = "#6acc64"


class ChartUnavailable(RuntimeError):
    """The PNG chart needs matplotlib."""


def _jobs(names: Sequence[str]) -> str:
    text = ",".join(names)
    return text if len(text) <= JOB_NAMES else text[: JOB_NAMES - 3] + "..."


def format_profile(p: Profile) -> str:
    """The per-layer table (every NPU row, then the CPU operations) and the totals."""
    lines = [
        f"teflon profile: {', '.join(p.models)} on {p.device} "
        f"({p.soc}, {p.clock_hz / 1e6:.0f} MHz, {p.peak_macs_per_cycle} MAC/cycle)",
        f"{'part':>4} {'op':>4} {'operation':<18} {'jobs':<{JOB_NAMES}} {'MACs':>11} "
        f"{'read KiB':>9} {'write KiB':>9} {'SRAM KiB':>9} {'cycles':>9} {'wall':>9} "
        f"{'us':>8} {'util':>5} bound",
    ]
    for r in p.rows:
        op = "" if r.op_name == SUBMIT else str(r.op_index)
        util = f"{r.utilisation:.2f}" if r.macs else ""
        lines.append(
            f"{r.partition:>4} {op:>4} {r.op_name[:18]:<18} {_jobs(r.jobs):<{JOB_NAMES}} "
            f"{r.macs:>11} {r.dram_read / KIB:>9.1f} {r.dram_written / KIB:>9.1f} "
            f"{r.sram_bytes / KIB:>9.1f} {r.cycles:>9} {r.wall:>9} {p.ms(r.wall) * 1e3:>8.1f} "
            f"{util:>5} {r.bound.value}"
        )
    lines.append(
        f"{'':>4} {'':>4} {'total NPU (estimate)':<{18 + JOB_NAMES + 1}} {p.macs:>11} "
        f"{sum(r.dram_read for r in p.rows) / KIB:>9.1f} "
        f"{sum(r.dram_written for r in p.rows) / KIB:>9.1f} {p.sram_bytes / KIB:>9.1f} "
        f"{p.busy_cycles:>9} {p.cycles:>9} {p.npu_ms * 1e3:>8.1f} {p.utilisation:>5.2f}"
    )
    if p.cpu:
        lines.append(f"CPU operations (host time, LiteRT '{p.cpu_kernels}' kernels, this machine):")
        for c in p.cpu:
            t = f"{c.host_ms:.3f} ms" if c.host_ms is not None else f"not timed {c.problem}"
            lines.append(f"  {c.model} op {c.op_index} {c.op_name}: {t} ({c.reason})")
        lines.append(f"  total CPU host time: {p.cpu_ms:.3f} ms")
    else:
        lines.append("CPU operations: none")
    lines.append(f"NPU<->CPU transitions: {p.transitions}")
    lines.append(
        f"estimated NPU time: {p.npu_ms:.3f} ms ({p.cycles} cycles; "
        f"{p.busy_cycles - p.cycles} saved by overlap); "
        f"DRAM {p.dram_bytes / MIB:.2f} MiB, SRAM {p.sram_bytes / MIB:.2f} MiB"
    )
    for u in p.unknowns:
        lines.append(f"estimate made without: {u}")
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def format_compare(variants: Sequence[tuple[str, Profile]]) -> str:
    """Estimated time and memory traffic of each variant next to the baseline."""
    base = variants[0][1]
    lines = [
        f"teflon profile --compare: {', '.join(base.models)} on {base.device}",
        f"{'variant':<24} {'NPU ms':>9} {'x base':>7} {'DRAM MiB':>9} {'x base':>7} "
        f"{'SRAM MiB':>9} {'CPU ms':>8}  time by bound (ms)",
    ]
    for name, p in variants:
        by_bound: dict[Bound, int] = {}
        for r in p.rows:
            by_bound[r.bound] = by_bound.get(r.bound, 0) + r.wall
        bounds = " ".join(f"{b.value}={p.ms(c):.2f}" for b, c in sorted(
            by_bound.items(), key=lambda kv: -kv[1]))  # fmt: skip
        lines.append(
            f"{name:<24} {p.npu_ms:>9.3f} {_ratio(p.npu_ms, base.npu_ms):>7} "
            f"{p.dram_bytes / MIB:>9.2f} {_ratio(p.dram_bytes, base.dram_bytes):>7} "
            f"{p.sram_bytes / MIB:>9.2f} {p.cpu_ms:>8.3f}  {bounds}"
        )
    return "\n".join(lines)


def compare_json(variants: Sequence[tuple[str, Profile]]) -> dict:
    return {"variants": [{"name": name} | p.to_json() for name, p in variants]}


def require_chart() -> None:
    """Fail early (before a long profile) when the chart cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ChartUnavailable("the PNG chart needs matplotlib (pip install matplotlib)") from None


def write_chart(p: Profile, path: str) -> None:
    """A horizontal bar per layer (estimated NPU time, coloured by bound) and per CPU
    operation (measured host time), in execution order."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
    except ImportError:
        raise ChartUnavailable("the PNG chart needs matplotlib (pip install matplotlib)") from None
    labels, values, colours = [], [], []
    for r in p.rows:
        if r.op_name == SUBMIT:
            labels.append(f"p{r.partition} submit")
        else:
            labels.append(f"p{r.partition} op{r.op_index} {r.op_name}")
        values.append(p.ms(r.wall))
        colours.append(BOUND_COLOURS[r.bound])
    for c in p.cpu:
        labels.append(f"cpu op{c.op_index} {c.op_name}")
        values.append(c.host_ms or 0.0)
        colours.append(CPU_COLOUR)
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.22 * len(labels) + 1.5)))
    ax.barh(range(len(labels)), values, color=colours)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ms (NPU: estimate; CPU: host time on this machine)")
    ax.set_title(
        f"{p.device}: NPU {p.npu_ms:.2f} ms (estimate), CPU {p.cpu_ms:.2f} ms (host)\n"
        + "\n".join(p.models),
        fontsize=9,
    )
    legend = [Patch(color=c, label=f"NPU, {b.value}-bound") for b, c in BOUND_COLOURS.items()]
    legend.append(Patch(color=CPU_COLOUR, label="CPU (measured)"))
    ax.legend(handles=legend, fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
