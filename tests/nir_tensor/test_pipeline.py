"""The pass manager: steps and loops as data, debug flags, validation, round trips, timing."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from mesa_npu.gallium import ElementType, Quant
from mesa_npu.gallium.operation import AxisParams
from mesa_npu.nir_tensor.ir import Graph, Node, Op, Tensor
from mesa_npu.nir_tensor.pipeline import (
    DebugFlags,
    Pipeline,
    PipelineError,
    loop,
    run_pipeline,
    step,
)

Q = Quant(0.5, 3)


def t(*shape: int) -> Tensor:
    return Tensor(shape=shape, dtype=ElementType.UINT8, quant=Q)


def graph_with_dead_node() -> Graph:
    x, y, dead = t(1, 2, 2, 3), t(1, 4, 1, 3), t(1, 2, 2, 6)
    return Graph.build(
        [
            Node(Op.RESHAPE, (x,), (y,), origin=0),
            Node(Op.CONCAT, (x, x), (dead,), AxisParams(3), origin=1),
        ],
        [x],
        [y],
    )


def remove_one_dead(graph: Graph, *, limit: int = 99) -> bool:
    """A toy pass: remove the last dead node (one per run, so loops iterate)."""
    for node in reversed(graph.nodes):
        if not any(graph.consumers(o) or graph.is_output(o) for o in node.outputs):
            graph.remove(node)
            return True
    return False


def break_links(graph: Graph) -> bool:
    """A buggy pass: edits the node list directly, behind the graph's back."""
    graph.nodes.append(Node(Op.RESHAPE, (graph.outputs[0],), (t(1, 2, 2, 3),)))
    return True


def test_steps_and_loops_run_in_order_with_options_and_timings():
    seen = []

    def spy(graph: Graph, *, tag: str) -> bool:
        seen.append(tag)
        return False

    pipe = Pipeline(
        "toy",
        (
            step(spy, tag="first", note="runs once"),
            loop(step(remove_one_dead), step(spy, tag="in-loop")),
            step(spy, tag="last"),
        ),
    )
    result = run_pipeline(graph_with_dead_node(), pipe, debug=DebugFlags(validate=True))
    # The loop ran twice: once with progress (the dead concat went), once to confirm.
    assert seen == ["first", "in-loop", "in-loop", "last"]
    assert [n.op for n in result.graph] == [Op.RESHAPE]
    timing = {x.name: x for x in result.timings()}
    assert timing["remove_one_dead"].runs == 2 and timing["remove_one_dead"].progress_runs == 1
    assert timing["spy"].runs == 4
    assert result.seconds == pytest.approx(sum(r.seconds for r in result.runs))
    assert "remove_one_dead" in result.format_timing()
    assert pipe.step_names() == ["spy", "remove_one_dead", "spy", "spy"]
    assert "runs once" in pipe.describe()


def test_validation_names_the_pass_that_broke_the_graph():
    pipe = Pipeline("bad", (step(remove_one_dead), step(break_links)))
    with pytest.raises(PipelineError, match="after pass break_links"):
        run_pipeline(graph_with_dead_node(), pipe, debug=DebugFlags(validate=True))
    # Without the debug flag nobody checks (as NIR without NIR_DEBUG validation).
    run_pipeline(graph_with_dead_node(), pipe, debug=DebugFlags())


def test_print_after_and_timing_go_to_the_debug_stream():
    out = io.StringIO()
    flags = DebugFlags.parse("print_after=remove_one_dead,timing")
    assert flags == DebugFlags(print_after=frozenset({"remove_one_dead"}), timing=True)
    run_pipeline(graph_with_dead_node(), [step(remove_one_dead)], debug=flags, out=out)
    text = out.getvalue()
    assert "after remove_one_dead (progress)" in text
    assert "concat" not in text.split("timing")[0]  # printed after the dead node went
    assert "total" in text


def test_serialize_flag_round_trips_and_continues_with_the_copy():
    graph = graph_with_dead_node()
    result = run_pipeline(graph, [step(remove_one_dead)], debug=DebugFlags(serialize=True))
    assert result.graph is not graph
    assert result.graph.outputs[0] is not graph.outputs[0]  # really a copy
    assert result.graph.outputs[0].index == graph.outputs[0].index


def test_stop_after_and_unknown_pass():
    pipe = Pipeline("p", (step(remove_one_dead), step(break_links)))
    result = run_pipeline(graph_with_dead_node(), pipe, stop_after="remove_one_dead")
    assert result.stopped_after == "remove_one_dead" and len(result.runs) == 1
    with pytest.raises(ValueError, match="has no pass 'nope'"):
        run_pipeline(graph_with_dead_node(), pipe, stop_after="nope")


def test_a_loop_that_never_settles_is_an_error():
    def always(graph: Graph) -> bool:
        return True

    with pytest.raises(PipelineError, match="still makes progress after 3"):
        run_pipeline(graph_with_dead_node(), [loop(step(always), max_iterations=3)])


def test_unknown_debug_flags_warn():
    with pytest.warns(UserWarning, match="unknown flag 'bogus'"):
        assert DebugFlags.parse("bogus,validate") == DebugFlags(validate=True)


def test_the_environment_variable_is_read_at_import():
    code = (
        "from mesa_npu.nir_tensor.pipeline import DEBUG; "
        "print(sorted(DEBUG.print_after), DEBUG.timing)"
    )
    env = dict(os.environ, NIR_TENSOR_DEBUG="timing,print_after=a,print_after=b")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "['a', 'b'] True", out.stderr
