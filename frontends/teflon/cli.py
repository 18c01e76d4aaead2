"""The ``teflon`` command line. Each command lives in ``commands/<name>.py`` and provides
``add_parser(subparsers)``; errors become one line on stderr and a non-zero exit, never a
traceback (``TEFLON_DEBUG=traceback`` shows one for debugging)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = ("inspect", "check", "demo", "run", "profile", "sweep", "regs", "dump", "graph")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teflon", description=__doc__.split(".")[0] + ".")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__package__}.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("teflon: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # every failure is one line; see TEFLON_DEBUG=traceback
        if "traceback" in os.environ.get("TEFLON_DEBUG", ""):
            raise
        known = type(e).__module__.startswith("mesa_npu") or isinstance(e, OSError | ValueError)
        kind = "error" if known else f"internal error ({type(e).__name__})"
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"teflon: {kind}: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
