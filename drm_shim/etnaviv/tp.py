"""The TP (tensor processor) unit: transposes, reshuffles, pads and PWL lookups from a TP
configuration in GPU memory (brief §6; Mesa builds them in ``etnaviv_ml_tp.c``).

One model covers every Mesa TP job (``docs/etnaviv-npu-model.md`` §4, our interpretation): the
input window is walked plane by plane, tile row by tile row, tile by tile, row-major inside a
tile; each element's running number over that nominal geometry is split by the output loop
counts (mixed radix, loop 0 fastest, count 0 = "to the next traversal level", loop 6 takes the
rest) and the output address is the sum of loop index times loop increment. Values go through
int-to-float (minus the input zero point), the optional PWL table, the output scale, and
float-to-int (plus the output zero point).
"""

from __future__ import annotations

import numpy as np

from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.util.soc import EtnavivNpu

from . import nn_compute as C
from . import pwl
from .counters import JobCounters, frozen_counts
from .faults import FaultKind, JobFault
from .switches import ModelSwitches, Rounding

TP_CONFIG_BYTES = 124  # 31 words (brief §6)
CONFIG_ALIGN = 64
OUT_LOOPS = 6  # loops 0..5 have counts; loop 6 only an increment
POSTSHIFT_BITS = 7  # ALU_OUTPUT_POSTSHIFT is 5 + 2 bits; Mesa's wrap for scales >= 2 makes it
# a two's complement value (0x7F - exponent goes negative)
MULTIPLIER_BITS = 15  # ALU_OUTPUT_POST_MULTIPLIER: top 15 mantissa bits of the scale
BORDER_BITS = 16  # IN_IMAGE_BORDER_CONST, read as a signed value
UINT8_MAX = 255

# Fields the model does not interpret: a job that sets one faults as "not modelled".
NOT_MODELLED = (
    "IN_TILE_SEQUENCE",
    "IN_TILE_GLOBAL_MEM",
    "IN_TILE_LIST_ADDRESS",
    "ALU_SQUARE_ENABLE",
    "ALU_HORZ_PROCESSING",
    "ALU_HORZ_PROC_COUNT",
    "ALU_HORZ_PROC_STRIDE",
    "ALU_VERT_PROCESSING",
    "ALU_VERT_PROC_COUNT",
    "ALU_VERT_PROC_STRIDE",
    "ALU_NMS_ENABLE",
    "ALU_MULT_ENABLE",
    "OUT_TILE_SKIP_AT_BORDER",
    "OUT_BRICK_MODE",
    "ALU_Z_FILTER_MODE",
    "ALU_SQUARE_PRESHIFT",
    "IN_IMAGE_DATA_TYPE",
    "OUT_IMAGE_DATA_TYPE",
    "ALU_FILTER_PWL_SWAP",
    "ALU_INPUT_PRESHIFT",
    "ALU_REORDER_BITS_USED",
    "ALU_REORDER_LOOP_2_MODE",
    "IN_IMAGE_BORDER_MODE",
    "IN_IMAGE_CIRCULAR_BUF_SIZE",
    "OUT_IMAGE_CIRCULAR_BUF_SIZE",
)
REQUIRED_ONE = ("IN_IMAGE_GLOBAL_MEM", "OUT_IMAGE_GLOBAL_MEM", "ALU_I2F_ENABLE", "ALU_F2I_ENABLE")


def _fault(message: str) -> JobFault:
    return JobFault(FaultKind.CONFIG, message)


def round_ties(values: np.ndarray, rounding: Rounding) -> np.ndarray:
    if rounding is Rounding.HALF_EVEN:
        return np.rint(values)
    if rounding is Rounding.HALF_UP:
        return np.floor(values + 0.5)
    return np.where(values < 0, -np.floor(-values + 0.5), np.floor(values + 0.5))


def loop_counts(f, levels: list[int]) -> list[int]:
    """Effective counts of loops 0..5: a count of 0 reaches the next level boundary."""
    counts, product = [], 1
    for i in range(OUT_LOOPS):
        count = getattr(f, f"OUT_LOOP_{i}_COUNT")
        if count == 0:
            bigger = [b for b in levels if b > product and b % product == 0]
            if not bigger:
                raise _fault(f"OUT_LOOP_{i}_COUNT 0 reaches no traversal level")
            count = bigger[0] // product
        counts.append(count)
        product *= count
    if product not in levels:
        raise _fault(f"output loops 0..5 cover {product} elements, not a traversal level {levels}")
    return counts


class TpUnit:
    def __init__(self, npu: EtnavivNpu, switches: ModelSwitches) -> None:
        self.npu = npu
        self.switches = switches
        self.lut: np.ndarray | None = None  # the last PWL table loaded

    def run(self, group: list[int], ctx) -> JobCounters:
        if len(group) > self.npu.tp_cores:
            raise _fault(f"a TP job of {len(group)} cores on a {self.npu.tp_cores}-core TP unit")
        read = {"input": 0, "lut": 0, "config": 0}
        written, kind = 0, "copy"
        for core, raw in enumerate(group):
            address = raw - raw % CONFIG_ALIGN
            words = ctx.memory.read(address, TP_CONFIG_BYTES, f"TP config at {address:#010x}")
            f = E.TP_CONFIG.unpack_words(words)
            non_last = core < len(group) - 1
            if bool(f.NO_FLUSH) != non_last:
                ctx.warn(
                    f"TP core {core} of {len(group)}: NO_FLUSH {f.NO_FLUSH} but the instruction "
                    f"address says {'non-last' if non_last else 'last'} core"
                )
            n_in, n_out, lut = self._core(f, ctx, core)
            read["input"] += n_in
            read["lut"] += lut
            read["config"] += TP_CONFIG_BYTES
            written += n_out
            kind = "pwl" if f.ALU_PWL_ENABLE else kind
        return JobCounters(
            unit="TP",
            fence=ctx.fence,
            index=ctx.job,
            config_address=group[0] - group[0] % CONFIG_ALIGN,
            kind=kind,
            bytes_read=frozen_counts(read),
            bytes_written=frozen_counts({"output": written}),
            cores=len(group),
        )

    def _check(self, f) -> None:
        for name in NOT_MODELLED:
            if getattr(f, name):
                raise JobFault(FaultKind.UNSUPPORTED, f"{name} = {getattr(f, name)}")
        for name in REQUIRED_ONE:
            if getattr(f, name) != 1:
                raise JobFault(FaultKind.UNSUPPORTED, f"{name} = {getattr(f, name)} (only 1)")
        for name in ("IN_IMAGE_X_SIZE", "IN_IMAGE_Y_SIZE", "IN_IMAGE_Z_SIZE"):
            if getattr(f, name) == 0:
                raise _fault(f"{name} is 0")
        for name in ("IN_TILE_X", "IN_TILE_Y"):
            size, inc = getattr(f, f"{name}_SIZE"), getattr(f, f"{name}_INC")
            if size == 0 or size != inc:
                raise _fault(f"{name}_SIZE {size} with {name}_INC {inc} (must be equal, > 0)")
        if f.IN_WINDOW_X_END < f.IN_WINDOW_X_START or f.IN_WINDOW_Y_END < f.IN_WINDOW_Y_START:
            raise _fault(
                f"window {f.IN_WINDOW_X_START}..{f.IN_WINDOW_X_END} x "
                f"{f.IN_WINDOW_Y_START}..{f.IN_WINDOW_Y_END} ends before it starts"
            )
        if f.IN_IMAGE_STRIDE < f.IN_IMAGE_X_SIZE:
            raise _fault(f"IN_IMAGE_STRIDE {f.IN_IMAGE_STRIDE} < IN_IMAGE_X_SIZE")

    def _core(self, f, ctx, core: int) -> tuple[int, int, int]:
        self._check(f)
        mem = ctx.memory
        xs, ys = f.IN_WINDOW_X_START, f.IN_WINDOW_Y_START
        w, h = f.IN_WINDOW_X_END - xs + 1, f.IN_WINDOW_Y_END - ys + 1
        zb, za = f.IN_WINDOW_Z_START_OVERFETCH, f.IN_WINDOW_Z_END_OVERFETCH
        X, Y, Z = f.IN_IMAGE_X_SIZE, f.IN_IMAGE_Y_SIZE, f.IN_IMAGE_Z_SIZE
        nz = zb + Z + za
        span = (Z - 1) * f.IN_IMAGE_SLICE + (Y - 1) * f.IN_IMAGE_STRIDE + X
        what = f"TP core {core} input (IN_IMAGE_BASE_ADDRESS)"
        m, off = mem.locate(f.IN_IMAGE_BASE_ADDRESS, span, what)
        image = C.strided_image(m.data, off, Z, Y, X, f.IN_IMAGE_STRIDE, f.IN_IMAGE_SLICE)
        # values as int (x - in_zp), border elements the border constant
        border = f.IN_IMAGE_BORDER_CONST
        border -= (border >= 1 << (BORDER_BITS - 1)) << BORDER_BITS
        v = np.full((nz, h, w), border, dtype=np.int64)
        y0, y1 = max(ys, 0), min(ys + h, Y)
        x0, x1 = max(xs, 0), min(xs + w, X)
        inside = 0
        if y0 < y1 and x0 < x1:
            block = image[:, y0:y1, x0:x1].astype(np.int64) - f.IN_ZP
            v[zb : zb + Z, y0 - ys : y1 - ys, x0 - xs : x1 - xs] = block
            inside = block.size
        out = self._values(f, v, mem)
        addresses = self._addresses(f, w, h, nz)
        lo, hi = int(addresses.min()), int(addresses.max())
        base = f.OUT_IMAGE_BASE_ADDRESS
        what = f"TP core {core} output (OUT_IMAGE_BASE_ADDRESS {base:#010x})"
        m, off = mem.locate(base + lo, hi - lo + 1, what)
        mem.write_view(base + lo, hi - lo + 1, what)
        m.data[off + (addresses - lo)] = out.ravel()
        lut = pwl.LUT_BYTES if f.ALU_PWL_ENABLE and f.ALU_LOAD_PWL_LUT else 0
        return inside, out.size, lut

    def _values(self, f, v: np.ndarray, mem) -> np.ndarray:
        if f.ALU_PWL_ENABLE:
            if f.ALU_LOAD_PWL_LUT:
                if not f.ALU_LOAD_PWL_LUT_GLOBAL_MEM:
                    raise JobFault(FaultKind.UNSUPPORTED, "PWL table from on-chip memory")
                address = f.ALU_LOAD_PWL_LUT_ADDRESS
                self.lut = mem.words(address, pwl.LUT_BYTES, f"PWL LUT at {address:#010x}")
                self.lut = self.lut.copy()
            if self.lut is None:
                raise _fault("ALU_PWL_ENABLE without a loaded PWL table")
            y = pwl.lookup(self.lut, v, self.switches.pwl_interpolation)
        else:
            y = v.astype(np.float64)
        if f.ALU_RELU_ENABLE:
            y = np.maximum(y, 0.0)
        shift = f.ALU_OUTPUT_POSTSHIFT
        shift -= (shift >= 1 << (POSTSHIFT_BITS - 1)) << POSTSHIFT_BITS
        scale = (1 + f.ALU_OUTPUT_POST_MULTIPLIER / (1 << MULTIPLIER_BITS)) * 2.0**-shift
        q = round_ties(y * scale, self.switches.tp_rounding) + f.OUT_ZP
        return np.clip(q, 0, UINT8_MAX).astype(np.uint8)

    def _addresses(self, f, w: int, h: int, nz: int) -> np.ndarray:
        """Output byte offset of every window element, [nz, h, w] order."""
        tw, th = f.IN_TILE_X_SIZE, f.IN_TILE_Y_SIZE
        ncx, ncy = -(-w // tw), -(-h // th)
        levels = [tw, tw * th, tw * th * ncx, tw * th * ncx * ncy, tw * th * ncx * ncy * nz]
        counts = loop_counts(f, levels)
        x = np.arange(w)
        y = np.arange(h)
        z = np.arange(nz)
        xpart = (x % tw) + tw * th * (x // tw)  # tx and the tile column
        ypart = tw * (y % th) + tw * th * ncx * (y // th)  # ty and the tile row
        n = (z[:, None, None] * levels[3] + ypart[None, :, None] + xpart[None, None, :]).ravel()
        address = np.zeros(n.size, dtype=np.int64)
        rest = n
        for i, count in enumerate(counts):
            address += (rest % count) * getattr(f, f"OUT_LOOP_{i}_INC")
            rest = rest // count
        return address + rest * f.OUT_LOOP_6_INC
