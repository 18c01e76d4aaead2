"""Fixtures of the simulated etnaviv device tests. The helpers live in ``testkit.py``, loaded here
under the name ``etna_testkit`` (pytest runs in importlib mode, so test modules cannot import a
sibling file by name)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "etna_testkit", Path(__file__).with_name("testkit.py")
)
testkit = importlib.util.module_from_spec(_spec)
sys.modules["etna_testkit"] = testkit
_spec.loader.exec_module(testkit)


@pytest.fixture
def harness():
    return testkit.make_harness
