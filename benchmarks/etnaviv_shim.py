"""Speed of the simulated etnaviv NPU (``drm_shim.etnaviv``) on a real model's layers, without
the driver: every CONV_2D, DEPTHWISE_CONV_2D and ADD of a .tflite becomes one NN job built here
(configurations packed with the generated registers, the model's own weights coded with the
codec encoders, v7 depthwise expanded to dense as Mesa does, stride 2 by first-pixel pooling),
all in one submit, timed against LiteRT BUILTIN_REF invoking the whole model in the same run.

    python benchmarks/etnaviv_shim.py                     # mobilenet_v2, a311d and imx8mp
    python benchmarks/etnaviv_shim.py --model PATH --socs a311d --repeat 5 --json out.json

Timings are wall clock on this machine; the script prints them and asserts nothing. The first
submit decodes every coefficient buffer; later ones reuse the file's decode cache (keyed by the
buffer's hash), as a repeated invoke does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.drivers.etnaviv.codec_bits import WeightCompressionConfig
from mesa_npu.drivers.etnaviv.codec_v7 import (
    V7Layout,
    encode_v7,
    encode_v7_depthwise,
    plane_offsets,
)
from mesa_npu.drivers.etnaviv.codec_v8 import encode_v8
from mesa_npu.drivers.etnaviv.codec_v8_format import V8Layout
from mesa_npu.drm_shim.etnaviv import SimulatedEtnavivFile
from mesa_npu.frontends.teflon import litert
from mesa_npu.frontends.teflon.tflite import load_model
from mesa_npu.util import uapi
from mesa_npu.util.soc import soc
from mesa_npu.util.uapi import ffi

DEFAULT_MODEL = (
    Path(__file__).resolve().parents[2] / "shared/models/mobilenet_v2_1.0_224_quant.tflite"
)
PAGE = 4096
FAST = WeightCompressionConfig(search=False)
V = E.VIVS


def load_state(reg, *values):
    head = E.FE_LOAD_STATE.HEADER.pack(
        OP=E.FeOpcode.LOAD_STATE, COUNT=len(values), OFFSET=reg.offset
    )
    words = [head, *values]
    return words + [0] * (len(words) % 2)


class Placer:
    def __init__(self, f: SimulatedEtnavivFile) -> None:
        self.f, self.va, self.bos = f, 4 << 20, []

    def bo(self, size: int, data=None, flags=uapi.ETNA_SUBMIT_BO_READ) -> int:
        new = ffi.new("struct drm_etnaviv_gem_new *", {"size": size, "flags": uapi.ETNA_BO_WC})
        self.f.ioctl(uapi.ETNAVIV_GEM_NEW, new)
        info = ffi.new("struct drm_etnaviv_gem_info *", {"handle": new.handle})
        self.f.ioctl(uapi.ETNAVIV_GEM_INFO, info)
        size = -(-size // PAGE) * PAGE
        if data is not None:
            raw = np.frombuffer(bytes(data), dtype=np.uint8)
            np.frombuffer(self.f.mmap(info.offset, size), dtype=np.uint8)[: raw.size] = raw
        va = self.va
        self.va += size
        self.bos.append((new.handle, va, flags))
        return va


def conv_job(p: Placer, gen: int, npu, x_shape, w, bias, izp, wzp, stride, depthwise, pad):
    """One NN job: planar input [C, H, W] (TFLite H, W), weights OHWI (dw: 1HWO)."""
    _, h, wd, ic = x_shape
    if depthwise:
        oc, kh, kw = w.shape[3], w.shape[1], w.shape[2]
        w = w.transpose(3, 0, 1, 2)  # [OC, 1, KH, KW]
    else:
        oc, kh, kw = w.shape[0], w.shape[1], w.shape[2]
        w = w.transpose(0, 3, 1, 2)
    oh, ow = -(-h // stride), -(-wd // stride)
    pool = stride == 2
    ph, pw = (2 * oh, 2 * ow) if pool else (oh, ow)
    cores = npu.nn_cores
    per_core = -(-oc // min(oc, cores))
    sb = -(-per_core // 16)  # at most 16 kernels per core and superblock
    kpc = -(-per_core // sb)
    off = -(kh // 2) if pad else 0
    if gen == 7:
        kz = ic
        lay = V7Layout.for_job(
            oc=oc,
            ic=ic,
            kh=kh,
            kw=kw,
            nn_cores=cores,
            superblocks=sb,
            zero_point=wzp,
            input_width=wd,
        )
        enc = encode_v7_depthwise if depthwise else encode_v7
        coefs = enc(
            w,
            bias,
            plane_offsets(lay, oh * ow),
            lay,
            input_zero_point=izp,
            max_zrl_bits=npu.zrl_bits,
            config=FAST,
        ).data
    else:
        kz = ic
        lay = V8Layout(
            oc=oc,
            ic=1 if depthwise else ic,
            kh=kh,
            kw=kw,
            nn_cores=cores,
            superblocks=sb,
            zero_point=wzp,
            depthwise=depthwise,
        )
        coefs = encode_v8(w, bias, lay, input_zero_point=izp, config=FAST).data
    kva = p.bo(len(coefs), coefs)
    iva = p.bo(ic * h * wd, np.random.default_rng(0).integers(0, 256, ic * h * wd, dtype=np.uint8))
    ova = p.bo(oc * oh * ow, flags=uapi.ETNA_SUBMIT_BO_WRITE)
    cfg = E.NN_CONFIG.pack_words(
        NN_LAYER_FLUSH=1,
        ROUNDING_MODE=1,
        KERNEL_XY_SIZE=kw,
        KERNEL_Y_SIZE=kh,
        KERNEL_Z_SIZE=kz,
        KERNELS_PER_CORE=kpc,
        IN_IMAGE_X_SIZE=wd,
        IN_IMAGE_Y_SIZE=h,
        IN_IMAGE_X_STRIDE=wd,
        IN_IMAGE_Y_STRIDE=h,
        IN_IMAGE_X_OFFSET=off,
        IN_IMAGE_Y_OFFSET=off,
        IN_IMAGE_BORDER_CONST=izp,
        IN_IMAGE_ADDRESS=iva,
        OUT_IMAGE_ADDRESS=ova,
        KERNEL_ADDRESS=kva,
        OUT_IMAGE_X_SIZE=pw,
        OUT_IMAGE_Y_SIZE=ph,
        OUT_IMAGE_Z_SIZE=oc,
        OUT_IMAGE_X_STRIDE=ow,
        OUT_IMAGE_Y_STRIDE=oh,
        OUT_IMAGE_TILE_X_SIZE=min(pw, 64),
        OUT_IMAGE_TILE_Y_SIZE=min(ph, 4),
        COEF_ZERO_POINT=wzp,
        OUT_ZERO_POINT=128,
        POST_MULTIPLIER=0x1234,
        POST_SHIFT=24 if gen == 7 else 8,
        DEPTHWISE=int(depthwise and gen == 8),
        POOLING=E.NnPooling.POOLING_FIRST_PIXEL if pool else E.NnPooling.POOLING_NON,
        POOLING_XY_SIZE=0 if pool else 1,
    )
    cva = p.bo(len(cfg), cfg)
    return (
        load_state(V.GL_NN_CONFIG, V.GL_NN_CONFIG.pack(SMALL_BATCH=True))
        + load_state(V.PS_NN_INST_ADDR, cva)
        + load_state(V.PS_UNK10A4, 0)
    )


def build(model, soc_name: str):
    npu = soc(soc_name).npu
    gen = npu.nn_core_version
    f = SimulatedEtnavivFile(soc_name)
    p = Placer(f)
    words = [0] * 8 + load_state(V.GL_API_MODE, E.GlApiMode.OPENCL)
    jobs = 0
    for op in model.ops:
        if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD"):
            continue
        x = model.tensor(op.inputs[0])
        if op.name == "ADD":
            n = int(np.prod(x.shape))
            w = np.zeros((1, 2, 2, 1), dtype=np.uint8)
            w[0, 0, 0, 0] = 200
            if gen == 7:  # Mesa's v7 ADD: 2 planes of 32 x n/32, 2x2 kernel
                shape = (1, n // 32, 32, 1)
                words += conv_job(
                    p, gen, npu, shape, w, np.zeros(1, np.int32), 128, 0, 1, False, False
                )
                jobs += 1
                continue
            c = x.shape[3]  # v8: 1x1 over the 2C concatenated channels
            w = np.full((c, 1, 1, 2 * c), 128, dtype=np.uint8)
            w[np.arange(c), 0, 0, np.arange(c)] = 200
            shape = (1, x.shape[1], x.shape[2], 2 * c)
            words += conv_job(
                p, gen, npu, shape, w, np.zeros(c, np.int32), 128, 128, 1, False, False
            )
            jobs += 1
            continue
        wt = model.tensor(op.inputs[1]).pipe
        bias = model.tensor(op.inputs[2]).pipe.data.astype(np.int32)
        stride = op.options.strideW
        pad = op.options.padding == 0  # SAME
        dw = op.name == "DEPTHWISE_CONV_2D"
        words += conv_job(
            p,
            gen,
            npu,
            x.shape,
            wt.data.astype(np.uint8),
            bias,
            x.pipe.quant.zero_point,
            wt.quant.zero_point,
            stride,
            dw,
            pad,
        )
        jobs += 1
    flush = V.GL_FLUSH_CACHE.pack(DEPTH=True, COLOR=True, UNK10=True, UNK11=True, SHADER_L1=True)
    words += load_state(V.GL_FLUSH_CACHE, flush) * 2 + [0, 0]
    return f, p, np.asarray(words, dtype="<u4"), jobs


def submit(f, p, stream) -> float:
    table = ffi.new("struct drm_etnaviv_gem_submit_bo[]", len(p.bos))
    for i, (h, va, fl) in enumerate(p.bos):
        table[i].flags, table[i].handle, table[i].presumed = fl, h, va
    buf = ffi.new("char[]", stream.tobytes())
    args = ffi.new(
        "struct drm_etnaviv_gem_submit *",
        {
            "exec_state": uapi.ETNA_PIPE_3D,
            "nr_bos": len(p.bos),
            "bos": int(ffi.cast("uintptr_t", table)),
            "stream": int(ffi.cast("uintptr_t", buf)),
            "stream_size": stream.size * 4,
            "flags": uapi.ETNA_SUBMIT_SOFTPIN,
        },
    )
    t0 = time.perf_counter()
    f.ioctl(uapi.ETNAVIV_GEM_SUBMIT, args)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--socs", nargs="+", default=["a311d", "imx8mp"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json")
    opts = ap.parse_args(argv)
    model = load_model(opts.model)
    it = litert.interpreter(opts.model, "ref")
    inputs = litert.random_inputs(it)
    ref = []
    for _ in range(opts.repeat + 1):
        litert.set_inputs(it, inputs)
        t0 = time.perf_counter()
        litert.invoke(it)
        ref.append(time.perf_counter() - t0)
    rows = [{"what": "LiteRT BUILTIN_REF invoke", "seconds": statistics.median(ref[1:])}]
    for soc_name in opts.socs:
        f, p, stream, jobs = build(model, soc_name)
        first = submit(f, p, stream)
        again = statistics.median(submit(f, p, stream) for _ in range(opts.repeat))
        faults = [line for line in f.fault_log() if "warning" not in line]
        macs = sum(c.macs for c in f.job_counters()[:jobs])
        rows.append(
            {
                "what": f"{soc_name}: {jobs} NN jobs, first submit (decodes)",
                "seconds": first,
                "faults": len(faults),
                "gmacs": macs / 1e9,
            }
        )
        rows.append({"what": f"{soc_name}: same submit again (decode cache)", "seconds": again})
    width = max(len(r["what"]) for r in rows)
    print(f"{Path(opts.model).name}")
    for r in rows:
        extra = f"  ({r['gmacs']:.2f} GMAC, {r['faults']} faults)" if "gmacs" in r else ""
        print(f"  {r['what']:<{width}}  {r['seconds'] * 1000:8.1f} ms{extra}")
    if opts.json:
        Path(opts.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
