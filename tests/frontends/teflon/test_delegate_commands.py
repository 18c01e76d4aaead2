"""The delegate end to end as users meet it: ``teflon demo``, ``teflon run`` and the examples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mesa_npu.frontends.teflon import cli, library_path
from mesa_npu.frontends.teflon.runner import run_chain
from mesa_npu.frontends.teflon.writer import ModelBuilder, options
from mesa_npu.gallium import ElementType

ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT.parent / "shared" / "models"
CHAIN = (
    "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
    "mobilenet_quant_v1_224_head_layers.tflite",
)
SSD = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_no_metadata.tflite"


def shared(*names: str) -> list[Path]:
    paths = [MODELS / n for n in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not found in {MODELS}")
    return paths


def test_demo_runs_through_the_delegate(capsys) -> None:
    assert cli.main(["demo", "--device", "reference"]) == 0
    out = capsys.readouterr().out
    assert "through libteflon.so on reference" in out
    assert "delegate vs LiteRT BUILTIN_REF: 10 of 10 output elements exact, max difference 0" in out
    assert "time: " in out


def test_run_prints_classes_time_and_partitions(tmp_path: Path, capsys) -> None:
    b = ModelBuilder()
    x = b.tensor((1, 2, 2, 3), ElementType.UINT8, scale=0.1, zero_point=0)
    y = b.tensor((1, 12), ElementType.UINT8, scale=0.1, zero_point=0)
    b.op("RESHAPE", [x], [y], options("RESHAPE", newShape=[1, 12]))
    model = tmp_path / "reshape.tflite"
    model.write_bytes(b.build([x], [y]))
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"label{i}\n" for i in range(12)))
    assert cli.main(["run", str(model), "-d", "reference", "-l", str(labels), "--top", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    # The largest pixels of the seeded input are the top classes.
    [stage] = run_chain([str(model)], device="reference")
    values = stage.outputs[0].value.reshape(-1)
    top = np.argsort(-values, kind="stable")[:2]
    assert out[0] == f"{values[top[0]] * 0.1:.6f}: label{top[0]}"
    assert out[1] == f"{values[top[1]] * 0.1:.6f}: label{top[1]}"
    assert out[2].startswith("time: ") and out[2].endswith("ms")
    assert "reshape.tflite: 1 of 1 nodes on reference in 1 partitions" in out
    assert any(line.split()[:2] == ["0", "0"] and line.endswith("n/a") for line in out)


def test_run_bad_device_is_one_line(tmp_path: Path, capsys) -> None:
    model = tmp_path / "m.tflite"
    b = ModelBuilder()
    x = b.tensor((1, 4), ElementType.UINT8, scale=0.1, zero_point=0)
    y = b.tensor((4,), ElementType.UINT8, scale=0.1, zero_point=0)
    b.op("RESHAPE", [x], [y], options("RESHAPE", newShape=[4]))
    model.write_bytes(b.build([x], [y]))
    assert cli.main(["run", str(model), "-d", "nowhere"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("teflon: error: teflon: unknown device 'nowhere'")
    assert "\n" not in err


@pytest.mark.models
def test_chained_mobilenet_v1_says_hen(capsys) -> None:
    extractor, head = shared(*CHAIN)
    image, labels = shared("hen.jpg", "imagenet_labels.txt")
    argv = ["run", str(extractor), str(head), "-d", "reference", "-i", str(image)]
    assert cli.main([*argv, "-l", str(labels), "--top", "1"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    score, name = first.split(": ", 1)
    assert name == "hen" and float(score) > 0.9


@pytest.mark.models
@pytest.mark.parametrize("device", ["reference", "rocket", "etnaviv:a311d", "etnaviv:imx8mp"])
def test_ssd_finds_the_kite_and_the_people(device: str) -> None:
    [model] = shared(SSD)
    image, labels = shared("kite_and_cold.jpg", "coco_labels.txt")
    library = library_path()
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "detection.py"),
            "-i",
            str(image),
            "-m",
            str(model),
            "-l",
            str(labels),
            "-e",
            library,
            "-o",
            f"device={device}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = result.stdout.splitlines()
    names = [line.split(": ", 1)[1].split(" [")[0] for line in lines[:-1]]
    assert "kite" in names and "person" in names
    assert lines[-1].startswith("time: ")


@pytest.mark.models
def test_classification_example_chains_models() -> None:
    extractor, head = shared(*CHAIN)
    image, labels = shared("hen.jpg", "imagenet_labels.txt")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "classification.py"),
            "-i",
            str(image),
            "-m",
            str(extractor),
            "-m",
            str(head),
            "-l",
            str(labels),
            "-e",
            library_path(),
            "-o",
            "device=reference",
            "-k",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    top, timing = result.stdout.splitlines()
    assert top.endswith(": hen") and timing.startswith("time: ")
