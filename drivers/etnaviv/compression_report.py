"""Weight compression report: every weight tensor of a model through both etnaviv codecs.

For each CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED weight tensor: the raw bytes, the
zero-order entropy bound, the v7 (A311D) and v8 (i.MX 8M Plus) coefficient buffers with Mesa's
choices and with our per-layer search, and, when ``ethos-u-vela`` is installed, Arm's weight
codec on the same weights. :func:`vela_model_weights` measures Vela's own "weight compression"
the way Vela reports it (see there). Called by the benchmark script; no Mesa counterpart.

The codecs see the weights as the hardware gets them (brief ``etnaviv-ml.md`` §1): uint8 domain
(int8 + 128), 1x1 kernels on one input channel widened to 2x2, stride-2 convolutions that are
not depthwise or pointwise reshuffled to stride 1 (space-to-depth, zero point fill), on v7 the
depthwise convolutions expanded to dense ones (OC x OC x kh x kw, mostly zero point), on v8 kept
depthwise; fully connected layers as a convolution over x*y*z = F. Superblocks come from the
tiling rule of brief §5. This lowering and tiling are a report-side copy of the brief's rules
for sizing streams; the driver's own lowering (issue 6 item 1) is the reference for execution.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from ...frontends.teflon.tflite import TfliteModel, load_model
from . import codec_v7, codec_v8
from .codec_bits import WeightCompressionConfig, zero_order_entropy_bits

SIGNED_OFFSET = 128  # int8 tensors are shifted to uint8 for the hardware (brief §4)
MAX_TILE_WIDTH = 64  # brief §5
FC_MAX_FACTOR = 15  # brief §1: FC feature count factored with factors <= 15
V8_MAX_TILE_Y = 4  # brief §5: Mesa's v8 tile height cap
MAX_KERNELS_PER_CORE = 127  # 7-bit kernels_per_core config field (brief §2)


@dataclass(frozen=True, slots=True)
class CodecTarget:
    """The hardware numbers the codecs and the tiling need (brief §7; hwdb values)."""

    name: str
    nn_cores: int
    max_zrl_bits: int  # hwdb NN_ZRL_BITS (v7 only)
    input_buffer_depth: int
    accum_buffer_depth: int


# A311D: 8 NN cores, NN_ZRL_BITS 5, IBD 12, ABD 64 (brief §7; the last three unverified).
A311D = CodecTarget("A311D (v7)", 8, 5, 12, 64)
# i.MX 8M Plus: 6 NN cores (brief §7); IBD/ABD not public, A311D's assumed.
IMX8MP = CodecTarget("i.MX 8M Plus (v8)", 6, 0, 12, 64)


@dataclass(frozen=True, slots=True)
class ConvWeights:
    """One weight tensor as the codecs see it (hardware uint8 domain, [OC, IC, KH, KW])."""

    op_index: int
    op_name: str
    weights: np.ndarray  # lowered, dense (depthwise: [OC, 1, KH, KW])
    raw: np.ndarray  # the weights as stored in the model (int8 or uint8)
    raw_zero_point: int  # their zero point as stored
    biases: np.ndarray
    zero_point: int
    input_zero_point: int
    depthwise: bool
    stride: int
    out_w: int
    out_h: int
    in_w: int


def _hw(tensor) -> tuple[np.ndarray, int]:
    data = np.asarray(tensor.data)
    if tensor.is_signed:
        return (data.astype(np.int16) + SIGNED_OFFSET).astype(np.uint8), (
            tensor.zero_point + SIGNED_OFFSET
        )
    return data.astype(np.uint8), tensor.zero_point


def _reshuffle(w: np.ndarray, zp: int) -> np.ndarray:
    """Stride-2 space-to-depth of a [OC, IC, K, K] kernel: [OC, 4*IC, ceil(K/2), ceil(K/2)],
    channel 4z + p holding phase p of channel z, zero point outside (arXiv:1712.02502)."""
    oc, ic, kh, kw = w.shape
    h2, w2 = -(-kh // 2), -(-kw // 2)
    padded = np.full((oc, ic, 2 * h2, 2 * w2), zp, dtype=np.uint8)
    padded[:, :, :kh, :kw] = w
    phases = padded.reshape(oc, ic, h2, 2, w2, 2).transpose(0, 1, 3, 5, 2, 4)
    return phases.reshape(oc, 4 * ic, h2, w2)


def _fc_factors(features: int) -> tuple[int, int, int]:
    x = max(d for d in range(1, FC_MAX_FACTOR + 1) if features % d == 0)
    y = max(d for d in range(1, FC_MAX_FACTOR + 1) if (features // x) % d == 0)
    return x, y, features // (x * y)


def model_weights(model: TfliteModel, *, v8: bool) -> list[ConvWeights]:
    """The weight tensors of ``model``'s convolutions and FC layers, lowered for v7 or v8."""
    out = []
    for op in model.ops:
        if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        inp, wt = model.pipe(op.inputs[0]), model.pipe(op.inputs[1])
        bias_t = model.pipe(op.inputs[2]) if len(op.inputs) > 2 else None
        outp = model.pipe(op.outputs[0])
        if wt is None or wt.data is None or inp is None or outp is None:
            continue
        w, zp = _hw(wt)
        izp = inp.zero_point + (SIGNED_OFFSET if inp.is_signed else 0)
        depthwise = op.name == "DEPTHWISE_CONV_2D"
        stride = 1 if op.name == "FULLY_CONNECTED" else int(op.options.strideW)
        if depthwise:  # [1, KH, KW, OC] -> [OC, 1, KH, KW]
            w = w.reshape(w.shape[-3:]).transpose(2, 0, 1)[:, None]
        elif op.name == "FULLY_CONNECTED":
            x, y, z = _fc_factors(w.shape[-1])
            w = w.reshape(w.shape[0], x, y, z).transpose(0, 3, 1, 2)
        else:  # OHWI -> OIHW
            w = w.transpose(0, 3, 1, 2)
        oc = w.shape[0]
        pointwise = w.shape[2:] == (1, 1)
        if pointwise and w.shape[1] == 1 and not depthwise:
            wide = np.full((oc, 1, 2, 2), zp, dtype=np.uint8)
            wide[:, :, 0, 0] = w[:, :, 0, 0]
            w = wide
        if stride > 1 and not depthwise and not pointwise:
            w = _reshuffle(w, zp)
        if bias_t is not None and bias_t.data is not None:
            biases = np.asarray(bias_t.data, dtype=np.int32).ravel()
        else:
            biases = np.zeros(oc, dtype=np.int32)
        raw = np.asarray(wt.data)
        out.append(
            ConvWeights(
                op.index, op.name, w, raw, wt.zero_point, biases, zp, izp, depthwise, stride,
                outp.dims[2], outp.dims[1], inp.dims[2],
            )
        )  # fmt: skip
    return out


def _interleave_mode(tile_x: int, kh: int, v8: bool) -> int:
    """Brief §5 step 3."""
    t = kh - 1 + tile_x
    if t > (MAX_TILE_WIDTH + 8) // 2:
        return 1
    if v8:
        base = 1 if tile_x > MAX_TILE_WIDTH // 2 else 2 if tile_x > MAX_TILE_WIDTH // 4 else 4
        if t > (MAX_TILE_WIDTH + 8) // 4:
            return 2 if base >= 2 else base
        return 4 if base >= 4 else base
    mode = 8
    for limit, m in ((MAX_TILE_WIDTH // 2, 1), (MAX_TILE_WIDTH // 4, 2), (MAX_TILE_WIDTH // 8, 4)):
        if tile_x > limit:
            mode = m
            break
    return min(mode, 4) if t > (MAX_TILE_WIDTH + 8) // 4 else min(mode, 2)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def superblocks(cw: ConvWeights, target: CodecTarget, *, v8: bool) -> int:
    """Superblocks of brief §5 for this layer (first-pixel pooling ignored). Mesa's names:
    its "width" is TFLite H, ``weight_width`` is kh and ``weight_height`` is kw."""
    oc, _, kh, kw = cw.weights.shape
    ibd, abd, cores = target.input_buffer_depth, target.accum_buffer_depth, target.nn_cores
    tile_x = min(cw.out_h, MAX_TILE_WIDTH)
    mode = _interleave_mode(tile_x, kw, v8)
    tile_y = min(ibd * mode - kw + 1, mode * abd, cw.out_w)
    if v8:
        tile_y = min(tile_y, V8_MAX_TILE_Y)
    if cw.stride > 1 and tile_y % 2:
        tile_y -= 1
    tile_y = max(tile_y, 1)
    if v8:
        if kh == 1:
            f = abd // _ceil(tile_y, mode)
        else:
            f = abd // (_ceil(_ceil(tile_y * tile_x, cw.stride), 64) * cw.stride)
        f = min(f, abd * 6 // 9)
    else:
        f = abd * mode // tile_y
        if kh == 1:
            f = min(f, abd // 3)
    f = max(1, min(f, _ceil(oc, cores), MAX_KERNELS_PER_CORE))
    kpc = _ceil(oc, cores * f)
    return _ceil(_ceil(oc, cores), _ceil(oc, kpc * cores))


def _v7_layout(cw: ConvWeights, target: CodecTarget) -> codec_v7.V7Layout:
    oc, ic, kh, kw = cw.weights.shape
    if cw.depthwise:
        ic = oc
    sb = superblocks(cw, target, v8=False)
    for count in range(sb, 0, -1):  # the brief's rule can leave the last superblock empty
        try:
            return codec_v7.V7Layout.for_job(
                oc=oc, ic=ic, kh=kh, kw=kw, nn_cores=target.nn_cores, superblocks=count,
                zero_point=cw.zero_point, depthwise=cw.depthwise, input_width=cw.in_w,
            )  # fmt: skip
        except ValueError:
            if count == 1:
                raise
    raise AssertionError("unreachable: superblocks >= 1")


def encode_layer_v7(cw: ConvWeights, target: CodecTarget, config: WeightCompressionConfig):
    layout = _v7_layout(cw, target)
    offsets = codec_v7.plane_offsets(layout, cw.out_w * cw.out_h)
    args = dict(
        input_zero_point=cw.input_zero_point, max_zrl_bits=target.max_zrl_bits, config=config
    )
    if cw.depthwise:
        return layout, codec_v7.encode_v7_depthwise(cw.weights, cw.biases, offsets, layout, **args)
    return layout, codec_v7.encode_v7(cw.weights, cw.biases, offsets, layout, **args)


def _v8_layout(cw: ConvWeights, target: CodecTarget) -> codec_v8.V8Layout:
    oc, ic, kh, kw = cw.weights.shape
    sb = superblocks(cw, target, v8=True)
    for count in range(sb, 0, -1):  # some counts do not give each kernel one core
        try:
            return codec_v8.V8Layout(
                oc, ic, kh, kw, target.nn_cores, count, cw.zero_point, cw.depthwise
            )
        except ValueError:
            if count == 1:
                raise
    raise AssertionError("unreachable: superblocks >= 1")


def encode_layer_v8(cw: ConvWeights, target: CodecTarget, config: WeightCompressionConfig):
    layout = _v8_layout(cw, target)
    return layout, codec_v8.encode_v8(
        cw.weights, cw.biases, layout, input_zero_point=cw.input_zero_point, config=config
    )


V7_SIDE_BYTES = 8  # bias + output offset per kernel slot (brief §3.1)
V7_STREAM_HEADER_BYTES = 3  # zrl_bits + kernels per core
V8_BIAS_BYTES = 4  # one u32 per output channel (brief §3.2)


@dataclass(frozen=True, slots=True)
class TensorRow:
    """One weight tensor. ``*_bytes`` are whole coefficient buffers; ``*_weight_bytes`` leave out
    what is not weights (headers, biases, output offsets), as Vela's figure does."""

    op_index: int
    op_name: str
    shape: tuple[int, ...]  # as stored in the model
    raw_bytes: int
    entropy_bytes: float  # zero-order entropy of the stored bytes, bits / 8
    v7_mesa_bytes: int
    v7_bytes: int
    v7_weight_bytes: int
    v7_zrl_bits: int
    v8_mesa_bytes: int
    v8_bytes: int
    v8_weight_bytes: int
    v8_zrl_bytes: int  # search with the zero-run mode allowed
    vela_bytes: int | None  # Vela's mlw codec on (w - zp) in OHWI order, one stream


@dataclass(frozen=True, slots=True)
class VelaWeights:
    """Vela's own figures for a whole model: ``total_original_weights`` and
    ``total_npu_encoded_weights`` of its summary CSV (the "Original Weights Size" and "NPU
    Encoded Weights Size" it prints with --verbose-weights), compiled for ``accelerator``."""

    accelerator: str
    original: int
    encoded: int
    seconds: float

    @property
    def ratio(self) -> float:
        return self.original / self.encoded


@dataclass(frozen=True, slots=True)
class ModelReport:
    model: str
    rows: tuple[TensorRow, ...]
    v7_seconds: float  # encoding + search of every tensor (default config), CPU time
    v8_seconds: float
    vela: VelaWeights | None

    def total(self, field: str) -> float:
        return sum(getattr(row, field) or 0 for row in self.rows)


def _mlw_bytes(cw: ConvWeights, mlw) -> int:
    """Vela's weight codec on (w - zp) of the stored tensor, in stored order, as one stream."""
    return len(mlw.encode((cw.raw.astype(np.int64) - cw.raw_zero_point).ravel().tolist()))


def compression_report(
    path: str | os.PathLike,
    *,
    v7_target: CodecTarget = A311D,
    v8_target: CodecTarget = IMX8MP,
    with_vela: bool = True,
) -> ModelReport:
    """Compress every weight tensor of the model at ``path`` both ways and measure Vela."""
    model = load_model(path)
    search = WeightCompressionConfig()
    mesa = WeightCompressionConfig(search=False)
    zrl = WeightCompressionConfig(v8_zrl=True)
    v7_layers = model_weights(model, v8=False)
    v8_layers = model_weights(model, v8=True)
    start = time.process_time()
    v7 = [encode_layer_v7(cw, v7_target, search) for cw in v7_layers]
    v7_seconds = time.process_time() - start
    start = time.process_time()
    v8 = [encode_layer_v8(cw, v8_target, search) for cw in v8_layers]
    v8_seconds = time.process_time() - start
    mlw = _mlw_codec() if with_vela else None
    rows = []
    for cw7, cw8, (l7, e7), (l8, e8) in zip(v7_layers, v8_layers, v7, v8, strict=True):
        v7_overhead = l7.header_bytes + l7.cores_used * V7_STREAM_HEADER_BYTES
        rows.append(
            TensorRow(
                op_index=cw7.op_index,
                op_name=cw7.op_name,
                shape=tuple(model.tensor(model.ops[cw7.op_index].inputs[1]).shape),
                raw_bytes=int(cw7.raw.size),
                entropy_bytes=zero_order_entropy_bits(cw7.raw.view(np.uint8)) / 8,
                v7_mesa_bytes=len(encode_layer_v7(cw7, v7_target, mesa)[1].data),
                v7_bytes=len(e7.data),
                v7_weight_bytes=len(e7.data) - v7_overhead - V7_SIDE_BYTES * l7.slots,
                v7_zrl_bits=e7.zrl_bits,
                v8_mesa_bytes=len(encode_layer_v8(cw8, v8_target, mesa)[1].data),
                v8_bytes=len(e8.data),
                v8_weight_bytes=len(e8.data) - codec_v8.HEADER_BYTES - V8_BIAS_BYTES * l8.oc,
                v8_zrl_bytes=len(encode_layer_v8(cw8, v8_target, zrl)[1].data),
                vela_bytes=None if mlw is None else _mlw_bytes(cw7, mlw),
            )
        )
    vela = vela_model_weights(path) if with_vela else None
    return ModelReport(model.name, tuple(rows), v7_seconds, v8_seconds, vela)


def _mlw_codec():
    try:
        from ethosu import mlw_codec
    except ImportError:
        return None
    return mlw_codec


@contextlib.contextmanager
def _silenced():
    """Vela prints its summary and its compiled extension writes warnings straight to the
    process's stdout/stderr; park both file descriptors (and Python's streams) meanwhile."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            quiet = io.StringIO()
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def vela_model_weights(
    path: str | os.PathLike, accelerator: str = "ethos-u55-128"
) -> VelaWeights | None:
    """Compile the model with Vela (in this process) and read its weight totals; None when
    ``ethos-u-vela`` is not installed or cannot compile the model."""
    try:
        from ethosu.vela import vela
    except ImportError:
        return None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out, _silenced():
        status = vela.main(
            [f"--accelerator-config={accelerator}", f"--output-dir={out}", os.fspath(path)]
        )
        summaries = [f for f in os.listdir(out) if f.endswith(".csv") and "_summary_" in f]
        if status or not summaries:
            return None
        with open(os.path.join(out, summaries[0]), newline="") as f:
            row = next(csv.DictReader(f))
    return VelaWeights(
        accelerator,
        int(row["total_original_weights"]),
        int(row["total_npu_encoded_weights"]),
        time.perf_counter() - start,
    )


def format_report(report: ModelReport) -> str:
    """A plain-text table: per tensor and total, bytes and ratios to the raw bytes."""
    head = (
        f"{'op':>4} {'kind':<17} {'raw':>8} {'entropy':>8} {'v7 Mesa':>8} {'v7':>8} {'zrl':>3} "
        f"{'v8 Mesa':>8} {'v8':>8} {'v8+zrl':>8} {'Vela mlw':>8}"
    )
    lines = [f"{report.model}", head]
    for r in report.rows:
        vela = "-" if r.vela_bytes is None else str(r.vela_bytes)
        lines.append(
            f"{r.op_index:>4} {r.op_name:<17} {r.raw_bytes:>8} {r.entropy_bytes:>8.0f} "
            f"{r.v7_mesa_bytes:>8} {r.v7_bytes:>8} {r.v7_zrl_bits:>3} {r.v8_mesa_bytes:>8} "
            f"{r.v8_bytes:>8} {r.v8_zrl_bytes:>8} {vela:>8}"
        )
    raw = report.total("raw_bytes")

    def ratio(field: str) -> str:
        total = report.total(field)
        return f"{total:>10.0f} bytes  {raw / total:5.3f}x" if total else "-"

    lines += [
        f"raw int8 weights        {raw:>10.0f} bytes",
        f"zero-order entropy      {ratio('entropy_bytes')}",
        f"v7 Mesa choices         {ratio('v7_mesa_bytes')}",
        f"v7 searched (buffers)   {ratio('v7_bytes')}   weights only {ratio('v7_weight_bytes')}",
        f"v8 Mesa choices         {ratio('v8_mesa_bytes')}",
        f"v8 searched (buffers)   {ratio('v8_bytes')}   weights only {ratio('v8_weight_bytes')}",
        f"v8 searched, zero runs  {ratio('v8_zrl_bytes')}",
        f"Vela mlw per tensor     {ratio('vela_bytes')}",
        f"encode + search time    v7 {report.v7_seconds:.3f} s   v8 {report.v8_seconds:.3f} s",
    ]
    if report.vela is not None:
        v = report.vela
        lines.append(
            f"Vela {v.accelerator}: original {v.original} encoded {v.encoded} bytes "
            f"{v.ratio:5.3f}x ({v.seconds:.2f} s)"
        )
    return "\n".join(lines)
