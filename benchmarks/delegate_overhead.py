"""What libteflon.so costs per invoke in a Python host (LiteRT): a table, JSON with ``--json``.

    python benchmarks/delegate_overhead.py [--device reference] [--invokes 2000] [--json]

On a one-op model (a 1x16 uint8 RESHAPE, claimed as one partition) it measures the mean invoke
time without the delegate (BUILTIN_REF), with it, the partition's own host time as the delegate
measures it (copy in, device invoke and read-out, copy out) and the device's invoke alone,
called from Python without TFLite. ``with - partition`` is what the C++ -> C -> Python boundary
and TFLite's node dispatch cost; ``partition - device`` is the delegate's Python work. The pure
C -> Python -> C round trip is measured by the C host test (tests/.../test_delegate_c_host.py).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from mesa_npu.frontends.teflon import litert
from mesa_npu.frontends.teflon.delegate import delegate_stats
from mesa_npu.frontends.teflon.partition import make_partition, query_support
from mesa_npu.frontends.teflon.runner import _interpreter, open_delegate
from mesa_npu.frontends.teflon.tflite import parse_model
from mesa_npu.frontends.teflon.writer import ModelBuilder, options
from mesa_npu.gallium import ElementType, open_device


def tiny_model() -> bytes:
    b = ModelBuilder("delegate overhead")
    x = b.tensor((1, 16), ElementType.UINT8, scale=0.1, zero_point=0)
    y = b.tensor((1, 4, 4), ElementType.UINT8, scale=0.1, zero_point=0)
    b.op("RESHAPE", [x], [y], options("RESHAPE", newShape=[1, 4, 4]))
    return b.build([x], [y])


def mean_us(fn, count: int) -> float:
    fn()  # warm up (lazy device set-up)
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - start) / count * 1e6


def measure(device_name: str, invokes: int) -> dict:
    raw = tiny_model()
    inputs = {0: np.arange(16, dtype=np.uint8).reshape(1, 16)}
    cpu = litert.interpreter(raw, "ref")
    litert.set_inputs(cpu, inputs)
    cpu_us = mean_us(cpu.invoke, invokes)

    delegate = open_delegate(device_name)
    it = _interpreter(raw, delegate, "ref")
    litert.set_inputs(it, inputs)
    with_us = mean_us(it.invoke, invokes)
    [part] = delegate_stats(delegate).partitions
    partition_us = part.total_invoke_ms / part.invokes * 1e3

    model = parse_model(raw)
    device = open_device(device_name)
    support = query_support(model, device)
    ops = make_partition(model, support, [0]).ops
    context = device.create_context()
    subgraph = context.subgraph_deserialize(device.subgraph_create(ops).serialize())

    def direct() -> None:
        context.subgraph_invoke(subgraph, inputs)
        context.subgraph_read_outputs(subgraph)

    device_us = mean_us(direct, invokes)
    context.destroy()
    return {
        "device": device.name,
        "invokes": invokes,
        "cpu_ref_us": cpu_us,
        "delegate_us": with_us,
        "partition_host_us": partition_us,
        "device_invoke_us": device_us,
        "boundary_us": with_us - partition_us,
        "delegate_python_us": partition_us - device_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="reference")
    parser.add_argument("--invokes", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.device, args.invokes)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"one-op model (1x16 uint8 RESHAPE) on {result['device']}, {args.invokes} invokes")
    rows = [
        ("LiteRT BUILTIN_REF, no delegate", "cpu_ref_us"),
        ("with libteflon.so", "delegate_us"),
        ("  partition host time (delegate)", "partition_host_us"),
        ("  device invoke + read-out alone", "device_invoke_us"),
        ("boundary + TFLite dispatch", "boundary_us"),
        ("delegate's Python work", "delegate_python_us"),
    ]
    for label, key in rows:
        print(f"{label:<36} {result[key]:>9.1f} us")


if __name__ == "__main__":
    main()
