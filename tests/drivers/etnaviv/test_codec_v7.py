"""v7 zero-run-length weight codec: Mesa's stream bit for bit, round trips, search, faults.

The reference below is a plain per-weight port of the loops of Mesa's ``write_core_6``,
``write_core_interleaved`` and ``write_core_sequential`` (etnaviv_ml_nn_v7.c, as summarised in
etnaviv-ml.md §3.1), written independently of the vectorised codec it checks.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesa_npu.drivers.etnaviv import codec_v7 as v7
from mesa_npu.drivers.etnaviv.codec_bits import WeightCompressionConfig, WeightStreamError

T = v7.V7Traversal


class _Bits:
    def __init__(self) -> None:
        self.value, self.count = 0, 0

    def put(self, value: int, width: int) -> None:
        assert 0 <= value < 1 << width or width == 0
        self.value |= value << self.count
        self.count += width

    def stream(self) -> bytes:
        words = -(-self.count // 32)
        return self.value.to_bytes(words * 4, "little")


def mesa_core(w, bias, offs, layout: v7.V7Layout, core: int, zrl: int) -> bytes:
    """One core's stream, weight by weight, as Mesa writes it."""
    bits, zp = _Bits(), layout.zero_point
    bits.put(zrl, 8)
    bits.put(layout.kernels_per_core, 16)
    pending = 0
    most = (1 << zrl) - 1

    def write(value: int) -> None:
        nonlocal pending
        if zrl == 0:
            bits.put(value, 8)
        elif pending == most:
            bits.put(most, zrl)
            bits.put(value, 8)
            pending = 0
        elif value == zp:
            pending += 1
        else:
            bits.put(pending, zrl)
            bits.put(value, 8)
            pending = 0

    def flush() -> None:
        nonlocal pending
        if pending:
            bits.put(pending - 1, zrl)
            bits.put(zp, 8)
            pending = 0

    def field(value: int) -> None:
        flush()
        bits.put(int(value) & 0xFFFFFFFF, 32)

    def walk_rows(oc, z, first_channel):
        kh, kw = layout.kh, layout.kw
        wide = (layout.traversal is T.INTERLEAVED or layout.split_columns) and kw > 3
        for block in range(-(-kh // 2)):
            rows = [x for x in (2 * block, 2 * block + 1) if x < kh]
            for x in rows:
                for y in range(3 if wide else kw):
                    write(int(w[oc, z, x, y]))
                    if x == 0 and y == 0 and first_channel:
                        field(bias[oc])
            if wide:
                for x in rows:
                    for y in range(3, kw):
                        write(int(w[oc, z, x, y]))

    cu, sb = layout.cores_used, layout.superblocks
    per_sb = -(-layout.kernels_per_core // sb)
    for s in range(sb):
        kis = per_sb if s < sb - 1 else layout.kernels_per_core - per_sb * (sb - 1)
        ocs = [core * kis + k + s * per_sb * cu for k in range(kis)]
        if layout.traversal is T.POINTWISE6:
            step = min(layout.ic, 6)
            blocks = -(-layout.ic // step)
            for block in range(blocks):
                for oc in ocs:
                    flat = w[oc].ravel()
                    for i in range(step):
                        if block * step + i < layout.ic:
                            write(int(flat[block * step + i]))
                        if block == 0 and i == 0:
                            field(bias[oc])
                    if block == blocks - 1:
                        field(offs[oc])
        elif layout.traversal is T.INTERLEAVED:
            for z in range(layout.ic):
                for oc in ocs:
                    walk_rows(oc, z, z == 0)
                    if z == layout.ic - 1:
                        field(offs[oc])
                if s == sb - 1:
                    flush()
        else:
            for oc in ocs:
                walk_rows(oc, 0, True)
                field(offs[oc])
    flush()
    return bits.stream()


def mesa_buffer(w, bias_fields, offs, layout: v7.V7Layout, zrl: int) -> bytes:
    padded = np.full((layout.slots, layout.ic, layout.kh, layout.kw), layout.zero_point, np.uint8)
    padded[: layout.oc] = w
    bias = np.zeros(layout.slots, dtype=np.int64)
    bias[: layout.oc] = bias_fields
    streams = []
    for core in range(layout.cores_used):
        s = mesa_core(padded, bias, offs, layout, core, zrl)
        streams.append(s + bytes(-len(s) % 64))
    sizes = np.zeros(layout.nn_cores, dtype="<u4")
    sizes[: layout.cores_used] = [len(s) for s in streams]
    header = sizes.tobytes() + bytes(layout.header_bytes - sizes.nbytes)
    return header + b"".join(streams)


@st.composite
def layouts(draw, traversal=None):
    traversal = traversal or draw(st.sampled_from(list(T)))
    kh, kw = (
        (1, 1) if traversal is T.POINTWISE6 else (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    )
    ic = (
        1
        if traversal is T.SEQUENTIAL
        else draw(st.integers(2 if traversal is T.INTERLEAVED else 1, 14))
    )
    oc = draw(st.integers(1, 40))
    cores = draw(st.integers(1, 8))
    kpc = -(-oc // min(oc, cores))
    superblocks = draw(st.integers(1, kpc))
    full = -(-kpc // superblocks)
    if kpc - full * (superblocks - 1) < 1:
        superblocks = -(-kpc // full)
    split = traversal is T.SEQUENTIAL and draw(st.booleans())
    zp = draw(st.integers(0, 255))
    return v7.V7Layout(oc, ic, kh, kw, cores, superblocks, traversal, zp, split)


def _data(draw, layout: v7.V7Layout):
    seed = draw(st.integers(0, 2**32 - 1))
    sparsity = draw(st.sampled_from([0.0, 0.3, 0.8, 0.97, 1.0]))
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 256, (layout.oc, layout.ic, layout.kh, layout.kw), dtype=np.uint8)
    w[rng.random(w.shape) < sparsity] = layout.zero_point
    bias = rng.integers(-(2**31), 2**31, layout.oc, dtype=np.int64).astype(np.int32)
    offs = rng.integers(0, 2**32, layout.slots, dtype=np.uint64).astype(np.uint32)
    izp = int(rng.integers(0, 256))
    return w, bias, offs, izp


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.data())
def test_encoder_matches_mesa_bit_for_bit(data):
    layout = data.draw(layouts())
    w, bias, offs, izp = _data(data.draw, layout)
    zrl = data.draw(st.integers(0, 8))
    enc = v7.encode_v7(w, bias, offs, layout, input_zero_point=izp, max_zrl_bits=8, force_zrl=zrl)
    fields = v7.bias_fields(w, bias, layout.zero_point, izp)
    assert enc.data == mesa_buffer(w, fields, offs, layout, zrl)


@SETTINGS
@given(st.data())
def test_round_trip(data):
    layout = data.draw(layouts())
    w, bias, offs, izp = _data(data.draw, layout)
    config = data.draw(
        st.sampled_from(
            [WeightCompressionConfig(), WeightCompressionConfig(search=False),
             WeightCompressionConfig(enabled=False)]
        )
    )  # fmt: skip
    enc = v7.encode_v7(w, bias, offs, layout, input_zero_point=izp, max_zrl_bits=5, config=config)
    dec = v7.decode_v7(enc.data, layout)
    assert dec.zrl_bits == enc.zrl_bits
    assert np.array_equal(dec.weights[: layout.oc], w)
    assert (dec.weights[layout.oc :] == layout.zero_point).all()  # padding kernels
    assert np.array_equal(v7.restore_biases(dec, layout.zero_point, izp, layout.oc), bias)
    assert (dec.bias_fields[layout.oc :] == 0).all()
    assert np.array_equal(dec.offsets, offs)
    if not config.enabled:
        assert enc.zrl_bits == 0
    # The decoder can take its superblocks from the job configuration's kernels_per_core.
    count = v7.superblocks_from_config(layout.oc, layout.nn_cores, layout.superblock_kernels)
    assert count == layout.superblocks


@SETTINGS
@given(st.data())
def test_depthwise_from_diagonal_equals_dense(data):
    oc = data.draw(st.integers(1, 30))
    k = data.draw(st.sampled_from([1, 3, 5]))
    layout = v7.V7Layout.for_job(
        oc=oc, ic=oc, kh=k, kw=k, nn_cores=data.draw(st.integers(1, 8)), superblocks=1,
        zero_point=data.draw(st.integers(0, 255)), depthwise=True,
    )  # fmt: skip
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    w = rng.integers(0, 256, (oc, 1, k, k), dtype=np.uint8)
    w[rng.random(w.shape) < 0.2] = layout.zero_point
    bias = rng.integers(-1000, 1000, oc).astype(np.int32)
    offs = v7.plane_offsets(layout, 7 * 7)
    args = dict(input_zero_point=3, max_zrl_bits=5)
    for config in (WeightCompressionConfig(), WeightCompressionConfig(enabled=False)):
        dense = v7.encode_v7(v7.expand_depthwise(w, layout.zero_point), bias, offs, layout,
                             config=config, **args)  # fmt: skip
        sparse = v7.encode_v7_depthwise(w, bias, offs, layout, config=config, **args)
        assert sparse.data == dense.data


@SETTINGS
@given(st.data())
def test_search_never_larger_than_mesa(data):
    layout = data.draw(layouts())
    w, bias, offs, izp = _data(data.draw, layout)
    args = dict(input_zero_point=izp, max_zrl_bits=5)
    searched = v7.encode_v7(w, bias, offs, layout, **args)
    mesa = v7.encode_v7(w, bias, offs, layout, config=WeightCompressionConfig(search=False), **args)
    sizes = [len(v7.encode_v7(w, bias, offs, layout, force_zrl=z, **args).data) for z in range(6)]
    assert len(searched.data) <= len(mesa.data)
    assert len(searched.data) == min(sizes)


def test_mesa_zrl_rule_stops_when_size_grows():
    """Mesa walks zrl_bits down from the maximum and keeps the last size that did not grow."""
    layout = v7.V7Layout.for_job(oc=8, ic=16, kh=3, kw=3, nn_cores=8, superblocks=1, zero_point=0)
    rng = np.random.default_rng(1)
    w = rng.integers(1, 256, (8, 16, 3, 3), dtype=np.uint8)
    w[:, :, 1:] = 0  # runs of 6 zero points between literal triples
    offs = v7.plane_offsets(layout, 1)
    args = dict(input_zero_point=0, max_zrl_bits=5)
    bias = np.zeros(8, np.int32)
    sizes = {
        z: len(v7.encode_v7(w, bias, offs, layout, force_zrl=z, **args).data) for z in range(6)
    }
    expected = 5
    while expected > 0 and sizes[expected - 1] <= sizes[expected]:
        expected -= 1
    mesa = v7.encode_v7(w, bias, offs, layout, config=WeightCompressionConfig(search=False), **args)
    assert mesa.zrl_bits == expected
    assert v7.encode_v7(w, bias, offs, layout, **args).zrl_bits == min(sizes, key=sizes.get)


def _sample(oc: int = 20, zrl: int | None = None):
    sb = 2 if oc > 8 else 1
    layout = v7.V7Layout.for_job(oc=oc, ic=6, kh=3, kw=3, nn_cores=8, superblocks=sb, zero_point=9)
    rng = np.random.default_rng(7)
    w = rng.integers(0, 256, (oc, 6, 3, 3), dtype=np.uint8)
    w[rng.random(w.shape) < 0.7] = 9
    offs = v7.plane_offsets(layout, 16)
    enc = v7.encode_v7(w, np.arange(oc, dtype=np.int32), offs, layout, input_zero_point=0,
                       max_zrl_bits=5, force_zrl=zrl)  # fmt: skip
    assert enc.zrl_bits > 0 if zrl is None else enc.zrl_bits == zrl
    return layout, enc


def test_truncated_buffer_names_core_and_bit():
    layout, enc = _sample()
    cut = layout.header_bytes + enc.core_sizes[0] + 10
    with pytest.raises(WeightStreamError) as err:
        v7.decode_v7(enc.data[:cut], layout)
    assert err.value.core == 1 and err.value.bit_offset == 8 * (cut - 10)
    assert "runs past" in str(err.value)


def test_stream_size_past_the_buffer():
    layout, enc = _sample()
    data = bytearray(enc.data)
    data[0:4] = (len(data) * 2 // 64 * 64).to_bytes(4, "little")
    with pytest.raises(WeightStreamError, match="core 0"):
        v7.decode_v7(bytes(data), layout)


def test_garbage_header():
    layout, enc = _sample()
    data = bytearray(enc.data)
    data[layout.header_bytes] = 200  # zrl_bits of core 0
    with pytest.raises(WeightStreamError, match=r"core 0, bit 512: zrl_bits 200"):
        v7.decode_v7(bytes(data), layout)
    layout, enc = _sample(oc=6)  # 6 kernels on 8 cores: cores 6 and 7 unused
    assert layout.cores_used == 6
    data = bytearray(enc.data)
    data[4 * 7 : 4 * 8] = b"\x40\0\0\0"
    with pytest.raises(WeightStreamError, match=r"header, bit 224: unused core 7"):
        v7.decode_v7(bytes(data), layout)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_corrupt_streams_raise_only_weight_stream_errors(data):
    layout, enc = _sample(zrl=data.draw(st.sampled_from([None, 0])))
    buf = bytearray(enc.data)
    for _ in range(data.draw(st.integers(1, 6))):
        bit = data.draw(st.integers(0, len(buf) * 8 - 1))
        buf[bit // 8] ^= 1 << (bit % 8)
    if data.draw(st.booleans()):
        buf = buf[: data.draw(st.integers(0, len(buf)))]
    try:
        dec = v7.decode_v7(bytes(buf), layout)
    except WeightStreamError as err:
        assert err.bit_offset <= len(enc.data) * 8
    else:
        assert dec.weights.shape == (layout.slots, 6, 3, 3)
