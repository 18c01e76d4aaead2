"""The honesty rule (DESIGN.md): the simulated device imports no driver code but the generated
registers and the weight decoders (and what they import). Checked in a fresh interpreter after a
real job, so every lazily imported module is there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Modules of mesa_npu.drivers.etnaviv the simulator may load: the package itself (its
# __init__ must stay light), the generated registers, the decoders and their imports.
ALLOWED = {
    "mesa_npu.drivers.etnaviv",
    "mesa_npu.drivers.etnaviv.etnaviv_regs",
    "mesa_npu.drivers.etnaviv.codec_bits",
    "mesa_npu.drivers.etnaviv.codec_v7",
    "mesa_npu.drivers.etnaviv.codec_v7_order",
    "mesa_npu.drivers.etnaviv.codec_v8_decode",
    "mesa_npu.drivers.etnaviv.codec_v8_format",
    "mesa_npu.drivers.etnaviv.codec_v8_search",
}

SCRIPT = """
import json, sys
sys.path.insert(0, {here!r})
import conftest  # registers etna_testkit
from etna_testkit import make_harness, transpose_config, tp_words, R, W
import numpy as np
hw = make_harness("a311d")
src, dst = hw.bo(8, np.arange(8, dtype=np.uint8)), hw.bo(8)
cfg = hw.bo(124, transpose_config(2, 2, 2, src.va, dst.va, 0))
hw.wait(hw.run(tp_words([cfg.va]), [(cfg, R), (src, R), (dst, W)]))
print(json.dumps(sorted(m for m in sys.modules if m.startswith("mesa_npu"))))
"""


def _loaded(script_body: str) -> list[str]:
    here = str(Path(__file__).parent)
    out = subprocess.run(
        [sys.executable, "-c", script_body.format(here=here)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_simulator_loads_only_registers_and_decoders():
    # the test kit itself imports the encoders; the device alone must not
    body = """
import json, sys
from mesa_npu.drm_shim.etnaviv import SimulatedEtnavivFile
from mesa_npu.drm_shim.etnaviv import cmdstream, nn, tp, device  # every model module
f = SimulatedEtnavivFile("imx8mp")
print(json.dumps(sorted(m for m in sys.modules if m.startswith("mesa_npu"))))
"""
    loaded = _loaded(body)
    driver = {m for m in loaded if m.startswith("mesa_npu.drivers.")}
    assert driver <= ALLOWED, f"driver modules in the simulator: {sorted(driver - ALLOWED)}"
    assert "mesa_npu.drivers.etnaviv.etnaviv_regs" in driver
    assert not any(m.startswith(("mesa_npu.gallium", "mesa_npu.nir_tensor")) for m in loaded)


def test_a_job_through_the_device_loads_no_encoder_from_the_device_side():
    loaded = set(_loaded(SCRIPT))
    # the test kit imports the encoders (codec_v7 holds both directions; codec_v8 is the
    # encoder): everything else of the driver must be absent
    kit = {"mesa_npu.drivers.etnaviv.codec_v8"}
    driver = {m for m in loaded if m.startswith("mesa_npu.drivers.")}
    assert driver <= ALLOWED | kit, sorted(driver - ALLOWED - kit)
