"""v7 NN jobs (Amlogic A311D): tiling, SRAM caching and the zero-run-length coefficient buffer
(Mesa: ``etnaviv_ml_nn_v7.c``: ``etna_ml_calculate_tiling_v7``, ``calc_superblocks``,
``calc_interleave_mode``, ``etna_ml_create_coeffs_v7``; the caching half of
``etnaviv_ml_nn.c``'s ``create_nn_config``).

Facts from brief ``etnaviv-ml.md`` §3.1 and §5. Where Mesa mixes TFLite H and W (§10) we use the
hardware axes: the output tile's x is the output width, the interleave mode is chosen from the
tile width and the kernel's x size (the input tile is ``tile_x + kx - 1`` wide), the tile height
from the kernel's y size, and the image cache holds ``(tile_x + kx - 1) x (tile_y + ky - 1)``
pixels per channel.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import codec_v7
from . import etnaviv_regs as E
from .ml_nn import (
    MAX_KERNELS_PER_CORE,
    Coefficients,
    ConvShape,
    NnWork,
    SramPlan,
    Tiling,
)
from .options import NpuTarget

MAX_TILE_WIDTH = 64  # Mesa MAX_TILE_WIDTH (brief §5)
INTERLEAVE_LIMIT_1 = (MAX_TILE_WIDTH + 8) // 2  # input tile wider than this: interleave 1
INTERLEAVE_LIMIT_4 = (MAX_TILE_WIDTH + 8) // 4  # wider than this: at most 4, else at most 2
POINTWISE_SUPERBLOCK_DIVISOR = 3  # Mesa: 1-wide kernels keep at most ABD / 3 kernels
KERNEL_CACHE_START = 0x800  # brief §5: the first 2 KiB of SRAM are reserved
KERNEL_CACHE_MIN_END = 0xA00  # brief §5: a full kernel cache ends at least here
IMAGE_CACHE_ROW_ALIGN = 16  # brief §5: align(tile pixels, 16) per channel
CACHE_ALIGN = 128  # brief §5: cache sizes and ends are 128-byte aligned
# brief §5: Mesa's fixed partial-cache kernel patterns by output depth, largest first:
# (minimum out_z, pattern msb, low, high).
PARTIAL_PATTERNS = (
    (1024, 0x13, 0x80000, 0x0),
    (512, 0x3D, 0x0, 0x2AAAAAA0),
    (256, 0x3E, 0xFFFFAAAA, 0x7FFFFFFF),
    (160, 0x06, 0x7E, 0x0),
    (0, 0x3F, 0xFFFFFFFE, 0xFFFFFFFF),
)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _align(a: int, b: int) -> int:
    return _ceil(a, b) * b


def interleave_mode(tile_x: int, kx: int) -> int:
    """Mesa ``calc_interleave_mode`` (v7), with the kernel's x size."""
    span = kx - 1 + tile_x
    if span > INTERLEAVE_LIMIT_1:
        return 1
    if tile_x > MAX_TILE_WIDTH // 2:
        mode = 1
    elif tile_x > MAX_TILE_WIDTH // 4:
        mode = 2
    elif tile_x > MAX_TILE_WIDTH // 8:
        mode = 4
    else:
        mode = 8
    return min(mode, 4) if span > INTERLEAVE_LIMIT_4 else min(mode, 2)


def superblocks(out_z: int, kx: int, tile_y: int, mode: int, target: NpuTarget) -> int:
    """Mesa ``calc_superblocks`` (v7): how many passes over the image the kernels take."""
    cores = target.nn_cores
    abd = target.npu.accum_buffer_depth
    per_core = _ceil(out_z, cores)
    fit = abd * mode // tile_y
    if kx == 1:
        fit = min(fit, abd // POINTWISE_SUPERBLOCK_DIVISOR)
    fit = max(1, min(fit, per_core, MAX_KERNELS_PER_CORE))
    kernels = _ceil(out_z, cores * fit)
    groups = _ceil(out_z, kernels * cores)
    return _ceil(per_core, groups)


def tiling(shape: ConvShape, target: NpuTarget) -> Tiling:
    """Mesa ``etna_ml_calculate_tiling_v7`` on the hardware axes (module docstring)."""
    ibd = target.npu.input_buffer_depth
    abd = target.npu.accum_buffer_depth
    out_x, out_y = shape.computed_x, shape.computed_y
    tile_x = min(out_x, MAX_TILE_WIDTH)
    mode = interleave_mode(tile_x, shape.kx)
    tile_y = min(ibd * mode - shape.ky + 1, mode * abd, out_y)
    if shape.pooling and tile_y % 2:
        tile_y -= 1  # a first-pixel pool takes rows in pairs
    tile_y = max(tile_y, 1)
    blocks = superblocks(shape.out_z, shape.kx, tile_y, mode, target)
    kpc = _ceil(_ceil(shape.out_z, target.nn_cores), blocks)
    return Tiling(tile_x, tile_y, mode, blocks, kpc)


def _layout(work: NnWork, blocks: int, target: NpuTarget) -> codec_v7.V7Layout:
    s = work.shape
    oc, ic = s.out_z, s.in_z
    w = work.weights
    while True:
        try:
            return codec_v7.V7Layout.for_job(
                oc=oc,
                ic=ic,
                kh=w.shape[2],
                kw=w.shape[3],
                nn_cores=target.nn_cores,
                superblocks=blocks,
                zero_point=work.quant.weight_zp,
                depthwise=w.shape[1] == 1 and ic > 1,
                input_width=s.in_x,
            )
        except ValueError:
            if blocks == 1:
                raise
            blocks -= 1  # Mesa's superblock count can leave the last superblock empty


def coefficients(work: NnWork, blocks: int, target: NpuTarget) -> tuple[Coefficients, int]:
    """The v7 coefficient buffer of ``work`` and the superblock count it was laid out for."""
    layout = _layout(work, blocks, target)
    offsets = codec_v7.plane_offsets(layout, work.shape.out_x * work.shape.out_y)
    kwargs = dict(
        input_zero_point=work.quant.in_zp,
        max_zrl_bits=target.npu.zrl_bits,
        config=target.options.weight_config,
    )
    if work.weights.shape[1] == 1 and layout.ic > 1:  # depthwise, expanded to dense
        enc = codec_v7.encode_v7_depthwise(work.weights, work.biases, offsets, layout, **kwargs)
        kind = "dw-expanded"
    else:
        enc = codec_v7.encode_v7(work.weights, work.biases, offsets, layout, **kwargs)
        kind = layout.traversal.value
    detail = f"v7 {kind} zrl_bits={enc.zrl_bits} {len(enc.data)} B"
    return Coefficients(enc.data, enc.cache_size, detail), layout.superblocks


def image_cache_size(shape: ConvShape, tile: Tiling) -> int:
    """Bytes of the input tiles one superblock pass reads (0 with a single superblock)."""
    if tile.superblocks == 1:
        return 0  # Mesa: no point caching the image for one pass
    pixels = (tile.tile_x + shape.kx - 1) * (tile.tile_y + shape.ky - 1)
    return _align(_align(pixels, IMAGE_CACHE_ROW_ALIGN) * shape.in_z, CACHE_ALIGN)


def sram_plan(shape: ConvShape, tile: Tiling, coef_cache: int, target: NpuTarget) -> SramPlan:
    """Mesa's v7 SRAM caching choice (brief §5), or no caching with ``sram=off``."""
    full, partial = E.SramCacheMode.FULL_CACHE, E.SramCacheMode.PARTIAL_CACHE
    if not target.options.sram:
        return SramPlan(image_end=KERNEL_CACHE_START)
    sram = target.npu.sram_bytes
    image = image_cache_size(shape, tile)
    start = KERNEL_CACHE_START
    msb = low = high = 0
    if start + coef_cache + image < sram:
        mode = full
        end = max(min(_align(start + coef_cache, CACHE_ALIGN), sram), KERNEL_CACHE_MIN_END)
    else:
        mode = partial
        _, msb, low, high = next(p for p in PARTIAL_PATTERNS if shape.out_z >= p[0])
        end = 0
        if start + coef_cache >= sram:
            end, image = sram, 0
        elif image > sram:
            # Mesa leaves the kernel end at 0 here (brief §5 "quirk"); without an image cache
            # the kernels may use the rest of the SRAM, as in the branch above.
            end, image = sram, 0
        else:
            end = sram - image
    if image == 0:
        return SramPlan(mode, E.SramCacheMode.NO_CACHE, start, end, 0, KERNEL_CACHE_START,
                        msb, low, high)  # fmt: skip
    if image >= KERNEL_CACHE_START:
        image_start, image_end = end, min(end + image, sram)
    else:
        image_start, image_end = 0, KERNEL_CACHE_START
    return SramPlan(mode, full, start, end, image_start, image_end, msb, low, high)


@dataclass(frozen=True, slots=True)
class V7Plan:
    tiling: Tiling
    sram: SramPlan
    coefficients: Coefficients


def plan(work: NnWork, target: NpuTarget) -> V7Plan:
    tile = tiling(work.shape, target)
    coefs, blocks = coefficients(work, tile.superblocks, target)
    if blocks != tile.superblocks:
        kpc = _ceil(_ceil(work.shape.out_z, target.nn_cores), blocks)
        tile = Tiling(tile.tile_x, tile.tile_y, tile.interleave, blocks, kpc)
    return V7Plan(tile, sram_plan(work.shape, tile, coefs.cache_size, target), coefs)
