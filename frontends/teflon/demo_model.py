"""The embedded default model: a small int8 CNN the project generates itself.

The network (conv s2 + relu6, depthwise + relu6, 1x1 conv, residual ADD, conv s2 + relu, global
average pool, fully connected, softmax) is first written in float32 and run by LiteRT on a
calibration image; the observed ranges give every tensor its quantization, as post-training
quantization does. Weights are per-channel symmetric int8, biases int32, all from a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...gallium.tensor import ElementType
from . import litert
from .writer import ModelBuilder, options

INPUT_SHAPE = (1, 48, 48, 3)
CLASSES = (
    "circle",
    "square",
    "stripes",
    "gradient",
    "checker",
    "ring",
    "cross",
    "noise",
    "dots",
    "blank",
)


@dataclass(frozen=True, slots=True)
class Layer:
    kind: str  # conv, dwconv, add, pool, reshape, fc, softmax
    out: int = 0
    kernel: int = 1
    stride: int = 1
    act: int = 0  # schema ActivationFunctionType
    src: tuple[int, ...] = ()  # earlier layer outputs (-1 = previous); add uses two


LAYERS = (
    Layer("conv", 16, 3, 2, act=3),
    Layer("dwconv", 16, 3, 1, act=3),
    Layer("conv", 16, 1, 1),
    Layer("add", src=(-1, 0)),
    Layer("conv", 32, 3, 2, act=1),
    Layer("pool"),
    Layer("reshape"),
    Layer("fc", len(CLASSES)),
    Layer("softmax"),
)


def sample_image(seed: int = 7) -> np.ndarray:
    """A deterministic 48x48 RGB picture (a ring on a gradient), uint8."""
    y, x = np.mgrid[0:48, 0:48]
    r = np.hypot(y - 24, x - 22)
    ring = ((r > 9) & (r < 15)).astype(np.float64)
    rng = np.random.default_rng(seed)
    img = np.stack([ring * 220 + x * 0.6, ring * 40 + y * 2.0, 90 - ring * 60 + x], axis=-1)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)[None]


def _weights(rng: np.random.Generator, layer: Layer, cin: int) -> np.ndarray:
    if layer.kind == "dwconv":
        shape = (1, layer.kernel, layer.kernel, cin)
    elif layer.kind == "fc":
        shape = (layer.out, cin)
    else:
        shape = (layer.out, layer.kernel, layer.kernel, cin)
    fan_in = cin * layer.kernel**2 if layer.kind != "dwconv" else layer.kernel**2
    return rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)


def _output_shape(layer: Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    _, h, w, c = shape if len(shape) == 4 else (1, 1, 1, shape[-1])
    if layer.kind in ("conv", "dwconv"):
        return (
            1,
            -(-h // layer.stride),
            -(-w // layer.stride),
            c if layer.kind == "dwconv" else layer.out,
        )
    return {"pool": (1, 1, 1, c), "reshape": (1, c), "fc": (1, layer.out)}.get(layer.kind, shape)


def _build(ranges: dict[int, tuple[float, float]] | None) -> bytes:
    """The float model (``ranges`` None) or the int8 one quantized with ``ranges``.

    Both builds add tensors in the same order, so a tensor index names the same value in both.
    """
    rng = np.random.default_rng(2024)
    b = ModelBuilder("mesa_npu demo CNN")
    quant = ranges is not None
    act_type = ElementType.INT8 if quant else ElementType.FLOAT32

    def qparams(index: int) -> dict:
        if not quant:
            return {}
        lo, hi = min(ranges[index][0], 0.0), max(ranges[index][1], 0.0)
        scale = max(hi - lo, 1e-6) / 255.0
        return {"scale": scale, "zero_point": int(np.clip(round(-128 - lo / scale), -128, 127))}

    def activation(shape: tuple[int, ...], softmax: bool = False) -> int:
        if quant and softmax:  # TFLite fixes int8 softmax outputs to 1/256, zero point -128
            return b.tensor(shape, act_type, scale=1 / 256, zero_point=-128)
        return b.tensor(shape, act_type, **qparams(len(b.graph.tensors)))

    shapes, outs = [INPUT_SHAPE], [activation(INPUT_SHAPE)]
    for layer in LAYERS:
        src, shape = outs[-1], _output_shape(layer, shapes[-1])
        _, h, w, c = shapes[-1] if len(shapes[-1]) == 4 else (1, 1, 1, shapes[-1][-1])
        # The output goes before the constants, so indices match in both builds.
        out = activation(shape, layer.kind == "softmax")
        if layer.kind in ("conv", "dwconv", "fc"):
            wt, bt = _constants(b, rng, layer, c, quant and qparams(src)["scale"], act_type)
            if layer.kind == "fc":
                b.op(
                    "FULLY_CONNECTED",
                    [src, wt, bt],
                    [out],
                    options("FULLY_CONNECTED", fusedActivationFunction=layer.act),
                )
            else:
                name = "CONV_2D" if layer.kind == "conv" else "DEPTHWISE_CONV_2D"
                fields = dict(
                    padding=0,
                    strideH=layer.stride,
                    strideW=layer.stride,
                    fusedActivationFunction=layer.act,
                )
                if layer.kind == "dwconv":
                    fields["depthMultiplier"] = 1
                b.op(name, [src, wt, bt], [out], options(name, **fields))
        elif layer.kind == "add":
            b.op("ADD", [src, outs[layer.src[1] + 1]], [out], options("ADD"))
        elif layer.kind == "pool":
            b.op(
                "AVERAGE_POOL_2D",
                [src],
                [out],
                options(
                    "AVERAGE_POOL_2D",
                    padding=1,
                    strideH=1,
                    strideW=1,
                    filterHeight=h,
                    filterWidth=w,
                ),
            )
        elif layer.kind == "reshape":
            b.op("RESHAPE", [src], [out], options("RESHAPE", newShape=[1, c]))
        elif layer.kind == "softmax":
            b.op("SOFTMAX", [src], [out], options("SOFTMAX", beta=1.0))
        outs.append(out)
        shapes.append(shape)
    return b.build([outs[0]], [outs[-1]])


def _constants(
    b: ModelBuilder,
    rng: np.random.Generator,
    layer: Layer,
    cin: int,
    in_scale: float | bool,
    act_type: ElementType,
) -> tuple[int, int]:
    """Weight and bias tensors: float, or per-channel symmetric int8 with an int32 bias."""
    wf = _weights(rng, layer, cin)
    bias = rng.normal(0, 0.05, wf.shape[3] if layer.kind == "dwconv" else wf.shape[0])
    if not in_scale:
        return (
            b.tensor(wf.shape, act_type, data=wf),
            b.tensor(bias.shape, act_type, data=bias.astype(np.float32)),
        )
    axis = 3 if layer.kind == "dwconv" else 0
    others = tuple(i for i in range(wf.ndim) if i != axis)
    w_scale = np.maximum(np.abs(wf).max(axis=others), 1e-6) / 127.0
    wq = np.clip(np.round(wf / np.expand_dims(w_scale, others)), -127, 127).astype(np.int8)
    bq = np.round(bias / (in_scale * w_scale)).astype(np.int32)
    return (
        b.tensor(wf.shape, ElementType.INT8, scale=w_scale, zero_point=0, axis=axis, data=wq),
        b.tensor(bq.shape, ElementType.INT32, scale=in_scale * w_scale, zero_point=0, data=bq),
    )


def _calibrate() -> dict[int, tuple[float, float]]:
    model = _build(None)
    it = litert.interpreter(model, "builtin", preserve=True)
    image = sample_image().astype(np.float32) / 127.5 - 1.0
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], image)
    it.invoke()
    ranges = {}
    for t in it.get_tensor_details():
        v = it.get_tensor(t["index"])
        ranges[t["index"]] = (float(v.min()), float(v.max()))
    ranges[0] = (-1.0, 1.0)  # the input range is known: pixels / 127.5 - 1
    return ranges


def build_demo_model() -> bytes:
    """The int8 demo model as TFLite flatbuffer bytes (deterministic)."""
    return _build(_calibrate())


def demo_input() -> np.ndarray:
    """The sample image quantized for the demo model's input (scale 2/255, zero point 0)."""
    return (sample_image().astype(np.int16) - 128).astype(np.int8)
