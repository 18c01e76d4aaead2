"""``docs/etnaviv.md`` keeps the generated support table; compiled subgraphs serialize to the
same bytes twice, relocate only their address fields, and name their jobs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mesa_npu.drivers.etnaviv import etnaviv_regs as E
from mesa_npu.drivers.etnaviv.device import support_markdown
from mesa_npu.drivers.etnaviv.ml import EtnaSubgraph
from mesa_npu.drivers.etnaviv.ml_context import relocate_configs
from mesa_npu.drivers.etnaviv.ml_nn import Bo
from mesa_npu.frontends.teflon.conformance import SUITES
from mesa_npu.frontends.teflon.partition import partition, query_support
from mesa_npu.frontends.teflon.tflite import parse_model
from mesa_npu.gallium.loader import open_device

DOC = Path(__file__).resolve().parents[3] / "docs" / "etnaviv.md"


def test_support_table_in_the_docs_is_generated():
    text = DOC.read_text(encoding="utf-8")
    table = re.search(r"<!-- support table begin -->\n(.*)\n<!-- support table end -->", text, re.S)
    assert table is not None, "docs/etnaviv.md lost its table markers"
    assert table.group(1) == support_markdown(), "regenerate with device.support_markdown()"


def _compiled(case_id: str, device: str) -> EtnaSubgraph:
    case = next(c for s in SUITES for c in s.full() if c.id == case_id)
    model = parse_model(case.build(), f"{case_id}.tflite")
    dev = open_device(device)
    (part,) = partition(model, query_support(model, dev))
    return dev.subgraph_create(part.ops)


def test_blob_round_trip_is_byte_stable():
    sub = _compiled("conv-in5x5-k3-ic1-oc32-s2-valid-u8", "etnaviv")
    blob = sub.serialize()
    again = EtnaSubgraph.deserialize(blob)
    assert again.serialize() == blob
    # One input channel: NHWC is planar already; 32 output channels need a detranspose.
    assert [j.name for j in again.compiled.jobs] == ["reshuffle#0", "conv#0", "detranspose#0"]
    assert [j.unit for j in again.compiled.jobs] == ["tp", "nn", "tp"]
    assert again.compiled.jobs[1].macs == 2 * 2 * 32 * 2 * 2 * 4  # 2x2 output, 2x2 kernel, 4 ch


def test_relocation_moves_addresses_only():
    sub = _compiled("conv-in5x5-k3-ic1-oc32-s2-valid-u8", "etnaviv:imx8mp")
    c = sub.compiled
    base = 0x4000_0000
    moved = relocate_configs(c, base)
    for reloc in c.config_relocs:
        domain = E.NN_CONFIG if reloc.unit == "nn" else E.TP_CONFIG
        before = domain.unpack_words(c.config[reloc.offset : reloc.offset + domain.size])
        after = domain.unpack_words(moved[reloc.offset : reloc.offset + domain.size])
        for name, value in before._asdict().items():
            expect = value + base if name in reloc.fields else value
            assert getattr(after, name) == expect, f"{reloc.unit} {name}"
    window = c.window()
    nn = next(r for r in c.config_relocs if r.unit == "nn")
    fields = E.NN_CONFIG.unpack_words(moved[nn.offset : nn.offset + E.NN_CONFIG.size])
    assert fields.KERNEL_ADDRESS == base + window[Bo.COEFF]
    loaded = EtnaSubgraph.deserialize(sub.serialize()).compiled
    assert np.array_equal(c.stream.words, loaded.stream.words)
