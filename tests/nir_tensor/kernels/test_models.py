"""Every model in ../shared/models through ``teflon check`` on the reference device: exact.

Two of the shared models declare a dynamic batch (shape signature ``[-1, ...]``), which the
frontend rejects; they are checked as well, on a copy whose signatures are dropped (the shapes
themselves are static), so their int8 per-channel layers are covered too.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
from ai_edge_litert import schema_py_generated as schema

from mesa_npu.frontends.teflon.check import check_model
from mesa_npu.frontends.teflon.tflite import ModelError


def static_copy(path: Path, directory: Path) -> Path:
    """``path`` without shape signatures."""
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            tensor.shapeSignature = None
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    copy = directory / path.name
    copy.write_bytes(bytes(builder.Output()))
    return copy


def test_shared_models_are_exact(models_dir: Path, tmp_path: Path) -> None:
    paths = sorted(models_dir.glob("*.tflite"))
    assert paths, f"no models in {models_dir}"
    problems = []
    for path in paths:
        try:
            report = check_model(str(path), "reference")
        except ModelError as e:
            assert "dynamic shape" in str(e), str(e)
            report = check_model(str(static_copy(path, tmp_path)), "reference")
        assert report.partitions, f"{path.name}: nothing ran on the reference device"
        for part in report.partitions:
            if part.exact != part.elements:
                problems.append(
                    f"{path.name} partition {part.number}: {part.elements - part.exact} of "
                    f"{part.elements} differ, max {part.max_lsb} LSB"
                )
    assert not problems, "\n".join(problems)
