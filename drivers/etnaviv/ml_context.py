"""Running compiled subgraphs: buffer objects, relocation at first invoke, input upload,
submission, output readback and counters (Mesa: the invoke half of ``etnaviv_ml.c``:
``etna_ml_subgraph_invoke``, ``etna_ml_subgraph_read_outputs``, ``init_npu``).

A context owns one DRM file. On a subgraph's first invoke it picks the subgraph a VA window in
the device's softpin range (bump allocation, page aligned), creates one buffer object per
:class:`~mesa_npu.drivers.etnaviv.ml_nn.Bo` at its window address, relocates the job
configurations and the stream template by the window base and uploads them. Every invoke then
copies the inputs in (+128 for signed tensors), submits the stream, waits for the fence and,
on request, copies the outputs out (-128 for signed tensors). The once-per-context front-end
setup (``cmdstream.init_stream``) goes in front of the first submit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ...gallium.device import DeviceError, JobCounters, MlContext
from ...util import uapi
from ...util.blob import BlobError
from ...util.drm import DrmError, DrmFile
from ...util.soc import soc
from . import etnaviv_regs as E
from .cmdstream import init_stream, relocated
from .debug import DEBUG, DebugFlags, write_dump
from .ml import EtnaSubgraph
from .ml_compile import Compiled
from .ml_nn import Bo
from .winsys import EtnaBo, Winsys, describe_error, npu_pipe

_DOMAINS = {"nn": E.NN_CONFIG, "tp": E.TP_CONFIG}
_READ = uapi.ETNA_SUBMIT_BO_READ
_WRITE = uapi.ETNA_SUBMIT_BO_WRITE


@dataclass(eq=False)
class _Placed:
    """A subgraph's buffer objects and relocated stream in this context."""

    bos: dict[Bo, EtnaBo]
    stream: np.ndarray

    def submit_list(self) -> list[tuple[EtnaBo, int]]:
        return [
            (bo, _READ | _WRITE if kind is Bo.ARENA else _READ) for kind, bo in self.bos.items()
        ]


# What the cost model reads of an NN job beyond MACs and bytes (util/performance.py).
NN_EXTRA_COUNTERS = ("slot_macs", "nonzero_slot_macs", "out_x", "tile_x")


def _extra(record) -> dict[str, int]:
    extra = {"tiles": record.tiles, "superblocks": record.superblocks}
    if record.unit == "NN":
        extra |= {k: getattr(record, k) for k in NN_EXTRA_COUNTERS}
    return extra


def hw_io(data: np.ndarray, signed: bool) -> np.ndarray:
    """Host 8-bit data -> hardware bytes (int8 + 128, brief §4)."""
    raw = np.ascontiguousarray(data).view(np.uint8)
    return raw ^ 0x80 if signed else raw


def relocate_configs(compiled: Compiled, base: int) -> bytes:
    """The configuration buffer with ``base`` added to every address field (through the
    generated unpack/pack of each configuration)."""
    out = bytearray(compiled.config)
    for reloc in compiled.config_relocs:
        domain = _DOMAINS[reloc.unit]
        start, end = reloc.offset, reloc.offset + domain.size
        fields = domain.unpack_words(bytes(out[start:end]))
        moved = fields._replace(**{f: getattr(fields, f) + base for f in reloc.fields})
        out[start:end] = domain.pack_words(**moved._asdict())
    return bytes(out)


class EtnaContext(MlContext):
    def __init__(self, drm: DrmFile, soc: str, debug: DebugFlags = DEBUG) -> None:
        self.drm = drm
        self.soc = soc
        self.debug = debug
        self.winsys = Winsys(drm, self._find_pipe(drm, soc))
        self._placed: dict[int, _Placed] = {}
        self._keep: dict[int, EtnaSubgraph] = {}  # ids stay valid while placed
        self._initialized = False
        self._next_va, self._va_end = self.winsys.softpin_range()
        self._counters: list[JobCounters] = []
        self._ran: set[int] = set()

    # -- gallium interface ----------------------------------------------------------------------

    def subgraph_deserialize(self, blob: bytes) -> EtnaSubgraph:
        try:
            sub = EtnaSubgraph.deserialize(blob)
        except BlobError as e:
            raise DeviceError(f"etnaviv: {e}") from None
        if sub.soc != self.soc:
            raise DeviceError(f"etnaviv: blob compiled for {sub.soc}, this device is {self.soc}")
        return sub

    def subgraph_invoke(self, subgraph, inputs: Mapping[int, np.ndarray]) -> None:
        sub = self._check(subgraph)
        placed = self._place(sub)
        c = sub.compiled
        arena = placed.bos[Bo.ARENA]
        self._cpu(arena, uapi.ETNA_PREP_WRITE)
        try:
            data = arena.array()
            for t in c.inputs:
                if t.index not in inputs:
                    raise DeviceError(f"etnaviv: no data for input tensor {t.index}")
                host = np.asarray(inputs[t.index])
                if host.nbytes != t.nbytes:
                    raise DeviceError(
                        f"etnaviv: input tensor {t.index} has {host.nbytes} bytes, "
                        f"expected {t.nbytes} (shape {t.dims})"
                    )
                raw = hw_io(host, t.signed).reshape(-1)
                data[t.offset : t.offset + t.nbytes] = raw
                write_dump(self.debug, "input", t.index, 0, raw.tobytes())
        finally:
            self.winsys.cpu_fini(arena)
        stream = placed.stream
        if not self._initialized:
            stream = np.concatenate([init_stream().words, stream])
        try:
            fence = self.winsys.submit(stream, placed.submit_list())
        except DrmError as e:
            raise DeviceError(f"etnaviv: submit rejected: {e}") from None
        self._initialized = True
        try:
            self.winsys.wait_fence(fence)
        except DrmError as e:
            raise DeviceError(self._fault_message(e)) from None
        finally:
            self._counters = self._read_counters(sub)
        self._ran.add(id(sub))

    def subgraph_read_outputs(self, subgraph) -> list[np.ndarray]:
        sub = self._check(subgraph)
        if id(sub) not in self._ran:
            raise DeviceError("etnaviv: read_outputs before invoke")
        arena = self._placed[id(sub)].bos[Bo.ARENA]
        self._cpu(arena, uapi.ETNA_PREP_READ)
        try:
            data = arena.array()
            outs = []
            for t, pipe in zip(sub.compiled.outputs, sub.outputs, strict=True):
                raw = data[t.offset : t.offset + t.nbytes].copy()
                write_dump(self.debug, "output", t.index, 0, raw.tobytes())
                value = raw ^ 0x80 if t.signed else raw
                outs.append(value.view(pipe.type.numpy).reshape(pipe.shape))
        finally:
            self.winsys.cpu_fini(arena)
        return outs

    def last_counters(self) -> list[JobCounters]:
        return list(self._counters)

    def destroy(self) -> None:
        for placed in self._placed.values():
            for bo in placed.bos.values():
                try:
                    self.winsys.bo_close(bo)
                except DrmError:
                    pass
        self._placed.clear()
        self._keep.clear()
        self.drm.close()

    # -- internals ------------------------------------------------------------------------------

    @staticmethod
    def _find_pipe(drm: DrmFile, soc_name: str) -> int:
        npu = soc(soc_name).npu
        pipe = npu_pipe(drm, (npu.gpu_model, npu.gpu_revision, npu.customer_id))
        if pipe is None:
            drm.close()
            raise DeviceError(f"etnaviv: the device has no {soc_name} NPU core")
        return pipe

    def _check(self, subgraph) -> EtnaSubgraph:
        if not isinstance(subgraph, EtnaSubgraph):
            raise DeviceError(f"etnaviv: not an etnaviv subgraph: {type(subgraph).__name__}")
        return subgraph

    def _cpu(self, bo: EtnaBo, op: int) -> None:
        try:
            self.winsys.cpu_prep(bo, op)
        except DrmError as e:
            raise DeviceError(self._fault_message(e)) from None

    def _place(self, sub: EtnaSubgraph) -> _Placed:
        placed = self._placed.get(id(sub))
        if placed is not None:
            return placed
        c = sub.compiled
        base = self._next_va
        if base + c.window_size > self._va_end:
            raise DeviceError(
                f"etnaviv: no GPU address space left for a {c.window_size}-byte subgraph"
            )
        self._next_va += c.window_size
        window, sizes = c.window(), c.bo_sizes()
        contents = {Bo.CONFIG: relocate_configs(c, base), Bo.COEFF: c.coeff, Bo.LUT: c.lut}
        bos: dict[Bo, EtnaBo] = {}
        try:
            for kind in Bo:
                bo = self.winsys.bo_new(max(sizes[kind], 1), base + window[kind])
                bos[kind] = bo
                data = contents.get(kind)
                if data:
                    self._cpu(bo, uapi.ETNA_PREP_WRITE)
                    bo.array()[: len(data)] = np.frombuffer(data, dtype=np.uint8)
                    self.winsys.cpu_fini(bo)
        except DrmError as e:
            raise DeviceError(f"etnaviv: cannot create buffers: {e}") from None
        placed = _Placed(bos, relocated(c.stream, base))
        write_dump(self.debug, "cmd", 0, 1, placed.stream.tobytes())
        self._placed[id(sub)] = placed
        self._keep[id(sub)] = sub
        return placed

    def _fault_message(self, e: DrmError) -> str:
        """One line: what failed, and the device's own explanation when it keeps a fault log
        (the simulated device does; a kernel only logs to dmesg)."""
        log = getattr(self.drm, "fault_log", None)
        lines = [x for x in (log() if log else []) if "warning" not in x]
        detail = lines[-1].removeprefix("etnaviv: ") if lines else f"errno {e.errno}"
        return f"etnaviv: {describe_error(e)}: {detail}"

    def _read_counters(self, sub: EtnaSubgraph) -> list[JobCounters]:
        """The device's per-job counters of the last submit, named after our jobs (empty
        when the device has none: the kernel has no such interface)."""
        read = getattr(self.drm, "job_counters", None)
        clear = getattr(self.drm, "clear_counters", None)
        if read is None:
            return []
        records = list(read())
        if clear is not None:
            clear()
        jobs = sub.compiled.jobs
        # Every job reads and writes the one arena BO, so the cost model's schedule keeps
        # them in stream order, as the front end executes them.
        arena = (self._placed[id(sub)].bos[Bo.ARENA].handle,)
        out = []
        for r in records:
            job = jobs[r.index] if 0 <= r.index < len(jobs) else None
            out.append(
                JobCounters(
                    op_index=job.origin if job else -1,
                    name=job.name if job else r.kind,
                    macs=r.macs,
                    bytes_read=dict(r.bytes_read),
                    bytes_written=dict(r.bytes_written),
                    cores=tuple(range(r.cores)),
                    sram_hits=r.sram_hits,
                    weight_bytes=r.weight_bytes_fetched,
                    extra=_extra(r),
                    kind=r.unit.lower(),
                    reads=arena,
                    writes=arena,
                )
            )
        return out
