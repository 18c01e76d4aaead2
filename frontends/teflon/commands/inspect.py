"""``teflon inspect MODEL [--device D]``: the support table and the partitions."""

from __future__ import annotations

import argparse

from ....gallium.loader import open_device
from ..partition import check_quantized, partition, query_support
from ..support import format_partitions, format_support_table
from ..tflite import load_model


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="print the support table and partitions of a model")
    p.add_argument("model")
    p.add_argument("--device", "-d", help="device name (default: the first one present)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    check_quantized(model)
    device = open_device(args.device)
    support = query_support(model, device)
    print(
        f"teflon: {model.name}: {len(model.ops)} operations, {len(model.tensors)} tensors, "
        f"device {device.name}"
    )
    print(format_support_table(model, support))
    print(format_partitions(partition(model, support), len(model.ops)))
    return 0
