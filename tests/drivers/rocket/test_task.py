"""CBUF task splitting (drivers/rocket/task.py): the tasks cover every output row once, read
exactly the input rows their windows need, fit the data banks, and pad only at the image's
edges (rocket-nvdla.md §5)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.drivers.rocket.task import (
    CBUF_ENTRY_BYTES,
    STREAMED_DATA_BANKS,
    TaskError,
    entries_per_slice,
    split_tasks,
)
from mesa_npu.util.soc import soc

NPU = soc("rk3588").npu
ENTRIES_PER_BANK = NPU.cbuf_bank_bytes // CBUF_ENTRY_BYTES


def test_entries_per_slice_counts_128_byte_entries_of_16_channel_atoms():
    assert entries_per_slice(NPU, 1, 1) == 1  # one atom of 16 bytes: one entry
    assert entries_per_slice(NPU, 8, 16) == 1  # 8 atoms fill an entry
    assert entries_per_slice(NPU, 9, 16) == 2
    assert entries_per_slice(NPU, 224, 3) == 28  # 224 pixels x 16 bytes / 128
    assert entries_per_slice(NPU, 7, 1024) == 7 * 64 * 16 // 128


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 300),
    w=st.integers(1, 300),
    c=st.integers(1, 600),
    k=st.integers(1, 7),
    s=st.integers(1, 3),
    pad=st.integers(0, 3),
    weights=st.sampled_from([64, 300_000, 2_000_000]),
)
def test_tasks_cover_the_output_once_and_fit_the_cbuf(h, w, c, k, s, pad, weights):
    pad_top = min(pad, k - 1)
    out_h = (h + pad_top + pad_top - k) // s + 1
    if out_h < 1:
        return
    try:
        split = split_tasks(
            NPU,
            in_height=h,
            in_width=w,
            in_channels=c,
            out_height=out_h,
            kernel_h=k,
            stride_y=s,
            pad_top=pad_top,
            weight_bytes=weights,
        )
    except TaskError:
        # Only when even one output row's input rows exceed the data banks.
        banks = NPU.cbuf_banks - -(-weights // NPU.cbuf_bank_bytes)
        banks = banks if banks > 0 else STREAMED_DATA_BANKS
        assert k * entries_per_slice(NPU, w, c) > ENTRIES_PER_BANK * banks
        return
    tasks = split.tasks
    assert [t.out_top for t in tasks] == [
        sum(t.out_rows for t in tasks[:i]) for i in range(len(tasks))
    ]
    assert sum(t.out_rows for t in tasks) == out_h
    per_slice = entries_per_slice(NPU, w, c)
    for i, t in enumerate(tasks):
        assert t.index == i and t.out_rows >= 1
        # The rows the task's windows read, padding included, and nothing else.
        assert t.pad_top + t.in_rows + t.pad_bottom == (t.out_rows - 1) * s + k
        assert t.in_top == max(t.out_top * s - pad_top, 0)
        assert 0 <= t.in_top and t.in_top + t.in_rows <= h
        assert t.in_rows * per_slice <= t.data_banks * ENTRIES_PER_BANK
        assert t.data_banks + t.weight_banks <= NPU.cbuf_banks
        assert t.reuse_weights == (split.resident and i > 0)
        # Padding only where the windows reach past the image (normally: the first task on
        # top, the last at the bottom; a kernel taller than a task's rows pads more).
        top = t.out_top * s - pad_top
        bottom = (t.out_top + t.out_rows - 1) * s - pad_top + k - 1
        assert t.pad_top == max(0, -top)
        assert t.pad_bottom == max(0, bottom - (h - 1))


def test_weights_that_do_not_fit_are_streamed_and_tasks_independent():
    split = split_tasks(
        NPU,
        in_height=56,
        in_width=56,
        in_channels=256,
        out_height=56,
        kernel_h=3,
        stride_y=1,
        pad_top=1,
        weight_bytes=3 * 3 * 256 * 256,
    )
    assert not split.resident
    assert all(t.data_banks == STREAMED_DATA_BANKS for t in split.tasks)
    assert not any(t.reuse_weights for t in split.tasks)
    assert len(split.tasks) > 1


def test_a_small_layer_is_one_task():
    split = split_tasks(
        NPU,
        in_height=8,
        in_width=8,
        in_channels=32,
        out_height=8,
        kernel_h=3,
        stride_y=1,
        pad_top=1,
        weight_bytes=3 * 3 * 32 * 32,
    )
    assert split.resident and len(split.tasks) == 1
    (t,) = split.tasks
    assert (t.pad_top, t.in_rows, t.pad_bottom, t.out_rows) == (1, 8, 1, 8)


@pytest.mark.parametrize("width", [4000])
def test_a_row_wider_than_the_cbuf_is_refused(width):
    with pytest.raises(TaskError, match="input rows"):
        split_tasks(
            NPU,
            in_height=8,
            in_width=width,
            in_channels=1024,
            out_height=8,
            kernel_h=3,
            stride_y=1,
            pad_top=1,
            weight_bytes=1024,
        )
