#!/usr/bin/env python3
"""Detect objects with a quantized SSD, on an NPU through libteflon.so.

    python3 examples/detection.py -i kite_and_cold.jpg -m ssd_mobilenet_v1_quant.tflite \\
        -l coco_labels.txt \\
        -e $(python3 -c 'import mesa_npu.frontends.teflon as t; print(t.library_path())')

The delegate claims the network; the TFLite_Detection_PostProcess custom op (box decoding and
non-maximum suppression) stays on the CPU, as with Mesa's Teflon. Prints each detection above
the threshold (score, label, box as ymin, xmin, ymax, xmax in [0, 1]) and the invoke time.
Delegate options go with ``-o key=value``; without ``-e`` the model runs on the CPU.
"""

import argparse
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter, load_delegate
from PIL import Image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--image", required=True)
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("-l", "--labels")
    parser.add_argument("-e", "--ext_delegate", help="external delegate library (libteflon.so)")
    parser.add_argument("-o", "--ext_delegate_options", action="append", default=[])
    parser.add_argument("-t", "--threshold", type=float, default=0.5)
    args = parser.parse_args()

    options = dict(pair.split("=", 1) for pair in args.ext_delegate_options)
    delegates = [load_delegate(args.ext_delegate, options)] if args.ext_delegate else []
    interpreter = Interpreter(model_path=args.model, experimental_delegates=delegates)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    _, height, width, _ = inp["shape"]
    image = Image.open(args.image).convert("RGB").resize((width, height), Image.BILINEAR)
    pixels = np.asarray(image, dtype=np.int16)[None]
    value = (pixels - 128).astype(np.int8) if inp["dtype"] == np.int8 else pixels.astype(np.uint8)
    interpreter.set_tensor(inp["index"], value)

    start = time.perf_counter()
    interpreter.invoke()
    elapsed = time.perf_counter() - start

    boxes, classes, scores, count = (
        interpreter.get_tensor(d["index"]).reshape(-1) for d in interpreter.get_output_details()
    )
    labels = []
    if args.labels:
        with open(args.labels, encoding="utf-8") as f:
            labels = [line.strip() for line in f]
    for i in range(int(count[0])):
        if scores[i] < args.threshold:
            continue
        c = int(classes[i])
        name = labels[c] if c < len(labels) else f"class {c}"
        box = ", ".join(f"{v:.3f}" for v in boxes[4 * i : 4 * i + 4])
        print(f"{scores[i]:.6f}: {name} [{box}]")
    print(f"time: {elapsed * 1e3:.3f}ms")


if __name__ == "__main__":
    main()
