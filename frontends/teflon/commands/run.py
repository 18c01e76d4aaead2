"""``teflon run MODEL [MODEL...] --device D --image IMG``: the model through libteflon.so.

LiteRT loads the delegate as any application would; the command prints the top classes (or,
for an SSD, the detections), the invoke time as Mesa's classification example does
(``0.984314: hen``, ``time: 10.776ms``) and, per model, the partitions with their host time.
Several models are chained (the first output feeds the next model).
"""

from __future__ import annotations

import argparse

from ..runner import (
    detections,
    estimate_note,
    format_stage,
    is_detection,
    read_labels,
    run_chain,
    top_classes,
)


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run a model through the libteflon.so delegate in LiteRT")
    p.add_argument("models", nargs="+", metavar="MODEL", help="models; several are chained")
    p.add_argument("--device", "-d", help="device name (default: the first one present)")
    p.add_argument("--image", "-i", help="input image (default: seeded random input)")
    p.add_argument("--labels", "-l", help="labels file, one per line, index = class")
    p.add_argument("--top", type=int, default=5, help="classes to print (default 5)")
    p.add_argument("--threshold", type=float, default=0.5, help="detection score threshold")
    p.add_argument("--invokes", "-n", type=int, default=1, help="invokes (time is the mean)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input")
    p.add_argument(
        "--cpu",
        choices=("ref", "builtin", "xnnpack"),
        default="ref",
        help="kernels of the nodes left on the CPU (default ref: BUILTIN_REF)",
    )
    p.add_argument("--verbose", "-v", action="store_true", help="TEFLON_DEBUG=verbose output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    labels = read_labels(args.labels)
    stages = run_chain(
        args.models,
        device=args.device,
        image=args.image,
        seed=args.seed,
        invokes=args.invokes,
        resolver=args.cpu,
        debug=args.verbose,
    )
    last = stages[-1]
    if is_detection(last.outputs):
        for score, name, box in detections(last.outputs, labels, args.threshold):
            print(f"{score:.6f}: {name} [{', '.join(f'{v:.3f}' for v in box)}]")
    else:
        for score, name in top_classes(last.outputs[0], labels, args.top):
            print(f"{score:.6f}: {name}")
    print(f"time: {sum(s.invoke_ms for s in stages):.3f}ms")
    for stage in stages:
        print(format_stage(stage))
    note = estimate_note(stages)
    if note:
        print(note)
    return 0
