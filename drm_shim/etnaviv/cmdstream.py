"""The NPU front end: parses a submitted command stream, keeps the state it loads, and starts NN
and TP instructions (Mesa's emit side is ``etnaviv_ml.c``/``_nn.c``/``_tp.c``; brief §8).

Commands sit at 64-bit aligned positions. ``LOAD_STATE`` writes ``COUNT`` consecutive states;
a write to ``PS_NN_INST_ADDR`` runs the NN job whose configuration is at the written address, a
write to ``PS_TP_INST_ADDR`` queues a TP configuration (bit 0 set: a non-last core of a
multi-core job) and runs the group at its last core. The state persists across submits (it is
the hardware's). ``docs/etnaviv-npu-model.md`` §2 describes every opcode and state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.util.soc import EtnavivNpu

from .counters import JobCounters
from .faults import FaultKind, JobFault
from .memory import SubmitMemory
from .nn import NnUnit
from .switches import ModelSwitches
from .tp import TpUnit

WORD_BYTES = 4
CMD_WORDS = 2  # every command is padded to 64 bits
CONFIG_ALIGN = 64  # job configurations are 64-byte aligned; the low bits of the address are tags
NON_LAST_CORE = 1  # PS_TP_INST_ADDR bit 0 (Mesa: config address + 1 for non-last cores)

Op = E.FeOpcode
# Opcodes that leave the submitted stream: the kernel's fence event after it is never reached.
LEAVES_STREAM = (Op.END, Op.LINK, Op.CALL, Op.RETURN)
NO_EFFECT = (Op.NOP, Op.STALL, Op.WAIT)


@dataclass(slots=True)
class SubmitContext:
    """What one submit's run records: jobs, counters, warnings; ``job``/``unit`` name the job
    running when a fault is raised."""

    fence: int
    memory: SubmitMemory
    warn: Callable[[str], None]
    counters: list[JobCounters] = field(default_factory=list)
    job: int | None = None
    unit: str = "FE"
    jobs_run: int = 0
    unflushed: bool = False  # jobs ran since the last GL_FLUSH_CACHE


@dataclass(slots=True)
class FrontEndState:
    """States loaded so far (by byte address) and the open TP group."""

    values: dict[int, int] = field(default_factory=dict)
    tp_group: list[int] = field(default_factory=list)

    def get(self, reg) -> int:
        return self.values.get(reg.offset, 0)


class FrontEnd:
    def __init__(self, npu: EtnavivNpu, switches: ModelSwitches, decode_cache: dict) -> None:
        self.npu = npu
        self.switches = switches
        self.state = FrontEndState()
        self.nn = NnUnit(npu, switches, decode_cache)
        self.tp = TpUnit(npu, switches)

    def run(self, stream: np.ndarray, ctx: SubmitContext) -> None:
        """Execute ``stream`` (u32 words). Raises JobFault on a fault or hang."""
        self.state.tp_group.clear()  # a new submit starts with an idle TP unit
        pos, n = 0, stream.size
        while pos < n:
            header = int(stream[pos])
            ctx.unit, ctx.job = "FE", None
            if header == 0:
                if pos + 1 < n and int(stream[pos + 1]) != 0:
                    raise JobFault(
                        FaultKind.STREAM, f"word {pos}: opcode 0 with a non-zero second word"
                    )
                pos += CMD_WORDS
                continue
            op = E.FE.HEADER.unpack(header).OP
            if op == Op.LOAD_STATE:
                pos = self._load_state(stream, pos, ctx)
                continue
            if op in LEAVES_STREAM:
                raise JobFault(
                    FaultKind.HANG,
                    f"word {pos}: {op.name} leaves the submitted stream; the front end never "
                    "reaches the kernel's fence event",
                )
            if op in NO_EFFECT:
                pos += CMD_WORDS
                continue
            name = op.name if isinstance(op, Op) else str(op)
            raise JobFault(FaultKind.STREAM, f"word {pos}: opcode {name} is not an NPU command")
        self._close(ctx)

    def _close(self, ctx: SubmitContext) -> None:
        if self.state.tp_group:
            ctx.unit = "TP"
            raise JobFault(
                FaultKind.HANG,
                f"a multi-core TP job started {len(self.state.tp_group)} core(s) and the stream "
                "ended before its last core: the TP unit waits forever",
            )
        if ctx.unflushed:
            message = "the stream ends with NN/TP results not followed by GL_FLUSH_CACHE"
            if self.switches.strict_flush:
                raise JobFault(FaultKind.STREAM, message)
            ctx.warn(message)

    def _load_state(self, stream: np.ndarray, pos: int, ctx: SubmitContext) -> int:
        head = E.FE_LOAD_STATE.HEADER.unpack(int(stream[pos]))
        if head.COUNT == 0:
            raise JobFault(FaultKind.STREAM, f"word {pos}: LOAD_STATE with count 0")
        if head.FIXP:
            raise JobFault(FaultKind.UNSUPPORTED, f"word {pos}: fixed-point LOAD_STATE")
        end = pos + 1 + head.COUNT
        if end > stream.size:
            raise JobFault(
                FaultKind.STREAM,
                f"word {pos}: LOAD_STATE of {head.COUNT} values runs past the stream end",
            )
        for i in range(head.COUNT):
            address = head.OFFSET + i * WORD_BYTES
            self._write(address, int(stream[pos + 1 + i]), pos + 1 + i, ctx)
        return pos + -(-(1 + head.COUNT) // CMD_WORDS) * CMD_WORDS

    def _write(self, address: int, value: int, at: int, ctx: SubmitContext) -> None:
        if E.register_at(address) is None:
            raise JobFault(FaultKind.STREAM, f"word {at}: write to unknown state {address:#06x}")
        self.state.values[address] = value
        V = E.VIVS
        if address == V.GL_FLUSH_CACHE.offset:
            ctx.unflushed = False
        elif address == V.PS_NN_INST_ADDR.offset:
            self._check_idle_tp(ctx)
            self._job(ctx, "NN", value - value % CONFIG_ALIGN)
        elif address == V.PS_TP_INST_ADDR.offset:
            self.state.tp_group.append(value)
            if value % 2 != NON_LAST_CORE:
                group = list(self.state.tp_group)
                self.state.tp_group.clear()
                self._job(ctx, "TP", group)

    def _check_idle_tp(self, ctx: SubmitContext) -> None:
        if self.state.tp_group:
            ctx.unit = "TP"
            raise JobFault(
                FaultKind.HANG,
                "an NN job was started while a multi-core TP job waits for its last core",
            )

    def _job(self, ctx: SubmitContext, unit: str, config) -> None:
        ctx.unit, ctx.job = unit, ctx.jobs_run
        api = self.state.get(E.VIVS.GL_API_MODE)
        if api != E.GlApiMode.OPENCL:
            ctx.warn(f"{unit} job {ctx.jobs_run} runs with GL_API_MODE {api}, not OPENCL")
        first = config if unit == "NN" else config[0] - config[0] % CONFIG_ALIGN
        try:
            if unit == "NN":
                gl = E.VIVS.GL_NN_CONFIG.unpack(self.state.get(E.VIVS.GL_NN_CONFIG))
                counters = self.nn.run(config, gl.NN_CORE_COUNT, ctx)
            else:
                counters = self.tp.run(config, ctx)
        except JobFault as fault:
            where = f"{unit} config at {first:#010x}"
            if where in fault.message:
                raise
            raise JobFault(fault.kind, f"{where}: {fault.message}") from None
        ctx.counters.append(counters)
        ctx.jobs_run += 1
        ctx.unflushed = True
