"""v8 NN jobs (NXP i.MX 8M Plus, Amlogic S905D3): tiling and the Huffman coefficient buffer
(Mesa: ``etnaviv_ml_nn_v8.c``: ``etna_ml_calculate_tiling_v8``, ``calc_superblocks``,
``calc_interleave_mode``, ``etna_ml_create_coeffs_v8``).

Facts from brief ``etnaviv-ml.md`` §3.2 and §5, on the hardware axes as in ``ml_nn_v7``. v8 never
caches in SRAM (Mesa forces NO_CACHE: "not yet supported"), so there is no SRAM plan here. The
S905D3's raw-weight variant (``customer_id == 0x99``, brief §3.2) is not implemented by the codec;
that part gets the standard stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import codec_v8
from .ml_nn import MAX_KERNELS_PER_CORE, Coefficients, ConvShape, NnWork, SramPlan, Tiling
from .ml_nn_v7 import INTERLEAVE_LIMIT_1, INTERLEAVE_LIMIT_4, KERNEL_CACHE_START, MAX_TILE_WIDTH
from .options import NpuTarget, TilePolicy

MESA_MAX_TILE_Y = 4  # Mesa: "This gets us the best performance on MobileDet" (brief §5)
ACCUM_ROWS = 64  # Mesa: tile pixels per accumulator row, ceil(tile_y * tile_x / stride / 64)
SUPERBLOCK_SHARE = (6, 9)  # Mesa: at most ABD * 6 / 9 kernels per superblock


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def interleave_mode(tile_x: int, kx: int) -> int:
    """Mesa ``calc_interleave_mode`` (v8), with the kernel's x size."""
    span = kx - 1 + tile_x
    if span > INTERLEAVE_LIMIT_1:
        return 1
    if tile_x > MAX_TILE_WIDTH // 2:
        mode = 1
    elif tile_x > MAX_TILE_WIDTH // 4:
        mode = 2
    else:
        mode = 4
    if span > INTERLEAVE_LIMIT_4:
        if mode >= 2:
            return 2
    elif mode >= 4:
        return 4
    return mode


def superblocks(shape: ConvShape, tile_x: int, tile_y: int, mode: int, target: NpuTarget) -> int:
    """Mesa ``calc_superblocks`` (v8)."""
    cores = target.nn_cores
    abd = target.npu.accum_buffer_depth
    stride = 2 if shape.pooling else 1
    per_core = _ceil(shape.out_z, cores)
    if shape.kx == 1:
        fit = abd // _ceil(tile_y, mode)
    else:
        rows = _ceil(_ceil(tile_y * tile_x, stride), ACCUM_ROWS)
        fit = abd // (rows * stride)
    share, whole = SUPERBLOCK_SHARE
    fit = max(1, min(fit, abd * share // whole, per_core, MAX_KERNELS_PER_CORE))
    kernels = _ceil(shape.out_z, cores * fit)
    groups = _ceil(shape.out_z, kernels * cores)
    return _ceil(per_core, groups)


def tiling(shape: ConvShape, target: NpuTarget) -> Tiling:
    """Mesa ``etna_ml_calculate_tiling_v8`` on the hardware axes; ``tiles=uncapped`` drops
    Mesa's tile height cap of 4."""
    ibd = target.npu.input_buffer_depth
    abd = target.npu.accum_buffer_depth
    tile_x = min(shape.computed_x, MAX_TILE_WIDTH)
    mode = interleave_mode(tile_x, shape.kx)
    tile_y = min(ibd * mode - shape.ky + 1, mode * abd, shape.computed_y)
    if target.options.tiles is TilePolicy.MESA:
        tile_y = min(tile_y, MESA_MAX_TILE_Y)
    if shape.pooling and tile_y % 2:
        tile_y -= 1
    tile_y = max(tile_y, 1)
    blocks = superblocks(shape, tile_x, tile_y, mode, target)
    kpc = _ceil(_ceil(shape.out_z, target.nn_cores), blocks)
    return Tiling(tile_x, tile_y, mode, blocks, kpc)


def _layout(work: NnWork, blocks: int, target: NpuTarget) -> codec_v8.V8Layout:
    w = work.weights
    while True:
        try:
            return codec_v8.V8Layout(
                oc=w.shape[0],
                ic=w.shape[1],
                kh=w.shape[2],
                kw=w.shape[3],
                nn_cores=target.nn_cores,
                superblocks=blocks,
                zero_point=work.quant.weight_zp,
                depthwise=work.shape.depthwise,
            )
        except ValueError:
            if blocks == 1:
                raise
            blocks -= 1  # a superblock count whose channel assignment leaves a gap


@dataclass(frozen=True, slots=True)
class V8Plan:
    tiling: Tiling
    sram: SramPlan
    coefficients: Coefficients


def plan(work: NnWork, target: NpuTarget) -> V8Plan:
    tile = tiling(work.shape, target)
    layout = _layout(work, tile.superblocks, target)
    if layout.superblocks != tile.superblocks:
        kpc = _ceil(_ceil(work.shape.out_z, target.nn_cores), layout.superblocks)
        tile = Tiling(tile.tile_x, tile.tile_y, tile.interleave, layout.superblocks, kpc)
    enc = codec_v8.encode_v8(
        work.weights,
        work.biases,
        layout,
        input_zero_point=work.quant.in_zp,
        config=target.options.weight_config,
    )
    detail = f"v8 map={''.join(map(str, enc.symbol_map))} runs={len(enc.run_lengths)} "
    detail += f"{len(enc.data)} B"
    coefs = Coefficients(enc.data, enc.cache_size, detail)
    # Mesa: "Caching is not supported yet on V8": both caches NO_CACHE.
    return V8Plan(tile, SramPlan(image_end=KERNEL_CACHE_START), coefs)
