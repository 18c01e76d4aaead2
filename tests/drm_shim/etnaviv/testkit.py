"""Test kit for the simulated etnaviv device: BOs at softpin addresses, command streams built
with the generated register code, submits through the real UAPI structs, and NN/TP
configurations packed by test-local helpers (never by the driver)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.drivers.etnaviv.codec_bits import WeightCompressionConfig
from mesa_npu.drivers.etnaviv.codec_v7 import V7Layout, encode_v7, plane_offsets
from mesa_npu.drivers.etnaviv.codec_v8 import encode_v8
from mesa_npu.drivers.etnaviv.codec_v8_format import V8Layout
from mesa_npu.drm_shim.etnaviv import ModelSwitches, SimulatedEtnavivFile
from mesa_npu.util import uapi
from mesa_npu.util.soc import soc
from mesa_npu.util.uapi import ffi

PAGE = 4096
SOFTPIN_START = 4 << 20
RW = uapi.ETNA_SUBMIT_BO_READ | uapi.ETNA_SUBMIT_BO_WRITE
R = uapi.ETNA_SUBMIT_BO_READ
W = uapi.ETNA_SUBMIT_BO_WRITE
V = E.VIVS


@dataclass
class Bo:
    handle: int
    va: int
    size: int
    view: np.ndarray  # the CPU mapping


def load_state(reg, *values: int) -> list[int]:
    head = E.FE_LOAD_STATE.HEADER.pack(
        OP=E.FeOpcode.LOAD_STATE, COUNT=len(values), OFFSET=reg.offset
    )
    words = [head, *values]
    if len(words) % 2:
        words.append(0)
    return words


def init_words() -> list[int]:
    return [0] * 8 + load_state(V.GL_API_MODE, E.GlApiMode.OPENCL) + [0, 0]


def nn_words(config_va: int) -> list[int]:
    return (
        load_state(V.GL_OCB_REMAP_START, 0)
        + load_state(V.GL_OCB_REMAP_END, 0)
        + load_state(V.GL_NN_CONFIG, V.GL_NN_CONFIG.pack(NN_CORE_COUNT=0, SMALL_BATCH=True))
        + load_state(V.PS_NN_INST_ADDR, config_va)
        + load_state(V.PS_UNK10A4, 0)
    )


def tp_words(config_vas: list[int]) -> list[int]:
    words = []
    for i, va in enumerate(config_vas):
        last = i == len(config_vas) - 1
        words += load_state(V.GL_OCB_REMAP_START, 0) + load_state(V.GL_OCB_REMAP_END, 0)
        words += load_state(V.GL_TP_CONFIG, 0) + load_state(V.GL_UNK03950, 0)
        words += load_state(V.PS_TP_INST_ADDR, va + (0 if last else 1))
    return words + load_state(V.PS_UNK10A4, 0)


def flush_words() -> list[int]:
    flush = V.GL_FLUSH_CACHE.pack(DEPTH=True, COLOR=True, UNK10=True, UNK11=True, SHADER_L1=True)
    return load_state(V.GL_FLUSH_CACHE, flush) * 2 + [0, 0]


@dataclass
class Harness:
    file: SimulatedEtnavivFile
    next_va: int = SOFTPIN_START
    keep: list = field(default_factory=list)

    def bo(self, size: int, data: bytes | np.ndarray | None = None) -> Bo:
        new = ffi.new("struct drm_etnaviv_gem_new *", {"size": size, "flags": uapi.ETNA_BO_WC})
        self.file.ioctl(uapi.ETNAVIV_GEM_NEW, new)
        info = ffi.new("struct drm_etnaviv_gem_info *", {"handle": new.handle})
        self.file.ioctl(uapi.ETNAVIV_GEM_INFO, info)
        aligned = -(-size // PAGE) * PAGE
        view = np.frombuffer(self.file.mmap(info.offset, aligned), dtype=np.uint8)
        if data is not None:
            raw = (
                np.frombuffer(bytes(data), dtype=np.uint8)
                if not isinstance(data, np.ndarray)
                else data.ravel().view(np.uint8)
            )
            view[: raw.size] = raw
        bo = Bo(new.handle, self.next_va, aligned, view)
        self.next_va += aligned + PAGE  # a guard page between BOs
        return bo

    def submit_raw(self, words, bos: list[tuple[Bo, int]], *, flags=uapi.ETNA_SUBMIT_SOFTPIN, **kw):
        stream = np.asarray(words, dtype="<u4")
        buf = ffi.new("char[]", stream.tobytes() or b"\0")
        table = ffi.new("struct drm_etnaviv_gem_submit_bo[]", max(len(bos), 1))
        for i, (bo, f) in enumerate(bos):
            table[i].flags, table[i].handle, table[i].presumed = f, bo.handle, bo.va
        args = {
            "pipe": 0,
            "exec_state": uapi.ETNA_PIPE_3D,
            "nr_bos": len(bos),
            "bos": int(ffi.cast("uintptr_t", table)),
            "stream": int(ffi.cast("uintptr_t", buf)),
            "stream_size": stream.size * 4,
            "flags": flags,
        } | kw
        sub = ffi.new("struct drm_etnaviv_gem_submit *", args)
        self.keep += [buf, table]
        self.file.ioctl(uapi.ETNAVIV_GEM_SUBMIT, sub)
        return sub.fence

    def run(self, jobs: list[int], bos: list[tuple[Bo, int]], *, init=True, flush=True):
        words = (init_words() if init else []) + [0] * 8 + jobs + (flush_words() if flush else [])
        return self.submit_raw(words, bos)

    def wait(self, fence: int, timeout_s: float = 5.0, flags: int = 0) -> None:
        deadline = time.monotonic_ns() + int(timeout_s * 1e9)
        args = ffi.new(
            "struct drm_etnaviv_wait_fence *",
            {
                "pipe": 0,
                "fence": fence,
                "flags": flags,
                "timeout": {"tv_sec": deadline // 10**9, "tv_nsec": deadline % 10**9},
            },
        )
        self.file.ioctl(uapi.ETNAVIV_WAIT_FENCE, args)


def make_harness(soc: str = "a311d", **switches) -> Harness:
    return Harness(SimulatedEtnavivFile(soc, ModelSwitches(**switches)))


# -- TP configurations (test-local, after brief §6) ------------------------------------------


def tp_config(**fields) -> bytes:
    """Mesa's TP defaults (``set_default_tp_config``, brief §6) plus the given fields."""
    base = dict(
        IN_IMAGE_GLOBAL_MEM=1, OUT_IMAGE_GLOBAL_MEM=1, ALU_I2F_ENABLE=1, ALU_F2I_ENABLE=1,
        IN_TILE_X_SIZE=1, IN_TILE_X_INC=1, LAST=1, OUT_LOOP_0_INC=1, OUT_LOOP_3_COUNT=1,
        OUT_LOOP_4_COUNT=1, OUT_LOOP_5_COUNT=1, FLAT_ROUNDING_MODE=1, INTEGER_ROUNDING_MODE=1,
    )  # fmt: skip
    return E.TP_CONFIG.pack_words(**(base | fields))


def transpose_config(h: int, w: int, c: int, src: int, dst: int, zp: int) -> bytes:
    """NHWC [H][W][C] -> planar [C][H][W]."""
    return tp_config(
        IN_IMAGE_X_SIZE=c, IN_IMAGE_Y_SIZE=w, IN_IMAGE_Z_SIZE=h, IN_IMAGE_STRIDE=c,
        IN_IMAGE_SLICE=w * c, IN_WINDOW_X_END=c - 1, IN_WINDOW_Y_END=w - 1,
        IN_TILE_Y_SIZE=w, IN_TILE_Y_INC=w, IN_IMAGE_BASE_ADDRESS=src, OUT_IMAGE_BASE_ADDRESS=dst,
        OUT_LOOP_0_COUNT=w, OUT_LOOP_1_INC=h * w, OUT_LOOP_1_COUNT=c, OUT_LOOP_2_INC=w,
        OUT_LOOP_2_COUNT=h, IN_ZP=zp, OUT_ZP=zp,
    )  # fmt: skip


def detranspose_config(h: int, w: int, c: int, src: int, dst: int, zp: int) -> bytes:
    """planar [C][H][W] -> NHWC [H][W][C]."""
    return tp_config(
        IN_IMAGE_X_SIZE=w, IN_IMAGE_Y_SIZE=h * c, IN_IMAGE_Z_SIZE=1, IN_IMAGE_STRIDE=w,
        IN_IMAGE_SLICE=w * h * c, IN_WINDOW_X_END=w - 1, IN_WINDOW_Y_END=h * c - 1,
        IN_TILE_Y_SIZE=1, IN_TILE_Y_INC=1, IN_IMAGE_BASE_ADDRESS=src, OUT_IMAGE_BASE_ADDRESS=dst,
        OUT_LOOP_0_INC=c, OUT_LOOP_0_COUNT=w, OUT_LOOP_1_INC=0, OUT_LOOP_1_COUNT=1,
        OUT_LOOP_2_INC=w * c, OUT_LOOP_2_COUNT=h, OUT_LOOP_3_INC=1, OUT_LOOP_3_COUNT=c,
        OUT_LOOP_4_INC=w * h * c, IN_ZP=zp, OUT_ZP=zp,
    )  # fmt: skip


def reshuffle_config(h, w, c, pad_x, pad_y, src, dst, zp) -> bytes:
    """Stride-2 space-to-depth of planar [C][H][W] (Mesa ``create_reshuffle_config``, one core):
    output planar [4C][oh][ow], channel 4z + 2*(y phase) + (x phase)."""
    ow, oh = -(-(w + pad_x) // 2), -(-(h + pad_y) // 2)
    plane = ow * oh
    return tp_config(
        IN_IMAGE_X_SIZE=w, IN_IMAGE_Y_SIZE=h, IN_IMAGE_Z_SIZE=c, IN_IMAGE_STRIDE=w,
        IN_IMAGE_SLICE=w * h, IN_WINDOW_X_START=-pad_x, IN_WINDOW_Y_START=-pad_y,
        IN_WINDOW_X_END=2 * ow - 1 - pad_x, IN_WINDOW_Y_END=2 * oh - 1 - pad_y,
        IN_TILE_X_SIZE=2 * ow, IN_TILE_X_INC=2 * ow, IN_TILE_Y_SIZE=2 * oh, IN_TILE_Y_INC=2 * oh,
        IN_IMAGE_BASE_ADDRESS=src, OUT_IMAGE_BASE_ADDRESS=dst,
        OUT_LOOP_1_RESET=1, OUT_LOOP_3_RESET=1, OUT_LOOP_0_INC=plane, OUT_LOOP_0_COUNT=2,
        OUT_LOOP_1_INC=1, OUT_LOOP_1_COUNT=ow, OUT_LOOP_2_INC=2 * plane, OUT_LOOP_2_COUNT=2,
        OUT_LOOP_3_INC=ow, OUT_LOOP_3_COUNT=oh, OUT_LOOP_6_INC=4 * plane, IN_ZP=zp, OUT_ZP=zp,
    )  # fmt: skip


def pad_config(h, w, c, before, after, src, dst, zp, *, z_before=0, z_after=0, no_flush=0):
    """Planar [C][H][W] padded by ``before``/``after`` (x, y) with the zero point."""
    ow, oh = w + before[0] + after[0], h + before[1] + after[1]
    return tp_config(
        IN_IMAGE_X_SIZE=w, IN_IMAGE_Y_SIZE=h, IN_IMAGE_Z_SIZE=c, IN_IMAGE_STRIDE=w,
        IN_IMAGE_SLICE=w * h, IN_WINDOW_X_START=-before[0], IN_WINDOW_Y_START=-before[1],
        IN_WINDOW_X_END=w - 1 + after[0], IN_WINDOW_Y_END=h - 1 + after[1],
        IN_WINDOW_Z_START_OVERFETCH=z_before, IN_WINDOW_Z_END_OVERFETCH=z_after,
        IN_TILE_X_SIZE=ow, IN_TILE_X_INC=ow, IN_TILE_Y_SIZE=oh, IN_TILE_Y_INC=oh,
        IN_IMAGE_BASE_ADDRESS=src, OUT_IMAGE_BASE_ADDRESS=dst, OUT_LOOP_0_INC=0,
        OUT_LOOP_0_COUNT=1, OUT_LOOP_1_INC=1, OUT_LOOP_1_COUNT=ow, OUT_LOOP_2_INC=ow,
        OUT_LOOP_2_COUNT=oh, OUT_LOOP_3_COUNT=1, OUT_LOOP_6_INC=ow * oh, IN_ZP=zp, OUT_ZP=zp,
        NO_FLUSH=no_flush,
    )  # fmt: skip


def pwl_scale_fields(scale: float) -> dict:
    """Mesa's PWL output scale fields (brief §4 "TP PWL jobs")."""
    bits = int(np.float32(scale).view(np.uint32))
    if (bits >> 7) & 1 and bits & 0x17F:
        bits += 0x100
    shift = (0x7F - (bits >> 23)) & 0x7F
    return dict(ALU_OUTPUT_POST_MULTIPLIER=(bits >> 8) & 0x7FFF, ALU_OUTPUT_POSTSHIFT=shift)


def pwl_config(h, w, c, src, dst, lut, izp, ozp, scale) -> bytes:
    """Planar elementwise table lookup (Mesa ``create_pwl_lut_config``, one core)."""
    return tp_config(
        IN_IMAGE_X_SIZE=w, IN_IMAGE_Y_SIZE=h, IN_IMAGE_Z_SIZE=c, IN_IMAGE_STRIDE=w,
        IN_IMAGE_SLICE=w * h, IN_WINDOW_X_END=w - 1, IN_WINDOW_Y_END=h - 1,
        IN_TILE_X_SIZE=64, IN_TILE_X_INC=64, IN_TILE_Y_SIZE=16, IN_TILE_Y_INC=16,
        ALU_PWL_ENABLE=1, ALU_LOAD_PWL_LUT=1, ALU_LOAD_PWL_LUT_GLOBAL_MEM=1,
        ALU_LOAD_PWL_LUT_ADDRESS=lut, ALU_PWL_SIGN_SUPPORT=1,
        IN_IMAGE_BASE_ADDRESS=src, OUT_IMAGE_BASE_ADDRESS=dst,
        OUT_LOOP_1_RESET=1, OUT_LOOP_2_RESET=1, OUT_LOOP_0_COUNT=1, OUT_LOOP_1_COUNT=0,
        OUT_LOOP_2_COUNT=0, OUT_LOOP_3_COUNT=-(-w // 64), OUT_LOOP_4_COUNT=-(-h // 16),
        OUT_LOOP_0_INC=0, OUT_LOOP_1_INC=1, OUT_LOOP_2_INC=w, OUT_LOOP_3_INC=64,
        OUT_LOOP_4_INC=w * 16, OUT_LOOP_6_INC=w * h, IN_ZP=izp, OUT_ZP=ozp,
        **pwl_scale_fields(scale),
    )  # fmt: skip


def fp21_value(code: int) -> float:
    sign, exp, mant = code // 2**20 % 2, code // 2**15 % 32, code % 2**15
    if exp == 0:
        return 0.0
    v = (1 + mant / 2**15) * 2.0 ** (exp - 15)
    return -v if sign else v


def fp21_code(value: float) -> int:
    """Nearest fp21 code (round half to even on the mantissa)."""
    if value == 0:
        return 0
    sign = 2**20 if value < 0 else 0
    m, e = np.frexp(abs(value))
    mant = int(np.rint((m * 2 - 1) * 2**15))
    exp = e - 1 + 15
    if mant == 2**15:
        mant, exp = 0, exp + 1
    if exp <= 0:
        return sign
    exp = min(exp, 30)
    return sign + exp * 2**15 + mant


def lut_relu() -> np.ndarray:
    """ReLU table (brief §6): identity for positive normal inputs, 0 below exponent 1,
    the largest finite value for the top exponent, -0 for every negative input."""
    i = np.arange(1024)
    out = np.where(i < 16, 0, i * 2048)
    out = np.where((i // 16) % 32 == 31, 0xF7FFF, out)
    return np.where(i >= 512, 0x100000, out).astype("<u4")


def lut_abs() -> np.ndarray:
    i = np.arange(1024) % 512
    out = np.where(i < 16, 0, i * 2048)
    return np.where(i // 16 == 31, 0xF7FFF, out).astype("<u4")


def lut_logistic(s_in: float) -> np.ndarray:
    """sigmoid(x * s_in) in fp21 for each entry's input value."""
    codes = []
    for i in range(1024):
        x = fp21_value(i * 2048) if i // 16 % 32 != 31 else (65504.0 if i < 512 else -65504.0)
        codes.append(fp21_code(1 / (1 + np.exp(np.clip(-x * s_in, -80, 80)))))
    return np.asarray(codes, dtype="<u4")


# -- NN jobs (test-local, after brief §2/§3) --------------------------------------------------


def nn_config(**fields) -> bytes:
    """Mesa's fixed NN config values (brief §2) plus the given fields."""
    base = dict(NN_LAYER_FLUSH=1, ROUNDING_MODE=1, POOLING_XY_SIZE=1, KERNELS_PER_CORE=1)
    return E.NN_CONFIG.pack_words(**(base | fields))


@dataclass
class ConvJob:
    hw: Harness
    fields: dict
    kbo: Bo
    ibo: Bo
    obo: Bo
    out_shape: tuple

    def submit(self, **overrides) -> int:
        cfg = nn_config(**(self.fields | overrides))
        cbo = self.hw.bo(len(cfg), cfg)
        bos = [(cbo, R), (self.kbo, R), (self.ibo, R), (self.obo, W)]
        return self.hw.run(nn_words(cbo.va), bos)

    def output(self) -> np.ndarray:
        return self.obo.view[: int(np.prod(self.out_shape))].reshape(self.out_shape).copy()


def encode_coefs(
    soc_name,
    w,
    bias,
    *,
    izp,
    wzp,
    out_plane,
    superblocks=1,
    depthwise=False,
    zrl=None,
    add_offset=None,
    in_width=None,
):
    """A coefficient buffer for the SoC's generation, from the codec encoders."""
    npu = soc(soc_name).npu
    oc, ic, kh, kw = w.shape
    if npu.nn_core_version == 7:
        layout = V7Layout.for_job(
            oc=oc,
            ic=ic,
            kh=kh,
            kw=kw,
            nn_cores=npu.nn_cores,
            superblocks=superblocks,
            zero_point=wzp,
            input_width=in_width or 0,
        )
        offsets = plane_offsets(layout, out_plane)
        if add_offset is not None:
            offsets = np.full(layout.slots, add_offset, dtype=np.uint32)
        return encode_v7(
            w, bias, offsets, layout, input_zero_point=izp, max_zrl_bits=npu.zrl_bits, force_zrl=zrl
        ).data
    layout = V8Layout(
        oc=oc,
        ic=ic,
        kh=kh,
        kw=kw,
        nn_cores=npu.nn_cores,
        superblocks=superblocks,
        zero_point=wzp,
        depthwise=depthwise,
    )
    return encode_v8(w, bias, layout, input_zero_point=izp, config=WeightCompressionConfig()).data


def conv_job(
    hw,
    soc_name,
    x,
    w,
    bias,
    *,
    izp,
    wzp,
    ozp,
    off=0,
    out_hw=None,
    pm=0,
    post_shift=0,
    relu=False,
    pool=False,
    depthwise=False,
    superblocks=1,
    zrl=None,
    kernel_z=None,
    coefs=None,
    out_z=None,
):
    """Place one NN job (inputs planar [IC, H, W]) and return it, not yet submitted."""
    npu = soc(soc_name).npu
    ic, ih, iw = x.shape
    oc, _, kh, kw = w.shape
    oh, ow = out_hw or (ih, iw)
    prog_h, prog_w = (oh * 2, ow * 2) if pool else (oh, ow)
    per_core = -(-oc // min(oc, npu.nn_cores))
    kpc = -(-per_core // superblocks)
    if coefs is None:
        coefs = encode_coefs(
            soc_name,
            w,
            bias,
            izp=izp,
            wzp=wzp,
            out_plane=oh * ow,
            superblocks=superblocks,
            depthwise=depthwise,
            zrl=zrl,
            in_width=iw,
        )
    kbo = hw.bo(len(coefs), coefs)
    ibo = hw.bo(x.size, np.ascontiguousarray(x))
    oz = out_z or oc
    obo = hw.bo(oz * oh * ow)
    fields = dict(
        KERNEL_XY_SIZE=kw,
        KERNEL_Y_SIZE=kh,
        KERNEL_Z_SIZE=kernel_z or ic,
        KERNELS_PER_CORE=kpc,
        IN_IMAGE_X_SIZE=iw,
        IN_IMAGE_Y_SIZE=ih,
        IN_IMAGE_X_STRIDE=iw,
        IN_IMAGE_Y_STRIDE=ih,
        IN_IMAGE_X_OFFSET=off,
        IN_IMAGE_Y_OFFSET=off,
        IN_IMAGE_BORDER_CONST=izp,
        IN_IMAGE_ADDRESS=ibo.va,
        OUT_IMAGE_ADDRESS=obo.va,
        KERNEL_ADDRESS=kbo.va,
        OUT_IMAGE_X_SIZE=prog_w,
        OUT_IMAGE_Y_SIZE=prog_h,
        OUT_IMAGE_Z_SIZE=oz,
        OUT_IMAGE_X_STRIDE=ow,
        OUT_IMAGE_Y_STRIDE=oh,
        OUT_IMAGE_TILE_X_SIZE=min(prog_w, 64),
        OUT_IMAGE_TILE_Y_SIZE=min(prog_h, 4),
        COEF_ZERO_POINT=wzp,
        OUT_ZERO_POINT=ozp,
        POST_MULTIPLIER=pm,
        POST_SHIFT=post_shift,
        RELU=int(relu),
        DEPTHWISE=int(depthwise),
        POOLING=E.NnPooling.POOLING_FIRST_PIXEL if pool else E.NnPooling.POOLING_NON,
        POOLING_XY_SIZE=0 if pool else 1,
    )
    return ConvJob(hw, fields, kbo, ibo, obo, (oz, oh, ow))
