"""Per-job counters: MACs, traffic by role, compressed weight bytes fetched and SRAM hits under
each caching mode (docs/etnaviv-npu-model.md §3 "SRAM accounting"), and relocations."""

from __future__ import annotations

import numpy as np
from etna_testkit import R, conv_job, init_words, load_state

from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.util import uapi

Cache = E.SramCacheMode


def _job(hw, superblocks=1):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(4, 16, 16), dtype=np.uint8)
    w = rng.integers(90, 170, size=(16, 4, 3, 3), dtype=np.uint8)
    return conv_job(hw, "a311d", x, w, np.zeros(16, np.int32), izp=128, wzp=128, ozp=128,
                    off=-1, post_shift=20, superblocks=superblocks)  # fmt: skip


def _counters(hw, job, **fields):
    hw.wait(job.submit(**fields))
    assert hw.file.fault_log() == ()
    return hw.file.job_counters()[-1]


def test_traffic_and_sram_hits_by_cache_mode(harness):
    hw = harness()
    job = _job(hw, superblocks=2)
    # 16x16 output in 16x4 tiles: 4 tiles
    none = _counters(hw, job, OUT_IMAGE_TILE_X_SIZE=16, OUT_IMAGE_TILE_Y_SIZE=4)
    size = none.weight_bytes_fetched // 4
    assert none.tiles == 4 and none.superblocks == 2 and none.sram_hits == 0
    assert none.macs == 16 * 16 * 16 * 9 * 4
    assert none.bytes_read["input"] == 2 * 4 * 16 * 16  # read once per superblock
    assert none.bytes_written["output"] == 16 * 16 * 16
    full = _counters(hw, job, OUT_IMAGE_TILE_X_SIZE=16, OUT_IMAGE_TILE_Y_SIZE=4,
                     KERNEL_CACHING_MODE=Cache.FULL_CACHE, KERNEL_CACHE_START_ADDRESS=0x800,
                     KERNEL_CACHE_END_ADDRESS=0x800 + 4096)  # fmt: skip
    assert full.weight_bytes_fetched == size and full.sram_hits == 3 * size
    part = _counters(hw, job, OUT_IMAGE_TILE_X_SIZE=16, OUT_IMAGE_TILE_Y_SIZE=4,
                     KERNEL_CACHING_MODE=Cache.PARTIAL_CACHE, KERNEL_CACHE_START_ADDRESS=0x800,
                     KERNEL_CACHE_END_ADDRESS=0x800 + 64)  # fmt: skip
    assert part.sram_hits == 3 * 64 and part.weight_bytes_fetched == size + 3 * (size - 64)
    image = _counters(hw, job, OUT_IMAGE_TILE_X_SIZE=16, OUT_IMAGE_TILE_Y_SIZE=4,
                      IMAGE_CACHING_MODE=Cache.FULL_CACHE, IMAGE_CACHE_START_ADDRESS=0x10000,
                      IMAGE_CACHE_END_ADDRESS=0x12000)  # fmt: skip
    assert image.bytes_read["input"] == 4 * 16 * 16 and image.sram_hits == 4 * 16 * 16
    # the values do not depend on tiling or caching
    outputs = {job.output().tobytes()}
    hw.wait(job.submit(OUT_IMAGE_TILE_X_SIZE=8, OUT_IMAGE_TILE_Y_SIZE=16))
    outputs.add(job.output().tobytes())
    assert len(outputs) == 1


def test_relocations_place_bos_without_softpin(harness):
    """Without ETNA_SUBMIT_SOFTPIN the kernel picks the addresses and patches the stream."""
    hw = harness()
    cfg = hw.bo(4096)  # an all-zero NN configuration: a bad config at the kernel's address
    words = init_words() + load_state(E.VIVS.PS_NN_INST_ADDR, 0)
    relocs = uapi.ffi.new("struct drm_etnaviv_gem_submit_reloc[]", 1)
    relocs[0].submit_offset = (len(words) - 1) * 4  # the state value
    relocs[0].reloc_idx = 0
    relocs[0].reloc_offset = 0
    hw.keep.append(relocs)
    hw.submit_raw(words, [(cfg, R)], flags=0, nr_relocs=1,
                  relocs=int(uapi.ffi.cast("uintptr_t", relocs)))  # fmt: skip
    line = hw.file.fault_log()[-1]
    assert "IN_IMAGE_X_SIZE is 0" in line, line
    assert hw.file.job_counters() == ()
