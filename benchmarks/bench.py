"""Benchmarks: compile and invoke times per model and device, against LiteRT in the same run.

Run from the repository root (with the package installed)::

    python benchmarks/bench.py                          # every model, every device present
    python benchmarks/bench.py --quick                  # demo model on the reference device
    python benchmarks/bench.py --models mobilenet_v2_1.0_224_quant.tflite --devices reference
    python benchmarks/bench.py --json out.json --repeat 7 --sections invoke vela

Models: the generated demo CNN (``frontends/teflon/demo_model.py``) and a few generated
conformance graphs always, plus every ``.tflite`` in ``../shared/models`` when that folder
exists (``--models`` picks by file name or path; ``demo`` and conformance case IDs work too).

The report is a list of named sections (:data:`SECTIONS`); each is a function
``(Options) -> Section`` that measures one thing and returns rows for the table and the JSON,
so a new measurement is one more entry:

* ``invoke``: per model and device the compile seconds (``subgraph_create`` + ``serialize`` of
  every partition), the device invoke seconds (median of ``--repeat`` invokes of all partitions,
  after a warm-up invoke, fed BUILTIN_REF's own partition inputs), LiteRT ``BUILTIN_REF`` and
  XNNPACK (1 thread) invoke seconds of the whole model measured the same way, and the ratios
  device/BUILTIN_REF and device/XNNPACK. ``claimed`` says how much of the model the device ran.
* ``counters``: per model and device (those that count: the simulated ones) one invoke's
  per-job counters summed: jobs, MACs, bytes read and written, compressed weight bytes fetched,
  SRAM hits, and the compiled blobs' size.
* ``rocket``: per model, the rocket driver on the simulated RK3588 with the kernel's scheduling
  and with ``scheduling=spread``: cold compile seconds, invoke seconds next to BUILTIN_REF, and
  from ``last_counters()`` the jobs, tasks, MACs, bytes moved, cores used and the simulated
  hardware time.
* ``vela``: when ``ethos-u-vela`` is installed, Vela's compile time for the same models (the
  etnaviv and rocket targets compare their compile time with it), next to ours.
* ``costmodel`` and ``ablation`` (``costmodel_validation.py``): the cost model's estimate for
  the chained MobileNet v1 (1.0, 224) next to the published Mesa figures (A311D, i.MX 8M Plus,
  RK3588) with the ratio, and the A311D driver switches flipped one at a time next to the
  published compression and SRAM-caching steps. Not in ``--quick``.
* ``passes``: each lowering pipeline (rocket, etnaviv v7 and v8, all-exact) on MobileNet v2,
  its time next to the compile time of the device that runs it (``passes.py`` prints the
  per-pass table and the memory plan).
* ``regs``: register code generation (``util/gen_regs.py``) per XML file and output kind.
* ``compression``: per model, the etnaviv coefficient buffers against the raw weight bytes
  (v7 and v8, Mesa's codec choices and the per-layer search) and Vela's codec on the same
  weights when ``ethos-u-vela`` is installed.

Timings are wall-clock on this machine; the script prints them and never asserts them (a smoke
test checks only that the fields exist).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mesa_npu.frontends.teflon import litert
from mesa_npu.frontends.teflon.conformance import find_suite
from mesa_npu.frontends.teflon.demo_model import build_demo_model, demo_input
from mesa_npu.frontends.teflon.partition import check_quantized, partition, query_support
from mesa_npu.frontends.teflon.tflite import ModelError, TfliteModel, parse_model
from mesa_npu.gallium.loader import list_devices, open_device

SHARED_MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
# Generated conformance graphs that are always benchmarked: a mid-size conv, Mesa's two-conv
# ADD, and a large depthwise layer (MobileNet-like shapes).
CONFORMANCE_MODELS = (
    "conv-in80x80-k3-ic32-oc32-s1-same-i8pc",
    "add-in80x80-k3-ic32-oc32-s1-same-u8",
    "dwconv-in112x112-k3-c128-s1-same-i8pc",
)
VELA_ACCELERATOR = "ethos-u55-256"  # Vela's own default accelerator configuration


@dataclass(frozen=True, slots=True)
class ModelSource:
    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Options:
    models: tuple[ModelSource, ...]
    devices: tuple[str, ...]
    repeat: int


@dataclass(frozen=True, slots=True)
class Section:
    """One section's result: rows (JSON objects) and the columns the table prints."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[dict, ...] = ()
    note: str = ""


@dataclass(frozen=True, slots=True)
class SectionSpec:
    name: str
    run: Callable[[Options], Section]
    in_quick: bool = True  # part of --quick
    description: str = field(default="")


# -- models -----------------------------------------------------------------------------------


def conformance_model(case_id: str) -> ModelSource:
    suite = find_suite(case_id.split("-")[0])
    case = next(c for c in suite.full() if c.id == case_id)
    return ModelSource(case_id, case.build())


def default_models(quick: bool) -> list[ModelSource]:
    models = [ModelSource("demo", build_demo_model())]
    if quick:
        return models
    models += [conformance_model(c) for c in CONFORMANCE_MODELS]
    if SHARED_MODELS.is_dir():
        models += [
            ModelSource(p.name, p.read_bytes()) for p in sorted(SHARED_MODELS.glob("*.tflite"))
        ]
    return models


def pick_models(names: Sequence[str]) -> list[ModelSource]:
    models = []
    for name in names:
        if name == "demo":
            models.append(ModelSource("demo", build_demo_model()))
        elif Path(name).exists():
            models.append(ModelSource(Path(name).name, Path(name).read_bytes()))
        elif (SHARED_MODELS / name).exists():
            models.append(ModelSource(name, (SHARED_MODELS / name).read_bytes()))
        else:
            try:
                models.append(conformance_model(name))
            except (ValueError, StopIteration):
                raise SystemExit(
                    f"bench: no model '{name}' (a path, a file in "
                    f"{SHARED_MODELS}, 'demo' or a conformance case ID)"
                ) from None
    return models


# -- the invoke section -----------------------------------------------------------------------


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: lazy buffers, caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reference_inputs(source: ModelSource, model: TfliteModel) -> dict[int, np.ndarray]:
    """Every tensor of one BUILTIN_REF run (the demo gets its picture, others seeded noise)."""
    it = litert.interpreter(source.data, "ref", preserve=True)
    inputs = litert.random_inputs(it, 0)
    if source.name == "demo":
        inputs[it.get_input_details()[0]["index"]] = demo_input()
    litert.set_inputs(it, inputs)
    litert.invoke(it, source.name)
    return litert.all_tensors(it)


def litert_seconds(source: ModelSource, kind: str, repeat: int) -> float:
    it = litert.interpreter(source.data, kind, threads=1)
    litert.set_inputs(it, litert.random_inputs(it, 0))
    return median_seconds(it.invoke, repeat)


def compile_partitions(device, parts) -> tuple[list[bytes], float]:
    """Every partition compiled and serialized (a blob each), and the seconds that took."""
    start = time.perf_counter()
    blobs = [device.subgraph_create(p.ops).serialize() for p in parts]
    return blobs, time.perf_counter() - start


def device_row(source: ModelSource, model: TfliteModel, device_name: str, values, repeat: int):
    device = open_device(device_name)
    support = query_support(model, device)
    parts = partition(model, support)
    row: dict = {
        "model": source.name,
        "device": device.name,
        "claimed": f"{sum(s.supported for s in support)}/{len(support)}",
        "partitions": len(parts),
    }
    if not parts:  # nothing claimed: no compile, no invoke, no ratio
        return row
    blobs, row["compile_s"] = compile_partitions(device, parts)
    ctx = device.create_context()
    try:
        subgraphs = [ctx.subgraph_deserialize(b) for b in blobs]

        def invoke_all() -> None:
            for part, sg in zip(parts, subgraphs, strict=True):
                ctx.subgraph_invoke(sg, {i: values[i] for i in part.inputs})
                ctx.subgraph_read_outputs(sg)

        row["invoke_s"] = median_seconds(invoke_all, repeat)
    finally:
        ctx.destroy()
        device.destroy()
    return row


def invoke_section(opts: Options) -> Section:
    rows = []
    notes = []
    for source in opts.models:
        try:
            model = parse_model(source.data, source.name)
            check_quantized(model)
        except ModelError as e:
            notes.append(f"skipped {e}")
            continue
        values = reference_inputs(source, model)
        ref_s = litert_seconds(source, "ref", opts.repeat)
        xnn_s = litert_seconds(source, "xnnpack", opts.repeat)
        for device_name in opts.devices:
            try:
                row = device_row(source, model, device_name, values, opts.repeat)
            except Exception as e:  # a driver still being written: report, keep going
                row = {
                    "model": source.name,
                    "device": device_name,
                    "error": f"{type(e).__name__}: {' '.join(str(e).split())}"[:200],
                }
            row |= {"builtin_ref_s": ref_s, "xnnpack_s": xnn_s}
            if "invoke_s" in row:
                row["ratio_ref"] = row["invoke_s"] / ref_s
                row["ratio_xnnpack"] = row["invoke_s"] / xnn_s
            rows.append(row)
    return Section(
        "invoke",
        "compile and invoke (seconds; ratio < 1: the device is faster)",
        (
            "model",
            "device",
            "claimed",
            "compile_s",
            "invoke_s",
            "builtin_ref_s",
            "xnnpack_s",
            "ratio_ref",
            "ratio_xnnpack",
            "error",
        ),
        tuple(rows),
        "; ".join(notes),
    )


# -- the counters section ----------------------------------------------------------------------


def counter_row(source: ModelSource, model: TfliteModel, device_name: str, values) -> dict:
    """One invoke of every partition; the device's per-job counters summed (``last_counters``)."""
    device = open_device(device_name)
    parts = partition(model, query_support(model, device))
    row: dict = {"model": source.name, "device": device.name}
    jobs = macs = read = written = weights = sram = blob = 0
    ctx = device.create_context()
    try:
        for part in parts:
            data = device.subgraph_create(part.ops).serialize()
            blob += len(data)
            sg = ctx.subgraph_deserialize(data)
            ctx.subgraph_invoke(sg, {i: values[i] for i in part.inputs})
            for c in ctx.last_counters():
                jobs += 1
                macs += c.macs
                read += sum(c.bytes_read.values())
                written += sum(c.bytes_written.values())
                weights += c.weight_bytes
                sram += c.sram_hits
    finally:
        ctx.destroy()
        device.destroy()
    return row | {
        "jobs": jobs,
        "gmacs": macs / 1e9,
        "read_mib": read / 2**20,
        "written_mib": written / 2**20,
        "weights_fetched_mib": weights / 2**20,
        "sram_hits_mib": sram / 2**20,
        "blob_mib": blob / 2**20,
    }


def counters_section(opts: Options) -> Section:
    rows, notes = [], []
    for source in opts.models:
        try:
            model = parse_model(source.data, source.name)
            check_quantized(model)
        except ModelError as e:
            notes.append(f"skipped {e}")
            continue
        values = reference_inputs(source, model)
        for device_name in opts.devices:
            try:
                row = counter_row(source, model, device_name, values)
            except Exception as e:  # a driver still being written: report, keep going
                error = f"{type(e).__name__}: {' '.join(str(e).split())}"[:200]
                row = {"model": source.name, "device": device_name, "error": error}
            if row.get("jobs", 1):
                rows.append(row)
    columns = ("model", "device", "jobs", "gmacs", "read_mib", "written_mib",
               "weights_fetched_mib", "sram_hits_mib", "blob_mib", "error")  # fmt: skip
    note = "devices without counters (the reference evaluator, kernel nodes) are left out"
    return Section("counters", "per-job device counters of one invoke, summed", columns,
                   tuple(rows), "; ".join([note, *notes]))  # fmt: skip


# -- the Vela section -------------------------------------------------------------------------


@contextlib.contextmanager
def _silenced():
    """Send stdout and stderr to /dev/null at the descriptor level (Vela's report and its
    logging handlers write to the original streams)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def vela_seconds(source: ModelSource) -> float:
    """One in-process Vela compile of the model (its report printing silenced)."""
    from ethosu.vela import vela

    with tempfile.TemporaryDirectory(prefix="bench-vela-") as tmp:
        path = os.path.join(tmp, "model.tflite")
        Path(path).write_bytes(source.data)
        args = [path, "--output-dir", tmp, "--accelerator-config", VELA_ACCELERATOR]
        with _silenced():
            start = time.perf_counter()
            code = vela.main(args)
            elapsed = time.perf_counter() - start
    if code:
        raise RuntimeError(f"vela exited with {code}")
    return elapsed


def vela_section(opts: Options) -> Section:
    columns = ("model", "vela_compile_s", "accelerator", "error")
    try:
        import ethosu.vela  # noqa: F401
    except ImportError:
        return Section(
            "vela",
            "Vela compile time",
            columns,
            (),
            "ethos-u-vela not installed (pip install ethos-u-vela)",
        )
    rows = []
    for source in opts.models:
        row: dict = {"model": source.name, "accelerator": VELA_ACCELERATOR}
        try:
            row["vela_compile_s"] = vela_seconds(source)
        except Exception as e:  # Vela refuses some graphs; say so and go on
            row["error"] = f"{type(e).__name__}: {' '.join(str(e).split())}"[:200]
        rows.append(row)
    return Section("vela", f"Vela compile time ({VELA_ACCELERATOR})", columns, tuple(rows))


def costmodel_section(opts: Options) -> Section:
    """The cost model's estimate for the classic MobileNet v1 next to the published figures
    (``costmodel_validation.py``; the chained shared models on fixed devices)."""
    from costmodel_validation import validation_rows

    columns = ("soc", "model", "published", "published_ms", "estimate_ms", "ratio", "bound",
               "cpu_host_ms", "device", "source", "note")  # fmt: skip
    note = (
        "estimate = NPU only (cost model on the simulated device's counters); ratio = "
        "estimate / published; cpu_host_ms = the CPU operations timed on this machine"
    )
    title = "cost model vs published MobileNet v1 (1.0, 224) figures"
    return Section("costmodel", title, columns, tuple(validation_rows(SHARED_MODELS)), note)


def ablation_section(opts: Options) -> Section:
    """Driver switches flipped one at a time on the A311D, estimate vs the published steps."""
    from costmodel_validation import ablation_rows

    rows = tuple(ablation_rows(SHARED_MODELS))
    columns = ("step", "est_before_ms", "est_after_ms", "est_ratio", "dram_before_mib",
               "dram_after_mib", "published_before_ms", "published_after_ms", "published_ratio",
               "before", "after", "source")  # fmt: skip
    note = "" if rows else "shared models or etnaviv:a311d not available"
    return Section("ablation", "ablations, MobileNet v1 on A311D", columns, rows, note)


# -- the rocket section ------------------------------------------------------------------------


def rocket_row(source: ModelSource, model: TfliteModel, device_name: str, values, repeat: int):
    """Compile (cold: a fresh device) and invoke every partition on a rocket device, with the
    simulated hardware's view from ``last_counters()``: jobs, tasks, MACs, bytes, cores, time."""
    device = open_device(device_name)
    parts = partition(model, query_support(model, device))
    row: dict = {"model": source.name, "device": device_name}
    if not parts:
        return row | {"error": "no operation claimed"}
    blobs, row["compile_s"] = compile_partitions(device, parts)
    ctx = device.create_context()
    try:
        subs = [ctx.subgraph_deserialize(b) for b in blobs]
        feeds = [{i: values[i] for i in p.inputs} for p in parts]
        counters = []
        times = []
        for rep in range(repeat + 1):  # the first invoke creates the buffers: not timed
            begin = time.perf_counter()
            counters = []
            for sg, feed in zip(subs, feeds, strict=True):
                ctx.subgraph_invoke(sg, feed)
                ctx.subgraph_read_outputs(sg)
                counters += ctx.last_counters()
            if rep:
                times.append(time.perf_counter() - begin)
    finally:
        ctx.destroy()
        device.destroy()
    spans = [(c.extra.get("start_ns", 0), c.extra.get("end_ns", 0)) for c in counters]
    return row | {
        "invoke_s": statistics.median(times),
        "jobs": len(counters),
        "tasks": sum(c.tasks for c in counters),
        "gmacs": sum(c.macs for c in counters) / 1e9,
        "read_mib": sum(sum(c.bytes_read.values()) for c in counters) / 2**20,
        "written_mib": sum(sum(c.bytes_written.values()) for c in counters) / 2**20,
        "cores": len({core for c in counters for core in c.cores}),
        "npu_ms": (max(e for _, e in spans) - min(s for s, _ in spans)) / 1e6 if spans else 0.0,
    }


def rocket_section(opts: Options) -> Section:
    """The RK3588 driver on the simulated device, the kernel's scheduling (one entity per file:
    one core) and the spread one (each job on the first free core)."""
    devices = [d for d in opts.devices if d.split(":")[0].split("?")[0] == "rocket"]
    if not devices and any(d.driver == "rocket" for d in list_devices()):
        devices = ["rocket"]
    devices += [f"{d}?scheduling=spread" for d in devices if "?" not in d]
    rows, notes = [], []
    for source in opts.models:
        try:
            model = parse_model(source.data, source.name)
            check_quantized(model)
        except ModelError as e:
            notes.append(f"skipped {e}")
            continue
        values = reference_inputs(source, model)
        ref_s = litert_seconds(source, "ref", opts.repeat)
        for name in devices:
            try:
                row = rocket_row(source, model, name, values, opts.repeat)
                row["builtin_ref_s"] = ref_s
                if "invoke_s" in row:
                    row["ratio_ref"] = row["invoke_s"] / ref_s
            except Exception as e:  # report and go on
                error = f"{type(e).__name__}: {' '.join(str(e).split())}"[:200]
                row = {"model": source.name, "device": name, "error": error}
            rows.append(row)
    columns = ("model", "device", "compile_s", "invoke_s", "builtin_ref_s", "ratio_ref", "jobs",
               "tasks", "gmacs", "read_mib", "written_mib", "cores", "npu_ms", "error")  # fmt: skip
    note = (
        "invoke_s = the simulator's wall time per invoke of all partitions (median); npu_ms = "
        "the simulated hardware's span from the first job's start to the last job's end"
    )
    return Section("rocket", "RK3588 (rocket) compile, invoke and counters", columns,
                   tuple(rows), "; ".join([note, *notes]))  # fmt: skip


# -- the passes, register generation and weight compression sections ---------------------------

PASSES_MODEL = "mobilenet_v2_1.0_224_quant.tflite"
# The device whose compile a driver's pipeline is a part of (passes.py times the pipeline alone).
PIPELINE_DEVICES = {
    "rocket": "rocket:rk3588",
    "etnaviv": "etnaviv:a311d",
    "etnaviv-v8": "etnaviv:imx8mp",
    "all-exact": "reference:all-exact",
}


def _model_file(source: ModelSource, folder: str) -> str:
    """A path for tools that read files: the shared model itself, or a temporary copy."""
    shared = SHARED_MODELS / source.name
    if shared.exists():
        return str(shared)
    path = Path(folder) / f"{source.name}.tflite"
    path.write_bytes(source.data)
    return str(path)


def _compile_seconds(data: bytes, device_name: str) -> float:
    device = open_device(device_name)
    try:
        model = parse_model(data, "model")
        return compile_partitions(device, partition(model, query_support(model, device)))[1]
    finally:
        device.destroy()


def passes_section(opts: Options) -> Section:
    """Each pipeline's passes on MobileNet v2 (the demo model without the shared models), next
    to the compile of the device that runs the pipeline (``passes.py`` has the per-pass
    table and the memory plan)."""
    from passes import measure

    names = {s.name for s in opts.models}
    source = next((s for s in opts.models if s.name == PASSES_MODEL), None)
    if source is None:
        shared = (SHARED_MODELS / PASSES_MODEL).exists()
        source = pick_models([PASSES_MODEL])[0] if shared else opts.models[0]
    present = {d.name for d in list_devices()}
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = _model_file(source, folder)
        for pipeline, device in PIPELINE_DEVICES.items():
            if device not in present:
                continue
            r = measure(path, pipeline, max(opts.repeat, 3))
            slowest = max(r["passes_ms"].items(), key=lambda kv: kv[1])
            compile_ms = _compile_seconds(source.data, device) * 1e3
            rows.append(
                {
                    "model": source.name,
                    "pipeline": pipeline,
                    "passes": len(r["passes_ms"]),
                    "pipeline_ms": r["pipeline_ms"],
                    "slowest_pass": f"{slowest[0]} {slowest[1]:.1f} ms",
                    "device": device,
                    "compile_ms": compile_ms,
                    "share": r["pipeline_ms"] / compile_ms,
                    "passes_ms": r["passes_ms"],
                }
            )
    columns = ("model", "pipeline", "passes", "pipeline_ms", "slowest_pass", "device",
               "compile_ms", "share")  # fmt: skip
    note = "share = pipeline_ms / compile_ms (the device's subgraph_create + serialize)"
    if source.name not in names:
        note += f"; {source.name} measured although not among --models"
    return Section("passes", "lowering pipelines: pass time vs compile time", columns,
                   tuple(rows), note)  # fmt: skip


REGISTER_XML = ("drivers/rocket/registers.xml", "drivers/etnaviv/registers.xml",
                "drivers/etnaviv/ml_config.xml")  # fmt: skip


def regs_section(opts: Options) -> Section:
    """Register code generation (``util/gen_regs.py``: parse, check, render) per XML file."""
    from mesa_npu.util.gen_regs import generate

    root = Path(__file__).resolve().parents[1]
    rows = []
    for xml in REGISTER_XML:
        for kind in ("python", "c-header"):
            text = ""

            def run(xml=xml, kind=kind) -> None:
                nonlocal text
                text = generate(root / xml, kind)

            seconds = median_seconds(run, max(opts.repeat, 3))
            rows.append({"xml": xml, "output": kind, "ms": seconds * 1e3,
                         "lines": text.count("\n"), "bytes": len(text)})  # fmt: skip
    return Section("regs", "register code generation from XML (median ms)",
                   ("xml", "output", "ms", "lines", "bytes"), tuple(rows))  # fmt: skip


def compression_section(opts: Options) -> Section:
    """Every weight tensor of each model through both etnaviv codecs (Mesa's choices and our
    search), next to the raw bytes and, when installed, Vela's codec on the same weights."""
    from mesa_npu.drivers.etnaviv.compression_report import compression_report

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for source in opts.models:
            try:
                # Without ethos-u-vela the report leaves its Vela figures out by itself.
                report = compression_report(_model_file(source, folder))
            except Exception as e:  # a model the report cannot read: say so, go on
                rows.append({"model": source.name, "error": f"{type(e).__name__}: {e}"[:200]})
                continue
            raw = report.total("raw_bytes")
            if not raw:
                continue
            row: dict = {"model": source.name, "tensors": len(report.rows), "raw_kib": raw / 1024}
            for field in ("v7_mesa", "v7", "v8_mesa", "v8", "vela"):
                total = report.total(f"{field}_bytes")
                row[f"{field}_x"] = raw / total if total else None
            row["v8_weights_x"] = raw / report.total("v8_weight_bytes")
            row["encode_s"] = report.v7_seconds + report.v8_seconds
            if report.vela is not None:
                row["vela_model_x"] = report.vela.ratio
            rows.append(row)
    columns = ("model", "tensors", "raw_kib", "v7_mesa_x", "v7_x", "v8_mesa_x", "v8_x",
               "v8_weights_x", "vela_x", "vela_model_x", "encode_s", "error")  # fmt: skip
    note = (
        "x = raw weight bytes / coefficient buffer bytes (headers and biases included); v7 = "
        "A311D, v8 = i.MX 8M Plus; _mesa = Mesa's codec choices, else the per-layer search; "
        "v8_weights_x leaves headers and biases out, as Vela's figures do; vela_x = Vela's "
        "weight codec per tensor, vela_model_x = Vela's own model total"
    )
    if not any(r.get("vela_x") for r in rows):
        note += "; no Vela figures (ethos-u-vela not installed)"
    return Section("compression", "etnaviv weight compression per model", columns,
                   tuple(rows), note)  # fmt: skip


# Add a section by appending a SectionSpec (keep names stable: they are JSON keys).
SECTIONS = (
    SectionSpec("invoke", invoke_section, True, "compile/invoke times and LiteRT ratios"),
    SectionSpec("counters", counters_section, False, "device counters: MACs, bytes, SRAM hits"),
    SectionSpec("vela", vela_section, False, "Vela compile time for the same models"),
    SectionSpec("rocket", rocket_section, False, "rocket: compile, invoke, MACs, bytes, cores"),
    SectionSpec("costmodel", costmodel_section, False, "cost model vs published figures"),
    SectionSpec("ablation", ablation_section, False, "A311D ablations vs published steps"),
    SectionSpec("passes", passes_section, False, "lowering pass time vs compile time"),
    SectionSpec("regs", regs_section, True, "register code generation time"),
    SectionSpec("compression", compression_section, False, "etnaviv weight compression"),
)


# -- output -----------------------------------------------------------------------------------


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 100 else f"{value:.1f}"
    return str(value)


def format_section(section: Section) -> str:
    columns = [c for c in section.columns if any(c in r for r in section.rows)]
    table = [columns] + [[_cell(r.get(c)) for c in columns] for r in section.rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = [f"== {section.name}: {section.title}"]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in table]
    if section.note:
        lines.append(f"note: {section.note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", help="model files, shared model names, 'demo' or IDs")
    p.add_argument("--devices", nargs="+", help="device names (default: every device present)")
    p.add_argument("--sections", nargs="+", choices=[s.name for s in SECTIONS])
    p.add_argument("--repeat", type=int, help="timed invokes per measurement (median)")
    p.add_argument("--quick", action="store_true", help="demo model, reference device, seconds")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    args = p.parse_args(argv)

    models = pick_models(args.models) if args.models else default_models(args.quick)
    if args.devices:
        devices = tuple(args.devices)
    elif args.quick:
        devices = ("reference",)
    else:
        devices = tuple(dict.fromkeys(d.name for d in list_devices()))
    opts = Options(tuple(models), devices, args.repeat or (3 if args.quick else 5))
    chosen = [
        s
        for s in SECTIONS
        if (s.name in args.sections if args.sections else (s.in_quick or not args.quick))
    ]
    results = []
    for spec in chosen:
        section = spec.run(opts)
        results.append(section)
        print(format_section(section), flush=True)
    if args.json:
        doc = {
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
            },
            "options": {
                "models": [m.name for m in models],
                "devices": list(devices),
                "repeat": opts.repeat,
                "quick": args.quick,
            },
            "sections": {
                s.name: {"title": s.title, "rows": list(s.rows), "note": s.note} for s in results
            },
        }
        Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
