"""Bad input: every case gives one line on stderr naming the problem and where, exit 1."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from mesa_npu.frontends.teflon import cli
from mesa_npu.frontends.teflon.tflite import ModelError, parse_model
from mesa_npu.frontends.teflon.writer import ModelBuilder, options
from mesa_npu.gallium import ElementType


def conv_model(dtype: ElementType = ElementType.UINT8, custom: str | None = None) -> ModelBuilder:
    b = ModelBuilder()
    q = {} if dtype is ElementType.FLOAT32 else {"scale": 0.05, "zero_point": 3}
    wq = {} if dtype is ElementType.FLOAT32 else {"scale": 0.02, "zero_point": 120}
    x = b.tensor((1, 5, 5, 2), dtype, **q, name="input")
    w = b.tensor((4, 3, 3, 2), dtype, **wq, data=np.full((4, 3, 3, 2), 7))
    y = b.tensor((1, 5, 5, 4), dtype, **q, name="output")
    b.op("CONV_2D", [x, w, -1], [y], options("CONV_2D", padding=0, strideH=1, strideW=1))
    return b


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_missing_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "inspect", str(tmp_path / "nope.tflite"))
    assert_one_line(code, err, "cannot read", "nope.tflite")


def test_not_tflite(capsys, tmp_path):
    path = write(tmp_path, "text.tflite", b"this is not a flatbuffer at all")
    code, _, err = run_cli(capsys, "inspect", path)
    assert_one_line(code, err, "not a TFLite model", "text.tflite")


def test_truncated(capsys, tmp_path):
    raw = conv_model().build([0], [2])
    path = write(tmp_path, "cut.tflite", raw[: len(raw) // 2])
    code, _, err = run_cli(capsys, "check", path, "--device", "reference")
    assert_one_line(code, err, "cut.tflite")


def test_corrupt_tables(capsys, tmp_path):
    raw = bytearray(conv_model().build([0], [2]))
    rng = np.random.default_rng(1)
    raw[8:] = rng.integers(0, 256, len(raw) - 8, dtype=np.uint8).tobytes()
    path = write(tmp_path, "noise.tflite", bytes(raw))
    code, _, err = run_cli(capsys, "inspect", path)
    assert_one_line(code, err, "noise.tflite")


def test_float_model(capsys, tmp_path):
    path = write(tmp_path, "float.tflite", conv_model(ElementType.FLOAT32).build([0], [2]))
    code, _, err = run_cli(capsys, "check", path, "--device", "reference")
    assert_one_line(code, err, "float model", "op 0 (CONV_2D)")


def test_dynamic_batch_is_batch_one():
    b = conv_model()
    b.graph.tensors[0].shapeSignature = np.array([-1, 5, 5, 2], dtype=np.int32)
    assert parse_model(b.build([0], [2])).tensors[0].shape == (1, 5, 5, 2)


def test_dynamic_shape(capsys, tmp_path):
    b = conv_model()
    b.graph.tensors[0].shapeSignature = np.array([1, -1, 5, 2], dtype=np.int32)
    path = write(tmp_path, "dyn.tflite", b.build([0], [2]))
    code, _, err = run_cli(capsys, "inspect", path)
    assert_one_line(code, err, "dynamic shape", "tensor 0 'input'", "op 0 (CONV_2D)")


def test_unknown_builtin(capsys, tmp_path):
    b = conv_model()
    b.model.operatorCodes[0].builtinCode = 9999
    path = write(tmp_path, "unknown.tflite", b.build([0], [2]))
    code, _, err = run_cli(capsys, "inspect", path)
    assert_one_line(code, err, "op 0", "unknown builtin operator code 9999")


def test_tensor_index_out_of_range(tmp_path):
    b = conv_model()
    b.graph.operators[0].inputs = np.array([0, 1, 42], dtype=np.int32)
    with pytest.raises(ModelError, match=r"op 0 \(CONV_2D\) refers to tensor 42 of 3"):
        parse_model(b.build([0], [2]), "oob.tflite")


def test_custom_op_is_unsupported_not_fatal(capsys, tmp_path):
    b = conv_model()
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = "MyCustomOp"
    b.model.operatorCodes.append(code)
    z = b.tensor((1, 5, 5, 4), ElementType.UINT8, scale=0.05, zero_point=3)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 1, np.array([2]), np.array([z])
    b.graph.operators.append(op)
    path = write(tmp_path, "custom.tflite", b.build([0], [z]))
    code, out, err = run_cli(capsys, "inspect", path, "--device", "reference")
    assert code == 0, err
    assert "custom op MyCustomOp" in out
    # LiteRT itself cannot run an unregistered custom op: check says so in one line.
    code, _, err = run_cli(capsys, "check", path, "--device", "reference")
    assert_one_line(code, err, "custom.tflite", "LiteRT cannot load")


def test_unknown_device(capsys, tmp_path):
    path = write(tmp_path, "ok.tflite", conv_model().build([0], [2]))
    code, _, err = run_cli(capsys, "inspect", path, "--device", "nosuchnpu")
    assert_one_line(code, err, "unknown device 'nosuchnpu'")
