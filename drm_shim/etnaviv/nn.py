"""The NN unit: runs one NN job from its configuration in GPU memory.

Reads the ``NN_CONFIG`` (``nn_config``), decodes the coefficient buffer at ``KERNEL_ADDRESS``
with the weight decoder of the SoC's generation (v7 zero-run-length, v8 Huffman; the decoders
are pure functions of the bytes and of what the configuration tells the hardware), reads the
input image, computes (``nn_compute``) and writes the output planes. Interpretation:
``docs/etnaviv-npu-model.md`` §3. Mesa's counterpart is the hardware itself; the configuration
is built by ``etnaviv_ml_nn.c``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np

from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.drivers.etnaviv.codec_bits import WeightStreamError
from mesa_npu.drivers.etnaviv.codec_v7 import V7Layout, V7Traversal, decode_v7
from mesa_npu.drivers.etnaviv.codec_v8_decode import decode_v8
from mesa_npu.drivers.etnaviv.codec_v8_format import (
    HEADER_BYTES as V8_HEADER_BYTES,
)
from mesa_npu.drivers.etnaviv.codec_v8_format import (
    STREAM_ALIGN_BITS,
    STREAM_SIZES_OFFSET,
    V8Layout,
)
from mesa_npu.util.soc import EtnavivNpu

from . import nn_compute as C
from .counters import JobCounters, frozen_counts
from .faults import FaultKind, JobFault
from .nn_config import NN_CONFIG_BYTES, Cache, NnJob, interpret
from .switches import ModelSwitches, SequentialSplit, V8Weights

V8_INPUT_OFFSET = 128  # v8 treats activations as signed x - 128 (brief §3.2)
WORD = 4
BITS_PER_BYTE = 8
V7_WIDE_INPUT = 64  # Mesa splits the sequential order for inputs wider than 64 (brief §3.1)


@dataclass(frozen=True, slots=True)
class Coefficients:
    """A decoded coefficient buffer in the form the arithmetic wants."""

    dense: np.ndarray | None  # float64 [OC, IC, KH, KW]: w - coef_zp as the hardware multiplies
    diagonal: np.ndarray | None  # float64 [C, KH, KW] instead, when that is a diagonal (v7 dw)
    bias: np.ndarray  # int64 [OC]: the stored bias field
    offsets: np.ndarray | None  # int64 [OC]: v7 per-kernel output offsets / addition offset
    nbytes: int  # bytes of the buffer the hardware reads
    acc_bound: int  # max |acc| over every input image (|x - shift| <= 255), for the float path
    slot_groups: int  # MAD dot-product groups per output pixel (macs_per_mad taps of a row)
    nonzero_groups: int  # those with a nonzero weight (what a zero-skipping core issues)


class NnUnit:
    def __init__(self, npu: EtnavivNpu, switches: ModelSwitches, cache: dict) -> None:
        self.npu = npu
        self.switches = switches
        self.cache = cache  # (generation, layout, digest) -> Coefficients, owned by the file

    def run(self, address: int, core_count: int, ctx) -> JobCounters:
        mem = ctx.memory
        words = mem.read(address, NN_CONFIG_BYTES, f"NN config at {address:#010x}")
        fields = E.NN_CONFIG.unpack_words(words)
        job = interpret(fields, self.npu, core_count, self.switches, ctx.warn)
        coefs = self._coefficients(job, mem)
        image = self._input(job, mem)
        out = self._compute(job, coefs, image)
        self._write(job, coefs, out, mem)
        return self._counters(job, coefs, address, ctx)

    # -- coefficients -------------------------------------------------------------------------

    def _layout(self, job: NnJob):
        try:
            if job.generation == 7:
                layout = V7Layout.for_job(
                    oc=job.oc,
                    ic=job.ic,
                    kh=job.kh,
                    kw=job.kw,
                    nn_cores=job.cores,
                    superblocks=job.superblocks,
                    zero_point=job.coef_zero_point,
                    input_width=job.in_x,
                )
                if layout.traversal is V7Traversal.SEQUENTIAL:
                    split = {
                        SequentialSplit.WIDE_INPUT: job.in_x > V7_WIDE_INPUT,
                        SequentialSplit.ALWAYS: True,
                        SequentialSplit.NEVER: False,
                    }[self.switches.v7_sequential_split]
                    layout = dataclasses.replace(layout, split_columns=split)
                return layout
            return V8Layout(
                oc=job.oc,
                ic=job.ic,
                kh=job.kh,
                kw=job.kw,
                nn_cores=job.cores,
                superblocks=job.superblocks,
                zero_point=job.coef_zero_point,
                depthwise=job.form == "depthwise",
            )
        except ValueError as e:
            raise JobFault(FaultKind.CONFIG, f"coefficient layout: {e}") from None

    def _extent(self, job: NnJob, layout, buf: np.ndarray) -> int:
        """Bytes of the coefficient buffer the hardware reads (from its own size fields)."""
        if job.generation == 7:
            header = layout.header_bytes
            if buf.size < header:
                return buf.size
            sizes = buf[: job.cores * WORD].view("<u4").astype(np.int64)
            return int(min(buf.size, header + sizes.sum()))
        if buf.size < V8_HEADER_BYTES:
            return buf.size
        bits = buf[STREAM_SIZES_OFFSET : STREAM_SIZES_OFFSET + job.cores * WORD]
        bits = bits.view("<u4").astype(np.int64)
        streams = (-(-bits // STREAM_ALIGN_BITS) * STREAM_ALIGN_BITS // BITS_PER_BYTE).sum()
        return int(min(buf.size, V8_HEADER_BYTES + streams + WORD * job.oc))

    def _coefficients(self, job: NnJob, mem) -> Coefficients:
        layout = self._layout(job)
        what = f"coefficients (KERNEL_ADDRESS {job.kernel_address:#010x})"
        buf = mem.read_to_end(job.kernel_address, what)
        buf = buf[: self._extent(job, layout, buf)]
        key = (job.generation, layout, hashlib.blake2b(buf.tobytes(), digest_size=16).digest())
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        try:
            if job.generation == 7:
                decoded = decode_v7(buf, layout)
                n = job.oc
                w = decoded.weights[:n].astype(np.int16) - job.coef_zero_point
                offsets = decoded.offsets[:n].astype(np.int64)
                bias = decoded.bias_fields[:n].astype(np.int64)
            else:
                decoded = decode_v8(buf, layout)
                w = decoded.weights.astype(np.int16) - job.coef_zero_point
                if self.switches.v8_weights is V8Weights.SIGNED_BYTE:
                    # the coded byte w - zp (mod 256) multiplied as an int8 (switch)
                    w = (w % 256).astype(np.uint8).view(np.int8).astype(np.int16)
                offsets = None
                bias = decoded.bias_fields.astype(np.int64)
        except WeightStreamError as e:
            raise JobFault(FaultKind.WEIGHTS, f"{what}: {e}") from None
        diag = C.diagonal(w) if job.form in ("conv", "fc") else None
        dense = w.astype(np.float64) if diag is None else None
        diag = diag.astype(np.float64) if diag is not None else None
        bound = int(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max(initial=0)) * C.UINT8_MAX
        if offsets is not None:  # the v7 add multiplies the second plane by the offset slot
            bound += int(np.abs(offsets).max(initial=0)) * C.UINT8_MAX
        bound += int(np.abs(bias).max(initial=0))
        groups, nonzero = self._slot_groups(job, w, diag)
        coefs = Coefficients(dense, diag, bias, offsets, int(buf.size), bound, groups, nonzero)
        self.cache[key] = coefs
        return coefs

    def _slot_groups(self, job: NnJob, w: np.ndarray, diag: np.ndarray | None) -> tuple[int, int]:
        """MAD groups per output pixel, all and with a nonzero weight: each kernel row is taken
        ``macs_per_mad`` taps at a time (a 1x1 kernel fills one tap of three). ``w`` holds the
        coded weights minus their zero point, so a zero is a tap that adds nothing; a v7
        depthwise job's dense kernels are zero off the diagonal (``diag``)."""
        width = self.npu.macs_per_mad
        taps = w if diag is None else diag[:, None]  # [OC, IC or 1, KH, KW]
        pad = -taps.shape[-1] % width
        taps = np.pad(taps, [(0, 0)] * 3 + [(0, pad)]).reshape(*taps.shape[:3], -1, width)
        nonzero = int(np.any(taps != 0, axis=-1).sum())
        groups = job.oc * (1 if job.form == "depthwise" else job.ic) * job.kh * taps.shape[3]
        if job.form == "add":  # the second plane: one more tap per output pixel
            groups, nonzero = groups + 1, nonzero + 1
        return groups, nonzero

    # -- images -------------------------------------------------------------------------------

    def _input(self, job: NnJob, mem) -> np.ndarray:
        span = (job.in_planes - 1) * job.in_plane + (job.in_y - 1) * job.in_row + job.in_x
        m, off = mem.locate(job.in_address, span, "NN input image (IN_IMAGE_ADDRESS)")
        return C.strided_image(
            m.data, off, job.in_planes, job.in_y, job.in_x, job.in_row, job.in_plane
        )

    def _compute(self, job: NnJob, coefs: Coefficients, image: np.ndarray) -> np.ndarray:
        step = 2 if job.pool else 1
        oh, ow = job.written_y, job.written_x
        height, width = (oh - 1) * step + job.kh, (ow - 1) * step + job.kw
        window = C.padded_window(image, job.border, job.off_x, job.off_y, height, width)
        shift = V8_INPUT_OFFSET if job.generation == 8 else 0
        x = window.astype(np.float64) - shift
        if job.form == "add":
            acc = C.conv_dense(x[:1], coefs.dense, oh, ow, step)
            acc += float(coefs.offsets[0]) * x[1, :oh, :ow]
        elif job.form == "depthwise":
            acc = C.conv_depthwise(x, coefs.dense[:, 0], oh, ow, step)
        elif coefs.diagonal is not None:
            acc = C.conv_depthwise(x, coefs.diagonal, oh, ow, step)
        else:
            acc = C.conv_dense(x, coefs.dense, oh, ow, step)
        if coefs.acc_bound * job.multiplier < C.EXACT_FLOAT:
            return C.requantize_float(
                acc,
                coefs.bias.astype(np.float64),
                job.multiplier,
                job.shift,
                self.switches.nn_rounding,
                job.relu,
                job.out_zero_point,
            )
        acc = acc.astype(np.int64)
        acc += coefs.bias[:, None, None]
        return C.requantize(
            acc,
            job.multiplier,
            job.shift,
            self.switches.nn_rounding,
            job.relu,
            job.out_zero_point,
        )

    def _write(self, job: NnJob, coefs: Coefficients, out: np.ndarray, mem) -> None:
        oc, oh, ow = out.shape
        plane_span = (oh - 1) * job.out_row + ow
        if job.form == "add":
            planes = np.zeros(1, dtype=np.int64)
        elif coefs.offsets is not None:
            planes = coefs.offsets
        else:
            planes = np.arange(oc, dtype=np.int64) * job.out_plane
        what = "NN output image (OUT_IMAGE_ADDRESS)"
        regular = planes[0] == 0 and (oc == 1 or bool(np.all(np.diff(planes) == job.out_plane)))
        if regular:
            span = (oc - 1) * job.out_plane + plane_span
            m, off = mem.locate(job.out_address, span, what)
            mem.write_view(job.out_address, span, what)
            view = C.strided_image(m.data, off, oc, oh, ow, job.out_row, job.out_plane)
            view[...] = out
            return
        for c in range(oc):
            address = job.out_address + int(planes[c])
            m, off = mem.locate(address, plane_span, f"{what} plane {c}")
            mem.write_view(address, plane_span, f"{what} plane {c}")
            C.strided_image(m.data, off, 1, oh, ow, job.out_row, job.out_plane)[0] = out[c]

    # -- counters -----------------------------------------------------------------------------

    def _counters(self, job: NnJob, coefs: Coefficients, address: int, ctx) -> JobCounters:
        outputs = job.out_x * job.out_y
        if job.form == "add":
            macs = outputs * (job.kh * job.kw + 1)
        elif job.form == "depthwise":
            macs = job.oc * outputs * job.kh * job.kw
        else:
            macs = job.oc * outputs * job.kh * job.kw * job.ic
        size, tiles = coefs.nbytes, job.tiles
        kc = job.kernel_cache
        cached = {Cache.NO_CACHE: 0, Cache.FULL_CACHE: size}.get(kc.mode, min(size, kc.size))
        fetched = size + (size - cached) * (tiles - 1)
        hits = cached * (tiles - 1)
        image = job.in_planes * job.in_x * job.in_y
        if job.image_cache.size:
            input_read = image
            hits += image * (job.superblocks - 1)
        else:
            input_read = image * job.superblocks
        written = job.written_x * job.written_y * (1 if job.form == "add" else job.oc)
        return JobCounters(
            unit="NN",
            fence=ctx.fence,
            index=ctx.job,
            config_address=address,
            kind=job.form,
            macs=macs,
            bytes_read=frozen_counts(
                {"input": input_read, "weights": fetched, "config": NN_CONFIG_BYTES}
            ),
            bytes_written=frozen_counts({"output": written}),
            weight_bytes_fetched=fetched,
            sram_hits=hits,
            cores=job.cores_used,
            tiles=tiles,
            superblocks=job.superblocks,
            slot_macs=outputs * coefs.slot_groups * self.npu.macs_per_mad,
            nonzero_slot_macs=outputs * coefs.nonzero_groups * self.npu.macs_per_mad,
            out_x=job.out_x,
            tile_x=job.tile_x,
        )
