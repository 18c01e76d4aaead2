"""The honesty rule (DESIGN.md): the simulated device decodes bytes with the generated register
module and never imports the driver. A fresh interpreter imports ``mesa_npu.drm_shim.rocket``,
runs a job built from ``rocket_regs`` only, and lists what of ``mesa_npu.drivers.rocket`` got
loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from mesa_npu.drm_shim.rocket import SimulatedRocketDevice
    from mesa_npu.drivers.rocket import rocket_regs as R
    from mesa_npu.util import uapi

    ffi = uapi.ffi
    f = SimulatedRocketDevice().open()

    def bo(size):
        a = ffi.new("struct drm_rocket_create_bo *", {"size": size})
        f.ioctl(uapi.ROCKET_CREATE_BO, a)
        return a.handle, a.dma_address, f.mmap(a.offset, size)

    E = R.REGCMD.ENTRY
    def w(reg, **fields):
        return E.pack(BLOCK=R.target_of(reg.offset), UNK48=True, OFFSET=reg.offset,
                      VALUE=reg.pack(**fields))

    hin, ain, min_ = bo(16)
    hout, aout, mout = bo(64)
    hw, aw, mw = bo(16 * 32)
    hb, ab, mb = bo(32 * 4)
    min_[:16] = bytes([3] + [0] * 15)
    mw[:] = bytes([2] * 16 * 32)
    words = [
        w(R.CNA.CONV_CON3, CONV_X_STRIDE=1, CONV_Y_STRIDE=1),
        w(R.CNA.DATA_SIZE0, DATAIN_WIDTH=1, DATAIN_HEIGHT=1),
        w(R.CNA.DATA_SIZE1, DATAIN_CHANNEL=16, DATAIN_CHANNEL_REAL=0),
        w(R.CNA.DATA_SIZE2, DATAOUT_WIDTH=1), w(R.CNA.DATA_SIZE3, DATAOUT_ATOMICS=1),
        w(R.CNA.WEIGHT_SIZE0, WEIGHT_BYTES=512), w(R.CNA.WEIGHT_SIZE1, WEIGHT_BYTES_PER_KERNEL=16),
        w(R.CNA.WEIGHT_SIZE2, WEIGHT_WIDTH=1, WEIGHT_HEIGHT=1, WEIGHT_KERNELS=32),
        w(R.CNA.CVT_CON0, CVT_BYPASS=1, DATA_SIGN=1),
        w(R.CNA.FEATURE_DATA_ADDR, FEATURE_BASE_ADDR=ain), w(R.CNA.DMA_CON1, LINE_STRIDE=4),
        w(R.CNA.DCOMP_ADDR0, DECOMPRESS_ADDR0=aw),
        w(R.CORE.DATAOUT_SIZE_1, DATAOUT_CHANNEL=31),
        w(R.DPU.FEATURE_MODE_CFG, OUTPUT_MODE=2), w(R.DPU.DST_BASE_ADDR, DST_BASE_ADDR=aout),
        w(R.DPU.DATA_CUBE_CHANNEL, CHANNEL=31, ORIG_CHANNEL=31),
        w(R.DPU.WDMA_SIZE_0, CHANNEL_WDMA=31), w(R.DPU.DST_SURF_STRIDE, DST_SURF_STRIDE=1),
        w(R.DPU.BS_CFG, BS_BYPASS=1), w(R.DPU.BN_CFG, BN_BYPASS=1), w(R.DPU.EW_CFG, EW_BYPASS=1),
        w(R.DPU.OUT_CVT_SCALE, OUT_CVT_SCALE=1),
        w(R.DPU_RDMA.DATA_CUBE_CHANNEL, CHANNEL=31),
        0, w(R.PC.REGISTER_AMOUNTS), E.pack(UNK48=True, UNK54=True),
        E.pack(UNK48=True, OP_EN=True, OFFSET=R.PC.OPERATION_ENABLE.offset, VALUE=0x1D),
    ]
    hr, ar, mr = bo(8 * len(words))
    mr[:] = b"".join(x.to_bytes(8, "little") for x in words)
    t = ffi.new("struct drm_rocket_task[]", [(ar, len(words))])
    ins = ffi.new("uint32_t[]", [hin])
    outs = ffi.new("uint32_t[]", [hout])
    job = ffi.new("struct drm_rocket_job *", {
        "tasks": int(ffi.cast("uintptr_t", t)), "task_count": 1, "task_struct_size": 8,
        "in_bo_handles": int(ffi.cast("uintptr_t", ins)), "in_bo_handle_count": 1,
        "out_bo_handles": int(ffi.cast("uintptr_t", outs)), "out_bo_handle_count": 1})
    f.ioctl(uapi.ROCKET_SUBMIT, ffi.new("struct drm_rocket_submit *", {
        "jobs": int(ffi.cast("uintptr_t", job)), "job_count": 1, "job_struct_size": 40}))
    f.ioctl(uapi.ROCKET_PREP_BO, ffi.new("struct drm_rocket_prep_bo *", {"handle": hout}))
    loaded = sorted(m for m in sys.modules if m.startswith("mesa_npu.drivers"))
    print(json.dumps({"loaded": loaded, "out": list(mout[:2]),
                      "status": f.job_counters()[0].status}))
    """
)


def test_the_simulator_never_imports_the_driver():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          check=True)  # fmt: skip
    result = json.loads(proc.stdout)
    assert result["status"] == "ok"
    assert result["out"] == [6, 6]  # 3 * 2 through a 1x1 conv with bias, OW and DPU bypassed
    assert result["loaded"] == [
        "mesa_npu.drivers",
        "mesa_npu.drivers.rocket",
        "mesa_npu.drivers.rocket.rocket_regs",
    ]


def test_every_import_of_the_simulator_is_allowed():
    """Statically: drm_shim/rocket imports the standard library, numpy, cffi-based util
    modules and the generated register module; nothing else of the package."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "drm_shim" / "rocket"
    allowed = ("util", "drivers.rocket.rocket_regs")
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level >= 3:
                names = [node.module or ""]
                if node.module == "drivers.rocket":
                    names = [f"drivers.rocket.{a.name}" for a in node.names]
                for name in names:
                    assert name.startswith(allowed), f"{path.name}: from {'.' * node.level}{name}"
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                assert not (node.module or "").startswith("mesa_npu"), path.name
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("mesa_npu") for a in node.names), path.name
