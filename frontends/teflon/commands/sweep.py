"""``teflon sweep --device D [--suite S...] [--full] [--json] [--jobs N]``: conformance sweeps.

Runs the CI sample of each suite (``--full``: every case) on a device and prints per suite the
cases run, the share that is bit-exact against LiteRT BUILTIN_REF, the largest difference in
LSB, the unsupported count and the failures by case ID. With ``--expectations DIR`` the exit
status follows the device's fails/flakes/skips files instead (deqp-runner style).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from ....gallium.loader import find_device
from ..conformance import SUITE_NAMES, cache_from_env, select
from ..expectations import load_expectations, verdict
from ..sweep import CaseResult, Status, format_summary, run_cases, summarize


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run the conformance sweeps on a device")
    p.add_argument("--device", "-d", help="device name (default: the first one present)")
    p.add_argument("--suite", "-s", action="append", choices=SUITE_NAMES, help="suite (repeatable)")
    p.add_argument("--full", action="store_true", help="every case, not the CI sample")
    p.add_argument("--case", metavar="REGEX", help="only cases whose ID matches")
    p.add_argument("--jobs", "-j", type=int, default=1, help="worker processes")
    p.add_argument("--tolerance", type=int, default=0, help="LSB difference that still passes")
    p.add_argument(
        "--cache",
        metavar="DIR",
        help="cache expected outputs here (default: TEFLON_ENABLE_CACHE, else off)",
    )
    p.add_argument("--expectations", metavar="DIR", help="fails/flakes/skips files to apply")
    p.add_argument("--list", action="store_true", help="list the case IDs and exit")
    p.add_argument("--save", metavar="DIR", help="write each case's .tflite here and exit")
    p.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="print every case's result (stderr with --json)",
    )
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.set_defaults(run=run)


def _print_case(r: CaseResult, stream=None) -> None:
    """One line per case (to stderr beside --json, so the JSON stays parseable)."""
    stream = stream or sys.stdout
    line = f"{r.status.value:<11} {r.max_lsb:>4} LSB {r.seconds:7.3f}s {r.case_id} {r.detail}"
    print(line, file=stream, flush=True)


def run(args: argparse.Namespace) -> int:
    pattern = re.compile(args.case) if args.case else None
    cases = [
        c
        for _, suite_cases in select(args.suite, full=args.full)
        for c in suite_cases
        if pattern is None or pattern.search(c.id)
    ]
    if args.list:
        print("\n".join(c.id for c in cases))
        return 0
    if args.save:
        out = Path(args.save)
        out.mkdir(parents=True, exist_ok=True)
        for c in cases:
            (out / f"{c.id}.tflite").write_bytes(c.build())
        print(f"wrote {len(cases)} models to {out}")
        return 0
    info = find_device(args.device)
    device = info.name + (f"?{info.options}" if info.options else "")  # keep driver options
    expectations = load_expectations(args.expectations, info.name) if args.expectations else None
    if expectations is not None:
        cases = [c for c in cases if not expectations.skipped(c.id)]
    cache = Path(args.cache) if args.cache else cache_from_env()
    results = run_cases(
        cases,
        device,
        tolerance=args.tolerance,
        jobs=args.jobs,
        cache=cache,
        on_result=(lambda r: _print_case(r, sys.stderr if args.json else None))
        if args.verbose
        else None,
    )
    summaries = summarize(results)
    verdicts = {}
    if expectations is not None:
        verdicts = {r.case_id: verdict(r.case_id, r.passed, expectations) for r in results}
    if args.json:
        doc = {
            "device": device,
            "full": args.full,
            "tolerance": args.tolerance,
            "suites": [s.to_json() for s in summaries],
            "cases": [
                r.to_json() | ({"verdict": verdicts[r.case_id].value} if verdicts else {})
                for r in results
            ],
        }
        print(json.dumps(doc, indent=1))
    else:
        print(format_summary(device, summaries, limit=0))
        for r in results:
            if r.status in (Status.FAIL, Status.CRASH):
                print(f"  {r.status.value}: {r.case_id}: {r.detail}")
        for case_id, v in verdicts.items():
            if v.is_problem:
                print(f"  {v.value}: {case_id}")
    if verdicts:
        return 1 if any(v.is_problem for v in verdicts.values()) else 0
    return 0 if all(r.status in (Status.PASS, Status.UNSUPPORTED) for r in results) else 1
