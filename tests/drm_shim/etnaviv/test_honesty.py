"""The honesty rule (DESIGN.md): the simulated device imports no driver code but the generated
registers and the weight decoders (and what they import). Checked in a fresh interpreter that
runs an NN and a TP job through the device (so lazily imported modules are loaded too); the
coefficient bytes come from the encoder in this process and cross as bytes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from mesa_npu.drivers.etnaviv.codec_v7 import V7Layout, encode_v7, plane_offsets

# Modules of mesa_npu.drivers the simulator may load: the package itself (its __init__ must
# stay light), the generated registers, the decoders and their imports.
ALLOWED = {
    "mesa_npu.drivers",
    "mesa_npu.drivers.etnaviv",
    "mesa_npu.drivers.etnaviv.etnaviv_regs",
    "mesa_npu.drivers.etnaviv.codec_bits",
    "mesa_npu.drivers.etnaviv.codec_v7",
    "mesa_npu.drivers.etnaviv.codec_v7_order",
    "mesa_npu.drivers.etnaviv.codec_v8_decode",
    "mesa_npu.drivers.etnaviv.codec_v8_format",
    "mesa_npu.drivers.etnaviv.codec_v8_search",
}

CHILD = """
import json, sys, time
import numpy as np
from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.drm_shim.etnaviv import SimulatedEtnavivFile
from mesa_npu.util import uapi
from mesa_npu.util.uapi import ffi

f = SimulatedEtnavivFile("a311d")
va, table = [4 << 20], []
def bo(data=b"", size=4096, flags=uapi.ETNA_SUBMIT_BO_READ):
    new = ffi.new("struct drm_etnaviv_gem_new *", {{"size": size, "flags": uapi.ETNA_BO_WC}})
    f.ioctl(uapi.ETNAVIV_GEM_NEW, new)
    info = ffi.new("struct drm_etnaviv_gem_info *", {{"handle": new.handle}})
    f.ioctl(uapi.ETNAVIV_GEM_INFO, info)
    view = np.frombuffer(f.mmap(info.offset, size), dtype=np.uint8)
    view[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    table.append((new.handle, va[0], flags))
    va[0] += size
    return va[0] - size, view

def state(reg, value):
    head = E.FE_LOAD_STATE.HEADER.pack(OP=E.FeOpcode.LOAD_STATE, COUNT=1, OFFSET=reg.offset)
    return [head, value]

coefs = bytes.fromhex({coefs!r})
k_va, _ = bo(coefs)
i_va, _ = bo(bytes(range(16)))
o_va, out = bo(flags=uapi.ETNA_SUBMIT_BO_WRITE)
nn = E.NN_CONFIG.pack_words(NN_LAYER_FLUSH=1, ROUNDING_MODE=1, POOLING_XY_SIZE=1,
    KERNEL_XY_SIZE=1, KERNEL_Y_SIZE=1, KERNEL_Z_SIZE=1, KERNELS_PER_CORE=1,
    IN_IMAGE_X_SIZE=4, IN_IMAGE_Y_SIZE=4, IN_IMAGE_X_STRIDE=4, IN_IMAGE_Y_STRIDE=4,
    OUT_IMAGE_X_SIZE=4, OUT_IMAGE_Y_SIZE=4, OUT_IMAGE_Z_SIZE=1, OUT_IMAGE_X_STRIDE=4,
    OUT_IMAGE_Y_STRIDE=4, OUT_IMAGE_TILE_X_SIZE=4, OUT_IMAGE_TILE_Y_SIZE=4,
    IN_IMAGE_ADDRESS=i_va, OUT_IMAGE_ADDRESS=o_va, KERNEL_ADDRESS=k_va, POST_SHIFT=15)
tp = E.TP_CONFIG.pack_words(IN_IMAGE_X_SIZE=4, IN_IMAGE_Y_SIZE=4, IN_IMAGE_Z_SIZE=1,
    IN_IMAGE_STRIDE=4, IN_IMAGE_SLICE=16, IN_WINDOW_X_END=3, IN_WINDOW_Y_END=3,
    IN_TILE_X_SIZE=4, IN_TILE_X_INC=4, IN_TILE_Y_SIZE=4, IN_TILE_Y_INC=4,
    IN_IMAGE_GLOBAL_MEM=1, OUT_IMAGE_GLOBAL_MEM=1, ALU_I2F_ENABLE=1, ALU_F2I_ENABLE=1,
    LAST=1, OUT_LOOP_0_INC=1, OUT_LOOP_0_COUNT=16, OUT_LOOP_1_COUNT=1, OUT_LOOP_2_COUNT=1,
    OUT_LOOP_3_COUNT=1, OUT_LOOP_4_COUNT=1, OUT_LOOP_5_COUNT=1,
    IN_IMAGE_BASE_ADDRESS=o_va, OUT_IMAGE_BASE_ADDRESS=o_va + 64)
nn_va, _ = bo(nn)
tp_va, _ = bo(tp)
V = E.VIVS
words = state(V.GL_API_MODE, 2) + state(V.PS_NN_INST_ADDR, nn_va) + state(V.PS_TP_INST_ADDR, tp_va)
words += state(V.GL_FLUSH_CACHE, V.GL_FLUSH_CACHE.pack(DEPTH=True))
stream = np.asarray(words, dtype="<u4")
bos = ffi.new("struct drm_etnaviv_gem_submit_bo[]", len(table))
for n, (h, a, fl) in enumerate(table):
    bos[n].handle, bos[n].presumed, bos[n].flags = h, a, fl
buf = ffi.new("char[]", stream.tobytes())
sub = ffi.new("struct drm_etnaviv_gem_submit *", {{
    "exec_state": uapi.ETNA_PIPE_3D, "nr_bos": len(table), "bos": int(ffi.cast("uintptr_t", bos)),
    "stream": int(ffi.cast("uintptr_t", buf)), "stream_size": stream.size * 4,
    "flags": uapi.ETNA_SUBMIT_SOFTPIN}})
f.ioctl(uapi.ETNAVIV_GEM_SUBMIT, sub)
deadline = time.monotonic_ns() + 10**9
w = ffi.new("struct drm_etnaviv_wait_fence *", {{"fence": sub.fence,
    "timeout": {{"tv_sec": deadline // 10**9, "tv_nsec": deadline % 10**9}}}})
f.ioctl(uapi.ETNAVIV_WAIT_FENCE, w)
print(json.dumps({{"out": out[:16].tolist(), "copy": out[64:80].tolist(),
                  "log": list(f.fault_log()), "jobs": len(f.job_counters()),
                  "modules": sorted(m for m in sys.modules if m.startswith("mesa_npu"))}}))
"""


def test_a_job_through_the_device_loads_only_registers_and_decoders():
    layout = V7Layout.for_job(oc=1, ic=1, kh=1, kw=1, nn_cores=8, superblocks=1, zero_point=0)
    coefs = encode_v7(
        np.full((1, 1, 1, 1), 2, np.uint8),
        np.array([0], np.int32),
        plane_offsets(layout, 16),
        layout,
        input_zero_point=0,
        max_zrl_bits=5,
    ).data
    run = subprocess.run([sys.executable, "-c", CHILD.format(coefs=bytes(coefs).hex())],
                         capture_output=True, text=True, check=True)  # fmt: skip
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["log"] == [] and result["jobs"] == 2
    # x * 2 (w - 0 = 2) scaled by 2**15 / 2**15 = 1: out = 2x, then the TP copies it
    assert result["out"] == [2 * v for v in range(16)] == result["copy"]
    driver = {m for m in result["modules"] if m.startswith("mesa_npu.drivers")}
    assert driver <= ALLOWED, f"driver modules in the simulator: {sorted(driver - ALLOWED)}"
    assert "mesa_npu.drivers.etnaviv.codec_v7" in driver  # the decoder did run
    assert not any(m.startswith(("mesa_npu.gallium", "mesa_npu.nir_tensor", "mesa_npu.frontends"))
                   for m in result["modules"])  # fmt: skip
