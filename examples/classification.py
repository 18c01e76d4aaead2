#!/usr/bin/env python3
"""Classify an image with a quantized TFLite model, on an NPU through libteflon.so.

The shape of Mesa's Teflon example (docs/teflon.rst)::

    python3 examples/classification.py -i hen.jpg -m mobilenet_v1.tflite -l labels.txt \\
        -e $(python3 -c 'import mesa_npu.frontends.teflon as t; print(t.library_path())')

prints the top classes and the invoke time (``0.984314: hen``, ``time: 10.776ms``). Options of
the delegate go with ``-o key=value`` (``-o device=rocket``, ``-o debug=verbose``). Without
``-e`` the model runs on LiteRT's CPU kernels. ``-m`` may be given several times to chain
models (the classic MobileNet v1 as an embedding extractor followed by its head).
"""

import argparse
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, load_delegate
from PIL import Image


def load_image(path, shape, dtype):
    """RGB pixels resized to the input; int8 models take pixel - 128."""
    _, height, width, channels = shape
    image = (
        Image.open(path)
        .convert("L" if channels == 1 else "RGB")
        .resize((width, height), Image.BILINEAR)
    )
    pixels = np.asarray(image, dtype=np.int16).reshape(shape)
    return (pixels - 128).astype(np.int8) if dtype == np.int8 else pixels.astype(np.uint8)


def delegate_options(pairs):
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"option {pair!r} is not key=value")
        options[key] = value
    return options


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--image", required=True)
    parser.add_argument("-m", "--model", required=True, action="append", help="repeat to chain")
    parser.add_argument("-l", "--labels")
    parser.add_argument("-e", "--ext_delegate", help="external delegate library (libteflon.so)")
    parser.add_argument("-o", "--ext_delegate_options", action="append", default=[])
    parser.add_argument("-k", "--top", type=int, default=5)
    parser.add_argument("-n", "--invokes", type=int, default=1, help="time is the mean")
    args = parser.parse_args()

    options = delegate_options(args.ext_delegate_options)
    value, elapsed = None, 0.0
    for path in args.model:
        delegates = [load_delegate(args.ext_delegate, options)] if args.ext_delegate else []
        interpreter = Interpreter(model_path=path, experimental_delegates=delegates)
        interpreter.allocate_tensors()
        inp = interpreter.get_input_details()[0]
        if value is None:
            value = load_image(args.image, tuple(inp["shape"]), inp["dtype"])
        interpreter.set_tensor(inp["index"], value.reshape(inp["shape"]))
        start = time.perf_counter()
        for _ in range(args.invokes):
            interpreter.invoke()
        elapsed += (time.perf_counter() - start) / args.invokes
        out = interpreter.get_output_details()[0]
        value = interpreter.get_tensor(out["index"])

    scale, zero_point = out["quantization"]
    scores = value.reshape(-1).astype(np.float64)
    if scale:
        scores = (scores - zero_point) * scale
    labels = []
    if args.labels:
        with open(args.labels, encoding="utf-8") as f:
            labels = [line.strip() for line in f]
    for i in np.argsort(-scores, kind="stable")[: args.top]:
        name = labels[i] if i < len(labels) else f"class {i}"
        print(f"{scores[i]:.6f}: {name}")
    print(f"time: {elapsed * 1e3:.3f}ms")


if __name__ == "__main__":
    main()
