"""The switches of the simulated rocket device: one frozen record for the NPU model, one for the
kernel side. Each field is a hardware or kernel fact the sources leave open (inferred or
unverified in ``shared/reference/rocket-nvdla.md``) or a deliberate deviation from upstream;
``docs/rocket-npu-model.md`` gives each one's meaning, default and source.
"""

from __future__ import annotations

from dataclasses import dataclass

ROUND_MODES = ("half_even", "half_up", "half_away", "floor")


@dataclass(frozen=True, slots=True)
class NpuModelOptions:
    """How the functional model reads registers whose meaning is unverified."""

    # OUT_CVT and EW_CVT shifts: "register" follows CVT_ROUND / EW_CVT_ROUND (TRM-doc: 0 = half
    # to even, 1 = half up); any of ROUND_MODES forces one mode.
    round_mode: str = "register"
    # CORE CLIP_TRUNCATE, the CNA input convertor and the BS/BN multiplier shifts (NVDLA
    # precision.rst: round half away from zero).
    truncate_round: str = "half_away"
    # Where BS_OW_OP * sum(x) enters: "accumulator" (before CLIP_TRUNCATE), "after_truncate",
    # or "off".
    ow_term: str = "accumulator"
    # Feature lanes beyond DATAIN_CHANNEL_REAL: "read" from memory, or "masked" to 0.
    padded_channels: str = "read"
    # CNA DMA_CON1/2 units: "mesa" (line 4 bytes, surface 16 * (SURF + LINE) bytes) or "bytes".
    cna_strides: str = "mesa"
    # Element-wise operand fetch: "comb" (MRDMA + ERDMA interleaved when COMB_USE=5) or
    # "plain" (ERDMA at EW_BASE_ADDR + s * EW_SURF_STRIDE).
    ew_fetch: str = "comb"
    # An op_en without the 0x0041 marker earlier in the task hangs the task.
    require_marker: bool = True

    def __post_init__(self) -> None:
        _check("round_mode", self.round_mode, ("register", *ROUND_MODES))
        _check("truncate_round", self.truncate_round, ROUND_MODES)
        _check("ow_term", self.ow_term, ("accumulator", "after_truncate", "off"))
        _check("padded_channels", self.padded_channels, ("read", "masked"))
        _check("cna_strides", self.cna_strides, ("mesa", "bytes"))
        _check("ew_fetch", self.ew_fetch, ("comb", "plain"))


@dataclass(frozen=True, slots=True)
class DeviceOptions:
    """Kernel-side behaviour of the simulated accel/rocket device."""

    soc: str = "rk3588"
    # Linux rocket_job.c JOB_TIMEOUT_MS, in simulated time.
    job_timeout_ns: int = 500_000_000
    # "entity": one DRM scheduler entity per file (upstream drm_sched: a file's jobs run one
    # after another on one core); "spread": each job on the core that frees up first.
    scheduling: str = "entity"
    # "strict": validate every job of a SUBMIT before queueing any and return the first error;
    # "upstream": drop invalid jobs silently and return 0, as rocket_ioctl_submit() does.
    submit_errors: str = "strict"
    # "report": PREP_BO returns EIO / ETIMEDOUT for a BO whose writer failed; "upstream":
    # dma_resv_wait_timeout() ignores fence errors, so PREP_BO returns 0.
    job_errors: str = "report"
    # The real IOMMU aperture starts at 0 with BOs back to back; an unmapped first MiB and a
    # guard page after every BO turn a zero address register or an overrun into a fault.
    iova_base: int = 0x100000
    iova_guard_pages: int = 1

    def __post_init__(self) -> None:
        _check("scheduling", self.scheduling, ("entity", "spread"))
        _check("submit_errors", self.submit_errors, ("strict", "upstream"))
        _check("job_errors", self.job_errors, ("report", "upstream"))
        if self.job_timeout_ns <= 0:
            raise ValueError(f"job_timeout_ns must be positive, got {self.job_timeout_ns}")


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(allowed)}")
