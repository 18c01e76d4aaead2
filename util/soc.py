"""The SoC table: one row per chip, the single source of hardware facts for drivers, simulated
devices and the cost model (Mesa keeps the NPU part in ``src/etnaviv/hwdb``).

Every value is plain data; each row's ``sources`` maps a field name to where the value comes
from, or to ``"assumption: ..."`` with the reasoning when no public source gives it. A test
checks that every field of every row has an entry.
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
    mad_per_core: int
    tp_cores: int
    sram_bytes: int  # on-chip VIP SRAM
    axi_sram_bytes: int
    zrl_bits: int  # NN_ZRL_BITS: widest zero-run field of the v7 weight stream
    input_buffer_depth: int  # NNInputBufferDepth (IBD)
    accum_buffer_depth: int  # NNAccumBufferDepth (ABD)
    customer_id: int
    gpu_model: int  # ETNAVIV_PARAM_GPU_MODEL of the NPU core: how a kernel node is matched
    gpu_revision: int  # ETNAVIV_PARAM_GPU_REVISION


@dataclass(frozen=True, slots=True)
class RocketNpu:
    """RK3588 NPU configuration (NVDLA-derived)."""

    cores: int
    macs_per_core: int  # int8 MACs per cycle per core
    cbuf_banks: int
    cbuf_bank_bytes: int
    feature_atom_bytes: int  # C2 of the NC1HWC2 feature layout
    weight_atom: int  # kernels per weight group


@dataclass(frozen=True, slots=True)
class Soc:
    name: str  # table key, e.g. "a311d"
    marketing_name: str
    driver: str  # "etnaviv" or "rocket"
    npu: EtnavivNpu | RocketNpu
    npu_clock_hz: int
    dram_bytes_per_s: int  # sustained bandwidth the NPU sees
    dram_latency_ns: int
    job_overhead_us: float  # fixed cost per submitted job (kick, IRQ, cache flush)
    task_overhead_us: float  # fixed cost per task / NN or TP instruction
    sources: Mapping[str, str]


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
        ),
        npu_clock_hz=800_000_000,
        dram_bytes_per_s=5_000_000_000,
        dram_latency_ns=200,
        job_overhead_us=40.0,
        task_overhead_us=15.0,
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
            "npu_clock_hz": "assumption: no public source found (brief §7); 800 MHz is the "
            "usual VIPNano clock on Amlogic parts",
            "dram_bytes_per_s": "assumption: 32-bit LPDDR4 at ~3.2 GT/s peak 12.8 GB/s; the NPU "
            "sustains well under half",
            "dram_latency_ns": "assumption: typical LPDDR4 load-to-use latency",
            "job_overhead_us": "assumption: submit + fence + cache flush per inference batch",
            "task_overhead_us": "assumption: per NN/TP instruction setup",
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
        ),
        npu_clock_hz=1_000_000_000,
        dram_bytes_per_s=6_000_000_000,
        dram_latency_ns=200,
        job_overhead_us=40.0,
        task_overhead_us=15.0,
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
            "npu_clock_hz": "assumption: NXP documents the NPU at 1 GHz in marketing material",
            "dram_bytes_per_s": "assumption: 32-bit LPDDR4-4000 peak 16 GB/s, under half sustained",
            "dram_latency_ns": "assumption: typical LPDDR4 load-to-use latency",
            "job_overhead_us": "assumption: as A311D",
            "task_overhead_us": "assumption: as A311D",
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
        ),
        npu_clock_hz=800_000_000,
        dram_bytes_per_s=4_000_000_000,
        dram_latency_ns=200,
        job_overhead_us=40.0,
        task_overhead_us=15.0,
        sources={
            "nn_core_version": f"{ETNA_BRIEF} §7 (8-style weights)",
            "nn_cores": "assumption: vendor 1.2 TOPS is about a quarter of A311D's 5 TOPS",
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
            "npu_clock_hz": "assumption: as A311D",
            "dram_bytes_per_s": "assumption: 32-bit DDR4/LPDDR4, under half of peak",
            "dram_latency_ns": "assumption: typical DRAM load-to-use latency",
            "job_overhead_us": "assumption: as A311D",
            "task_overhead_us": "assumption: as A311D",
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
        dram_bytes_per_s=10_000_000_000,
        dram_latency_ns=150,
        job_overhead_us=30.0,
        task_overhead_us=5.0,
        sources={
            "cores": f"{ROCKET_BRIEF} §5 (three cores)",
            "macs_per_core": f"{ROCKET_BRIEF} §9 (6 TOPS = 3 x 1024 MAC x 1 GHz x 2)",
            "cbuf_banks": f"{ROCKET_BRIEF} §5 (12 banks, rkt_ml.h)",
            "cbuf_bank_bytes": f"{ROCKET_BRIEF} §5 (32 KB per bank)",
            "feature_atom_bytes": f"{ROCKET_BRIEF} §4 (FEATURE_ATOMIC_SIZE=16)",
            "weight_atom": f"{ROCKET_BRIEF} §4 (WEIGHT_ATOMIC_SIZE=32)",
            "npu_clock_hz": f"{ROCKET_BRIEF} §9 (1 GHz in the 6 TOPS figure)",
            "dram_bytes_per_s": "assumption: 64-bit LPDDR4x/5, peak ~34 GB/s shared; the NPU "
            "sustains a fraction",
            "dram_latency_ns": "assumption: typical LPDDR4x load-to-use latency",
            "job_overhead_us": "assumption: ioctl submit + scheduler + IRQ per job",
            "task_overhead_us": "assumption: PC regcmd fetch and op_en per task",
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
