"""``teflon profile MODEL [MODEL...] --device D [--json OUT] [--png OUT] [--compare OPT...]``:
the per-layer estimate of NPU time (cost model fed by the device's counters), the CPU operations'
host time and the NPU<->CPU transitions; ``--compare key=value`` reruns with that driver option
and prints the variants side by side. Logic: ``frontends/teflon/profile.py``.
"""

from __future__ import annotations

import argparse
import json

from ..profile import compare, profile
from ..profile_report import (
    compare_json,
    format_compare,
    format_profile,
    require_chart,
    write_chart,
)


def add_parser(sub) -> None:
    p = sub.add_parser("profile", help="per-layer NPU time estimate (cost model) and CPU time")
    p.add_argument("models", nargs="+", metavar="MODEL", help="models; several are one chain")
    p.add_argument("--device", "-d", required=True, help="device, e.g. etnaviv:a311d or rocket")
    p.add_argument("--json", metavar="OUT", help="write the profile (or comparison) as JSON")
    p.add_argument("--png", metavar="OUT", help="write a per-layer bar chart (needs matplotlib)")
    p.add_argument(
        "--compare",
        nargs="+",
        metavar="OPTION",
        default=(),
        help="driver options to compare with the baseline, e.g. compression=off sram=off",
    )
    p.add_argument(
        "--cpu",
        choices=("ref", "builtin", "xnnpack"),
        default="builtin",
        help="LiteRT kernels that time the CPU operations (default builtin)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.png:
        require_chart()
    kwargs = {"seed": args.seed, "cpu_kernels": args.cpu}
    if args.compare:
        variants = compare(args.models, args.device, args.compare, **kwargs)
        print(format_compare(variants))
        doc = compare_json(variants)
        base = variants[0][1]
    else:
        base = profile(args.models, args.device, **kwargs)
        print(format_profile(base))
        doc = base.to_json()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
    if args.png:
        write_chart(base, args.png)
    return 0
