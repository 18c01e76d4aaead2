"""Task splitting for the convolution buffer (Mesa: ``rkt_task.c``).

The CBUF holds 12 banks of 32 KiB per core (the SoC table), in 128-byte entries
(rocket-nvdla.md §5, ``rkt_ml.h``: 256 entries per bank). A convolution's weights and the input
rows it reads must be in the CBUF together. :func:`split_tasks` decides:

1. **Weights.** ``weight_banks = ceil(weight bytes / bank bytes)``. When they leave at least one
   bank for data, they stay resident: every task of the operation runs on one core, and tasks
   after the first set ``WEIGHT_REUSE``. Otherwise the CNA streams them through
   ``STREAMED_WEIGHT_BANKS`` banks (Mesa's 7 data / 5 weight split) and the tasks are
   independent, so they can go to different cores.
2. **Rows.** An input row ("slice") of ``W`` pixels and ``C_al`` channels takes
   ``ceil(W·C_al / 128)`` entries (NVDLA's entries-per-slice, without the 4-atom special case
   Mesa inherited: our atoms are 16 bytes and an entry holds 8 of them). The data banks hold
   ``rows = floor(entries in the data banks / entries per slice)`` rows.
3. **Tasks** cut the *output* rows into runs whose receptive field fits ``rows``: ``r`` output
   rows need ``(r - 1)·stride + kh`` input rows (padding rows included, a safe over-estimate).
   Task ``t`` with output rows ``[a, b)`` reads input rows ``a·s - pt .. (b-1)·s - pt + kh - 1``
   clipped to the image; what falls outside is the task's own top/bottom padding. So only the
   first task pads on top and only the last one at the bottom, and consecutive tasks overlap
   by ``kh - s`` rows (rocket-nvdla.md §5). Offsets step inside the first 16-channel surface;
   the surface stride reaches the others.

Mesa computes the same split by walking input slices; working from output rows gives the
per-task sizes directly and needs no repair of the last task.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...util.soc import RocketNpu

# rocket-nvdla.md §5 (rkt_ml.h, after NVDLA's CBUF): a bank is 256 entries of 128 bytes.
CBUF_ENTRY_BYTES = 128
# rocket-nvdla.md §5: when the weights do not fit, Mesa gives 7 banks to data and the rest to
# streamed weights.
STREAMED_DATA_BANKS = 7


class TaskError(ValueError):
    """An operation that cannot be cut into tasks that fit the CBUF."""


@dataclass(frozen=True, slots=True)
class Task:
    """One hardware task: a band of output rows and the input rows it reads."""

    index: int
    out_top: int  # first output row
    out_rows: int
    in_top: int  # first input row read
    in_rows: int
    pad_top: int
    pad_bottom: int
    data_banks: int
    weight_banks: int
    reuse_weights: bool  # WEIGHT_REUSE: the weights are already in the CBUF


@dataclass(frozen=True, slots=True)
class Split:
    tasks: tuple[Task, ...]
    resident: bool  # weights stay in the CBUF for every task (all tasks on one core)
    entries_per_slice: int


def entries_per_slice(npu: RocketNpu, width: int, channels: int) -> int:
    """CBUF entries one input row takes (module doc, step 2)."""
    c_al = -(-channels // npu.feature_atom_bytes) * npu.feature_atom_bytes
    return -(-width * c_al // CBUF_ENTRY_BYTES)


def weight_banks(npu: RocketNpu, weight_bytes: int) -> int:
    return -(-weight_bytes // npu.cbuf_bank_bytes)


def split_tasks(
    npu: RocketNpu,
    *,
    in_height: int,
    in_width: int,
    in_channels: int,
    out_height: int,
    kernel_h: int,
    stride_y: int,
    pad_top: int,
    weight_bytes: int,
) -> Split:
    """Cut one convolution into tasks (module doc)."""
    entries_per_bank = npu.cbuf_bank_bytes // CBUF_ENTRY_BYTES
    per_slice = entries_per_slice(npu, in_width, in_channels)
    wbanks = weight_banks(npu, weight_bytes)
    resident = wbanks < npu.cbuf_banks
    if resident:
        data_banks = npu.cbuf_banks - wbanks
    else:
        data_banks = STREAMED_DATA_BANKS
        wbanks = npu.cbuf_banks - data_banks
    rows = entries_per_bank * data_banks // per_slice
    if rows < kernel_h:
        raise TaskError(
            f"one output row needs {kernel_h} input rows of {per_slice} CBUF entries, "
            f"more than the {data_banks} data banks hold"
        )
    per_task = (rows - kernel_h) // stride_y + 1
    tasks = []
    for index, a in enumerate(range(0, out_height, per_task)):
        b = min(a + per_task, out_height)
        top = a * stride_y - pad_top
        bottom = (b - 1) * stride_y - pad_top + kernel_h - 1
        in_top, in_bottom = max(top, 0), min(bottom, in_height - 1)
        if in_bottom < in_top:
            raise TaskError(f"output rows {a}..{b - 1} read no input row")
        tasks.append(
            Task(
                index=index,
                out_top=a,
                out_rows=b - a,
                in_top=in_top,
                in_rows=in_bottom - in_top + 1,
                pad_top=in_top - top,
                pad_bottom=bottom - in_bottom,
                data_banks=data_banks,
                weight_banks=wbanks,
                reuse_weights=resident and index > 0,
            )
        )
    return Split(tuple(tasks), resident, per_slice)
