"""The loader lists devices and picks one by name or environment."""

from __future__ import annotations

import pytest

from mesa_npu.gallium import DeviceNotFound, find_device, list_devices, open_device


def test_reference_is_always_present():
    names = [d.name for d in list_devices()]
    assert "reference" in names
    assert open_device("reference").name == "reference"


def test_environment_selects(monkeypatch):
    monkeypatch.setenv("MESA_NPU_DEVICE", "reference")
    assert find_device().name == "reference"


def test_unknown_name(monkeypatch):
    monkeypatch.delenv("MESA_NPU_DEVICE", raising=False)
    with pytest.raises(DeviceNotFound, match="unknown device 'tpu9000'"):
        find_device("tpu9000")


def test_options_after_question_mark():
    info = find_device("reference?compression=off&cores=1")
    assert info.name == "reference"
    assert info.options == "compression=off&cores=1"
    assert find_device("reference").options == ""
