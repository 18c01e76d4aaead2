"""Every value of the SoC table names its source or says it is an assumption."""

from __future__ import annotations

import pytest

from mesa_npu.util.soc import SOCS, soc, unsourced_fields


@pytest.mark.parametrize("name", sorted(SOCS))
def test_every_value_has_a_source(name):
    row = SOCS[name]
    assert unsourced_fields(row) == []
    for field, source in row.sources.items():
        assert source.strip(), f"{name}.{field} has an empty source"


def test_lookup_names_the_known_socs():
    assert soc("rk3588").driver == "rocket"
    with pytest.raises(KeyError, match="unknown SoC 'x9' \\(known: a311d"):
        soc("x9")
