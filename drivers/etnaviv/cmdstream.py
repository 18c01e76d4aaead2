"""The front-end command stream (Mesa: ``etnaviv_ml.c``'s ``etna_ml_subgraph_invoke``,
``init_npu`` and ``close_batch``, ``etna_ml_emit_operation_nn`` and ``_tp``; brief
``etnaviv-ml.md`` §8).

- Once per context, before its first job: 8 zero words (Mesa's blob-matching padding),
  ``PA_SYSTEM_MODE``, ``GL_API_MODE = OPENCL``, 2 zero words (:func:`init_stream`).
- Per invoke: 8 zero words; per NN job ``OCB_REMAP_START/END = 0``, ``GL_NN_CONFIG`` (all cores
  or ``NN_CORE_COUNT``, ``SMALL_BATCH``: jobs in order), ``PS_NN_INST_ADDR`` = the configuration,
  ``PS_UNK10A4 = 0``; per TP job, for each core, ``OCB_REMAP_START/END = 0``,
  ``GL_TP_CONFIG = 0``, ``GL_UNK03950`` (0x8 before non-last cores of multi-core pad and PWL
  jobs), ``PS_TP_INST_ADDR`` = its configuration (+ 1 for non-last cores), then
  ``PS_UNK10A4 = 0``; at the end ``GL_FLUSH_CACHE`` twice and 2 zero words
  (:func:`job_stream`).

Every state is one ``LOAD_STATE`` of one value: header, value (64-bit aligned already). The
words that hold GPU addresses are listed as relocations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...util.regs import Register
from . import etnaviv_regs as E
from .ml_tp import UNK03950_SPLIT

V = E.VIVS
PADDING_WORDS = 8  # brief §8: Mesa's blob-matching zero words before a batch
TAIL_WORDS = 2  # brief §8: zero words after the end-of-batch flush
FLUSH_ALL = V.GL_FLUSH_CACHE.pack(DEPTH=True, COLOR=True, SHADER_L1=True, UNK10=True, UNK11=True)
NOT_LAST_CORE = 1  # brief §8: PS_TP_INST_ADDR of a non-last core of a multi-core TP job is +1


@dataclass(frozen=True, slots=True)
class StreamJob:
    """What the stream needs of a job: its unit, configuration offsets (one per TP core, window
    relative) and options."""

    unit: str  # "nn" or "tp"
    configs: tuple[int, ...]
    nn_core_count: int = 0  # GL_NN_CONFIG.NN_CORE_COUNT: 0 = all
    marks_split: bool = False


@dataclass(frozen=True, slots=True)
class Stream:
    words: np.ndarray  # uint32
    relocs: np.ndarray  # indices of the words that are window-relative addresses


class _Writer:
    def __init__(self) -> None:
        self.words: list[int] = []
        self.relocs: list[int] = []

    def zeros(self, count: int) -> None:
        self.words += [0] * count

    def state(self, reg: Register, value: int, *, address: bool = False) -> None:
        header = E.FE_LOAD_STATE.HEADER.pack(OP=E.FeOpcode.LOAD_STATE, COUNT=1, OFFSET=reg.offset)
        self.words.append(header)
        if address:
            self.relocs.append(len(self.words))
        self.words.append(value)

    def stream(self) -> Stream:
        return Stream(np.array(self.words, dtype=np.uint32), np.array(self.relocs, np.int64))


def init_stream() -> Stream:
    """The once-per-context setup (brief §8 step 1)."""
    w = _Writer()
    w.zeros(PADDING_WORDS)
    w.state(V.PA_SYSTEM_MODE, V.PA_SYSTEM_MODE.pack(PROVOKING_VERTEX_LAST=True,
                                                    HALF_PIXEL_CENTER=True))  # fmt: skip
    w.state(V.GL_API_MODE, V.GL_API_MODE.pack(GL_API_MODE=E.GlApiMode.OPENCL))
    w.zeros(TAIL_WORDS)
    return w.stream()


def job_stream(jobs: Sequence[StreamJob]) -> Stream:
    """The per-invoke stream of ``jobs`` (brief §8 steps 2-4)."""
    w = _Writer()
    w.zeros(PADDING_WORDS)
    for job in jobs:
        if job.unit == "nn":
            w.state(V.GL_OCB_REMAP_START, 0)
            w.state(V.GL_OCB_REMAP_END, 0)
            w.state(V.GL_NN_CONFIG, V.GL_NN_CONFIG.pack(NN_CORE_COUNT=job.nn_core_count,
                                                        SMALL_BATCH=True))  # fmt: skip
            w.state(V.PS_NN_INST_ADDR, job.configs[0], address=True)
            w.state(V.PS_UNK10A4, 0)
            continue
        for i, config in enumerate(job.configs):
            last = i == len(job.configs) - 1
            w.state(V.GL_OCB_REMAP_START, 0)
            w.state(V.GL_OCB_REMAP_END, 0)
            w.state(V.GL_TP_CONFIG, 0)
            w.state(V.GL_UNK03950, UNK03950_SPLIT if job.marks_split and not last else 0)
            w.state(V.PS_TP_INST_ADDR, config + (0 if last else NOT_LAST_CORE), address=True)
        w.state(V.PS_UNK10A4, 0)
    w.state(V.GL_FLUSH_CACHE, FLUSH_ALL)
    w.state(V.GL_FLUSH_CACHE, FLUSH_ALL)
    w.zeros(TAIL_WORDS)
    return w.stream()


def relocated(stream: Stream, base: int) -> np.ndarray:
    """The stream's words with ``base`` added to every address word."""
    words = stream.words.copy()
    words[stream.relocs] += np.uint32(base)
    return words
