"""TP jobs: transpose, detranspose, reshuffle, pad, permute, element-wise copy/requantize/clamp
and the PWL lookup-table jobs, with their multi-core splits (Mesa: ``etnaviv_ml_tp.c``:
``create_transpose_config``, ``create_detranspose_config``, ``create_reshuffle_config``,
``split_reshuffle``, ``create_pad_config``, the PWL configs, ``etna_ml_emit_operation_tp``).

A TP job walks its input (per plane z, the window cut into tiles, each tile row-major) and
writes element number n to ``base + Σ loop_i · inc_i``, n split by the output loop counts
(brief ``etnaviv-ml.md`` §6 and ``docs/etnaviv-npu-model.md`` §4, the simulator's reading of the
inferred semantics). Every job here is therefore one :class:`TpWalk` per core: input box and
strides, window, tile and the loops. Values go through the ALU: ``v = x - in_zp`` (or the border
constant), optionally ``max(v, 0)``, optionally the PWL table, then
``round(v · (1 + m / 2^15) · 2^-shift) + out_zp``. With ``m = shift = 0`` and equal zero points
that is a copy, so every data-movement job is exact.

A clamp ``[lo, hi]`` (uint8 domain) needs no table: a first job requantizes with its output zero
point raised by ``255 - hi``, so saturation at 255 is the upper bound, and a second job lowers
it back with ``max(., 0)`` at ``lo`` (:func:`clamp_jobs`). Exact whenever the first job's scale
is one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

import numpy as np

from ...util.fixedpoint import (
    float32_rounded_parts,
    fp21_encode,
    fp21_table_codes,
    fp21_table_inputs,
    fp21_without_sign,
    int16_bits,
)
from . import etnaviv_regs as E
from .ml_nn import Addresses, Ref, field_max, va

TP_DOMAIN = E.TP_CONFIG
MAX_TP_X = field_max("IN_IMAGE_X_SIZE", TP_DOMAIN)  # 16 bits
MAX_TP_Z = field_max("IN_IMAGE_Z_SIZE", TP_DOMAIN)
LOOPS = 6  # OUT_LOOP_0..5 have a count; loop 6 takes the rest (brief §6)
MULTIPLIER_BITS = 15  # ALU_OUTPUT_POST_MULTIPLIER (brief §4 "TP PWL jobs")
FLOAT32_EXPONENT_BIAS = 127  # the post shift is 0x7F - exponent (brief §4)
ROUND_TO_NEAREST = 1  # FLAT/INTEGER_ROUNDING_MODE: Mesa's default 1
UNK03950_SPLIT = 0x8  # GL_UNK03950 for non-last cores of multi-core PAD/PWL jobs (brief §8)
UINT8_MAX = 255


class TpKind(enum.Enum):
    TRANSPOSE = "transpose"
    DETRANSPOSE = "detranspose"
    RESHUFFLE = "reshuffle"
    PAD = "pad"
    PERMUTE = "permute"
    COPY = "copy"
    CLAMP = "clamp"
    ABS = "abs"
    LOGISTIC = "logistic"

    @property
    def marks_split(self) -> bool:
        """Mesa writes GL_UNK03950 = 0x8 before the non-last cores of these kinds."""
        return self in (TpKind.PAD, TpKind.CLAMP, TpKind.ABS, TpKind.LOGISTIC)


@dataclass(frozen=True, slots=True)
class TpWalk:
    """One core's walk: input box (x fastest, ``stride`` bytes per row, ``slice`` per plane),
    window (signed; outside the image reads the border), tiles, z overfetch and output loops."""

    input: Ref
    output: Ref
    size: tuple[int, int, int]  # x, y, z
    stride: int
    slice: int
    window: tuple[int, int, int, int]  # x_start, y_start, x_end, y_end (inclusive)
    tile: tuple[int, int]
    loops: tuple[tuple[int, int], ...]  # (count, inc) of loops 0..5
    loop6_inc: int = 0
    overfetch: tuple[int, int] = (0, 0)  # border planes before and after


@dataclass(frozen=True, slots=True)
class TpAlu:
    """The value path of a job (uint8 zero points; ``border`` in the ``x - in_zp`` domain)."""

    in_zp: int
    out_zp: int
    border: int = 0
    relu: bool = False
    post_multiplier: int = 0
    post_shift: int = 0
    lut: Ref | None = None


@dataclass(frozen=True, slots=True)
class TpJob:
    origin: int
    name: str
    kind: TpKind
    walks: tuple[TpWalk, ...]  # one per core, in emission order
    alu: TpAlu

    @property
    def elements(self) -> int:
        return sum(
            (w.window[2] - w.window[0] + 1) * (w.window[3] - w.window[1] + 1)
            * (w.size[2] + sum(w.overfetch))
            for w in self.walks
        )  # fmt: skip


def _loops(*pairs: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    assert len(pairs) <= LOOPS
    return tuple(pairs) + ((1, 0),) * (LOOPS - len(pairs))


def tp_scale(scale: float) -> tuple[int, int]:
    """(post multiplier, post shift) of a TP scale ``(1 + m/2^15) · 2^-shift``: the float32
    mantissa rounded to 15 bits (Mesa's rounding, brief §4) and ``0x7F - exponent``. The scale
    must be below 2 (the shift is not negative)."""
    if scale == 1.0:
        return 0, 0
    exponent, mantissa = float32_rounded_parts(scale, MULTIPLIER_BITS)
    shift = FLOAT32_EXPONENT_BIAS - exponent
    if scale <= 0.0 or shift < 0:
        raise ValueError(f"TP scale {scale:.6g} is outside (0, 2)")
    return mantissa, shift


def tp_scale_ok(scale: float) -> bool:
    try:
        tp_scale(scale)
    except ValueError:
        return False
    return True


# -- walks --------------------------------------------------------------------------------------


def flat_walk(input: Ref, output: Ref, elements: int) -> TpWalk:
    """``elements`` contiguous bytes, read and written in order: rows of at most
    ``IN_IMAGE_X_SIZE`` bytes, one row per plane (so cores can split over planes)."""
    row = _row_length(elements)
    planes = elements // row
    return TpWalk(input, output, (row, 1, planes), row, row, (0, 0, row - 1, 0), (row, 1),
                  _loops((row, 1), (planes, row)))  # fmt: skip


def _row_length(elements: int) -> int:
    limit = min(elements, MAX_TP_X)
    for x in range(limit, 0, -1):
        if elements % x == 0 and elements // x <= MAX_TP_Z:
            return x
    raise ValueError(f"{elements} elements do not fit a TP walk")


def transpose_walk(input: Ref, output: Ref, h: int, w: int, c: int) -> TpWalk:
    """NHWC -> planar NCHW (Mesa ``create_transpose_config``): x = C, y = W, z = H; tiles one
    channel wide and a row long; loops (w, c, h)."""
    return TpWalk(input, output, (c, w, h), c, w * c, (0, 0, c - 1, w - 1), (1, w),
                  _loops((w, 1), (c, h * w), (h, w)))  # fmt: skip


def detranspose_walk(input: Ref, output: Ref, h: int, w: int, c: int) -> TpWalk:
    """Planar NCHW -> NHWC (Mesa ``create_detranspose_config``): the planes as one image of
    ``H·C`` rows, 1x1 tiles; loops (w, -, h, c)."""
    return TpWalk(input, output, (w, h * c, 1), w, w * h * c, (0, 0, w - 1, h * c - 1), (1, 1),
                  _loops((w, c), (1, 0), (h, w * c), (c, 1), (1, w * h * c)))  # fmt: skip


def permute_walk(
    input: Ref, output: Ref, shape: tuple[int, int, int], out_strides: tuple[int, int, int]
) -> TpWalk:
    """Any permutation of an (H, W, C) NHWC tensor: element (h, w, c) goes to
    ``h·s0 + w·s1 + c·s2``. Rows are the C channels of one pixel."""
    h, w, c = shape
    return TpWalk(
        input,
        output,
        (c, w, h),
        c,
        w * c,
        (0, 0, c - 1, w - 1),
        (c, 1),
        _loops((c, out_strides[2]), (w, out_strides[1]), (h, out_strides[0])),
    )


def reshuffle_walk(
    input: Ref, output: Ref, in_hw: tuple[int, int], c: int, out_hw: tuple[int, int],
    pad: tuple[int, int],
) -> TpWalk:  # fmt: skip
    """Space-to-depth by 2 (Mesa ``create_reshuffle_config``): one tile per plane covering the
    ``2·out`` window from ``-pad``; output channel ``(2·dy + dx)·C + c`` (the IR's
    ``SPACE_TO_DEPTH`` order) holds pixel ``(2y + dy - pad_top, 2x + dx - pad_left)``."""
    (h, w), (oh, ow), (top, left) = in_hw, out_hw, pad
    plane = oh * ow
    window = (-left, -top, 2 * ow - 1 - left, 2 * oh - 1 - top)
    loops = _loops((2, c * plane), (ow, 1), (2, 2 * c * plane), (oh, ow), (c, plane))
    return TpWalk(input, output, (w, h, c), w, w * h, window, (2 * ow, 2 * oh), loops)


def pad_walk(
    input: Ref, output: Ref, chw: tuple[int, int, int], before: tuple[int, int, int],
    after: tuple[int, int, int],
) -> TpWalk:  # fmt: skip
    """Planar pad: the window reaches ``before``/``after`` past the image in x and y, the z
    overfetch adds border planes; the output is the dense padded planes."""
    (c, h, w), (bc, bh, bw), (ac, ah, aw) = chw, before, after
    ow, oh, oc = w + bw + aw, h + bh + ah, c + bc + ac
    window = (-bw, -bh, w - 1 + aw, h - 1 + ah)
    loops = _loops((ow, 1), (oh, ow), (oc, ow * oh))
    return TpWalk(input, output, (w, h, c), w, w * h, window, (ow, oh), loops, 0, (bc, ac))


def physical_dims(shape: tuple[int, int, int, int], planar: bool) -> tuple[int, int, int]:
    """(x, y, z) of a batch-1 NHWC-shaped tensor as stored: planar NCHW is (W, H, C), NHWC is
    (C, W, H)."""
    _, h, w, c = shape
    return (w, h, c) if planar else (c, w, h)


def physical_begin(begin: tuple[int, int, int, int], planar: bool) -> tuple[int, int, int]:
    _, h, w, c = begin
    return (w, h, c) if planar else (c, w, h)


def scatter_walk(
    input: Ref, part: tuple[int, int, int], output: Ref, base: tuple[int, int, int],
    begin: tuple[int, int, int],
) -> TpWalk:  # fmt: skip
    """Copy a whole (contiguous) part of dims ``part`` into the box of a bigger tensor of dims
    ``base`` that starts at ``begin`` (all physical (x, y, z)): a concatenation input."""
    (x, y, z), (bx, by, _) = part, base
    start = begin[0] + begin[1] * bx + begin[2] * bx * by
    out = Ref(output.bo, output.offset + start)
    return TpWalk(input, out, (x, y, z), x, x * y, (0, 0, x - 1, y - 1), (x, 1),
                  _loops((x, 1), (y, bx), (z, bx * by)))  # fmt: skip


def gather_walk(
    input: Ref, base: tuple[int, int, int], begin: tuple[int, int, int], output: Ref,
    part: tuple[int, int, int],
) -> TpWalk:  # fmt: skip
    """Copy the box of dims ``part`` at ``begin`` out of a tensor of dims ``base`` into a whole
    (contiguous) tensor: a split output. The window picks the box's rows and columns."""
    (x, y, z), (bx, by, _), (x0, y0, z0) = part, base, begin
    src = Ref(input.bo, input.offset + z0 * bx * by)
    window = (x0, y0, x0 + x - 1, y0 + y - 1)
    return TpWalk(src, output, (bx, by, z), bx, bx * by, window, (x, 1),
                  _loops((x, 1), (y, x), (z, x * y)))  # fmt: skip


def split_planes(walk: TpWalk, cores: int, out_plane: int) -> tuple[TpWalk, ...]:
    """Split a walk over its planes: core k takes ⌈remaining / (cores - k)⌉ input planes (Mesa's
    split rule); the first keeps the front overfetch, the last the back one. ``out_plane`` is
    the output bytes one input plane (with its loops) covers."""
    planes = walk.size[2]
    cores = max(1, min(cores, planes))
    if cores == 1:
        return (walk,)
    front, back = walk.overfetch
    parts, start = [], 0
    for k in range(cores):
        count = -(-(planes - start) // (cores - k))
        first, last = k == 0, k == cores - 1
        over = (front if first else 0, back if last else 0)
        written = count + over[0] + over[1]
        out_start = start + (0 if first else front)
        loops = _replace_plane_count(walk.loops, planes + front + back, written)
        parts.append(
            replace(
                walk,
                input=Ref(walk.input.bo, walk.input.offset + start * walk.slice),
                output=Ref(walk.output.bo, walk.output.offset + out_start * out_plane),
                size=(walk.size[0], walk.size[1], count),
                loops=loops,
                overfetch=over,
            )
        )
        start += count
    return tuple(parts)


def _replace_plane_count(loops, total: int, count: int):
    """The loop counting planes (the last one whose count is the plane total) gets ``count``."""
    out = list(loops)
    for i in range(len(out) - 1, -1, -1):
        if out[i][0] == total:
            out[i] = (count, out[i][1])
            return tuple(out)
    raise AssertionError(f"no loop counts the {total} planes of {loops}")


# -- jobs ---------------------------------------------------------------------------------------


def copy_alu(in_zp: int, out_zp: int, scale: float = 1.0, relu: bool = False) -> TpAlu:
    m, s = tp_scale(scale)
    return TpAlu(in_zp, out_zp, 0, relu, m, s)


def clamp_jobs(
    origin: int,
    name: str,
    walk_a: TpWalk,
    walk_b: TpWalk,
    in_zp: int,
    out_zp: int,
    scale: float,
    lo: int,
    hi: int,
    cores: int,
) -> list[TpJob]:
    """Requantize by ``scale`` and clamp to ``[lo, hi]`` (all uint8 domain) with copies only
    (module docstring). ``walk_a`` reads the input and writes the output; ``walk_b`` is the
    in-place walk over the output. Returns one or two jobs."""
    lo, hi = max(lo, 0), min(hi, UINT8_MAX)
    raise_by = UINT8_MAX - hi
    assert out_zp <= hi, "the clamp's upper bound is below the output zero point"
    need_b = lo > 0 or raise_by > 0
    need_a = scale != 1.0 or in_zp != out_zp or raise_by > 0 or not need_b
    jobs = []
    if need_a:
        alu = copy_alu(in_zp, out_zp + raise_by, scale)
        jobs.append(TpJob(origin, name, TpKind.CLAMP, _split(walk_a, cores), alu))
    if need_b:
        # After the first job the data is min(q, hi) + raise_by; without it, the input (whose
        # quantization is the output's), read through walk_a.
        walk = walk_b if need_a else walk_a
        jobs.append(lower_bound_job(origin, name, walk, raise_by if need_a else 0, lo, cores))
    return jobs


def lower_bound_job(
    origin: int, name: str, walk: TpWalk, raised: int, lo: int, cores: int
) -> TpJob:
    """The second half of a clamp: data holding ``min(q, hi) + raised`` becomes
    ``max(min(q, hi), lo)`` (``max(v, 0)`` with ``v = x - (raised + lo)``, plus ``lo``)."""
    return TpJob(origin, name, TpKind.CLAMP, _split(walk, cores), TpAlu(raised + lo, lo, 0, True))


def _split(walk: TpWalk, cores: int) -> tuple[TpWalk, ...]:
    """Split an element-wise (flat) walk over cores: one input row per plane, as many output
    bytes per plane."""
    return split_planes(walk, cores, walk.stride)


# -- PWL lookup tables -----------------------------------------------------------------------------

LUT_ENTRIES = 1024  # brief §6: a 4 KiB table of u32 fp21 codes
LUT_BYTES = LUT_ENTRIES * 4


def _lut_bytes(codes: np.ndarray) -> bytes:
    return np.asarray(codes, dtype="<u4").tobytes()


def abs_lut() -> bytes:
    """|v|: every entry is its own code with the sign cleared, so the interpolation between
    entries (``docs/etnaviv-npu-model.md`` §4) reproduces |v| exactly."""
    return _lut_bytes(fp21_without_sign(fp21_table_codes(LUT_ENTRIES)))


def function_lut(f, in_scale: float, out_scale: float) -> bytes:
    """A table of ``f(v · in_scale) / out_scale`` at every entry's input value ``v`` (the
    quantized input minus its zero point), for a job whose post scale is one."""
    v = fp21_table_inputs(LUT_ENTRIES)
    with np.errstate(over="ignore"):
        return _lut_bytes(fp21_encode(f(v * in_scale) / out_scale))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow


def pwl_alu(in_zp: int, out_zp: int, lut: Ref, scale: float = 1.0) -> TpAlu:
    m, s = tp_scale(scale)
    return TpAlu(in_zp, out_zp, 0, False, m, s, lut)


# -- emission -----------------------------------------------------------------------------------


def emit_tp_config(job: TpJob, core: int, addresses: Addresses) -> bytes:
    """The 124-byte TP configuration of one core of ``job`` (brief §6 defaults, Mesa
    ``set_default_tp_config`` and the per-kind configs)."""
    w, a = job.walks[core], job.alu
    last = core == len(job.walks) - 1
    loops = {}
    for i, (count, inc) in enumerate(w.loops):
        loops[f"OUT_LOOP_{i}_COUNT"] = count
        loops[f"OUT_LOOP_{i}_INC"] = inc
    x0, y0, x1, y1 = w.window
    return TP_DOMAIN.pack_words(
        IN_IMAGE_X_SIZE=w.size[0],
        IN_IMAGE_Y_SIZE=w.size[1],
        IN_IMAGE_Z_SIZE=w.size[2],
        IN_IMAGE_STRIDE=w.stride,
        IN_IMAGE_SLICE=w.slice,
        IN_WINDOW_X_START=x0,
        IN_WINDOW_Y_START=y0,
        IN_WINDOW_X_END=x1,
        IN_WINDOW_Y_END=y1,
        IN_IMAGE_GLOBAL_MEM=1,
        ALU_I2F_ENABLE=1,
        ALU_F2I_ENABLE=1,
        ALU_PWL_ENABLE=int(a.lut is not None),
        ALU_LOAD_PWL_LUT=int(a.lut is not None),
        ALU_LOAD_PWL_LUT_GLOBAL_MEM=int(a.lut is not None),
        ALU_LOAD_PWL_LUT_ADDRESS=va(a.lut, addresses) if a.lut is not None else 0,
        ALU_PWL_SIGN_SUPPORT=int(a.lut is not None),
        IN_TILE_X_SIZE=w.tile[0],
        IN_TILE_Y_SIZE=w.tile[1],
        IN_TILE_X_INC=w.tile[0],
        IN_TILE_Y_INC=w.tile[1],
        IN_IMAGE_BASE_ADDRESS=va(w.input, addresses),
        OUT_IMAGE_GLOBAL_MEM=1,
        IN_WINDOW_Z_START_OVERFETCH=w.overfetch[0],
        IN_WINDOW_Z_END_OVERFETCH=w.overfetch[1],
        ALU_RELU_ENABLE=int(a.relu),
        NO_FLUSH=int(not last),
        LAST=1,
        OUT_IMAGE_BASE_ADDRESS=va(w.output, addresses),
        OUT_LOOP_6_INC=w.loop6_inc,
        FLAT_ROUNDING_MODE=ROUND_TO_NEAREST,
        INTEGER_ROUNDING_MODE=ROUND_TO_NEAREST,
        ALU_OUTPUT_POSTSHIFT=a.post_shift,
        IN_IMAGE_BORDER_CONST=int16_bits(a.border),
        IN_ZP=a.in_zp,
        OUT_ZP=a.out_zp,
        ALU_OUTPUT_POST_MULTIPLIER=a.post_multiplier,
        **loops,
    )


# Fields of a TP configuration holding GPU addresses (relocated when a subgraph is placed);
# the LUT address only when the job loads a table.
TP_ADDRESS_FIELDS = ("IN_IMAGE_BASE_ADDRESS", "OUT_IMAGE_BASE_ADDRESS")
TP_LUT_FIELD = "ALU_LOAD_PWL_LUT_ADDRESS"
