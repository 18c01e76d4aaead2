"""The shared models on the simulated etnaviv devices: every operation within 1 LSB of
BUILTIN_REF when fed BUILTIN_REF's own inputs (1-LSB roundings then propagate through a deep
partition, which ``teflon check`` reports), small models exact, and
the chained classic MobileNet v1 says "hen"."""

from __future__ import annotations

import pytest

from mesa_npu.frontends.teflon import cli
from mesa_npu.frontends.teflon.check import check_model, compare, reference_values, run_partition
from mesa_npu.frontends.teflon.partition import make_partition, query_support
from mesa_npu.frontends.teflon.tflite import load_model
from mesa_npu.gallium.loader import open_device

from ...conftest import shared_model

pytestmark = pytest.mark.models
DEVICES = ("etnaviv", "etnaviv:imx8mp")


@pytest.mark.parametrize("device", DEVICES)
def test_every_operation_of_mobilenet_v1_is_within_one_lsb(device):
    model = load_model(str(shared_model("mobilenet_v1_0.25_128_quant.tflite")))
    dev = open_device(device)
    support = query_support(model, dev)
    ref = reference_values(model, None, 0)
    claimed = [s.op for s in support if s.supported]
    assert {op.name for op in claimed} == {"CONV_2D", "DEPTHWISE_CONV_2D", "RESHAPE"}
    for op in claimed:
        part = make_partition(model, support, (op.index,), list(op.outputs))
        (out,), _, _ = run_partition(dev, part, ref)
        exact, lsb = compare(out, ref[op.outputs[0]])
        assert lsb <= 1, f"{op.label}: {lsb} LSB"
        assert exact >= 0.95 * out.size, f"{op.label}: only {exact} of {out.size} exact"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "name", ["split_concat.tflite", "mobilenet_quant_v1_224_head_layers.tflite"]
)
def test_small_models_are_exact(device, name):
    report = check_model(str(shared_model(name)), device)
    assert report.claimed > 0 and report.max_lsb == 0


@pytest.mark.parametrize("device", DEVICES)
def test_chained_mobilenet_v1_says_hen(device, capsys):
    extractor = shared_model("mobilenet_v1_1.0_224_quant_embedding_extractor.tflite")
    head = shared_model("mobilenet_quant_v1_224_head_layers.tflite")
    image, labels = shared_model("hen.jpg"), shared_model("imagenet_labels.txt")
    argv = ["run", str(extractor), str(head), "-d", device, "-i", str(image), "-l", str(labels)]
    assert cli.main([*argv, "--top", "1"]) == 0
    score, name = capsys.readouterr().out.splitlines()[0].split(": ", 1)
    assert name == "hen" and float(score) > 0.9
