"""The NN job configuration as the NN unit reads it: the 136-byte ``NN_CONFIG`` unpacked with the
generated register code, checked, and turned into a frozen :class:`NnJob` (brief §2, §5;
``docs/etnaviv-npu-model.md`` §3 gives each field's treatment).
"""

from __future__ import annotations

from dataclasses import dataclass

from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.util.soc import EtnavivNpu

from .faults import FaultKind, JobFault
from .switches import ModelSwitches, Requant

NN_CONFIG_BYTES = 136  # 34 words (brief §2)
MAX_TILE_WIDTH = 64  # Mesa's MAX_TILE_WIDTH (brief §5)
ROUND_TO_NEAREST = 1  # ROUNDING_MODE Mesa writes (brief §4: "round-to-nearest per blob")
KERNEL_ADDRESS_ALIGN = 64  # the field stores the VA >> 6
V7_MULTIPLIER_BITS = 15  # v7 keeps the top 15 mantissa bits (brief §4)
V8_MULTIPLIER_BITS = 23  # v8 keeps all 23
BYTE_TYPES = (E.NnDataType.INT8, E.NnDataType.UINT8)
# Mesa's v7 ADD job (brief §1): 2x2 kernel, 2 input planes, 1 output plane (kw, kh, kz, oz).
V7_ADD_SHAPE = (2, 2, 2, 1)
Cache = E.SramCacheMode


@dataclass(frozen=True, slots=True)
class CacheRange:
    mode: E.SramCacheMode
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(self.end - self.start, 0) if self.mode != Cache.NO_CACHE else 0


@dataclass(frozen=True, slots=True)
class NnJob:
    generation: int  # 7 or 8: the SoC's NN core version
    cores: int  # NN cores the job runs on
    form: str  # "conv", "depthwise", "add", "fc"
    in_address: int
    in_x: int
    in_y: int
    in_planes: int  # image planes read (kernel z; 2 for the v7 add form)
    in_row: int  # bytes between rows
    in_plane: int  # bytes between planes
    off_x: int
    off_y: int
    border: int
    kw: int
    kh: int
    ic: int  # input channels of the coefficient stream
    oc: int  # kernels in the coefficient stream
    out_address: int
    out_x: int  # programmed (pre-pooling) size
    out_y: int
    out_z: int
    out_row: int
    out_plane: int
    pool: bool
    kernels_per_core: int
    superblocks: int
    tile_x: int
    tile_y: int
    kernel_address: int
    coef_zero_point: int
    out_zero_point: int
    relu: bool
    multiplier: int  # with its implicit leading one
    shift: int  # total right shift
    kernel_cache: CacheRange
    image_cache: CacheRange

    @property
    def written_x(self) -> int:
        return self.out_x // 2 if self.pool else self.out_x

    @property
    def written_y(self) -> int:
        return self.out_y // 2 if self.pool else self.out_y

    @property
    def tiles(self) -> int:
        return -(-self.out_x // self.tile_x) * -(-self.out_y // self.tile_y)

    @property
    def cores_used(self) -> int:
        return min(self.oc, self.cores)


def _fault(message: str) -> JobFault:
    return JobFault(FaultKind.CONFIG, message)


def _unsupported(message: str) -> JobFault:
    return JobFault(FaultKind.UNSUPPORTED, message)


def _positive(f, *names: str) -> None:
    for name in names:
        if getattr(f, name) <= 0:
            raise _fault(f"{name} is {getattr(f, name)}")


def _check_not_modelled(f) -> None:
    for name in (
        "PRELU",
        "BRICK_MODE",
        "KERNEL_DIRECT_STREAM_FROM_VIP_SRAM",
        "PER_CHANNEL_POST_MUL",
    ):
        if getattr(f, name):
            raise _unsupported(f"{name} = {getattr(f, name)}")
    for name in ("OUT_IMAGE_CIRCULAR_BUF_SIZE", "IN_IMAGE_CIRCULAR_BUF_SIZE"):
        if getattr(f, name):
            raise _unsupported(f"{name} = {getattr(f, name)} (circular buffers)")
    for name in ("KERNEL_DATA_TYPE", "IN_IMAGE_DATA_TYPE", "OUT_IMAGE_DATA_TYPE"):
        if getattr(f, name) not in BYTE_TYPES:
            raise _unsupported(f"{name} = {getattr(f, name)}: only 8-bit images are modelled")
    if f.IN_IMAGE_BORDER_MODE != 0:
        raise _unsupported(f"IN_IMAGE_BORDER_MODE = {f.IN_IMAGE_BORDER_MODE} (constant only)")


def _requant(f, generation: int, switches: ModelSwitches) -> tuple[int, int]:
    pm, shift = f.POST_MULTIPLIER, f.POST_SHIFT
    if f.ROUNDING_MODE != ROUND_TO_NEAREST:
        raise _unsupported(f"ROUNDING_MODE = {f.ROUNDING_MODE} (only {ROUND_TO_NEAREST} is known)")
    if generation == 7:
        if pm >= 1 << V7_MULTIPLIER_BITS:
            raise _fault(f"POST_MULTIPLIER {pm:#x} has bits above 14 (v8-only field) on v7")
        return (1 << V7_MULTIPLIER_BITS) + pm, shift
    if switches.requant is Requant.MANTISSA15:
        drop = 1 << (V8_MULTIPLIER_BITS - V7_MULTIPLIER_BITS)
        return (1 << V7_MULTIPLIER_BITS) + pm // drop, shift + V7_MULTIPLIER_BITS
    return (1 << V8_MULTIPLIER_BITS) + pm, shift + V8_MULTIPLIER_BITS


def _cache(mode, start: int, end: int, what: str, sram: int) -> CacheRange:
    if not isinstance(mode, E.SramCacheMode):
        raise _fault(f"{what}_CACHING_MODE = {mode}")
    r = CacheRange(mode, start, end)
    if mode != Cache.NO_CACHE and max(start, end) > sram:
        raise _fault(f"{what} cache {start:#x}..{end:#x} reaches past the {sram // 1024} KiB SRAM")
    return r


def interpret(f, npu: EtnavivNpu, core_count: int, switches: ModelSwitches, warn) -> NnJob:
    """Check an unpacked NN_CONFIG and interpret it. ``core_count`` is GL_NN_CONFIG's
    NN_CORE_COUNT (0 = all cores)."""
    generation = npu.nn_core_version
    if core_count > npu.nn_cores:
        raise _fault(f"GL_NN_CONFIG asks for {core_count} NN cores, the SoC has {npu.nn_cores}")
    cores = core_count or npu.nn_cores
    _check_not_modelled(f)
    _positive(f, "IN_IMAGE_X_SIZE", "IN_IMAGE_Y_SIZE", "OUT_IMAGE_X_SIZE", "OUT_IMAGE_Y_SIZE")
    _positive(f, "OUT_IMAGE_Z_SIZE", "KERNEL_XY_SIZE", "KERNEL_Y_SIZE", "KERNEL_Z_SIZE")
    _positive(f, "KERNELS_PER_CORE", "OUT_IMAGE_TILE_X_SIZE", "OUT_IMAGE_TILE_Y_SIZE")
    if f.IN_IMAGE_X_STRIDE < f.IN_IMAGE_X_SIZE or f.IN_IMAGE_Y_STRIDE < f.IN_IMAGE_Y_SIZE:
        raise _fault(
            f"input strides {f.IN_IMAGE_X_STRIDE}x{f.IN_IMAGE_Y_STRIDE} below its size "
            f"{f.IN_IMAGE_X_SIZE}x{f.IN_IMAGE_Y_SIZE}"
        )
    pool = f.POOLING == E.NnPooling.POOLING_FIRST_PIXEL
    if f.POOLING not in (E.NnPooling.POOLING_NON, E.NnPooling.POOLING_FIRST_PIXEL):
        raise _unsupported(f"POOLING = {f.POOLING}")
    if pool and (f.POOLING_XY_SIZE != 0 or f.OUT_IMAGE_X_SIZE % 2 or f.OUT_IMAGE_Y_SIZE % 2):
        raise _fault(
            f"first-pixel pooling needs POOLING_XY_SIZE 0 and even output sizes, got "
            f"{f.POOLING_XY_SIZE} and {f.OUT_IMAGE_X_SIZE}x{f.OUT_IMAGE_Y_SIZE}"
        )
    if not pool and f.POOLING_XY_SIZE != 1:
        warn(f"POOLING_XY_SIZE {f.POOLING_XY_SIZE} without pooling (Mesa writes 1)")
    written_x = f.OUT_IMAGE_X_SIZE // 2 if pool else f.OUT_IMAGE_X_SIZE
    written_y = f.OUT_IMAGE_Y_SIZE // 2 if pool else f.OUT_IMAGE_Y_SIZE
    if f.OUT_IMAGE_X_STRIDE < written_x or f.OUT_IMAGE_Y_STRIDE < written_y:
        raise _fault(
            f"output strides {f.OUT_IMAGE_X_STRIDE}x{f.OUT_IMAGE_Y_STRIDE} below the written "
            f"size {written_x}x{written_y}"
        )
    if f.OUT_IMAGE_TILE_X_SIZE > min(f.OUT_IMAGE_X_SIZE, MAX_TILE_WIDTH):
        raise _fault(
            f"OUT_IMAGE_TILE_X_SIZE {f.OUT_IMAGE_TILE_X_SIZE} above min(out x "
            f"{f.OUT_IMAGE_X_SIZE}, {MAX_TILE_WIDTH})"
        )
    if f.OUT_IMAGE_TILE_Y_SIZE > f.OUT_IMAGE_Y_SIZE:
        raise _fault(
            f"OUT_IMAGE_TILE_Y_SIZE {f.OUT_IMAGE_TILE_Y_SIZE} above out y {f.OUT_IMAGE_Y_SIZE}"
        )
    if f.KERNEL_ADDRESS % KERNEL_ADDRESS_ALIGN:
        raise _fault(f"KERNEL_ADDRESS {f.KERNEL_ADDRESS:#x} is not 64-byte aligned")
    form, ic, oc, planes = _form(f, generation, switches)
    per_core = -(-oc // min(oc, cores))
    if f.KERNELS_PER_CORE > per_core:
        raise _fault(
            f"KERNELS_PER_CORE {f.KERNELS_PER_CORE} above ceil({oc} kernels / "
            f"{min(oc, cores)} cores) = {per_core}"
        )
    superblocks = -(-per_core // f.KERNELS_PER_CORE)
    multiplier, shift = _requant(f, generation, switches)
    sram = npu.sram_bytes
    kernel_cache = _cache(
        f.KERNEL_CACHING_MODE,
        f.KERNEL_CACHE_START_ADDRESS,
        f.KERNEL_CACHE_END_ADDRESS,
        "KERNEL",
        sram,
    )
    image_cache = _cache(
        f.IMAGE_CACHING_MODE,
        f.IMAGE_CACHE_START_ADDRESS,
        f.IMAGE_CACHE_END_ADDRESS,
        "IMAGE",
        sram,
    )
    if kernel_cache.size and image_cache.size:
        if kernel_cache.start < image_cache.end and image_cache.start < kernel_cache.end:
            raise _fault(
                f"kernel cache {kernel_cache.start:#x}..{kernel_cache.end:#x} overlaps image "
                f"cache {image_cache.start:#x}..{image_cache.end:#x}"
            )
    for r, what in ((kernel_cache, "kernel"), (image_cache, "image")):
        if r.mode != Cache.NO_CACHE and r.end <= r.start:
            warn(f"{what} cache {r.start:#x}..{r.end:#x} is empty")
    if not f.NN_LAYER_FLUSH:
        raise JobFault(
            FaultKind.HANG, "NN_LAYER_FLUSH = 0: the layer never reports completion (our model)"
        )
    return NnJob(
        generation=generation,
        cores=cores,
        form=form,
        in_address=f.IN_IMAGE_ADDRESS,
        in_x=f.IN_IMAGE_X_SIZE,
        in_y=f.IN_IMAGE_Y_SIZE,
        in_planes=planes,
        in_row=f.IN_IMAGE_X_STRIDE,
        in_plane=f.IN_IMAGE_X_STRIDE * f.IN_IMAGE_Y_STRIDE,
        off_x=f.IN_IMAGE_X_OFFSET,
        off_y=f.IN_IMAGE_Y_OFFSET,
        border=f.IN_IMAGE_BORDER_CONST,
        kw=f.KERNEL_XY_SIZE,
        kh=f.KERNEL_Y_SIZE,
        ic=ic,
        oc=oc,
        out_address=f.OUT_IMAGE_ADDRESS,
        out_x=f.OUT_IMAGE_X_SIZE,
        out_y=f.OUT_IMAGE_Y_SIZE,
        out_z=f.OUT_IMAGE_Z_SIZE,
        out_row=f.OUT_IMAGE_X_STRIDE,
        out_plane=f.OUT_IMAGE_X_STRIDE * f.OUT_IMAGE_Y_STRIDE,
        pool=pool,
        kernels_per_core=f.KERNELS_PER_CORE,
        superblocks=superblocks,
        tile_x=f.OUT_IMAGE_TILE_X_SIZE,
        tile_y=f.OUT_IMAGE_TILE_Y_SIZE,
        kernel_address=f.KERNEL_ADDRESS,
        coef_zero_point=f.COEF_ZERO_POINT,
        out_zero_point=f.OUT_ZERO_POINT,
        relu=bool(f.RELU),
        multiplier=multiplier,
        shift=shift,
        kernel_cache=kernel_cache,
        image_cache=image_cache,
    )


def _form(f, generation: int, switches: ModelSwitches) -> tuple[str, int, int, int]:
    """(form, stream IC, stream OC, image planes read)."""
    kz, oz = f.KERNEL_Z_SIZE, f.OUT_IMAGE_Z_SIZE
    if f.DEPTHWISE:
        if generation == 7:
            raise _fault("DEPTHWISE is a v8 feature; v7 expands depthwise convolutions")
        if kz != oz:
            raise _fault(f"depthwise with KERNEL_Z_SIZE {kz} != OUT_IMAGE_Z_SIZE {oz}")
        return "depthwise", 1, oz, kz
    is_add = (
        generation == 7
        and switches.v7_add_detect
        and (f.KERNEL_XY_SIZE, f.KERNEL_Y_SIZE, kz, oz) == V7_ADD_SHAPE
        and (f.OUT_IMAGE_X_SIZE, f.OUT_IMAGE_Y_SIZE) == (f.IN_IMAGE_X_SIZE, f.IN_IMAGE_Y_SIZE)
        and f.POOLING == E.NnPooling.POOLING_NON
    )
    if is_add:
        return "add", 1, 1, 2
    form = "fc" if f.LAYER_TYPE == E.NnLayerType.LAYER_FULLY_CONNECTED else "conv"
    return form, kz, oz, kz
