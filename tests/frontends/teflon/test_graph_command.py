"""``teflon graph``: DOT text without graphviz, SVG with it, one-line errors."""

from __future__ import annotations

import re
import shutil

import pytest

from mesa_npu.frontends.teflon.cli import main
from mesa_npu.frontends.teflon.demo_model import build_demo_model

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' not installed")


@pytest.fixture
def demo(tmp_path):
    path = tmp_path / "demo.tflite"
    path.write_bytes(build_demo_model())
    return path


def test_model_picture_as_dot_text(demo, tmp_path, capsys):
    out = tmp_path / "g.dot"
    assert main(["graph", str(demo), "-d", "reference", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith('digraph "demo.tflite on reference"')
    assert "subgraph cluster_p0" in text and "NPU partition 0: ops 0..8" in text
    assert text.count("[label=") >= 9 + 2  # nine operations plus input and output
    assert re.search(r'op0 \[label="0 CONV_2D', text)
    assert "wrote" in capsys.readouterr().out


def test_lowered_picture_after_a_pass(demo, tmp_path):
    out = tmp_path / "g.dot"
    args = ["graph", str(demo), "-d", "reference:all-exact", "--after", "lower_layouts"]
    assert main([*args, "-o", str(out)]) == 0
    text = out.read_text()
    assert "(lowered)" in text and "after lower_layouts (all-exact)" in text
    assert "fillcolor=orange" in text  # LAYOUT nodes stand out
    assert "nc1hwc2/16" in text  # edges show the physical layout
    assert "view @" not in text  # lower_views runs after lower_layouts: not yet


def test_cpu_operations_are_grey(demo, tmp_path):
    out = tmp_path / "g.dot"
    # The rocket-like "all" pipeline is irrelevant here; a device without SOFTMAX is not: use
    # the plain reference device, which claims everything, and check the colour of partitions.
    assert main(["graph", str(demo), "-d", "reference", "-o", str(out)]) == 0
    assert "fillcolor=lightgray" not in out.read_text()


@needs_dot
def test_svg_through_graphviz(demo, tmp_path):
    out = tmp_path / "g.svg"
    assert main(["graph", str(demo), "-d", "reference", "--pipeline", "all", "-o", str(out)]) == 0
    assert out.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_missing_graphviz_is_one_line(demo, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on this PATH
    assert main(["graph", str(demo), "-d", "reference", "-o", str(tmp_path / "g.svg")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("teflon: error: graphviz 'dot' is not installed") and "\n" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "reference", "--after", "lower_views"], "no lowering pipeline 'reference'"),
        (["-d", "reference:all-exact", "--after", "nope"], "has no pass 'nope'"),
    ],
)
def test_bad_pipeline_or_pass(demo, tmp_path, capsys, args, message):
    assert main(["graph", str(demo), *args, "-o", str(tmp_path / "g.dot")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
