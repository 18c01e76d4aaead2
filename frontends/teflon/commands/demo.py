"""``teflon demo``: the README's main job on the embedded default model.

Generates the demo int8 CNN (no file from outside the repository), runs it on a device and
against LiteRT's reference kernels, and prints the top classes, the time and the exactness.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from ....gallium.loader import open_device
from .. import litert
from ..check import check_model, format_report
from ..demo_model import CLASSES, build_demo_model, demo_input


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the embedded demo model on a device")
    p.add_argument("--device", "-d", help="device name (default: the first one present)")
    p.add_argument("--save", metavar="PATH", help="also write the generated model here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model = build_demo_model()
    path = args.save or os.path.join(tempfile.mkdtemp(prefix="teflon-demo-"), "demo.tflite")
    with open(path, "wb") as f:
        f.write(model)
    device = open_device(args.device)
    ref = litert.interpreter(model, "ref")
    ref.set_tensor(ref.get_input_details()[0]["index"], demo_input())
    t0 = time.perf_counter()
    ref.invoke()
    ref_ms = (time.perf_counter() - t0) * 1e3
    out = ref.get_output_details()[0]
    scores = (
        ref.get_tensor(out["index"]).astype(np.float64).reshape(-1) - out["quantization"][1]
    ) * out["quantization"][0]
    print(f"teflon demo: {len(model)} byte int8 CNN, device {device.name}")
    for i in np.argsort(-scores)[:3]:
        print(f"{scores[i]:.6f}: {CLASSES[i]}")
    print(f"LiteRT BUILTIN_REF time: {ref_ms:.3f}ms")
    report = check_model(path, args.device)
    print(format_report(report))
    return 0 if report.max_lsb == 0 else 1
