"""Cost-model validation for ``bench.py``: estimates next to the published Mesa figures.

The published numbers are measurements on boards (Amlogic A311D on a Libre Computer Alta, NXP
i.MX 8M Plus, Rockchip RK3588) of the whole ``interpreter.invoke()`` of the classic quantized
MobileNet v1 (1.0, 224); the estimate is the cost model (``util/performance.py``) on what the
simulated device counted for the same network, here the shared chained pair (embedding extractor
then head). Nothing here is fitted: the estimate comes from the SoC table and the counters, and
the ratio is reported as it falls. The CPU operations (AVERAGE_POOL_2D, SOFTMAX) are timed on
this host and shown apart; they are tens of microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mesa_npu.frontends.teflon.profile import Profile, profile
from mesa_npu.gallium.loader import list_devices

CHAIN = (
    "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
    "mobilenet_quant_v1_224_head_layers.tflite",
)
MOBILEDET = "ssdlite_mobiledet (not in shared/models)"
BLOG_11 = "blog.tomeuvizoso.net/2023/11 (update 11)"
MR_27513 = "gitlab.freedesktop.org/mesa/mesa/-/merge_requests/27513"
BLOG_17 = "blog.tomeuvizoso.net/2024/02 (update 17)"
DOCS = "docs.mesa3d.org/teflon.html (reference brief teflon-gallium.md §3)"
ROCKET_BLOG = "blog.tomeuvizoso.net, March 2024 (reference brief rocket-nvdla.md §9)"


@dataclass(frozen=True, slots=True)
class Published:
    """One published measurement and the device (with options) nearest to its driver state."""

    soc: str
    model: str
    what: str
    ms: float
    source: str
    device: str | None  # None: nothing to estimate (the model is not available)
    note: str = ""


PUBLISHED = (
    Published("a311d", "mobilenet_v1", "Mesa, compression + SRAM tile caching", 6.6, BLOG_17,
              "etnaviv:a311d"),
    Published("a311d", "mobilenet_v1", "Mesa docs", 6.6, DOCS, "etnaviv:a311d"),
    Published("a311d", "mobilenet_v1", "proprietary driver", 5.5, BLOG_17, "etnaviv:a311d",
              "the vendor stack, not Mesa"),
    Published("a311d", "mobilenet_v1", "Mesa, compression, kernels cached", 9.991, MR_27513,
              "etnaviv:a311d?sram=off", "nearest switch drops the kernel cache too"),
    Published("a311d", "mobilenet_v1", "Mesa, no compression, kernels cached", 15.65, MR_27513,
              "etnaviv:a311d?compression=off&sram=off",
              "nearest switch drops the kernel cache too"),
    Published("a311d", "mobilenet_v1", "Mesa, no compression, kernels cached", 15.65, BLOG_11,
              "etnaviv:a311d?compression=off", "this switch keeps the input-tile cache"),
    Published("imx8mp", "mobilenet_v1", "Mesa docs", 7.9, DOCS, "etnaviv:imx8mp"),
    Published("rk3588", "mobilenet_v1", "Mesa, one core (10-11 ms)", 10.5, ROCKET_BLOG, "rocket",
              "on par with the vendor driver"),
    Published("rk3588", "mobilenet_v1", "Mesa docs", 18.0, DOCS, "rocket"),
    Published("a311d", MOBILEDET, "Mesa, no compression", 56.149, MR_27513, None),
    Published("a311d", MOBILEDET, "Mesa, compression", 32.692, MR_27513, None),
    Published("a311d", MOBILEDET, "Mesa, + SRAM tile caching", 24.8, BLOG_17, None),
    Published("a311d", MOBILEDET, "proprietary driver", 19.5, BLOG_17, None),
    Published("imx8mp", MOBILEDET, "Mesa docs", 24.4, DOCS, None),
    Published("rk3588", MOBILEDET, "Mesa docs", 48.0, DOCS, None),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Step:
    """An ablation step: a switch flipped from ``before`` to ``after`` options."""

    name: str
    before: str
    after: str
    published_before: float | None = None
    published_after: float | None = None
    source: str = ""


A311D_STEPS = (
    Step("weight compression off -> on (no SRAM caching)", "compression=off&sram=off", "sram=off",
         15.65, 9.991, MR_27513),
    Step("weight compression off -> on (SRAM caching)", "compression=off", "", 15.65, 9.991,
         MR_27513),
    Step("SRAM caching off -> on", "sram=off", "", 9.9, 6.6, BLOG_17 + " (input tiles only)"),
    Step("one core -> all cores", "cores=one", ""),
    Step("codec search off -> on", "search=off", ""),
)  # fmt: skip


def _device(base: str, options: str) -> str:
    return f"{base}?{options}" if options else base


def _available(device: str) -> bool:
    names = {d.name for d in list_devices()} | {d.driver for d in list_devices()}
    return device.partition("?")[0] in names


def _run(models_dir: Path, device: str, cache: dict[str, Profile]) -> Profile:
    if device not in cache:
        cache[device] = profile([str(models_dir / m) for m in CHAIN], device)
    return cache[device]


def validation_rows(models_dir: Path) -> list[dict]:
    cache: dict[str, Profile] = {}
    rows = []
    for pub in PUBLISHED:
        row = {
            "soc": pub.soc,
            "model": pub.model,
            "published": pub.what,
            "published_ms": pub.ms,
            "source": pub.source,
            "device": pub.device or "-",
            "note": pub.note,
        }
        if pub.device is None:
            row["note"] = "no estimate: the model is not in shared/models"
        elif not all((models_dir / m).exists() for m in CHAIN):
            row["note"] = f"no estimate: {', '.join(CHAIN)} not found in {models_dir}"
        elif not _available(pub.device):
            row["note"] = f"no estimate: device {pub.device} not available"
        else:
            try:
                p = _run(models_dir, pub.device, cache)
            except Exception as e:  # a driver being brought up: say so, keep the table
                row["note"] = f"no estimate: {type(e).__name__}: {' '.join(str(e).split())}"[:160]
                rows.append(row)
                continue
            row |= {
                "estimate_ms": round(p.npu_ms, 3),
                "cpu_host_ms": round(p.cpu_ms, 3),
                "ratio": round(p.npu_ms / pub.ms, 3),
                "bound": _dominant(p),
            }
        rows.append(row)
    return rows


def _dominant(p: Profile) -> str:
    by: dict[str, int] = {}
    for r in p.rows:
        by[r.bound.value] = by.get(r.bound.value, 0) + r.wall
    return max(by, key=by.get) if by else "-"


def ablation_rows(models_dir: Path, base: str = "etnaviv:a311d") -> list[dict]:
    if not all((models_dir / m).exists() for m in CHAIN) or not _available(base):
        return []
    cache: dict[str, Profile] = {}
    rows = []
    for step in A311D_STEPS:
        before = _run(models_dir, _device(base, step.before), cache)
        after = _run(models_dir, _device(base, step.after), cache)
        row = {
            "step": step.name,
            "before": step.before or "(default)",
            "after": step.after or "(default)",
            "est_before_ms": round(before.npu_ms, 3),
            "est_after_ms": round(after.npu_ms, 3),
            "est_ratio": round(after.npu_ms / before.npu_ms, 3),
            "dram_before_mib": round(before.dram_bytes / 2**20, 2),
            "dram_after_mib": round(after.dram_bytes / 2**20, 2),
        }
        if step.published_before is not None:
            row |= {
                "published_before_ms": step.published_before,
                "published_after_ms": step.published_after,
                "published_ratio": round(step.published_after / step.published_before, 3),
                "source": step.source,
            }
        rows.append(row)
    return rows
