"""CNA: the convolution fetch unit (NVDLA CDMA + CSC). Decodes the CNA registers of a task
into a frozen :class:`CnaConfig`, fetches the task's feature cube from memory (NC1HWC2 or the
1-channel path, through the input convertor) and the weights in their packed layout.

What each register means to the model, and why, is in ``docs/rocket-npu-model.md`` §4 (CNA).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...drivers.rocket import rocket_regs as R
from ...util.soc import RocketNpu
from .arith import INT8_MAX, INT8_MIN, rshift, saturate
from .faults import NpuFault
from .memory import IOVA_LIMIT, AddressSpace, Bo
from .options import NpuModelOptions
from .regfile import TaskRegs
from .stats import TaskStats

# Mesa rkt_regcmd.c: ARGB_IN = 8 with NONALIGN_DMA selects the one-channel (pixel) input.
ARGB_ONE_CHANNEL = 8
# Units of DMA_CON1/DMA_CON2 under cna_strides="mesa" (see the model document): the NC1HWC2
# line stride counts 4-byte words and the surface stride 16-byte atoms; the pixel path counts
# bytes.
MESA_LINE_UNIT = 4
# Depthwise weights come in 64-channel groups (brief §4: Mesa's input_channel_groups doubled).
DEPTHWISE_GROUP = 64


@dataclass(frozen=True, slots=True)
class CnaConfig:
    depthwise: bool
    pixel_input: bool  # the 1-channel NONALIGN_DMA path
    in_w: int
    in_h: int
    channels: int  # DATAIN_CHANNEL: lanes as stored
    channels_real: int
    feature_addr: int
    line_bytes: int
    surface_bytes: int
    pad_top: int
    pad_left: int
    pad_value: int
    stride_x: int
    stride_y: int
    kw: int
    kh: int
    kernels: int
    weight_addr: int
    weight_bytes: int
    weight_reuse: bool
    out_w: int  # DATAOUT_WIDTH
    out_atomics: int
    cvt: tuple[int, int, int, int, int] | None  # (type, sign, scale, truncate, offset)
    atom: int  # C2 of the NC1HWC2 layout (SoC feature_atom_bytes, brief §4)

    @property
    def surfaces(self) -> int:
        return -(-self.channels // self.atom)


def _unsupported(reg: R.Register, field: str, value: object, why: str = "") -> NpuFault:
    return NpuFault("unsupported", f"unsupported setting {reg.path}.{field}={value}{why}")


def decode(regs: TaskRegs, npu: RocketNpu, options: NpuModelOptions) -> CnaConfig:
    """The CNA registers of the task, checked against what the model implements."""
    con1 = regs(R.CNA.CONV_CON1)
    if con1.CONV_MODE not in (R.ConvMode.DIRECT, R.ConvMode.DEPTHWISE):
        raise _unsupported(R.CNA.CONV_CON1, "CONV_MODE", con1.CONV_MODE)
    for name in ("IN_PRECISION", "PROC_PRECISION"):
        if getattr(con1, name) != R.Precision.INT8:
            raise _unsupported(R.CNA.CONV_CON1, name, getattr(con1, name), " (only INT8)")
    if con1.DECONV:
        raise _unsupported(R.CNA.CONV_CON1, "DECONV", con1.DECONV)
    size1 = regs(R.CNA.DATA_SIZE1)
    channels_real = size1.DATAIN_CHANNEL_REAL + 1
    if con1.NONALIGN_DMA and con1.ARGB_IN == ARGB_ONE_CHANNEL and channels_real == 1:
        pixel = True
    elif not con1.NONALIGN_DMA and not con1.ARGB_IN:
        pixel = False
    else:
        raise NpuFault(
            "unsupported",
            f"unsupported input path CNA.CONV_CON1.NONALIGN_DMA={con1.NONALIGN_DMA} "
            f"ARGB_IN={con1.ARGB_IN} with DATAIN_CHANNEL_REAL+1={channels_real} (modelled: "
            f"NONALIGN_DMA=0 ARGB_IN=0, or NONALIGN_DMA=1 ARGB_IN={ARGB_ONE_CHANNEL} with one "
            "channel)",
        )
    channels = size1.DATAIN_CHANNEL
    if channels == 0 or channels % npu.feature_atom_bytes:
        raise _unsupported(
            R.CNA.DATA_SIZE1,
            "DATAIN_CHANNEL",
            channels,
            f" (a multiple of the {npu.feature_atom_bytes}-channel atom)",
        )
    if channels_real > channels:
        raise NpuFault(
            "inconsistent",
            f"CNA.DATA_SIZE1: DATAIN_CHANNEL_REAL+1={channels_real} > DATAIN_CHANNEL={channels}",
        )

    con3 = regs(R.CNA.CONV_CON3)
    if not con3.CONV_X_STRIDE or not con3.CONV_Y_STRIDE:
        raise _unsupported(
            R.CNA.CONV_CON3, "CONV_X/Y_STRIDE", f"{con3.CONV_X_STRIDE}/{con3.CONV_Y_STRIDE}"
        )
    for name in (
        "DECONV_X_STRIDE",
        "DECONV_Y_STRIDE",
        "ATROUS_X_DILATION",
        "ATROUS_Y_DILATION",
        "NN_MODE",
    ):
        if getattr(con3, name):
            raise _unsupported(R.CNA.CONV_CON3, name, getattr(con3, name))
    fc0 = regs(R.CNA.FC_CON0)
    if fc0.FC_SKIP_EN:
        raise _unsupported(R.CNA.FC_CON0, "FC_SKIP_EN", fc0.FC_SKIP_EN)
    if regs(R.CNA.FC_CON1).DATA_OFFSET:
        raise _unsupported(R.CNA.FC_CON1, "DATA_OFFSET", regs(R.CNA.FC_CON1).DATA_OFFSET)
    if regs(R.CNA.FC_CON2).WEIGHT_OFFSET:
        raise _unsupported(R.CNA.FC_CON2, "WEIGHT_OFFSET", regs(R.CNA.FC_CON2).WEIGHT_OFFSET)
    dcomp = regs(R.CNA.DCOMP_CTRL)
    if dcomp.DECOMP_CONTROL:
        raise _unsupported(R.CNA.DCOMP_CTRL, "DECOMP_CONTROL", dcomp.DECOMP_CONTROL)

    size0 = regs(R.CNA.DATA_SIZE0)
    line = regs(R.CNA.DMA_CON1).LINE_STRIDE
    surf = regs(R.CNA.DMA_CON2).SURF_STRIDE
    if options.cna_strides == "bytes":
        line_bytes, surface_bytes = line, surf
    elif pixel:
        line_bytes, surface_bytes = line, surf + line
    else:
        line_bytes = line * MESA_LINE_UNIT
        # Device address arithmetic is 32-bit: Mesa's SURF_STRIDE for H < 4 is negative, wraps
        # in the 28-bit field, and 16 * (field + LINE_STRIDE) wraps back to 16 * W * H.
        surface_bytes = (surf + line) * npu.feature_atom_bytes % IOVA_LIMIT

    cvt0 = regs(R.CNA.CVT_CON0)
    cvt = None
    if not cvt0.CVT_BYPASS:
        if not pixel:
            raise _unsupported(
                R.CNA.CVT_CON0,
                "CVT_BYPASS",
                0,
                " on the NC1HWC2 input path (modelled only for the 1-channel path)",
            )
        cvt1 = regs(R.CNA.CVT_CON1)
        cvt = (
            cvt0.CVT_TYPE,
            cvt0.DATA_SIGN,
            cvt1.CVT_SCALE0,
            cvt0.CVT_TRUNCATE_0,
            cvt1.CVT_OFFSET0,
        )
    elif not cvt0.DATA_SIGN:
        raise _unsupported(
            R.CNA.CVT_CON0, "DATA_SIGN", 0, " with CVT_BYPASS=1 (the MAC array takes int8)"
        )

    w2 = regs(R.CNA.WEIGHT_SIZE2)
    kw, kh, kernels = w2.WEIGHT_WIDTH, w2.WEIGHT_HEIGHT, w2.WEIGHT_KERNELS
    if not kw or not kh or not kernels:
        raise _unsupported(
            R.CNA.WEIGHT_SIZE2, "WEIGHT_WIDTH/HEIGHT/KERNELS", f"{kw}/{kh}/{kernels}"
        )
    per_kernel = regs(R.CNA.WEIGHT_SIZE1).WEIGHT_BYTES_PER_KERNEL
    total = regs(R.CNA.WEIGHT_SIZE0).WEIGHT_BYTES
    if per_kernel != kh * kw * channels or total != per_kernel * kernels:
        raise NpuFault(
            "inconsistent",
            f"CNA.WEIGHT_SIZE0/1: WEIGHT_BYTES={total}, WEIGHT_BYTES_PER_KERNEL={per_kernel}, "
            f"but kh*kw*DATAIN_CHANNEL = {kh}*{kw}*{channels} = {kh * kw * channels} and "
            f"WEIGHT_KERNELS={kernels}",
        )
    depthwise = con1.CONV_MODE == R.ConvMode.DEPTHWISE
    if depthwise and kernels != 1:
        raise _unsupported(R.CNA.WEIGHT_SIZE2, "WEIGHT_KERNELS", kernels, " (depthwise: 1)")

    cbuf = regs(R.CNA.CBUF_CON0)
    if cbuf.DATA_BANK + cbuf.WEIGHT_BANK > npu.cbuf_banks:
        raise NpuFault(
            "inconsistent",
            f"CNA.CBUF_CON0: DATA_BANK={cbuf.DATA_BANK} + WEIGHT_BANK={cbuf.WEIGHT_BANK} > the "
            f"core's {npu.cbuf_banks} banks",
        )
    pad0 = regs(R.CNA.PAD_CON0)
    pad_value = int(np.array(regs(R.CNA.PAD_CON1).PAD_VALUE).astype(np.int8))  # low byte
    size3 = regs(R.CNA.DATA_SIZE3)
    return CnaConfig(
        depthwise=depthwise,
        pixel_input=pixel,
        in_w=size0.DATAIN_WIDTH,
        in_h=size0.DATAIN_HEIGHT,
        channels=channels,
        channels_real=channels_real,
        feature_addr=regs(R.CNA.FEATURE_DATA_ADDR).FEATURE_BASE_ADDR,
        line_bytes=line_bytes,
        surface_bytes=surface_bytes,
        pad_top=pad0.PAD_TOP,
        pad_left=pad0.PAD_LEFT,
        pad_value=pad_value,
        stride_x=con3.CONV_X_STRIDE,
        stride_y=con3.CONV_Y_STRIDE,
        kw=kw,
        kh=kh,
        kernels=kernels,
        weight_addr=regs(R.CNA.DCOMP_ADDR0).DECOMPRESS_ADDR0,
        weight_bytes=total,
        weight_reuse=bool(cbuf.WEIGHT_REUSE),
        out_w=regs(R.CNA.DATA_SIZE2).DATAOUT_WIDTH,
        out_atomics=size3.DATAOUT_ATOMICS,
        cvt=cvt,
        atom=npu.feature_atom_bytes,
    )


def fetch_features(
    cfg: CnaConfig, mem: AddressSpace, npu: RocketNpu, options: NpuModelOptions, stats: TaskStats
) -> np.ndarray:
    """The task's input cube, int8: ``[in_h, in_w, channels]`` or, for the NC1HWC2 path, a
    view ``[in_h, in_w, surfaces, atom]`` of the same lanes."""
    atom = npu.feature_atom_bytes
    if cfg.pixel_input:
        bo, raw = mem.view(
            "CNA.FEATURE_DATA_ADDR (1-channel input)",
            cfg.feature_addr,
            (cfg.in_h, cfg.in_w),
            (cfg.line_bytes, 1),
        )
        stats.read("input", bo, raw.size)
        x = np.zeros((cfg.in_h, cfg.in_w, cfg.channels), dtype=np.int8)
        x[:, :, 0] = convert_input(raw, cfg.cvt, options) if cfg.cvt else raw.view(np.int8)
        return x
    bo, raw = mem.view(
        "CNA.FEATURE_DATA_ADDR (NC1HWC2 input)",
        cfg.feature_addr,
        (cfg.surfaces, cfg.in_h, cfg.in_w, atom),
        (cfg.surface_bytes, cfg.line_bytes, atom, 1),
    )
    stats.read("input", bo, raw.size)
    # [in_h, in_w, surfaces, atom]: a view of the BO; the MAC stage gathers and converts it in
    # one pass (channels is a whole number of atoms, so this is every lane).
    x = raw.view(np.int8).transpose(1, 2, 0, 3)
    if options.padded_channels == "masked" and cfg.channels_real < cfg.channels:
        x = x.reshape(cfg.in_h, cfg.in_w, -1)  # a copy
        x[:, :, cfg.channels_real :] = 0
    return x


def convert_input(
    raw: np.ndarray, cvt: tuple[int, int, int, int, int], options: NpuModelOptions
) -> np.ndarray:
    """The CNA input convertor (CVT_CON0/1, lane 0) on raw bytes; int8 result."""
    cvt_type, sign, scale, truncate, offset = cvt
    x = (raw.view(np.int8) if sign else raw).astype(np.float64)
    if cvt_type == R.CvtType.ADD_THEN_MUL:
        x += offset
        y = rshift(x, truncate, options.truncate_round, scale, out=x)
    else:
        y = rshift(x, truncate, options.truncate_round, scale, offset, out=x)
    return saturate(y, INT8_MIN, INT8_MAX).astype(np.int8)


def read_weights(cfg: CnaConfig, mem: AddressSpace) -> tuple[Bo | None, np.ndarray]:
    """The packed weight stream at DCOMP_ADDR0 (``WEIGHT_BYTES`` bytes)."""
    return mem.read("CNA.DCOMP_ADDR0 (weights)", cfg.weight_addr, cfg.weight_bytes)


def unpack_weights(cfg: CnaConfig, raw: np.ndarray, npu: RocketNpu) -> np.ndarray:
    """The weights as int8: ``[K, kh, kw, C]`` (direct) or ``[kh, kw, C]`` (depthwise)."""
    w = raw.view(np.int8)
    if cfg.depthwise:
        return _unpack_groups(w, 1, cfg.channels, cfg.kh, cfg.kw, 1, DEPTHWISE_GROUP)[0]
    atom = npu.weight_atom  # kernels and channels per weight group (brief §4)
    return _unpack_groups(w, cfg.kernels, cfg.channels, cfg.kh, cfg.kw, atom, atom)


def _unpack_groups(
    w: np.ndarray, kernels: int, channels: int, kh: int, kw: int, kgroup: int, cgroup: int
) -> np.ndarray:
    """Undo the ``[K/kg][C/cg][kh][kw][k ≤ kg][c ≤ cg]`` packing (last groups partial) into
    ``[K, kh, kw, C]``: one strided view per rectangle of full/partial groups."""
    out = np.empty((kernels, kh, kw, channels), dtype=np.int8)
    full_k, rest_k = divmod(kernels, kgroup)
    full_c, rest_c = divmod(channels, cgroup)
    per_kgroup = kgroup * kh * kw * channels  # bytes of one full kernel group
    for k0, nk, kcount in ((0, kgroup, full_k), (full_k * kgroup, rest_k, 1 if rest_k else 0)):
        if not kcount:
            continue
        base = (k0 // kgroup) * per_kgroup
        for c0, nc, ccount in ((0, cgroup, full_c), (full_c * cgroup, rest_c, 1 if rest_c else 0)):
            if not ccount:
                continue
            block = kh * kw * nk * nc
            start = base + (c0 // cgroup) * kh * kw * nk * cgroup
            view = np.lib.stride_tricks.as_strided(
                w[start:],
                (kcount, ccount, kh, kw, nk, nc),
                (per_kgroup, block, kw * nk * nc, nk * nc, nc, 1),
            )
            # -> [kcount, nk, kh, kw, ccount, nc]
            out[k0 : k0 + kcount * nk, :, :, c0 : c0 + ccount * nc] = view.transpose(
                0, 4, 2, 3, 1, 5
            ).reshape(kcount * nk, kh, kw, ccount * nc)
    return out
