"""``teflon profile``: rows that add up, CPU operations timed apart, ablations, JSON and PNG."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mesa_npu.frontends.teflon import cli, litert
from mesa_npu.frontends.teflon.partition import execution_phases, make_partition, query_support
from mesa_npu.frontends.teflon.profile import SUBMIT, compare, measure_partition, profile
from mesa_npu.frontends.teflon.single_op import single_op_model
from mesa_npu.frontends.teflon.tflite import load_model
from mesa_npu.gallium.device import CompileError
from mesa_npu.gallium.loader import list_devices, open_device
from mesa_npu.util.performance import device_soc, estimate_invoke

MODELS = Path(__file__).resolve().parents[3].parent / "shared" / "models"
CHAIN = (
    "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
    "mobilenet_quant_v1_224_head_layers.tflite",
)
SMALL = "mobilenet_v1_0.25_128_quant.tflite"
DEVICES = ("etnaviv:a311d", "rocket")
# Driver failures to tolerate (device, model) -> reason; non-strict xfails, so a case turns green
# by itself once the driver compiles it. Empty: every shared model profiles on both drivers.
KNOWN_DRIVER_FAILURES: dict[tuple[str, str], str] = {}


def shared(*names: str) -> list[str]:
    paths = [MODELS / n for n in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not found in {MODELS}")
    return [str(p) for p in paths]


def require(device: str) -> None:
    """Skip, naming what is missing, when the driver does not offer the simulated device."""
    names = {d.name for d in list_devices()} | {d.driver for d in list_devices()}
    if device.partition("?")[0] not in names:
        driver = device.partition(":")[0]
        pytest.skip(f"the {driver} driver does not probe a simulated '{device}' device yet")


def independent_estimates(paths: list[str], device: str):
    """Each partition's estimate, computed here from the device's counters."""
    dev = open_device(device)
    row = device_soc(device)
    out = []
    for path in paths:
        model = load_model(path)
        support = query_support(model, dev)
        for claimed, groups in execution_phases(model, support):
            for nodes in groups if claimed else ():
                part = make_partition(model, support, nodes)
                out.append(estimate_invoke(measure_partition(dev, model, part, 0), row))
    return out


@pytest.mark.parametrize("device", DEVICES)
def test_rows_sum_exactly_to_the_total(device: str) -> None:
    require(device)
    paths = shared(SMALL)
    p = profile(paths, device, time_cpu=False)
    estimates = independent_estimates(paths, device)
    assert len(estimates) == len({r.partition for r in p.rows})
    for number, est in enumerate(estimates):
        rows = [r for r in p.rows if r.partition == number]
        assert sum(r.wall for r in rows) == est.cycles
        assert sum(r.cycles for r in rows) == est.busy_cycles
        assert sum(r.macs for r in rows) == sum(c.macs for c in est.costs)
        assert [r.op_name for r in rows].count(SUBMIT) == 1
    assert p.cycles == sum(e.cycles for e in estimates)
    assert all(isinstance(r.wall, int) and isinstance(r.cycles, int) for r in p.rows)
    total = p.to_json()["total"]
    assert total["cycles"] == sum(r["wall"] for r in p.to_json()["layers"])
    assert total["dram_bytes"] == sum(r.dram_read + r.dram_written for r in p.rows)


def _cases():
    names = sorted(p.name for p in MODELS.glob("*.tflite")) if MODELS.is_dir() else []
    for device in DEVICES:
        for name in names or ["<no shared models>"]:
            reason = KNOWN_DRIVER_FAILURES.get((device, name))
            marks = [pytest.mark.xfail(raises=CompileError, reason=reason)] if reason else []
            yield pytest.param(device, name, marks=marks, id=f"{device}-{name}")


@pytest.mark.parametrize(("device", "name"), list(_cases()))
def test_every_shared_model_profiles(device: str, name: str) -> None:
    require(device)
    [path] = shared(name)
    p = profile([path], device, time_cpu=False)
    model = load_model(path)
    support = query_support(model, open_device(device))
    claimed = {s.op.index for s in support if s.supported}
    assert {c.op_index for c in p.cpu} == set(range(len(model.ops))) - claimed
    assert {r.op_index for r in p.rows if r.op_name != SUBMIT} <= claimed
    assert p.cycles == sum(r.wall for r in p.rows) >= 0
    if any(r.macs for r in p.rows):
        assert 0 < p.utilisation <= 1


def test_cpu_operations_and_transitions_of_the_classic_chain() -> None:
    paths = shared(*CHAIN)
    p = profile(paths, "etnaviv:a311d")
    # The extractor ends in AVERAGE_POOL_2D and the head in SOFTMAX, both on the CPU:
    # NPU, CPU, NPU, CPU along the chain.
    assert [(c.model, c.op_index, c.op_name) for c in p.cpu] == [
        (CHAIN[0], 27, "AVERAGE_POOL_2D"),
        (CHAIN[1], 2, "SOFTMAX"),
    ]
    assert all(c.host_ms is not None and c.host_ms > 0 for c in p.cpu)
    assert p.transitions == 3
    assert p.cpu_ms == pytest.approx(sum(c.host_ms for c in p.cpu))


def test_compression_off_costs_dram_and_time() -> None:
    require("etnaviv:a311d")
    paths = shared(SMALL)
    (_, base), (_, off) = compare(paths, "etnaviv:a311d", ["compression=off"], time_cpu=False)
    assert off.dram_bytes > base.dram_bytes
    assert off.macs == base.macs  # the same work, more bytes
    assert off.npu_ms > base.npu_ms
    # Every layer that was DRAM-bound and now moves more bytes takes longer.
    key = {(r.partition, r.op_index): r for r in base.rows}
    grown = [
        (key[(r.partition, r.op_index)], r)
        for r in off.rows
        if key[(r.partition, r.op_index)].bound.value == "dram"
        and r.dram_read > key[(r.partition, r.op_index)].dram_read
    ]
    assert grown
    assert all(after.wall > before.wall for before, after in grown)


def test_single_op_model_computes_what_the_op_computed() -> None:
    [path] = shared(SMALL)
    raw = Path(path).read_bytes()
    model = load_model(path)
    it = litert.interpreter(path, "ref", preserve=True)
    litert.set_inputs(it, litert.random_inputs(it, 3))
    litert.invoke(it)
    values = litert.all_tensors(it)
    for op in (model.ops[0], model.ops[1], model.ops[27], model.ops[-1]):
        single = litert.interpreter(single_op_model(raw, op.index), "ref")
        feeds = {d["index"]: d for d in single.get_input_details()}
        assert len(feeds) == len([t for t in op.inputs if t >= 0 and t not in constants(model)])
        inputs = [t for t in op.inputs if t >= 0 and t not in constants(model)]
        for d, t in zip(single.get_input_details(), inputs, strict=True):
            single.set_tensor(d["index"], values[t])
        single.invoke()
        [out] = single.get_output_details()
        np.testing.assert_array_equal(single.get_tensor(out["index"]), values[op.outputs[0]])


def constants(model) -> set[int]:
    return {t.index for t in model.tensors if t.pipe is not None and t.pipe.is_constant}


# -- command line ------------------------------------------------------------------------------


def test_cli_writes_json_and_png(tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib (optional) is not installed")
    paths = shared(SMALL)
    out, png = tmp_path / "p.json", tmp_path / "p.png"
    assert (
        cli.main(["profile", *paths, "-d", "etnaviv:a311d", "--json", str(out), "--png", str(png)])
        == 0
    )
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["total"]["cycles"] == sum(r["wall"] for r in doc["layers"])
    assert f"estimated NPU time: {doc['total']['npu_ms']:.3f} ms" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_compare_json(tmp_path: Path, capsys) -> None:
    paths = shared(SMALL)
    out = tmp_path / "c.json"
    args = ["profile", *paths, "-d", "etnaviv:a311d", "--compare", "sram=off", "--json", str(out)]
    assert cli.main(args) == 0
    doc = json.loads(out.read_text())
    names = [v["name"] for v in doc["variants"]]
    assert names == ["baseline", "sram=off"]
    assert doc["variants"][1]["device"] == "etnaviv:a311d?sram=off"
    assert (
        doc["variants"][1]["total"]["sram_bytes"] == 0 < doc["variants"][0]["total"]["sram_bytes"]
    )
    assert "sram=off" in capsys.readouterr().out


def test_png_without_matplotlib_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    paths = shared(SMALL)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert (
        cli.main(["profile", *paths, "-d", "etnaviv:a311d", "--png", str(tmp_path / "x.png")]) == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["teflon: error: the PNG chart needs matplotlib (pip install matplotlib)"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "reference"], "device 'reference' has no SoC description for the cost model"),
        (["-d", "etnaviv:a311d", "--compare", "sram"], "--compare option 'sram' is not key=value"),
        (["-d", "etnaviv:a311d", "--compare", "bogus=1"], "unknown option 'bogus=1'"),
    ],
)
def test_bad_input_is_one_line(args, message, capsys) -> None:
    paths = shared(SMALL)
    assert cli.main(["profile", *paths, *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
