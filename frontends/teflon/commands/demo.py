"""``teflon demo``: the README's main job on the embedded default model.

Generates the demo int8 CNN (no file from outside the repository) and runs it the way users run
Teflon: LiteRT loads ``libteflon.so`` with the chosen device, which claims the nodes it runs.
Prints the top classes and the time, the partitions, and the exactness against LiteRT's
reference kernels, end to end and per partition (``teflon check``).
"""

from __future__ import annotations

import argparse
import os
import tempfile

from .. import litert
from ..check import check_model, compare, format_report
from ..demo_model import CLASSES, build_demo_model, demo_input
from ..runner import estimate_note, format_stage, run_chain, top_classes


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the embedded demo model through the delegate")
    p.add_argument("--device", "-d", help="device name (default: the first one present)")
    p.add_argument("--save", metavar="PATH", help="also write the generated model here")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model = build_demo_model()
    path = args.save or os.path.join(tempfile.mkdtemp(prefix="teflon-demo-"), "demo.tflite")
    with open(path, "wb") as f:
        f.write(model)
    image = demo_input()
    [stage] = run_chain([path], device=args.device, first_input=image)
    print(f"teflon demo: {len(model)} byte int8 CNN through libteflon.so on {stage.stats.device}")
    for score, name in top_classes(stage.outputs[0], CLASSES, 3):
        print(f"{score:.6f}: {name}")
    print(f"time: {stage.invoke_ms:.3f}ms")
    print(format_stage(stage))
    note = estimate_note([stage])
    if note:
        print(note)

    ref = litert.interpreter(model, "ref")
    ref.set_tensor(ref.get_input_details()[0]["index"], image)
    litert.invoke(ref, "demo")
    want = ref.get_tensor(ref.get_output_details()[0]["index"])
    exact, lsb = compare(stage.outputs[0].value, want)
    print(
        f"delegate vs LiteRT BUILTIN_REF: {exact} of {want.size} output elements exact, "
        f"max difference {lsb} LSB"
    )
    report = check_model(path, stage.stats.device)
    print(format_report(report))
    return 0 if lsb == 0 and report.max_lsb == 0 else 1
