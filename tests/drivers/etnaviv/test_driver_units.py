"""The etnaviv driver's pieces without a device: options and naming, requantization fields,
clamp plans, tiling against the simulator's reading of KERNELS_PER_CORE, SRAM plans, job
configurations decoded by field name, the command stream, relocation and the blob."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.drivers.etnaviv import ml_nn_v7, ml_nn_v8
from mesa_npu.drivers.etnaviv.cmdstream import StreamJob, init_stream, job_stream, relocated
from mesa_npu.drivers.etnaviv.ml_nn import (
    MULTIPLIER_BITS,
    POST_SHIFT_BASE,
    ConvShape,
    clamp_plan,
    plane_shape,
    requant_fields,
)
from mesa_npu.drivers.etnaviv.options import (
    CoreUse,
    EtnaOptions,
    NpuTarget,
    OptionError,
    TilePolicy,
)
from mesa_npu.gallium.loader import DeviceNotFound, open_device
from mesa_npu.gallium.operation import Clamp
from mesa_npu.gallium.tensor import ElementType, Quant
from mesa_npu.nir_tensor.ir import Tensor
from mesa_npu.util import regdump
from mesa_npu.util.soc import soc

A311D = NpuTarget(soc("a311d"))
IMX8MP = NpuTarget(soc("imx8mp"))

# -- options and device names ------------------------------------------------------------------


def test_options_parse_and_describe_round_trip():
    opts = EtnaOptions.parse("compression=off&tiles=uncapped&cores=one&per_axis=split")
    assert not opts.compression and opts.tiles is TilePolicy.UNCAPPED
    assert opts.cores is CoreUse.ONE and opts.weight_config.enabled is False
    assert EtnaOptions.parse(opts.describe()) == opts
    assert EtnaOptions().describe() == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [("speed=max", "unknown option 'speed=max'"), ("sram=maybe", "sram cannot be 'maybe'"),
     ("search", "unknown option 'search'")],
)  # fmt: skip
def test_bad_options_are_one_line_errors(text, message):
    with pytest.raises(OptionError, match=message):
        EtnaOptions.parse(text)


def test_device_names_and_options():
    assert open_device("etnaviv").target.soc.name == "a311d"
    dev = open_device("etnaviv:imx8mp?sram=off")
    assert dev.target.version == 8 and dev.target.options.sram is False
    assert dev.name == "etnaviv:imx8mp?sram=off"
    assert open_device("etnaviv:s905d3").target.npu.customer_id == 0x99
    with pytest.raises(DeviceNotFound, match="unknown option"):
        open_device("etnaviv?turbo=on")


# -- requantization --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=1e-6, max_value=100.0), st.sampled_from([7, 8]), st.booleans())
def test_post_multiplier_and_shift_reproduce_the_scale(scale, version, nearest):
    """The hardware's multiplier (2^bits + pm) / 2^shift (v8: one more 2^23) is the scale to
    within the multiplier's precision: half an ulp when rounded, one ulp when truncated. The
    v8 shift (127 - e) cannot go below 0: scales of 2 and more do not fit there."""
    if version == 8 and scale >= 2.0:
        with pytest.raises(ValueError, match="post shift range"):
            requant_fields(scale, version, nearest)
        return
    pm, shift = requant_fields(scale, version, nearest)
    bits = MULTIPLIER_BITS[version]
    extra = 23 if version == 8 else 0
    value = (2**bits + pm) / 2.0 ** (shift + extra)
    ulp = 2.0**-bits * (1.0 if not nearest else 0.5)
    # float32 rounding of the scale adds 2^-24 relative
    assert abs(value / scale - 1) <= ulp + 2.0**-24
    assert 0 <= pm < 2**bits


def test_post_shift_is_the_brief_formula():
    # 0.5 = 2^-1: exponent 126; brief §4: v7 142 - e, v8 127 - e, multiplier 0.
    assert requant_fields(0.5, 7) == (0, POST_SHIFT_BASE[7] - 126) == (0, 16)
    assert requant_fields(0.5, 8) == (0, 1)
    with pytest.raises(ValueError, match="outside the post shift range"):
        requant_fields(2.0**-120, 7)  # e = 7: shift 135 does not fit 7 bits


def _out(zp: int, dtype=ElementType.UINT8) -> Tensor:
    return Tensor((1, 4, 4, 8), dtype, Quant(0.1, zp))


@pytest.mark.parametrize(
    ("clamp", "zp", "dtype", "expect"),
    [
        (None, 10, ElementType.UINT8, (False, 0, False)),
        (Clamp(10, 255), 10, ElementType.UINT8, (True, 0, False)),  # ReLU: the relu bit alone
        (Clamp(10, 70), 10, ElementType.UINT8, (True, 185, True)),  # ReLU6: raise, TP fix-up
        (Clamp(-1, 1), 0, ElementType.INT8, (False, 126, True)),  # RELU_N1_TO_1 (hw: 127..129)
        (Clamp(0, 255), 0, ElementType.UINT8, (False, 0, False)),  # implied by the type
    ],
)
def test_clamp_plans(clamp, zp, dtype, expect):
    plan = clamp_plan(clamp, _out(zp, dtype))
    assert (plan.relu, plan.raise_by, plan.fixup) == expect


def test_clamp_below_the_zero_point_is_refused():
    assert clamp_plan(Clamp(0, 5), _out(10)) is None


def test_plane_shapes_fit_the_image_fields():
    for n in (7, 64 * 3, 112 * 112 * 16, 8191 * 3, 8191 * 8191):
        x, y = plane_shape(n)
        assert x * y == n and x <= 8191 and y <= 8191
    assert plane_shape(112 * 112 * 16) == (128, 112 * 112 * 16 // 128)  # Mesa's v7 ADD width
    assert plane_shape(8209) is None  # a prime above the 13-bit field
    assert plane_shape(2 * 8191 * 8191) is None


# -- tiling ---------------------------------------------------------------------------------


ONE_CORE = NpuTarget(soc("a311d"), EtnaOptions(cores=CoreUse.ONE))


@settings(max_examples=150, deadline=None)
@given(
    out_xy=st.tuples(st.integers(1, 300), st.integers(1, 300)),
    out_z=st.integers(1, 1024),
    k=st.sampled_from([1, 2, 3, 5, 7]),
    pooling=st.booleans(),
    target=st.sampled_from([A311D, IMX8MP, ONE_CORE]),
)
def test_tiling_fits_the_fields_and_round_trips_through_kernels_per_core(
    out_xy, out_z, k, pooling, target
):
    """The simulator derives superblocks = ceil(ceil(OC / cores) / KERNELS_PER_CORE)
    (docs/etnaviv-npu-model.md §3): that must give back the superblocks the codec used."""
    shape = ConvShape(in_x=out_xy[0] * 2, in_y=out_xy[1] * 2, in_z=4, out_x=out_xy[0],
                      out_y=out_xy[1], out_z=out_z, kx=k, ky=k, pooling=pooling)  # fmt: skip
    gen = ml_nn_v7 if target.version == 7 else ml_nn_v8
    t = gen.tiling(shape, target)
    per_core = -(-out_z // target.nn_cores)
    assert 1 <= t.kernels_per_core <= min(per_core, 127)
    assert -(-per_core // t.kernels_per_core) == t.superblocks
    assert 1 <= t.tile_x <= min(shape.computed_x, 64) and 1 <= t.tile_y <= shape.computed_y
    if pooling and shape.computed_y > 1:
        assert t.tile_y % 2 == 0
    if target.version == 8 and target.options.tiles is TilePolicy.MESA:
        assert t.tile_y <= ml_nn_v8.MESA_MAX_TILE_Y


@pytest.mark.parametrize("coef", [1000, 300_000, 480_000, 600_000])
def test_v7_sram_plan_stays_inside_the_sram(coef):
    shape = ConvShape(in_x=56, in_y=56, in_z=64, out_x=56, out_y=56, out_z=256, kx=3, ky=3)
    tile = ml_nn_v7.tiling(shape, A311D)
    plan = ml_nn_v7.sram_plan(shape, tile, coef, A311D)
    sram = A311D.npu.sram_bytes
    assert plan.kernel_start == ml_nn_v7.KERNEL_CACHE_START
    assert plan.kernel_end <= sram and plan.image_end <= sram
    if plan.image_mode is E.SramCacheMode.FULL_CACHE and plan.image_start >= plan.kernel_start:
        assert plan.image_start >= plan.kernel_end  # the two caches do not overlap
    image = ml_nn_v7.image_cache_size(shape, tile)
    assert image > 0  # several superblocks: the input tiles are worth caching
    fits = ml_nn_v7.KERNEL_CACHE_START + coef + image < sram  # brief §5
    full, partial = E.SramCacheMode.FULL_CACHE, E.SramCacheMode.PARTIAL_CACHE
    assert plan.kernel_mode is (full if fits else partial)
    off = ml_nn_v7.sram_plan(shape, tile, coef, NpuTarget(soc("a311d"), EtnaOptions(sram=False)))
    assert off.kernel_mode is off.image_mode is E.SramCacheMode.NO_CACHE


# -- command stream -------------------------------------------------------------------------


def _states(words: np.ndarray) -> list[tuple[str, int]]:
    dump = regdump.decode(words.tobytes(), "etnaviv", "cmdstream")
    assert not dump.warnings
    return [(e.register, e.value) for e in dump.entries if e.kind == "state"]


def test_stream_states_per_job_and_relocations():
    stream = job_stream([StreamJob("nn", (0,)), StreamJob("tp", (192, 320), 0, True)])
    states = _states(stream.words)
    names = [r for r, _ in states]
    assert names.count("VIVS.PS_NN_INST_ADDR") == 1 and names.count("VIVS.PS_TP_INST_ADDR") == 2
    assert names[-2:] == ["VIVS.GL_FLUSH_CACHE", "VIVS.GL_FLUSH_CACHE"]
    tp = [v for r, v in states if r == "VIVS.PS_TP_INST_ADDR"]
    assert tp == [192 + 1, 320]  # non-last core: + 1
    unk = [v for r, v in states if r == "VIVS.GL_UNK03950"]
    assert unk == [0x8, 0]
    nn_config = dict(states)["VIVS.GL_NN_CONFIG"]
    fields = E.VIVS.GL_NN_CONFIG.unpack(nn_config)
    assert fields.SMALL_BATCH and fields.NN_CORE_COUNT == 0
    moved = _states(relocated(stream, 0x40_0000))
    assert [v for r, v in moved if r.endswith("_INST_ADDR")] == [0x40_0000, 0x40_0000 + 193,
                                                                 0x40_0000 + 320]  # fmt: skip


def test_init_stream_selects_opencl():
    states = dict(_states(init_stream().words))
    assert E.VIVS.GL_API_MODE.unpack(states["VIVS.GL_API_MODE"]).GL_API_MODE is E.GlApiMode.OPENCL


def test_debug_flags_parse():
    from mesa_npu.drivers.etnaviv.debug import DebugFlags, Inject, dump_name

    flags = DebugFlags.parse("dump, dump_dir=/tmp/x,inject=hang,msgs")
    assert flags == DebugFlags(dump=True, dump_dir="/tmp/x", msgs=True, inject=Inject.HANG)
    with pytest.warns(UserWarning, match="unknown flag 'inject=melt'"):
        assert DebugFlags.parse("inject=melt") == DebugFlags()
    assert dump_name("nn", 3, 12) == "mesa-nn-003-012.bin"
