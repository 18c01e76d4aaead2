"""v8 Huffman weight codec: Mesa's stream bit for bit, round trips (plain and zero-run mode),
the symbol-map search against brute force, and corrupt buffers.

The reference below is a per-byte port of Mesa's ``encode_byte``, ``emit_pair``,
``encoder_flush``, ``encode_superblock`` and ``fill_weights`` (etnaviv_ml_nn_v8.c, as summarised
in etnaviv-ml.md §3.2), written independently of the vectorised codec it checks.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesa_npu.drivers.etnaviv import codec_v8 as v8
from mesa_npu.drivers.etnaviv import codec_v8_search as search
from mesa_npu.drivers.etnaviv.codec_bits import WeightCompressionConfig, WeightStreamError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class MesaEncoder:
    """Mesa's v8 byte encoder with its 6-entry ring of codes (plain mode)."""

    def __init__(self, symbol_map) -> None:
        self.sym_of = {cls: sym for sym, cls in enumerate(symbol_map)}
        self.ring = [(0, 0, 0, 0)] * 6
        self.read = 0
        self.value, self.count = 0, 0

    def put(self, value: int, width: int) -> None:
        self.value |= value << self.count
        self.count += width

    @staticmethod
    def code(sym: int, value: int, bits: int) -> tuple[int, int, int, int]:
        return {
            0: (0 | (value & 1) << 2, 0, value >> 1, bits - 1),
            1: (1 | (value & 1) << 2, 0, value >> 1, bits - 1),
            2: (7, 0, value, bits),
            3: (3, 0, value, bits),
            4: (6, 0, value, bits),
            5: (2, 1 | (value & 1) << 1, value >> 1, bits - 1),
            6: (2, 2, value, bits),
            7: (2, 0, value, bits),
        }[sym]

    def emit_pair(self) -> None:
        a, b = self.ring[(self.read - 2) % 6], self.ring[(self.read - 1) % 6]
        self.put(a[0], 3)
        self.put(b[0], 3)
        if self.read > 2:
            a, b = self.ring[(self.read - 4) % 6], self.ring[(self.read - 3) % 6]
            self.put(a[1], 2 if a[0] == 2 else 0)
            self.put(b[1], 2 if b[0] == 2 else 0)
        if self.read > 4:
            a, b = self.ring[(self.read - 6) % 6], self.ring[(self.read - 5) % 6]
            self.put(a[2], a[3])
            self.put(b[2], b[3])

    def byte(self, byte: int) -> None:
        sign = byte >> 7
        value = byte ^ 0xFF if sign else byte
        msb = value.bit_length() - 1 if value else 0
        bits = msb + 1 if value else 0
        value &= ~(1 << msb)
        sym = self.sym_of[bits]
        bits = max(bits, 1)
        self.ring[self.read % 6] = self.code(sym, (value << 1) | sign, bits)
        self.read += 1
        if self.read % 2 == 0:
            self.emit_pair()

    def flush(self) -> tuple[bytes, int]:
        flag = (self.read & 1) << 2
        if self.read & 1:
            self.byte(0)
        for _ in range(2):
            for _ in range(2):
                self.ring[self.read % 6] = (flag, 0, 0, 0)
                self.read += 1
            self.emit_pair()
        total = self.count
        size = -(-total // 512) * 64
        return self.value.to_bytes(size, "little"), total


def mesa_buffer(w, bias, izp, layout: v8.V8Layout, symbol_map) -> bytes:
    cores, cu, sb = layout.nn_cores, layout.cores_used, layout.superblocks
    flat = w.reshape(layout.oc, -1)
    size = flat.shape[1]
    block = max(size, 9) if layout.depthwise else 9
    blocks = -(-size // block)
    full = -(-layout.oc // (cores * sb))
    channel = [s * full * cu for s in range(sb)]
    streams, bits = [], []
    for core in range(cu):
        enc = MesaEncoder(symbol_map)
        count = layout.oc // cu + (core < layout.oc % cu)
        enc.byte(count & 0xFF)
        enc.byte(count >> 8)
        for s in range(sb):
            kis = full
            if s == sb - 1:
                rem = layout.oc - cu * (sb - 1) * full
                kis = rem // cu + (core < rem % cu)
            if layout.depthwise:
                first = cu - core - 1 + cu * full * s
            else:
                first = channel[s]
            for b in range(blocks):
                for k in range(kis):
                    if layout.depthwise:
                        oc = first + k * cores
                        if layout.oc > 1 and oc >= layout.oc - layout.oc % cores:
                            oc -= cores - layout.oc % cores
                    else:
                        oc = first + k
                    for i in range(block):
                        j = b * block + i
                        weight = int(flat[oc, j]) if j < size else layout.zero_point
                        enc.byte((weight - layout.zero_point) & 0xFF)
                    if layout.depthwise and block % 9:
                        for _ in range(9 - block % 9):
                            enc.byte(0)
            channel[s] += kis
        stream, total = enc.flush()
        streams.append(stream)
        bits.append(total)
    head = bytearray(64)
    head[0] = 1 << 4
    head[20:24] = sum(c << (4 * i) for i, c in enumerate(symbol_map)).to_bytes(4, "little")
    for core, total in enumerate(bits):
        head[28 + 4 * core : 32 + 4 * core] = total.to_bytes(4, "little")
    corr = (flat.astype(np.int64) - layout.zero_point).sum(axis=1) * (128 - izp)
    table = (bias.astype(np.int64) + corr).astype(np.uint32).astype("<u4").tobytes()
    return bytes(head) + b"".join(streams) + table


@st.composite
def layouts(draw, mesa_defined: bool = False):
    depthwise = draw(st.booleans())
    cores = draw(st.integers(1, 9))
    oc = draw(st.integers(1, 40))
    if depthwise and mesa_defined and 1 < oc < cores:
        oc = cores  # Mesa's depthwise formula wraps below the core count (see codec_v8)
    if depthwise:
        ic, kh, kw = 1, draw(st.integers(1, 5)), draw(st.integers(1, 5))
    else:
        ic, kh, kw = draw(st.integers(1, 12)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    zp = draw(st.integers(0, 255))
    for superblocks in range(draw(st.integers(1, max(1, -(-oc // cores)))), 0, -1):
        try:
            return v8.V8Layout(oc, ic, kh, kw, cores, superblocks, zp, depthwise)
        except ValueError:
            continue
    raise AssertionError("superblocks=1 is always valid")


def _data(draw, layout: v8.V8Layout):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sparsity = draw(st.sampled_from([0.0, 0.3, 0.8, 1.0]))
    spread = draw(st.sampled_from([3, 40, 256]))
    shape = (layout.oc, layout.ic, layout.kh, layout.kw)
    w = (layout.zero_point + rng.integers(-spread, spread, shape)) & 0xFF
    w = w.astype(np.uint8)
    w[rng.random(shape) < sparsity] = layout.zero_point
    bias = rng.integers(-(2**31), 2**31, layout.oc, dtype=np.int64).astype(np.int32)
    return w, bias, int(rng.integers(0, 256))


@SETTINGS
@given(st.data())
def test_encoder_matches_mesa_bit_for_bit(data):
    layout = data.draw(layouts(mesa_defined=True))
    w, bias, izp = _data(data.draw, layout)
    symbol_map = tuple(data.draw(st.permutations(range(8))))
    enc = v8.encode_v8(w, bias, layout, input_zero_point=izp, force=(symbol_map, ()))
    assert enc.data == mesa_buffer(w, bias, izp, layout, symbol_map)


@SETTINGS
@given(st.data())
def test_round_trip_every_mode(data):
    layout = data.draw(layouts())
    w, bias, izp = _data(data.draw, layout)
    mode = data.draw(st.sampled_from(["off", "mesa", "search", "zrl", "forced"]))
    config = {
        "off": WeightCompressionConfig(enabled=False),
        "mesa": WeightCompressionConfig(search=False),
        "search": WeightCompressionConfig(),
        "zrl": WeightCompressionConfig(v8_zrl=True),
        "forced": None,
    }[mode]
    if config is None:
        table = data.draw(st.lists(st.integers(1, 255), min_size=1, max_size=16, unique=True))
        force = (tuple(data.draw(st.permutations(range(8)))), tuple(sorted(table, reverse=True)))
        enc = v8.encode_v8(w, bias, layout, input_zero_point=izp, force=force)
        assert enc.run_lengths == force[1]
    else:
        enc = v8.encode_v8(w, bias, layout, input_zero_point=izp, config=config)
    dec = v8.decode_v8(enc.data, layout)
    assert np.array_equal(dec.weights, w)
    assert np.array_equal(v8.restore_biases(dec, layout.zero_point, izp), bias)
    assert dec.symbol_map == enc.symbol_map and dec.run_lengths == enc.run_lengths
    if mode == "off":
        assert enc.symbol_map == tuple(range(8)) and enc.run_lengths == ()
    # The decoder can take its superblocks from the job configuration's kernels_per_core.
    count = v8.superblocks_from_config(layout.oc, layout.nn_cores, layout.superblock_kernels)
    fields = (layout.oc, layout.ic, layout.kh, layout.kw, layout.nn_cores)
    same = v8.V8Layout(*fields, count, layout.zero_point, layout.depthwise)
    assert np.array_equal(v8.decode_v8(enc.data, same).weights, w)


@SETTINGS
@given(st.data())
def test_search_never_larger_than_mesa(data):
    layout = data.draw(layouts())
    w, bias, izp = _data(data.draw, layout)
    mesa = v8.encode_v8(w, bias, layout, input_zero_point=izp,
                        config=WeightCompressionConfig(search=False))  # fmt: skip
    searched = v8.encode_v8(w, bias, layout, input_zero_point=izp)
    with_runs = v8.encode_v8(w, bias, layout, input_zero_point=izp,
                             config=WeightCompressionConfig(v8_zrl=True))  # fmt: skip
    assert len(with_runs.data) <= len(searched.data) <= len(mesa.data)


def test_zero_runs_pay_off_on_sparse_kernels():
    layout = v8.V8Layout(32, 16, 3, 3, 6, 1, 128)
    rng = np.random.default_rng(3)
    w = np.full((32, 16, 3, 3), 128, dtype=np.uint8)
    w[rng.random(w.shape) < 0.1] = 200
    bias = np.zeros(32, np.int32)
    plain = v8.encode_v8(w, bias, layout, input_zero_point=0)
    runs = v8.encode_v8(w, bias, layout, input_zero_point=0,
                        config=WeightCompressionConfig(v8_zrl=True))  # fmt: skip
    assert runs.run_lengths and len(runs.data) < 0.8 * len(plain.data)
    assert np.array_equal(v8.decode_v8(runs.data, layout).weights, w)


def test_mesa_map_sorts_classes_by_frequency():
    rng = np.random.default_rng(5)
    for _ in range(200):
        hist = rng.integers(0, 50, 8)
        order = search.mesa_symbol_map(hist)
        assert sorted(order) == list(range(8))
        assert all(hist[order[i]] >= hist[order[i + 1]] for i in range(7))


def test_symbol_map_search_is_exhaustive():
    """best_symbol_map equals the brute-force minimum over all 8! maps, per-core padding and
    all."""
    rng = np.random.default_rng(9)
    perms = np.array(list(permutations(range(8))))  # symbol -> class
    cost = np.empty((perms.shape[0], 8), dtype=np.int64)
    cost[np.arange(perms.shape[0])[:, None], perms] = search.CODE_BITS[None, :]
    payload = np.array([1, 1, 2, 3, 4, 5, 6, 7])
    for _ in range(5):
        hist = rng.integers(0, 3000, (4, 8)) * (rng.random((4, 8)) < 0.8)
        fixed = np.full(4, 12)
        bits = (hist @ (cost + payload).T).T + fixed  # [perms, cores]
        brute = int((-(-bits // 512) * 64).sum(axis=1).min())
        found, size = search.best_symbol_map(hist, payload, fixed, 512)
        assert size == brute
        assert search.map_size(found, hist, payload, fixed, 512) == brute


def _sample(zrl: bool = False, oc: int = 20):
    layout = v8.V8Layout(oc, 5, 3, 3, 6, 2 if oc > 6 else 1, 100)
    rng = np.random.default_rng(11)
    w = rng.integers(60, 140, (oc, 5, 3, 3)).astype(np.uint8)
    w[rng.random(w.shape) < 0.5] = 100
    force = ((0, 1, 2, 3, 4, 5, 6, 7), (9, 4, 2, 1)) if zrl else None
    enc = v8.encode_v8(w, np.arange(oc, dtype=np.int32), layout, input_zero_point=0,
                       force=force)  # fmt: skip
    assert bool(enc.run_lengths) == zrl
    return layout, enc


def test_truncated_buffer():
    layout, enc = _sample()
    bias_table = 4 * layout.oc
    with pytest.raises(WeightStreamError, match="bias table"):
        v8.decode_v8(enc.data[: len(enc.data) - bias_table + 4], layout)
    end_core0 = 64 + -(-enc.stream_bits[0] // 512) * 64
    with pytest.raises(WeightStreamError) as err:
        v8.decode_v8(enc.data[: end_core0 + 8], layout)
    assert err.value.core == 1 and err.value.bit_offset == end_core0 * 8


def test_garbage_header():
    layout, enc = _sample()
    for at, value, message in [
        (0, 0x11, "flags byte 0x11"),
        (1, 9, "run_length_size 9"),
        (20, 0x00, "not a permutation"),
        (24, 1, "avg_bias"),
    ]:
        data = bytearray(enc.data)
        data[at] = value
        with pytest.raises(WeightStreamError, match=message):
            v8.decode_v8(bytes(data), layout)


def test_stream_length_past_the_buffer():
    layout, enc = _sample()
    data = bytearray(enc.data)
    data[28:32] = (len(data) * 8 * 2).to_bytes(4, "little")
    with pytest.raises(WeightStreamError, match="core 0, bit 512: stream of"):
        v8.decode_v8(bytes(data), layout)


def test_unused_core_with_a_stream():
    layout, enc = _sample(oc=4)  # 4 kernels on 6 cores
    data = bytearray(enc.data)
    data[28 + 4 * 5 : 32 + 4 * 5] = (64).to_bytes(4, "little")
    with pytest.raises(WeightStreamError, match=r"core 5, bit 384: stream length 64 bits"):
        v8.decode_v8(bytes(data), layout)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_corrupt_streams_raise_only_weight_stream_errors(data):
    layout, enc = _sample(zrl=data.draw(st.booleans()))
    buf = bytearray(enc.data)
    for _ in range(data.draw(st.integers(1, 6))):
        bit = data.draw(st.integers(64 * 8, len(buf) * 8 - 1))  # header faults tested above
        buf[bit // 8] ^= 1 << (bit % 8)
    if data.draw(st.booleans()):
        buf = buf[: data.draw(st.integers(0, len(buf)))]
    try:
        dec = v8.decode_v8(bytes(buf), layout)
    except WeightStreamError as err:
        assert 0 <= err.bit_offset <= len(enc.data) * 8 * 2
    else:
        assert dec.weights.shape == (layout.oc, 5, 3, 3)
