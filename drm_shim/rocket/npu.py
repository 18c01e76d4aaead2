"""One NPU core: the PC (command processor) that fetches and decodes a task's regcmd stream,
the core's register file and CBUF, and the run of the enabled blocks on op_en.

Per task, :meth:`Core.run_task` does what Linux ``rocket_job_hw_submit()`` starts: the kernel's
MMIO writes (PC base address, fetch amount, interrupt mask, TASK_CON, op_en), then the PC's
fetch of ``(REGISTER_AMOUNTS + 1) * 2`` qwords, each decoded with ``REGCMD.ENTRY`` and the
register tables, and on the op_en entry the CNA -> CORE -> DPU pipeline
(``cna.py``, ``core.py``, ``dpu.py``). The task ends with the DPU completion interrupt, or raises
:class:`NpuFault` / :class:`NpuHang`. ``docs/rocket-npu-model.md`` §3 describes the stream rules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...drivers.rocket import rocket_regs as R
from ...util.soc import RocketNpu
from . import cna, core, dpu
from .cache import DecodeCache, DecodedWeights
from .faults import NpuFault, NpuHang
from .memory import AddressSpace
from .options import NpuModelOptions
from .regfile import RegisterFile, TaskRegs, UnpackCache
from .stats import TaskStats

ENTRY = R.REGCMD.ENTRY
# TRM: "before op_en, 64'h0041_xxxx_xxxx_xxxx must be set" (brief §2).
MARKER = ENTRY.pack(UNK48=True, UNK54=True)
WRITE_TARGETS = frozenset(
    (
        R.Target.PC,
        R.Target.CNA,
        R.Target.CORE,
        R.Target.DPU,
        R.Target.DPU_RDMA,
        R.Target.PPU,
        R.Target.PPU_RDMA,
    )
)
QWORD = 8
# PC_REGISTER_AMOUNTS counts 128-bit units: two regcmd qwords each (kernel rocket_job.c).
QWORDS_PER_UNIT = 2
# Linux rocket_job.c writes the core index into S_POINTER's reserved top bits (from rknpu).
S_POINTER_KERNEL = {"POINTER_PP_EN": 1, "EXECUTER_PP_EN": 1, "POINTER_PP_MODE": 1}
STALE_NAMES_SHOWN = 6
ENTRY_RESERVED = ENTRY.reserved_mask
ENTRY_FIELDS = ("OFFSET", "VALUE", "UNK48", "UNK54", "OP_EN", "BLOCK")


def _offset_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per register offset (the 16-bit OFFSET field): the target block that owns it (0: no
    register a regcmd can write) and whether it is read-only; read-only arrays."""
    size = 1 << ENTRY.field("OFFSET").width
    owner = np.zeros(size, dtype=np.uint64)
    readonly = np.zeros(size, dtype=bool)
    for r in R.REGISTERS:
        target = R.target_of(r.offset)
        if target in WRITE_TARGETS:
            owner[r.offset] = target
            readonly[r.offset] = r.access == "r"
    owner.flags.writeable = readonly.flags.writeable = False
    return owner, readonly


OWNER_BY_OFFSET, READ_ONLY_BY_OFFSET = _offset_tables()


def _entry_field(words: np.ndarray, name: str) -> np.ndarray:
    """One REGCMD.ENTRY field of every word, as unpack() returns it (shr applied)."""
    f = ENTRY.field(name)
    return ((words & np.uint64(f.mask)) >> np.uint64(f.low)) << np.uint64(f.shr)


def _where(i: int, word: int) -> str:
    return f"regcmd entry {i} (byte {i * QWORD:#x}) {word:#018x}"


@dataclass(slots=True)
class CbufWeights:
    """Weights resident in a core's CBUF after a fetch, keyed by what was fetched."""

    key: tuple
    decoded: DecodedWeights


class Core:
    def __init__(
        self, index: int, npu: RocketNpu, options: NpuModelOptions, cache: DecodeCache
    ) -> None:
        self.index = index
        self.cache = cache
        self.npu = npu
        self.options = options
        self.regs = RegisterFile()
        self.cbuf: CbufWeights | None = None
        self.unpacked = UnpackCache()
        # The kernel's per-task MMIO writes that do not depend on the task, packed once.
        self.kick = tuple(
            (reg, reg.pack(**fields))
            for reg, fields in (
                (R.CNA.S_POINTER, {"RESERVED_CORE_INDEX": index, **S_POINTER_KERNEL}),
                (R.CORE.S_POINTER, {"RESERVED_CORE_INDEX": index, **S_POINTER_KERNEL}),
                (R.PC.INTERRUPT_MASK, {"DPU_0": True, "DPU_1": True}),
                (
                    R.PC.TASK_CON,
                    {"RESERVED_14": 1, "TASK_COUNT_CLEAR": 1, "TASK_PP_EN": 1, "TASK_NUMBER": 1},
                ),
                (R.PC.TASK_DMA_BASE_ADDR, {"DMA_BASE_ADDR": 0}),
                (R.PC.OPERATION_ENABLE, {"OP_EN": 1}),
            )
        )

    def reset(self) -> None:
        """What the kernel's reset after a timeout leaves: no registers, an empty CBUF."""
        self.regs.reset()
        self.cbuf = None

    # ----------------------------------------------------------------------------------------
    # The kernel's MMIO writes and the PC fetch
    # ----------------------------------------------------------------------------------------

    def _mmio(self, reg: R.Register, **fields: int) -> None:
        self.regs.write(reg, reg.pack(**fields))

    def run_task(self, mem: AddressSpace, regcmd: int, count: int) -> TaskStats:
        stats = TaskStats()
        if regcmd % (1 << R.PC.BASE_ADDRESS.field("PC_SOURCE_ADDR").shr):
            raise NpuFault(
                "stream",
                f"regcmd address {regcmd:#x} is not 16-byte aligned "
                "(PC.BASE_ADDRESS.PC_SOURCE_ADDR drops the low bits)",
            )
        amount_field = R.PC.REGISTER_AMOUNTS.field("PC_DATA_AMOUNT")
        amount = (count + 1) // QWORDS_PER_UNIT - 1
        if amount >= 1 << amount_field.width:
            stats.notes.append(
                f"regcmd_count {count} overflows PC_DATA_AMOUNT: the kernel's "
                "macro masks it and the PC fetches less"
            )
            amount %= 1 << amount_field.width
        # rocket_job_hw_submit(): PC_SEL, the S_POINTERs, the fetch address and amount, the
        # interrupt mask, TASK_CON, TASK_DMA_BASE_ADDR, op_en (the order does not matter here:
        # none of these writes starts anything before op_en).
        self._mmio(R.PC.BASE_ADDRESS, PC_SOURCE_ADDR=regcmd)
        self._mmio(R.PC.REGISTER_AMOUNTS, PC_DATA_AMOUNT=amount)
        for reg, value in self.kick:
            self.regs.write(reg, value)

        qwords = (amount + 1) * QWORDS_PER_UNIT
        bo, raw = mem.read(f"PC regcmd fetch ({qwords} qwords)", regcmd, qwords * QWORD)
        stats.read("regcmd", bo, raw.size)
        written: set[int] = set()
        blocks = self._decode(raw.view("<u8"), written, stats)
        regs = TaskRegs(self.regs.values, written, self.unpacked)
        self._execute(blocks, regs, mem, stats)
        if regs.stale:
            names = regs.stale[:STALE_NAMES_SHOWN]
            more = len(regs.stale) - len(names)
            stats.notes.append(
                f"reads {len(regs.stale)} register(s) this task did not write (values from an "
                f"earlier task; unverified with ping-pong groups): {', '.join(names)}"
                + (f" and {more} more" if more > 0 else "")
            )
        return stats

    def _decode(self, words: np.ndarray, written: set[int], stats: TaskStats):
        """Apply the stream's register writes; return the op_en block mask record.

        Vectorised: the entries up to the first op_en are classified at once (no-op, marker,
        register write); the first one that is none of these is decoded alone for its fault.
        """
        f = {name: _entry_field(words, name) for name in ENTRY_FIELDS}
        op_at = np.flatnonzero(f["OP_EN"])
        end = int(op_at[0]) if op_at.size else len(words)
        head = slice(0, end)
        nonzero = words[head] != 0
        marker = words[head] == np.uint64(MARKER)
        offsets = f["OFFSET"][head]
        owner = OWNER_BY_OFFSET[offsets]
        write = (
            nonzero
            & ~marker
            & ((words[head] & np.uint64(ENTRY_RESERVED)) == 0)
            & (f["UNK54"][head] == 0)
            & (owner != 0)
            & (owner == f["BLOCK"][head])
        )
        bad = np.flatnonzero(nonzero & ~marker & ~write)
        if bad.size:
            i = int(bad[0])
            word = int(words[i])
            if word & ENTRY_RESERVED:
                raise NpuFault(
                    "stream",
                    f"malformed {_where(i, word)}: reserved op bits {word & ENTRY_RESERVED:#x} set",
                )
            self._malformed(i, word, int(offsets[i]), int(f["BLOCK"][i]), int(f["UNK54"][i]))
        readonly = write & READ_ONLY_BY_OFFSET[offsets]
        for i in np.flatnonzero(readonly).tolist():
            reg = R.register_at(int(offsets[i]))
            stats.notes.append(f"{_where(i, int(words[i]))}: write to read-only {reg.path} ignored")
        write &= ~readonly
        unk48_missing = int((write & (f["UNK48"][head] == 0)).sum())
        w_offsets = offsets[write].tolist()
        self.regs.values.update(zip(w_offsets, f["VALUE"][head][write].tolist(), strict=True))
        written.update(w_offsets)
        if not op_at.size:
            raise NpuHang(
                f"the fetched stream ({len(words)} qwords) has no op_en entry: the "
                "blocks never start"
            )
        word = int(words[end])
        if f["BLOCK"][end] or f["UNK54"][end] or f["OFFSET"][end] != R.PC.OPERATION_ENABLE.offset:
            raise NpuFault(
                "stream",
                f"malformed {_where(end, word)}: an op_en entry must have no block bits and "
                f"offset {R.PC.OPERATION_ENABLE.offset:#06x}",
            )
        if word & ENTRY_RESERVED:
            raise NpuFault(
                "stream",
                f"malformed {_where(end, word)}: reserved op bits {word & ENTRY_RESERVED:#x} set",
            )
        if not marker.any() and self.options.require_marker:
            raise NpuHang(f"{_where(end, word)}: op_en without the 0x0041 marker entry before it")
        unk48_missing += not f["UNK48"][end]
        if unk48_missing:
            stats.notes.append(f"{unk48_missing} entries lack the UNK48 bit Mesa always sets")
        for i in np.flatnonzero(words[end + 1 :]).tolist():
            at = end + 1 + i
            stats.notes.append(f"{_where(at, int(words[at]))} after op_en is ignored")
        chain = (R.PC.BASE_ADDRESS.offset, R.PC.REGISTER_AMOUNTS.offset)
        if all(o in written for o in chain):
            values = self.regs.values
            stats.chain = (
                R.PC.BASE_ADDRESS.unpack(values[chain[0]]).PC_SOURCE_ADDR,
                R.PC.REGISTER_AMOUNTS.unpack(values[chain[1]]).PC_DATA_AMOUNT,
            )
        return R.PC.OPERATION_ENABLE.unpack(int(f["VALUE"][end]))

    @staticmethod
    def _malformed(i: int, word: int, offset: int, block: int, unk54: int) -> None:
        """Raise the fault that says why a register-write entry is malformed."""
        where = _where(i, word)
        if not block:
            raise NpuFault(
                "stream", f"malformed {where}: no block bits and not the {MARKER:#018x} marker"
            )
        if block not in WRITE_TARGETS:
            raise NpuFault("stream", f"malformed {where}: unknown target bits {block:#06x}")
        if unk54:
            raise NpuFault("stream", f"malformed {where}: bit 54 set on a register write")
        reg = R.register_at(offset)
        if reg is None:
            raise NpuFault(
                "stream", f"malformed {where}: offset {offset:#06x} is not a register of the tables"
            )
        owner = R.target_of(offset)
        raise NpuFault(
            "stream",
            f"malformed {where}: block {R.Target(block).name} does not own "
            f"{reg.path} (block {owner.name})",
        )

    # ----------------------------------------------------------------------------------------
    # op_en: the pipeline
    # ----------------------------------------------------------------------------------------

    def _execute(self, blocks, regs: TaskRegs, mem: AddressSpace, stats: TaskStats) -> None:
        if blocks.PPU_OP_EN or blocks.PPU_RDMA_OP_EN:
            raise NpuFault(
                "unsupported",
                "unsupported setting: op_en enables the PPU / PPU_RDMA (pooling is not modelled)",
            )
        if not blocks.DPU_OP_EN:
            raise NpuHang("op_en does not enable the DPU: no completion interrupt")
        if not (blocks.OP_EN and blocks.CORE_OP_EN):
            raise NpuHang("op_en enables the DPU but not the CNA and CORE it waits for")
        npu, options = self.npu, self.options
        cfg = cna.decode(regs, npu, options)
        misc = regs(R.CORE.MISC_CFG)
        if misc.PROC_PRECISION != R.Precision.INT8:
            raise NpuFault(
                "unsupported",
                f"unsupported setting CORE.MISC_CFG.PROC_PRECISION="
                f"{misc.PROC_PRECISION} (only INT8)",
            )
        if bool(misc.DW_EN) != cfg.depthwise:
            raise NpuFault(
                "inconsistent",
                f"CORE.MISC_CFG.DW_EN={misc.DW_EN} but CNA "
                f"CONV_MODE={'DEPTHWISE' if cfg.depthwise else 'DIRECT'}",
            )
        size0 = regs(R.CORE.DATAOUT_SIZE_0)
        ow, oh = size0.DATAOUT_WIDTH + 1, size0.DATAOUT_HEIGHT + 1
        oc = regs(R.CORE.DATAOUT_SIZE_1).DATAOUT_CHANNEL + 1
        if cfg.out_w != ow or cfg.out_atomics != ow * oh:
            raise NpuFault(
                "inconsistent",
                f"CNA.DATA_SIZE2/3 give DATAOUT_WIDTH={cfg.out_w}, DATAOUT_ATOMICS="
                f"{cfg.out_atomics} but CORE.DATAOUT_SIZE_0 gives {ow}x{oh}",
            )
        cube = dpu.decode_cube(regs, ow, oh, oc, cfg.depthwise)
        ow_cfg = dpu.decode_ow(regs, options)

        x = cna.fetch_features(cfg, mem, npu, options, stats)
        weights = self._weights(cfg, mem, stats)
        decoded = weights.decoded
        taps = cfg.kh * cfg.kw * (1 if cfg.depthwise else cfg.channels)
        ow_plan = dpu.plan_ow(ow_cfg, taps, decoded.max_abs)
        rdma = bool(blocks.DPU_RDMA_OP_EN)
        pipeline = dpu.plan(regs, mem, stats, cube, cfg.atom, rdma, ow_plan, options)
        form = (ow_plan.fold, ow_plan.window_sum)
        prepared = decoded.prepared.get(form)
        if prepared is None:
            prepared = core.prepare(decoded.weights, cfg.depthwise, *form)
            decoded.prepared[form] = prepared
            self.cache.trim()
        conv = core.depthwise if cfg.depthwise else core.direct
        mac = conv(cfg, x, prepared, ow_plan.window_sum, oh, ow, oc)
        stats.macs += mac.macs
        dpu.write_back(pipeline.apply(mac), regs, mem, stats, cube, cfg.atom)

    def _weights(self, cfg: cna.CnaConfig, mem: AddressSpace, stats: TaskStats) -> CbufWeights:
        """The task's weights: fetched into the CBUF, or the resident ones on WEIGHT_REUSE."""
        key = (
            cfg.weight_addr,
            cfg.weight_bytes,
            cfg.kernels,
            cfg.channels,
            cfg.kh,
            cfg.kw,
            cfg.depthwise,
        )
        shape = (
            (cfg.kh, cfg.kw, cfg.channels)
            if cfg.depthwise
            else (cfg.kernels, cfg.kh, cfg.kw, cfg.channels)
        )
        if cfg.weight_reuse:
            resident = self.cbuf
            if resident is not None and resident.key == key:
                return resident
            if resident is None or resident.decoded.weights.shape != shape:
                stats.notes.append(
                    "WEIGHT_REUSE=1 but this core's CBUF holds no matching "
                    "weights: the MAC array uses zeros"
                )
                return CbufWeights(key, DecodedWeights(np.zeros(shape, dtype=np.int8)))
            stats.notes.append(
                f"WEIGHT_REUSE=1 uses the CBUF weights fetched from {resident.key[0]:#x}, but "
                f"this task's DCOMP_ADDR0 is {cfg.weight_addr:#x} (stale weights)"
            )
            return resident
        bo, raw = cna.read_weights(cfg, mem)
        stats.read("weights", bo, raw.size)
        content = DecodeCache.key(raw, key[1:])
        decoded = self.cache.get(content)
        if decoded is None:
            decoded = DecodedWeights(cna.unpack_weights(cfg, raw, self.npu))
            self.cache.put(content, decoded)
        self.cbuf = CbufWeights(key, decoded)
        return self.cbuf
