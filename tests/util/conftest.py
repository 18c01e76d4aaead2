"""Register-database fixtures: a small XML using every feature of the dialect, and a loader
that imports generated Python source as a module."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

FEATURES_XML = """<?xml version="1.0"?>
<database xmlns="http://nouveau.freedesktop.org/">
<enum name="mode"><value name="MODE_A" value="0"/><value name="MODE_B" value="3"/></enum>
<enum name="target"><value name="T" value="0x100"/><value name="U" value="0x200"/></enum>
<bitset name="bits" inline="no">
  <bitfield name="EN" pos="0" type="boolean"/>
  <bitfield name="LVL" low="1" high="3" type="uint"/>
</bitset>
<domain name="T" width="32">
  <reg32 offset="0x100" name="CTRL">
    <bitfield name="EN" pos="0" type="boolean"/>
    <bitfield name="MODE" low="1" high="2" type="mode"/>
    <bitfield name="OFS" low="4" high="11" type="int"/>
    <bitfield name="ADDR" low="12" high="31" type="address" shr="12"/>
  </reg32>
  <reg32 offset="0x104" name="FLAGS" type="bits"/>
  <reg32 offset="0x108" name="RAW" type="hex"/>
  <array offset="0x120" name="CH" stride="0x8" length="4">
    <reg32 offset="0x0" name="A">
      <bitfield name="X" low="0" high="15" type="uint"/>
      <bitfield name="Y" low="16" high="31" type="int"/>
    </reg32>
    <reg32 offset="0x4" name="B" type="uint"/>
  </array>
</domain>
<domain name="U" width="64">
  <reg64 offset="0x200" name="WIDE">
    <bitfield name="LO" low="0" high="7" type="uint"/>
    <bitfield name="RESERVED_8" low="8" high="9" type="uint"/>
    <bitfield name="HI" low="40" high="63" type="int"/>
  </reg64>
</domain>
<domain name="S" width="32" size="12">
  <reg32 offset="0" name="W0">
    <bitfield name="P0" low="0" high="3" type="uint"/>
    <bitfield name="F" low="4" high="11" type="uint" default="0x2a"/>
  </reg32>
  <reg32 offset="8" name="W2">
    <bitfield name="G" pos="0" type="boolean"/>
    <bitfield name="P1" low="28" high="31" type="uint"/>
  </reg32>
  <join name="J" type="int"><part field="P0"/><part field="P1"/></join>
</domain>
</database>
"""


@pytest.fixture
def features_xml(tmp_path: Path) -> Path:
    path = tmp_path / "features.xml"
    path.write_text(FEATURES_XML)
    return path


@pytest.fixture
def load_generated(tmp_path: Path):
    """Import generated Python source as a fresh module."""

    def load(source: str) -> ModuleType:
        name = f"_generated_regs_{uuid.uuid4().hex}"
        path = tmp_path / f"{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    return load
