"""Pass runtime and memory planning on a model: a table, and JSON with ``--json``.

    python benchmarks/passes.py [MODEL] [--pipeline all-exact] [--repeat 5] [--json]

For each NPU partition of MODEL (on the reference device) it builds the nir_tensor graph, runs
the named lowering pipeline ``--repeat`` times and reports the median time per pass, the
pipeline's share of the compile (``subgraph_create`` + ``serialize`` on ``reference:<pipeline>``)
and the memory plan (arena, naive sum of buffers, live peak) before and after lowering.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from mesa_npu.drivers.reference.pipelines import load_pipeline
from mesa_npu.frontends.teflon.partition import partition, query_support
from mesa_npu.frontends.teflon.tflite import load_model
from mesa_npu.gallium.loader import open_device
from mesa_npu.nir_tensor.builder import build_graph
from mesa_npu.nir_tensor.memory import plan_memory
from mesa_npu.nir_tensor.pipeline import DebugFlags, run_pipeline

DEFAULT_MODEL = (
    Path(__file__).resolve().parents[1].parent / "shared/models/mobilenet_v2_1.0_224_quant.tflite"
)
# Buffer alignment for the plan: a 64-byte cache line / DMA burst, a typical driver request.
ALIGNMENT = 64


def measure(model_path: str, pipeline_name: str, repeat: int) -> dict:
    pipeline = load_pipeline(pipeline_name)
    if pipeline is None:
        raise SystemExit(f"passes.py: no pipeline '{pipeline_name}'")
    model = load_model(model_path)
    device = open_device(f"reference:{pipeline_name}")
    parts = partition(model, query_support(model, device))
    per_pass: dict[str, list[float]] = {}
    totals, compiles, plans = [], [], []
    for part in parts:
        for _ in range(repeat):
            result = run_pipeline(build_graph(part.ops), pipeline, debug=DebugFlags())
            for t in result.timings():
                per_pass.setdefault(t.name, []).append(t.seconds)
            totals.append(result.seconds)
            t0 = time.perf_counter()
            device.subgraph_create(part.ops).serialize()
            compiles.append(time.perf_counter() - t0)
        before = plan_memory(build_graph(part.ops), alignment=ALIGNMENT)
        after = plan_memory(result.graph, alignment=ALIGNMENT)
        plans.append(
            {
                "ops": len(part.ops),
                "nodes_after": len(result.graph),
                "before": {"peak": before.peak, "naive": before.naive, "live": before.live_peak},
                "after": {"peak": after.peak, "naive": after.naive, "live": after.live_peak},
                "inplace_before": len(before.inplace),
                "aliases_after": len(after.parents) - len(after.inplace),
            }
        )
    n = len(parts)
    passes = {k: statistics.median(v) * n for k, v in per_pass.items()}
    return {
        "model": Path(model_path).name,
        "pipeline": pipeline_name,
        "partitions": n,
        "passes_ms": {k: v * 1e3 for k, v in passes.items()},
        "pipeline_ms": statistics.median(totals) * n * 1e3,
        "compile_ms": statistics.median(compiles) * n * 1e3,
        "memory": plans,
    }


def format_table(r: dict) -> str:
    lines = [f"{r['model']}: pipeline {r['pipeline']}, {r['partitions']} partition(s)"]
    lines.append(f"{'pass':<32} {'ms':>8}")
    lines += [f"{k:<32} {v:>8.2f}" for k, v in r["passes_ms"].items()]
    share = 100 * r["pipeline_ms"] / r["compile_ms"] if r["compile_ms"] else 0.0
    lines.append(f"{'all passes':<32} {r['pipeline_ms']:>8.2f}")
    lines.append(
        f"{'compile (create + serialize)':<32} {r['compile_ms']:>8.2f}  ({share:.0f}% passes)"
    )
    for i, m in enumerate(r["memory"]):
        b, a = m["before"], m["after"]
        lines.append(
            f"partition {i}: {m['ops']} ops -> {m['nodes_after']} nodes; arena "
            f"{b['peak']} B (naive {b['naive']}, live peak {b['live']}, "
            f"{m['inplace_before']} in place) -> lowered {a['peak']} B (naive {a['naive']}, "
            f"{m['aliases_after']} aliases)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    p.add_argument("--pipeline", default="all-exact")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = measure(args.model, args.pipeline, args.repeat)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
