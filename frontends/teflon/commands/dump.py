"""``teflon dump FILE --hw rocket|etnaviv [--format F] [--json]``: decode a register stream.

Reads raw little-endian rocket regcmd streams (ours or captured from the vendor stack), etnaviv
NN/TP job configurations and etnaviv command streams, and prints each entry as
``BLOCK.REGISTER = 0x… (FIELD=value, …)``; ``--json`` gives a form two dumps can be diffed in,
and ``--encode`` turns such a JSON dump back into the bytes. Decoding lives in util/regdump.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ....util.regdump import FORMATS, DumpError, decode, encode


def add_parser(sub) -> None:
    p = sub.add_parser("dump", help="decode a regcmd stream, job configuration or command stream")
    p.add_argument("file", help="raw dump (or, with --encode, a JSON dump)")
    p.add_argument("--hw", choices=sorted(FORMATS), help="hardware family (required to decode)")
    formats = sorted({f for fs in FORMATS.values() for f in fs})
    p.add_argument(
        "--format",
        choices=formats,
        help="rocket: regcmd; etnaviv: nn-config, tp-config or cmdstream "
        "(default: by hardware and file size)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--all-fields", action="store_true", help="also print fields that are zero")
    p.add_argument("--encode", action="store_true", help="FILE is a JSON dump: write its bytes")
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if args.encode:
        try:
            dump = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise DumpError(f"{path}: not JSON: {e}") from None
        data = encode(dump)
        if not args.output:
            raise DumpError("--encode writes bytes: give -o OUT")
        Path(args.output).write_bytes(data)
        return 0
    if args.hw is None:
        raise DumpError("--hw rocket|etnaviv is required to decode")
    try:
        dump = decode(path.read_bytes(), args.hw, args.format)
    except DumpError as e:
        raise DumpError(f"{path}: {e}") from None
    text = (
        json.dumps(dump.to_json(), indent=1) + "\n"
        if args.json
        else dump.text(all_fields=args.all_fields)
    )
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
