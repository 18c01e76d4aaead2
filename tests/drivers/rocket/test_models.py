"""The shared models on the simulated RK3588 (``teflon check --device rocket``): every partition
within 1 LSB of BUILTIN_REF (in practice bit-exact, docs/rocket.md), the chained classic
MobileNet v1 says "hen", and injected faults end ``teflon check`` with one line and exit code 1
while the process carries on."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mesa_npu.frontends.teflon import cli
from mesa_npu.frontends.teflon.check import check_model

from ...conftest import shared_model

pytestmark = pytest.mark.models

MODELS = (
    "mobilenet_v1_0.25_128_quant.tflite",
    "mobilenet_v1_0.25_224_quant.tflite",
    "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite",
    "mobilenet_quant_v1_224_head_layers.tflite",
    "mobilenet_v2_1.0_224_quant.tflite",
    "vww_96_int8.tflite",
    "pretrainedResnet_quant.tflite",
    "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_no_metadata.tflite",
)


@pytest.mark.parametrize("name", MODELS)
def test_every_partition_is_within_one_lsb(name):
    report = check_model(str(shared_model(name)), "rocket")
    assert report.claimed > 0 and report.partitions
    for part in report.partitions:
        assert part.max_lsb <= 1, f"partition {part.number}: {part.max_lsb} LSB"
    assert report.exact >= 0.999 * report.elements


def test_chained_mobilenet_v1_says_hen(capsys):
    extractor = shared_model("mobilenet_v1_1.0_224_quant_embedding_extractor.tflite")
    head = shared_model("mobilenet_quant_v1_224_head_layers.tflite")
    image, labels = shared_model("hen.jpg"), shared_model("imagenet_labels.txt")
    argv = ["run", str(extractor), str(head), "-d", "rocket", "-i", str(image), "-l", str(labels)]
    assert cli.main([*argv, "--top", "1"]) == 0
    score, name = capsys.readouterr().out.splitlines()[0].split(": ", 1)
    assert name == "hen" and float(score) > 0.9


@pytest.mark.parametrize(
    ("inject", "symptom"),
    [("oob", "IOMMU fault"), ("truncate", "no op_en"), ("hang", "no op_en")],
)
def test_teflon_check_reports_an_injected_fault_in_one_line(inject, symptom):
    model = shared_model("mobilenet_v1_0.25_128_quant.tflite")
    env = dict(os.environ, ROCKET_DEBUG=f"inject={inject}")
    env.pop("TEFLON_DEBUG", None)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mesa_npu.frontends.teflon.cli",
            "check",
            str(model),
            "-d",
            "rocket",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("teflon: error: rocket:") and symptom in lines[0]
    assert "Traceback" not in run.stderr
