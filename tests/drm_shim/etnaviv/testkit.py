"""Test kit for the simulated etnaviv device: BOs at softpin addresses, command streams built
with the generated register code, submits through the real UAPI structs, and NN/TP
configurations packed by test-local helpers (never by the driver)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.drm_shim.etnaviv import ModelSwitches, SimulatedEtnavivFile
from mesa_npu.util import uapi
from mesa_npu.util.uapi import ffi

PAGE = 4096
SOFTPIN_START = 4 << 20
RW = uapi.ETNA_SUBMIT_BO_READ | uapi.ETNA_SUBMIT_BO_WRITE
R = uapi.ETNA_SUBMIT_BO_READ
W = uapi.ETNA_SUBMIT_BO_WRITE
V = E.VIVS


@dataclass
class Bo:
    handle: int
    va: int
    size: int
    view: np.ndarray  # the CPU mapping


def load_state(reg, *values: int) -> list[int]:
    head = E.FE_LOAD_STATE.HEADER.pack(
        OP=E.FeOpcode.LOAD_STATE, COUNT=len(values), OFFSET=reg.offset
    )
    words = [head, *values]
    if len(words) % 2:
        words.append(0)
    return words


def init_words() -> list[int]:
    return [0] * 8 + load_state(V.GL_API_MODE, E.GlApiMode.OPENCL) + [0, 0]


def nn_words(config_va: int) -> list[int]:
    return (
        load_state(V.GL_OCB_REMAP_START, 0)
        + load_state(V.GL_OCB_REMAP_END, 0)
        + load_state(V.GL_NN_CONFIG, V.GL_NN_CONFIG.pack(NN_CORE_COUNT=0, SMALL_BATCH=True))
        + load_state(V.PS_NN_INST_ADDR, config_va)
        + load_state(V.PS_UNK10A4, 0)
    )


def tp_words(config_vas: list[int]) -> list[int]:
    words = []
    for i, va in enumerate(config_vas):
        last = i == len(config_vas) - 1
        words += load_state(V.GL_OCB_REMAP_START, 0) + load_state(V.GL_OCB_REMAP_END, 0)
        words += load_state(V.GL_TP_CONFIG, 0) + load_state(V.GL_UNK03950, 0)
        words += load_state(V.PS_TP_INST_ADDR, va + (0 if last else 1))
    return words + load_state(V.PS_UNK10A4, 0)


def flush_words() -> list[int]:
    flush = V.GL_FLUSH_CACHE.pack(DEPTH=True, COLOR=True, UNK10=True, UNK11=True, SHADER_L1=True)
    return load_state(V.GL_FLUSH_CACHE, flush) * 2 + [0, 0]


@dataclass
class Harness:
    file: SimulatedEtnavivFile
    next_va: int = SOFTPIN_START
    keep: list = field(default_factory=list)

    def bo(self, size: int, data: bytes | np.ndarray | None = None) -> Bo:
        new = ffi.new("struct drm_etnaviv_gem_new *", {"size": size, "flags": uapi.ETNA_BO_WC})
        self.file.ioctl(uapi.ETNAVIV_GEM_NEW, new)
        info = ffi.new("struct drm_etnaviv_gem_info *", {"handle": new.handle})
        self.file.ioctl(uapi.ETNAVIV_GEM_INFO, info)
        aligned = -(-size // PAGE) * PAGE
        view = np.frombuffer(self.file.mmap(info.offset, aligned), dtype=np.uint8)
        if data is not None:
            raw = (
                np.frombuffer(bytes(data), dtype=np.uint8)
                if not isinstance(data, np.ndarray)
                else data.ravel().view(np.uint8)
            )
            view[: raw.size] = raw
        bo = Bo(new.handle, self.next_va, aligned, view)
        self.next_va += aligned + PAGE  # a guard page between BOs
        return bo

    def submit_raw(self, words, bos: list[tuple[Bo, int]], *, flags=uapi.ETNA_SUBMIT_SOFTPIN, **kw):
        stream = np.asarray(words, dtype="<u4")
        buf = ffi.new("char[]", stream.tobytes() or b"\0")
        table = ffi.new("struct drm_etnaviv_gem_submit_bo[]", max(len(bos), 1))
        for i, (bo, f) in enumerate(bos):
            table[i].flags, table[i].handle, table[i].presumed = f, bo.handle, bo.va
        args = {
            "pipe": 0,
            "exec_state": uapi.ETNA_PIPE_3D,
            "nr_bos": len(bos),
            "bos": int(ffi.cast("uintptr_t", table)),
            "stream": int(ffi.cast("uintptr_t", buf)),
            "stream_size": stream.size * 4,
            "flags": flags,
        } | kw
        sub = ffi.new("struct drm_etnaviv_gem_submit *", args)
        self.keep += [buf, table]
        self.file.ioctl(uapi.ETNAVIV_GEM_SUBMIT, sub)
        return sub.fence

    def run(self, jobs: list[int], bos: list[tuple[Bo, int]], *, init=True, flush=True):
        words = (init_words() if init else []) + [0] * 8 + jobs + (flush_words() if flush else [])
        return self.submit_raw(words, bos)

    def wait(self, fence: int, timeout_s: float = 5.0, flags: int = 0) -> None:
        deadline = time.monotonic_ns() + int(timeout_s * 1e9)
        args = ffi.new(
            "struct drm_etnaviv_wait_fence *",
            {
                "pipe": 0,
                "fence": fence,
                "flags": flags,
                "timeout": {"tv_sec": deadline // 10**9, "tv_nsec": deadline % 10**9},
            },
        )
        self.file.ioctl(uapi.ETNAVIV_WAIT_FENCE, args)


def make_harness(soc: str = "a311d", **switches) -> Harness:
    return Harness(SimulatedEtnavivFile(soc, ModelSwitches(**switches)))
