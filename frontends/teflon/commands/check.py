"""``teflon check MODEL --device D [--image IMG]``: partitions against BUILTIN_REF."""

from __future__ import annotations

import argparse
import json

from ..check import check_model, format_report


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="compare every device partition with LiteRT BUILTIN_REF")
    p.add_argument("model")
    p.add_argument("--device", "-d", help="device name (default: the first one present)")
    p.add_argument("--image", "-i", help="input image (default: seeded random input)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input")
    p.add_argument(
        "--tolerance",
        type=int,
        default=0,
        help="largest LSB difference that still passes (default 0: exact)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = check_model(args.model, args.device, image=args.image, seed=args.seed)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    return 0 if report.max_lsb <= args.tolerance else 1
