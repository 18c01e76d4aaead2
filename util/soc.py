"""The SoC table: one row per chip, the single source of hardware facts for drivers, simulated
devices and the cost model (Mesa keeps the NPU part in ``src/etnaviv/hwdb``).

Every value is plain data; each row's ``sources`` maps a field name to where the value comes
from, or to ``"assumption: ..."`` with the reasoning when no public source gives it. A test
checks that every field of every row has an entry.

The cost model (``util/performance.py``) reads the clock, the MAC rate, the DRAM and SRAM
bandwidths and the fixed costs from here; it has no constants of its own. Fixed costs are per
*submission* (one ioctl, fence and interrupt per subgraph invoke), per *job* as the device
counters report them (rocket: a kernel-scheduled DRM job; etnaviv: one NN or TP instruction
inside the single submission) and per *task* inside a job (rocket: a regcmd task).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB

ETNA_BRIEF = "shared/reference/etnaviv-ml.md"
ROCKET_BRIEF = "shared/reference/rocket-nvdla.md"


@dataclass(frozen=True, slots=True)
class EtnavivNpu:
    """VeriSilicon VIPNano NN/TP core configuration (the hwdb fields Mesa reads)."""

    nn_core_version: int  # 7: A311D code paths; 8: NN_XYDP0 parts (Huffman weights, HW dw)
    nn_cores: int
    mad_per_core: int  # MAD lanes per NN core, one output pixel of a tile row each (Mesa's
    # MAX_TILE_WIDTH of 64 is this count)
    tp_cores: int
    sram_bytes: int  # on-chip VIP SRAM
    axi_sram_bytes: int
    zrl_bits: int  # NN_ZRL_BITS: widest zero-run field of the v7 weight stream
    input_buffer_depth: int  # NNInputBufferDepth (IBD)
    accum_buffer_depth: int  # NNAccumBufferDepth (ABD)
    customer_id: int
    gpu_model: int  # ETNAVIV_PARAM_GPU_MODEL of the NPU core: how a kernel node is matched
    gpu_revision: int  # ETNAVIV_PARAM_GPU_REVISION
    macs_per_mad: int  # int8 MACs one MAD unit does per cycle (its dot-product width)
    tp_bytes_per_cycle: int  # elements one TP core moves per cycle (int8: bytes)
    zero_skipping: bool  # the NN core skips MACs whose weight is zero (needs a counter to use)

    @property
    def compute_cores(self) -> int:
        return self.nn_cores

    @property
    def macs_per_cycle_per_core(self) -> int:
        return self.mad_per_core * self.macs_per_mad


@dataclass(frozen=True, slots=True)
class RocketNpu:
    """RK3588 NPU configuration (NVDLA-derived)."""

    cores: int
    macs_per_core: int  # int8 MACs per cycle per core
    cbuf_banks: int
    cbuf_bank_bytes: int
    feature_atom_bytes: int  # C2 of the NC1HWC2 feature layout
    weight_atom: int  # kernels per weight group

    @property
    def compute_cores(self) -> int:
        return self.cores

    @property
    def macs_per_cycle_per_core(self) -> int:
        return self.macs_per_core


@dataclass(frozen=True, slots=True)
class Soc:
    name: str  # table key, e.g. "a311d"
    marketing_name: str
    driver: str  # "etnaviv" or "rocket"
    npu: EtnavivNpu | RocketNpu
    npu_clock_hz: int
    dram_peak_bytes_per_s: int  # bus width x transfer rate of the SoC's DRAM interface
    dram_efficiency: float  # fraction of the peak a streaming NPU master sustains
    dram_latency_ns: int  # load-to-use latency of one NPU DRAM read
    sram_bytes_per_cycle: int  # on-chip SRAM bandwidth to the NN cores (etnaviv caches)
    submit_overhead_us: float  # per submission: ioctl, kernel job, interrupt, fence wait
    job_overhead_us: float  # per job as the counters report it (module docstring)
    task_overhead_us: float  # per task inside a job (rocket regcmd task)
    sources: Mapping[str, str]

    @property
    def dram_bytes_per_s(self) -> int:
        """Sustained DRAM bandwidth the NPU sees: the peak times the streaming efficiency."""
        return int(self.dram_peak_bytes_per_s * self.dram_efficiency)


# Sources shared by several rows (each is still listed per field in the row's ``sources``).
G12_NPU_CLOCK = (
    "Linux arch/arm64/boot/dts/amlogic/meson-g12-common.dtsi: the npu node assigns 800 MHz to "
    "CLKID_NNA_CORE_CLK and CLKID_NNA_AXI_CLK ('set NPU clocks', Tomeu Vizoso, Nov 2023; the "
    "reviewers note it covers every G12 and SM1 part)"
)
VIP_DOT_PRODUCT = (
    "3 int8 MACs per MAD per cycle (the NN core's dot-product width): NXP's 2.3 TOPS for the "
    "i.MX 8M Plus's 6 cores x 64 MADs at 1 GHz is 3.0 per MAD; a VIP9000 with 8 x 64 MADs "
    "measured 1343 MAC/cycle on EDSR (github northwindlight/a733-npu README), more than 2 per "
    "MAD"
)
TP_RATE = "assumption: one element per cycle per TP core (the TP walks a tensor element by element)"
ZERO_SKIP = (
    "assumption: VeriSilicon lists 'zero skipping' for its NN engine (VIP8000 webinar slides "
    "quoted on hub.libre.computer t/4093); unused until the simulator counts non-zero MACs"
)
DRAM_EFFICIENCY = (
    "assumption: a DMA master streaming reads and writes sustains about 60% of LPDDR4 peak "
    "(refresh, bank and read/write turnarounds, other masters); one value for every row, not "
    "fitted to any model"
)
LPDDR_LATENCY = "assumption: LPDDR4 load-to-use latency seen by an SoC master, 150-200 ns"
SRAM_RATE = (
    "assumption: one 128-byte SRAM line per NPU cycle to the NN cores; no public figure (the "
    "vendor arch model treats SRAM reads as free, so this only bounds extreme reuse)"
)
ETNA_SUBMIT = (
    "assumption: one GEM_SUBMIT ioctl, the kernel job, its interrupt and the fence wait on a "
    "Cortex-A class CPU; DRM round trips cost tens of microseconds"
)
ETNA_JOB = (
    "assumption: per NN/TP instruction the unit fetches its 128/136-byte configuration (one "
    "DRAM round trip, ~0.2 us), fills the pipeline before the first tile and drains after the "
    "last: about 1 us; no kernel involvement (all instructions share one submission)"
)
ETNA_TASK = "assumption: etnaviv jobs have one task; the instruction cost is in job_overhead_us"


SOCS: dict[str, Soc] = {
    "a311d": Soc(
        name="a311d",
        marketing_name="Amlogic A311D (VIPNano-QI.7120)",
        driver="etnaviv",
        npu=EtnavivNpu(
            nn_core_version=7,
            nn_cores=8,
            mad_per_core=64,
            tp_cores=4,
            sram_bytes=512 * KIB,
            axi_sram_bytes=1 * MIB,
            zrl_bits=5,
            input_buffer_depth=12,
            accum_buffer_depth=64,
            customer_id=0x88,
            gpu_model=0x8000,
            gpu_revision=0x7120,
            macs_per_mad=3,
            tp_bytes_per_cycle=1,
            zero_skipping=True,
        ),
        npu_clock_hz=800_000_000,
        dram_peak_bytes_per_s=10_560_000_000,
        dram_efficiency=0.6,
        dram_latency_ns=200,
        sram_bytes_per_cycle=128,
        submit_overhead_us=50.0,
        job_overhead_us=1.0,
        task_overhead_us=0.0,
        sources={
            "nn_core_version": f"{ETNA_BRIEF} §0 (VIP_V7 feature bit)",
            "nn_cores": f"{ETNA_BRIEF} §7 (hwdb NNCoreCount)",
            "mad_per_core": f"{ETNA_BRIEF} §7 (hwdb NNMadPerCore)",
            "tp_cores": f"{ETNA_BRIEF} §7 (hwdb TPEngine_CoreCount)",
            "sram_bytes": f"{ETNA_BRIEF} §7 (hwdb VIP_SRAM_SIZE)",
            "axi_sram_bytes": f"{ETNA_BRIEF} §7 (hwdb AXI_SRAM_SIZE)",
            "zrl_bits": f"{ETNA_BRIEF} §7 (unverified third-party hwdb decode)",
            "input_buffer_depth": f"{ETNA_BRIEF} §5 (unverified third-party hwdb decode)",
            "accum_buffer_depth": f"{ETNA_BRIEF} §5 (unverified third-party hwdb decode)",
            "customer_id": f"{ETNA_BRIEF} §7 (unverified)",
            "gpu_model": f"{ETNA_BRIEF} §7 (GC8000; unverified)",
            "gpu_revision": f"{ETNA_BRIEF} §7 (rev 0x7120; unverified)",
            "macs_per_mad": VIP_DOT_PRODUCT + "; 8 x 64 x 3 x 2 x 0.8 GHz = 2.5 TOPS, half the "
            "vendor's '5 TOPS' and twice the 768 MAC/cycle a Khadas forum user quotes from the "
            "A311D datasheet (forum.khadas.com t/9334): the weakest number in this row",
            "tp_bytes_per_cycle": TP_RATE,
            "zero_skipping": ZERO_SKIP,
            "npu_clock_hz": G12_NPU_CLOCK,
            "dram_peak_bytes_per_s": "assumption: 32-bit LPDDR4 at 2640 MT/s (the S922X/A311D "
            "family's DDR rate as boards ship it; no datasheet in the sources read)",
            "dram_efficiency": DRAM_EFFICIENCY,
            "dram_latency_ns": LPDDR_LATENCY,
            "sram_bytes_per_cycle": SRAM_RATE,
            "submit_overhead_us": ETNA_SUBMIT,
            "job_overhead_us": ETNA_JOB,
            "task_overhead_us": ETNA_TASK,
        },
    ),
    "imx8mp": Soc(
        name="imx8mp",
        marketing_name="NXP i.MX 8M Plus (VIPNano-SI+)",
        driver="etnaviv",
        npu=EtnavivNpu(
            nn_core_version=8,
            nn_cores=6,
            mad_per_core=64,
            tp_cores=3,
            sram_bytes=256 * KIB,
            axi_sram_bytes=0,
            zrl_bits=0,
            input_buffer_depth=12,
            accum_buffer_depth=64,
            customer_id=0,
            gpu_model=0x8000,
            gpu_revision=0x8002,
            macs_per_mad=3,
            tp_bytes_per_cycle=1,
            zero_skipping=True,
        ),
        npu_clock_hz=800_000_000,
        dram_peak_bytes_per_s=16_000_000_000,
        dram_efficiency=0.6,
        dram_latency_ns=200,
        sram_bytes_per_cycle=128,
        submit_overhead_us=50.0,
        job_overhead_us=1.0,
        task_overhead_us=0.0,
        sources={
            "nn_core_version": f"{ETNA_BRIEF} §0 (NN_XYDP0: v8 code paths)",
            "nn_cores": f"{ETNA_BRIEF} §7 (kernel patch, second NPU entry; mapping inferred)",
            "mad_per_core": f"{ETNA_BRIEF} §7 (kernel patch; mapping inferred)",
            "tp_cores": f"{ETNA_BRIEF} §7 (kernel patch; mapping inferred)",
            "sram_bytes": f"{ETNA_BRIEF} §7 (kernel patch; mapping inferred)",
            "axi_sram_bytes": f"{ETNA_BRIEF} §7",
            "zrl_bits": "assumption: v8 uses Huffman weights, the v7 ZRL field is unused",
            "input_buffer_depth": "assumption: same as A311D (no public decode)",
            "accum_buffer_depth": "assumption: same as A311D (no public decode)",
            "customer_id": "assumption: not 0x99 (the S905D3 raw-weight quirk)",
            "gpu_model": f"{ETNA_BRIEF} §7 (GC8000; unverified)",
            "gpu_revision": f"{ETNA_BRIEF} §7 (rev 0x8002; unverified)",
            "macs_per_mad": VIP_DOT_PRODUCT,
            "tp_bytes_per_cycle": TP_RATE,
            "zero_skipping": ZERO_SKIP,
            "npu_clock_hz": "Linux arch/arm64/boot/dts/freescale/imx8mp.dtsi: pgc_mlmix assigns "
            "800 MHz to IMX8MP_CLK_ML_CORE and ML_AXI (NPU node patch, 2024); NXP's 2.3 TOPS is "
            "the 1 GHz overdrive clock",
            "dram_peak_bytes_per_s": "32-bit LPDDR4 at 4000 MT/s: NXP's DRAM controller 'at "
            "4000 MT/s' (forlinx.net industrial-news nxp-imx8m-plus-processor-359); the 32-bit "
            "width is an assumption",
            "dram_efficiency": DRAM_EFFICIENCY,
            "dram_latency_ns": LPDDR_LATENCY,
            "sram_bytes_per_cycle": SRAM_RATE + "; Mesa does not cache on v8",
            "submit_overhead_us": ETNA_SUBMIT,
            "job_overhead_us": ETNA_JOB,
            "task_overhead_us": ETNA_TASK,
        },
    ),
    "s905d3": Soc(
        name="s905d3",
        marketing_name="Amlogic S905D3 (VIPNano)",
        driver="etnaviv",
        npu=EtnavivNpu(
            nn_core_version=8,
            nn_cores=4,
            mad_per_core=64,
            tp_cores=2,
            sram_bytes=256 * KIB,
            axi_sram_bytes=0,
            zrl_bits=8,
            input_buffer_depth=12,
            accum_buffer_depth=64,
            customer_id=0x99,
            gpu_model=0x8000,
            gpu_revision=0x9000,
            macs_per_mad=3,
            tp_bytes_per_cycle=1,
            zero_skipping=True,
        ),
        npu_clock_hz=800_000_000,
        dram_peak_bytes_per_s=10_560_000_000,
        dram_efficiency=0.6,
        dram_latency_ns=200,
        sram_bytes_per_cycle=128,
        submit_overhead_us=50.0,
        job_overhead_us=1.0,
        task_overhead_us=0.0,
        sources={
            "nn_core_version": f"{ETNA_BRIEF} §7 (8-style weights)",
            "nn_cores": "assumption: the vendor's 1.2 TOPS is 4 x 64 MADs x 3 MACs x 2 x 0.8 GHz "
            "(1.23 TOPS)",
            "mad_per_core": "assumption: as the other VIPNano parts",
            "tp_cores": "assumption: scaled with the NN cores",
            "sram_bytes": "assumption: as i.MX 8M Plus",
            "axi_sram_bytes": "assumption: none",
            "zrl_bits": f"{ETNA_BRIEF} §7 (third-party decode)",
            "input_buffer_depth": "assumption: same as A311D",
            "accum_buffer_depth": "assumption: same as A311D",
            "customer_id": f"{ETNA_BRIEF} §3.2 (0x99 raw-weight special case; inferred)",
            "gpu_model": "assumption: a GC8000-class VIPNano like the other two parts",
            "gpu_revision": "assumption: no public source; a placeholder that matches no "
            "other row (kernel nodes are matched on model, revision and customer id)",
            "macs_per_mad": VIP_DOT_PRODUCT,
            "tp_bytes_per_cycle": TP_RATE,
            "zero_skipping": ZERO_SKIP,
            "npu_clock_hz": G12_NPU_CLOCK + "; the S905D3 is an SM1 part",
            "dram_peak_bytes_per_s": "assumption: as A311D (32-bit DDR4/LPDDR4 at 2640 MT/s)",
            "dram_efficiency": DRAM_EFFICIENCY,
            "dram_latency_ns": LPDDR_LATENCY,
            "sram_bytes_per_cycle": SRAM_RATE + "; Mesa does not cache on v8",
            "submit_overhead_us": ETNA_SUBMIT,
            "job_overhead_us": ETNA_JOB,
            "task_overhead_us": ETNA_TASK,
        },
    ),
    "rk3588": Soc(
        name="rk3588",
        marketing_name="Rockchip RK3588",
        driver="rocket",
        npu=RocketNpu(
            cores=3,
            macs_per_core=1024,
            cbuf_banks=12,
            cbuf_bank_bytes=32 * KIB,
            feature_atom_bytes=16,
            weight_atom=32,
        ),
        npu_clock_hz=1_000_000_000,
        dram_peak_bytes_per_s=34_000_000_000,
        dram_efficiency=0.6,
        dram_latency_ns=150,
        sram_bytes_per_cycle=128,
        submit_overhead_us=30.0,
        job_overhead_us=20.0,
        task_overhead_us=1.0,
        sources={
            "cores": f"{ROCKET_BRIEF} §5 (three cores)",
            "macs_per_core": f"{ROCKET_BRIEF} §9 (6 TOPS = 3 x 1024 MAC x 1 GHz x 2)",
            "cbuf_banks": f"{ROCKET_BRIEF} §5 (12 banks, rkt_ml.h)",
            "cbuf_bank_bytes": f"{ROCKET_BRIEF} §5 (32 KB per bank)",
            "feature_atom_bytes": f"{ROCKET_BRIEF} §4 (FEATURE_ATOMIC_SIZE=16)",
            "weight_atom": f"{ROCKET_BRIEF} §4 (WEIGHT_ATOMIC_SIZE=32)",
            "npu_clock_hz": f"{ROCKET_BRIEF} §9 (1 GHz in the 6 TOPS figure)",
            "dram_peak_bytes_per_s": "RK3588 datasheet as summarised on blog.csdn.net "
            "(weixin_43199439 article 139720663): four-channel (64-bit) LPDDR4/4X/5, up to "
            "34 GB/s",
            "dram_efficiency": DRAM_EFFICIENCY,
            "dram_latency_ns": "assumption: LPDDR4X load-to-use latency seen by an SoC master",
            "sram_bytes_per_cycle": "assumption: unused; the rocket simulator has no on-chip "
            "SRAM counter (CBUF reuse shows up as fewer DRAM bytes)",
            "submit_overhead_us": "assumption: one ROCKET_SUBMIT ioctl and the final PREP_BO "
            "wait, tens of microseconds on a Cortex-A76",
            "job_overhead_us": "assumption: per DRM job the scheduler runs it, the kernel "
            "programs the PC, takes the completion interrupt and signals the fence: ~20 us",
            "task_overhead_us": "assumption: per task the PC fetches the regcmd list (a DRAM "
            "round trip) and the CNA fills and the DPU drains its pipeline: ~1 us",
        },
    ),
}


def soc(name: str) -> Soc:
    try:
        return SOCS[name]
    except KeyError:
        raise KeyError(f"unknown SoC '{name}' (known: {', '.join(SOCS)})") from None


def unsourced_fields(row: Soc) -> list[str]:
    """Fields of ``row`` (and its NPU record) without an entry in ``row.sources``."""
    names = [
        f.name
        for f in dataclasses.fields(row)
        if f.name not in ("name", "marketing_name", "driver", "npu", "sources")
    ]
    names += [f.name for f in dataclasses.fields(row.npu)]
    return [n for n in names if n not in row.sources]
