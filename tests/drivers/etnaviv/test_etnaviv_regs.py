"""etnaviv_regs against the public facts (reference brief etnaviv-ml.md sections 2, 6 and 8):
job configurations pack to the documented bit positions, split values land in every word they
span, and front-end states and commands have their addresses and layouts."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from mesa_npu.drivers.etnaviv import etnaviv_regs as E


def words(data: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(data) // 4}I", data)


def test_nn_config_is_34_words_with_mesas_constants():
    data = E.NN_CONFIG.pack_words()
    assert len(data) == 136
    w = words(data)
    # Words 19 and 21 hold 0x3FFFFFF, words 26..33 Mesa's "further" constants (section 2).
    assert (w[19], w[21]) == (0x3FFFFFF, 0x3FFFFFF)
    assert w[26:34] == (0, 0, 0x03FFFFFF, 0x7F800000, 0xFF800000, 0, 0, 0)
    assert sum(w[:19]) + w[20] + sum(w[22:26]) == 0


def test_nn_config_split_values_land_in_every_word():
    m, shift = 0x5A_C3A5, 0x55  # 23-bit multiplier (v8), 7-bit shift
    w = words(E.NN_CONFIG.pack_words(POST_MULTIPLIER=m, POST_SHIFT=shift))
    # Section 2: multiplier bit 0 in word 2 bit 26, bits 1-6 in word 15 27:22, bits 7-14 in
    # word 17 31:24, bits 15-22 in word 22 25:18; shift bits 0-4 in word 2 31:27, bits 5-6 in
    # word 15 29:28.
    assert w[2] >> 26 & 1 == m & 1
    assert w[15] >> 22 & 0x3F == m >> 1 & 0x3F
    assert w[17] >> 24 == m >> 7 & 0xFF
    assert w[22] >> 18 & 0xFF == m >> 15
    assert w[2] >> 27 == shift & 0x1F
    assert w[15] >> 28 & 3 == shift >> 5


def test_nn_config_negative_input_offset_and_kernel_address():
    data = E.NN_CONFIG.pack_words(
        IN_IMAGE_X_OFFSET=-1,
        IN_IMAGE_Y_OFFSET=-2,
        KERNEL_ADDRESS=0x1000_0040,
        KERNEL_Z_SIZE=0x4_0001,
    )
    w = words(data)
    # -1 is 0b1111 (3 bits in word 2 + bit 3 in word 4 bit 16); -2 is 0b1110.
    assert w[2] & 7 == 7 and w[2] >> 3 & 7 == 6
    assert w[4] >> 16 & 3 == 0b11
    # The kernel address is stored >> 6; kernel_z bits 19:14 go to word 5 31:26.
    assert w[5] & 0x3FF_FFFF == 0x1000_0040 >> 6
    assert w[5] >> 26 == 0x4_0001 >> 14 and w[0] >> 6 & 0x3FFF == 1
    with pytest.raises(ValueError, match="KERNEL_ADDRESS=0x10000020 is not a multiple of 0x40"):
        E.NN_CONFIG.pack_words(KERNEL_ADDRESS=0x1000_0020)
    with pytest.raises(ValueError, match=r"NN_CONFIG: IN_IMAGE_X_OFFSET=-9 does not fit"):
        E.NN_CONFIG.pack_words(IN_IMAGE_X_OFFSET=-9)


def test_nn_config_reads_back_by_name_from_numpy():
    data = E.NN_CONFIG.pack_words(
        KERNEL_XY_SIZE=3, KERNELS_PER_CORE=127, POOLING=E.NnPooling.POOLING_FIRST_PIXEL,
        OUT_IMAGE_X_SIZE=8191, IN_IMAGE_DATA_TYPE=E.NnDataType.UINT8, IN_IMAGE_X_OFFSET=-1,
    )  # fmt: skip
    record = E.NN_CONFIG.unpack_words(np.frombuffer(data, dtype="<u4"))
    assert record.POOLING is E.NnPooling.POOLING_FIRST_PIXEL
    assert record.IN_IMAGE_DATA_TYPE is E.NnDataType.UINT8
    assert (record.KERNELS_PER_CORE, record.OUT_IMAGE_X_SIZE) == (127, 8191)
    assert record.IN_IMAGE_X_OFFSET == -1 and record.POST_MULTIPLIER == 0
    with pytest.raises(ValueError, match="KERNELS_PER_CORE=128 does not fit"):
        E.NN_CONFIG.pack_words(KERNELS_PER_CORE=128)
    with pytest.raises(ValueError, match=r"NN_CONFIG: unknown field\(s\) POST_MULTIPLIER_BIT_0"):
        E.NN_CONFIG.pack_words(POST_MULTIPLIER_BIT_0=1)


def test_tp_config_is_31_words():
    data = E.TP_CONFIG.pack_words(IN_WINDOW_X_START=-1, IN_WINDOW_Y_START=-2, LAST=1,
                                  ALU_OUTPUT_POSTSHIFT=0x7F)  # fmt: skip
    w = words(data)
    assert len(data) == 124
    assert w[4] == 0xFFFE_FFFF  # window starts: signed 16-bit halves (section 6)
    assert w[12] == 1 << 31
    assert w[24] >> 10 & 0x1F == 0x1F and w[24] >> 26 & 3 == 3
    assert (w[26], w[28]) == (0xFFFFFFFF >> 6, 0xFFFFFFFF >> 6)
    assert E.TP_CONFIG.unpack_words(data).ALU_OUTPUT_POSTSHIFT == 0x7F


def test_front_end_states_and_load_state():
    assert {r.name: r.offset for r in E.VIVS.registers} == {
        "PA_SYSTEM_MODE": 0x0A28,
        "PS_NN_INST_ADDR": 0x10A0,
        "PS_UNK10A4": 0x10A4,
        "PS_TP_INST_ADDR": 0x10B8,
        "GL_FLUSH_CACHE": 0x380C,
        "GL_API_MODE": 0x384C,
        "GL_NN_CONFIG": 0x3930,
        "GL_SRAM_REMAP_ADDRESS": 0x3938,
        "GL_OCB_REMAP_START": 0x393C,
        "GL_OCB_REMAP_END": 0x3940,
        "GL_TP_CONFIG": 0x394C,
        "GL_UNK03950": 0x3950,
    }
    assert E.VIVS.GL_NN_CONFIG.pack(NN_CORE_COUNT=0, SMALL_BATCH=True) == 0x10
    flush = E.VIVS.GL_FLUSH_CACHE.pack(DEPTH=1, COLOR=1, UNK10=1, UNK11=1, SHADER_L1=1)
    assert flush == 0x1 | 0x2 | 0x400 | 0x800 | 0x20
    assert E.VIVS.GL_API_MODE.pack(GL_API_MODE=E.GlApiMode.OPENCL) == 2
    # LOAD_STATE: opcode 1 in 31:27, count in 25:16, register index (address >> 2) in 15:0.
    header = E.FE_LOAD_STATE.HEADER.pack(OP=E.FeOpcode.LOAD_STATE, COUNT=1, OFFSET=0x3930)
    assert header == 1 << 27 | 1 << 16 | 0x3930 >> 2
    assert E.FE_LOAD_STATE.HEADER.unpack(header).OFFSET == 0x3930
