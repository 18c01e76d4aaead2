"""``teflon regs gen XML --python|--c-header -o OUT``: the register generator outside the build.

Produces exactly what the meson custom targets produce (``util/gen_regs.py``), for staging a
header or accessor module upstream.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ....util.gen_regs import generate


def add_parser(sub) -> None:
    p = sub.add_parser("regs", help="register database tools")
    regs_sub = p.add_subparsers(dest="regs_command", required=True, metavar="SUBCOMMAND")
    gen = regs_sub.add_parser("gen", help="generate Python accessors or a C header from XML")
    gen.add_argument("xml", help="register database (rules-ng-ng XML)")
    kind = gen.add_mutually_exclusive_group(required=True)
    kind.add_argument("--python", dest="kind", action="store_const", const="python")
    kind.add_argument("--c-header", dest="kind", action="store_const", const="c-header")
    gen.add_argument("--prefix", help="C prefix of <prefix>_get_target (default: XML folder)")
    gen.add_argument("-o", "--output", help="output file (default: stdout)")
    gen.set_defaults(run=run_gen)


def run_gen(args: argparse.Namespace) -> int:
    text = generate(args.xml, args.kind, prefix=args.prefix)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
