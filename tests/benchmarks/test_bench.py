"""Smoke test of benchmarks/bench.py: ``--quick`` runs and its JSON has the ratio fields.

Timings are machine-dependent, so only the shape of the report is checked, never a speed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench.py"


def test_quick_writes_ratios(tmp_path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ratio_ref" in proc.stdout
    doc = json.loads(out.read_text())
    (row,) = doc["sections"]["invoke"]["rows"]
    assert (row["model"], row["device"], row["claimed"]) == ("demo", "reference", "9/9")
    for key in (
        "compile_s",
        "invoke_s",
        "builtin_ref_s",
        "xnnpack_s",
        "ratio_ref",
        "ratio_xnnpack",
    ):
        assert isinstance(row[key], float) and math.isfinite(row[key]) and row[key] > 0, key
    assert math.isclose(row["ratio_ref"], row["invoke_s"] / row["builtin_ref_s"])
    assert math.isclose(row["ratio_xnnpack"], row["invoke_s"] / row["xnnpack_s"])
    # Register generation: every XML file, both outputs, a time and a non-empty output.
    regs = doc["sections"]["regs"]["rows"]
    assert {(r["xml"].split("/")[-1], r["output"]) for r in regs} == {
        (xml, kind) for xml in ("registers.xml", "ml_config.xml") for kind in ("python", "c-header")
    }
    assert len(regs) == 6 and all(r["ms"] > 0 and r["lines"] > 1000 for r in regs)
