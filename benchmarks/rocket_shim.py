"""Speed of the simulated RK3588 NPU (``drm_shim.rocket``) on a real model's layers, without
the driver: every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED of a .tflite becomes one
single-task job whose regcmd stream is built here with the generated registers (Mesa's values,
brief §3), an ADD is fused into the convolution that produces its first input (the EW stage),
all jobs go in one SUBMIT, and the time is compared with LiteRT BUILTIN_REF invoking the whole
model in the same run.

    python benchmarks/rocket_shim.py                      # mobilenet_v2_1.0_224_quant
    python benchmarks/rocket_shim.py --model PATH --repeat 5 --json out.json

Weights are the model's (as int8 ``q - 128``); inputs are random and biases uncorrected: the
numbers are not checked here (the tests and ``teflon check`` do that), only the time. Timings
are wall clock on this machine; the script prints them and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from mesa_npu.drivers.rocket import rocket_regs as R
from mesa_npu.drm_shim.rocket import DeviceOptions, SimulatedRocketDevice
from mesa_npu.frontends.teflon import litert
from mesa_npu.frontends.teflon.tflite import load_model
from mesa_npu.util import uapi
from mesa_npu.util.uapi import ffi

DEFAULT_MODEL = (
    Path(__file__).resolve().parents[2] / "shared/models/mobilenet_v2_1.0_224_quant.tflite"
)
ATOM = 16
ENTRY = R.REGCMD.ENTRY


def align(x: int, a: int) -> int:
    return -(-x // a) * a


class Device:
    def __init__(self, scheduling: str) -> None:
        self.f = SimulatedRocketDevice(DeviceOptions(scheduling=scheduling)).open()

    def bo(self, size: int, data: bytes = b""):
        args = ffi.new("struct drm_rocket_create_bo *", {"size": size})
        self.f.ioctl(uapi.ROCKET_CREATE_BO, args)
        mem = self.f.mmap(args.offset, size)
        mem[: len(data)] = data
        return args.handle, args.dma_address


def emit(words: list[int], reg, **fields) -> None:
    words.append(
        ENTRY.pack(
            BLOCK=R.target_of(reg.offset), UNK48=True, OFFSET=reg.offset, VALUE=reg.pack(**fields)
        )
    )


def conv_stream(d: Device, shape_in, w, depthwise, stride, pads, out_hw, ew_bo):
    """A task for input NHWC ``shape_in``, int8 weights OHWI (depthwise 1HWC)."""
    _, h, wd, c = shape_in
    c_al = align(max(c, ATOM), ATOM)
    if depthwise:
        k, kh, kw = c, w.shape[1], w.shape[2]
        kernels = 1
        wp = np.zeros((kh, kw, c_al), dtype=np.int8)
        wp[:, :, :c] = w[0]
        groups = [wp[:, :, g : g + 64] for g in range(0, c_al, 64)]
        wdata = b"".join(g.tobytes() for g in groups)
    else:
        k, kh, kw = w.shape[0], w.shape[1], w.shape[2]
        kernels = align(k, 2)
        wp = np.zeros((kernels, kh, kw, c_al), dtype=np.int8)
        wp[:k, :, :, :c] = w
        parts = []
        for o in range(0, kernels, 32):
            for i in range(0, c_al, 32):
                parts.append(wp[o : o + 32, :, :, i : i + 32].transpose(1, 2, 0, 3).tobytes())
        wdata = b"".join(parts)
    c_out = align(max(k, 32), 32)
    if depthwise:
        c_out = align(c_out * 2 if k <= 32 else c_out, 64)
    oh, ow = out_hw
    rng = np.random.default_rng(0)
    _, a_in = d.bo(h * wd * c_al, rng.integers(0, 256, h * wd * c_al, dtype=np.uint8).tobytes())
    _, a_w = d.bo(len(wdata), wdata)
    _, a_b = d.bo(c_out * 4)
    h_out, a_out = d.bo(c_out * oh * ow)
    mode = R.ConvMode.DEPTHWISE if depthwise else R.ConvMode.DIRECT
    s: list[int] = []
    emit(s, R.CNA.CONV_CON1, CONV_MODE=mode)
    emit(s, R.DPU.S_POINTER, POINTER_PP_MODE=1, EXECUTER_PP_EN=1, POINTER_PP_EN=1)
    emit(s, R.DPU_RDMA.S_POINTER, POINTER_PP_MODE=1, EXECUTER_PP_EN=1, POINTER_PP_EN=1)
    emit(s, R.CNA.CONV_CON3, CONV_X_STRIDE=stride, CONV_Y_STRIDE=stride)
    emit(s, R.CNA.DATA_SIZE0, DATAIN_WIDTH=wd, DATAIN_HEIGHT=h)
    emit(s, R.CNA.DATA_SIZE1, DATAIN_CHANNEL_REAL=c - 1, DATAIN_CHANNEL=c_al)
    emit(s, R.CNA.DATA_SIZE2, DATAOUT_WIDTH=ow)
    emit(s, R.CNA.DATA_SIZE3, DATAOUT_ATOMICS=ow * oh)
    emit(s, R.CNA.WEIGHT_SIZE0, WEIGHT_BYTES=kh * kw * c_al * kernels)
    emit(s, R.CNA.WEIGHT_SIZE1, WEIGHT_BYTES_PER_KERNEL=kh * kw * c_al)
    emit(s, R.CNA.WEIGHT_SIZE2, WEIGHT_WIDTH=kw, WEIGHT_HEIGHT=kh, WEIGHT_KERNELS=kernels)
    emit(s, R.CNA.CBUF_CON0, DATA_BANK=6, WEIGHT_BANK=6)
    emit(s, R.CNA.CVT_CON0, DATA_SIGN=1, CVT_TYPE=1, CVT_BYPASS=1)
    emit(s, R.CNA.PAD_CON0, PAD_LEFT=pads[1], PAD_TOP=pads[0])
    emit(s, R.CNA.FEATURE_DATA_ADDR, FEATURE_BASE_ADDR=a_in)
    line = wd * ATOM // 4
    surf = int(line * (h / 4 - 1)) % (1 << R.CNA.DMA_CON2.field("SURF_STRIDE").width)
    emit(s, R.CNA.DMA_CON1, LINE_STRIDE=line)
    emit(s, R.CNA.DMA_CON2, SURF_STRIDE=surf)
    emit(s, R.CNA.DCOMP_ADDR0, DECOMPRESS_ADDR0=a_w)
    emit(s, R.CNA.PAD_CON1, PAD_VALUE=-3)
    emit(s, R.CORE.MISC_CFG, QD_EN=1, DW_EN=int(depthwise))
    emit(s, R.CORE.DATAOUT_SIZE_0, DATAOUT_HEIGHT=oh - 1, DATAOUT_WIDTH=ow - 1)
    emit(s, R.CORE.DATAOUT_SIZE_1, DATAOUT_CHANNEL=c_out - 1)
    emit(
        s,
        R.DPU.FEATURE_MODE_CFG,
        BURST_LEN=15,
        OUTPUT_MODE=R.DpuOutput.OUTPUT_MEMORY,
        CONV_MODE=mode,
    )
    emit(s, R.DPU.DST_BASE_ADDR, DST_BASE_ADDR=a_out)
    emit(s, R.DPU.DST_SURF_STRIDE, DST_SURF_STRIDE=ow * oh)
    emit(s, R.DPU.DATA_CUBE_WIDTH, WIDTH=ow - 1)
    emit(s, R.DPU.DATA_CUBE_HEIGHT, HEIGHT=oh - 1)
    emit(s, R.DPU.DATA_CUBE_CHANNEL, ORIG_CHANNEL=k - 1, CHANNEL=c_out - 1)
    emit(
        s,
        R.DPU.BS_CFG,
        BS_ALU_ALGO=R.AluAlgo.ALU_ADD,
        BS_ALU_SRC=R.AluSrc.SRC_MEMORY,
        BS_RELU_BYPASS=1,
        BS_MUL_BYPASS=1,
    )
    emit(s, R.DPU.BS_OW_OP, OW_OP=5)
    emit(s, R.DPU.WDMA_SIZE_0, CHANNEL_WDMA=c_out - 1)
    emit(s, R.DPU.WDMA_SIZE_1, HEIGHT_WDMA=oh - 1, WIDTH_WDMA=ow - 1)
    emit(s, R.DPU.BN_CFG, BN_RELU_BYPASS=1, BN_MUL_BYPASS=1, BN_ALU_BYPASS=1, BN_BYPASS=1)
    emit(s, R.DPU.OUT_CVT_SCALE, OUT_CVT_SCALE=20000)
    emit(s, R.DPU.OUT_CVT_SHIFT, OUT_CVT_SHIFT=24)
    emit(s, R.DPU_RDMA.DATA_CUBE_WIDTH, WIDTH=ow - 1)
    emit(s, R.DPU_RDMA.DATA_CUBE_HEIGHT, HEIGHT=oh - 1)
    emit(s, R.DPU_RDMA.DATA_CUBE_CHANNEL, CHANNEL=c_out - 1)
    emit(s, R.DPU_RDMA.BRDMA_CFG, BRDMA_DATA_USE=1)
    emit(s, R.DPU_RDMA.BS_BASE_ADDR, BS_BASE_ADDR=a_b)
    ins = []
    if ew_bo is not None:
        h_e, a_e = ew_bo
        ins.append(h_e)
        plane = ow * oh
        emit(
            s,
            R.DPU.EW_CFG,
            EW_CVT_TYPE=R.CvtType.ADD_THEN_MUL,
            EW_DATA_MODE=1,
            EDATA_SIZE=1,
            EW_ALU_ALGO=R.AluAlgo.ALU_ADD,
            EW_RELU_BYPASS=1,
            EW_LUT_BYPASS=1,
            EW_OP_SRC=R.AluSrc.SRC_MEMORY,
        )
        emit(s, R.DPU.EW_CVT_SCALE_VALUE, EW_OP_CVT_SCALE=20000, EW_OP_CVT_SHIFT=4)
        emit(s, R.DPU_RDMA.SRC_BASE_ADDR, SRC_BASE_ADDR=a_e)
        emit(s, R.DPU_RDMA.ERDMA_CFG, ERDMA_DATA_MODE=1, ERDMA_DATA_SIZE=1)
        emit(s, R.DPU_RDMA.EW_BASE_ADDR, EW_BASE_ADDR=a_e + plane * ATOM)
        emit(s, R.DPU_RDMA.EW_SURF_STRIDE, EW_SURF_STRIDE=max(plane, 12))
        emit(s, R.DPU_RDMA.FEATURE_MODE_CFG, BURST_LEN=15, COMB_USE=5, CONV_MODE=mode)
        emit(s, R.DPU_RDMA.SURF_NOTCH, SURF_NOTCH_ADDR=plane)
        emit(s, R.DPU_RDMA.EW_SURF_NOTCH, EW_SURF_NOTCH=plane)
    else:
        emit(
            s,
            R.DPU.EW_CFG,
            EW_RELU_BYPASS=1,
            EW_OP_CVT_BYPASS=1,
            EW_LUT_BYPASS=1,
            EW_OP_BYPASS=1,
            EW_BYPASS=1,
        )
        emit(s, R.DPU_RDMA.ERDMA_CFG, ERDMA_DISABLE=1)
        emit(s, R.DPU_RDMA.FEATURE_MODE_CFG, BURST_LEN=15, MRDMA_DISABLE=1, CONV_MODE=mode)
    s += [0, ENTRY.pack(UNK48=True, OFFSET=R.PC.REGISTER_AMOUNTS.offset, BLOCK=R.Target.PC)]
    s += [
        ENTRY.pack(UNK48=True, UNK54=True),
        ENTRY.pack(UNK48=True, OP_EN=True, OFFSET=R.PC.OPERATION_ENABLE.offset, VALUE=0x1D),
    ]
    _, a_r = d.bo(len(s) * 8, np.array(s, dtype="<u8").tobytes())
    task = (a_r, len(s))
    macs = oh * ow * kh * kw * c_al * (1 if depthwise else kernels)
    return task, ins, h_out, a_out, c_out, macs


def build(model, d: Device):
    """One job per convolution; an ADD re-emits the convolution producing its first input with
    the second input as the EW operand (Mesa's fusion)."""
    convs = []  # (args of conv_stream without the EW operand)
    producer = {}  # tensor index -> position in convs
    adds = []  # (conv position, tensor index of the other operand)
    for op in model.ops:
        if op.name == "ADD":
            a, b = op.inputs[:2]
            if a in producer and b in producer:
                adds.append((producer[a], b))
                producer[op.outputs[0]] = producer[a]
            continue
        if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        x = model.tensor(op.inputs[0])
        wt = model.tensor(op.inputs[1]).pipe
        w = (wt.data.astype(np.int16) - 128).astype(np.int8)
        out = model.tensor(op.outputs[0]).shape
        if op.name == "FULLY_CONNECTED":
            shape_in = (1, 1, 1, int(np.prod(x.shape[1:])))
            convs.append((shape_in, w.reshape(w.shape[0], 1, 1, -1), False, 1, (0, 0), (1, 1)))
        else:
            pad = (w.shape[1] - 1) // 2 if op.options.padding == 0 else 0  # SAME
            convs.append(
                (
                    x.shape,
                    w,
                    op.name == "DEPTHWISE_CONV_2D",
                    op.options.strideW,
                    (pad, pad),
                    (out[1], out[2]),
                )
            )
        producer[op.outputs[0]] = len(convs) - 1
    built = [conv_stream(d, *args, None) for args in convs]
    for pos, other in adds:
        _, _, h_out, a_out, _, _ = built[producer[other]]
        built[pos] = conv_stream(d, *convs[pos], (h_out, a_out))
    jobs = [([task], ins, [h_out]) for task, ins, h_out, _, _, _ in built]
    return jobs, sum(b[5] for b in built)


def submit(d: Device, jobs) -> float:
    keep = []
    cjobs = ffi.new("struct drm_rocket_job[]", len(jobs))
    for cj, (tasks, ins, outs) in zip(cjobs, jobs, strict=True):
        t = ffi.new("struct drm_rocket_task[]", tasks)
        i = ffi.new("uint32_t[]", ins)
        o = ffi.new("uint32_t[]", outs)
        keep += [t, i, o]
        cj.tasks, cj.task_count = int(ffi.cast("uintptr_t", t)), len(tasks)
        cj.task_struct_size = ffi.sizeof("struct drm_rocket_task")
        cj.in_bo_handles, cj.in_bo_handle_count = int(ffi.cast("uintptr_t", i)), len(ins)
        cj.out_bo_handles, cj.out_bo_handle_count = int(ffi.cast("uintptr_t", o)), len(outs)
    args = ffi.new(
        "struct drm_rocket_submit *",
        {
            "jobs": int(ffi.cast("uintptr_t", cjobs)),
            "job_count": len(jobs),
            "job_struct_size": ffi.sizeof("struct drm_rocket_job"),
        },
    )
    d.f.clear_job_counters()
    t0 = time.perf_counter()
    d.f.ioctl(uapi.ROCKET_SUBMIT, args)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--scheduling", default="entity", choices=("entity", "spread"))
    ap.add_argument("--json")
    opts = ap.parse_args(argv)
    model = load_model(opts.model)
    it = litert.interpreter(opts.model, "ref")
    litert.set_inputs(it, litert.random_inputs(it))
    d = Device(opts.scheduling)
    jobs, macs = build(model, d)
    ref, sim = [], []
    for _ in range(opts.repeat + 1):  # interleaved, so both see the same machine load
        t0 = time.perf_counter()
        litert.invoke(it)
        ref.append(time.perf_counter() - t0)
        sim.append(submit(d, jobs))
    records = d.f.job_counters()
    faults = [r.message for r in records if r.status != "ok"]
    ref_s, sim_s = statistics.median(ref[1:]), statistics.median(sim[1:])
    span = max(r.end_ns for r in records) - min(r.start_ns for r in records)
    rows = {
        "model": Path(opts.model).name,
        "jobs": len(jobs),
        "macs": macs,
        "litert_ref_ms": ref_s * 1000,
        "simulated_invoke_ms": sim_s * 1000,
        "sim_gmac_per_s": macs / sim_s / 1e9,
        "speedup_vs_ref": ref_s / sim_s,
        "simulated_npu_ms": span / 1e6,
        "cores": sorted({r.core for r in records}),
        "faults": faults,
    }
    print(f"{rows['model']}: {len(jobs)} jobs, {macs / 1e6:.1f} M MACs")
    print(f"  LiteRT BUILTIN_REF invoke      {rows['litert_ref_ms']:8.1f} ms")
    print(
        f"  simulated invoke (one SUBMIT)  {rows['simulated_invoke_ms']:8.1f} ms  "
        f"({rows['sim_gmac_per_s']:.2f} GMAC/s, {rows['speedup_vs_ref']:.2f}x BUILTIN_REF)"
    )
    print(
        f"  simulated NPU time             {rows['simulated_npu_ms']:8.3f} ms on cores "
        f"{rows['cores']}, {len(faults)} faults"
    )
    if opts.json:
        Path(opts.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
