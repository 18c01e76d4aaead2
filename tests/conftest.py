"""Shared test fixtures: where the shared models live, and the long-sweep switch."""

from __future__ import annotations

from pathlib import Path

import pytest

MODELS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "models"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full-sweep",
        action="store_true",
        help="run the full conformance sweeps (long; see README)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "full_sweep: runs only with --full-sweep")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--full-sweep"):
        return
    skip = pytest.mark.skip(reason="full sweep: run with --full-sweep")
    for item in items:
        if "full_sweep" in item.keywords:
            item.add_marker(skip)


def shared_model(name: str) -> Path:
    """Path of a file in ../shared/models, skipping the test when it is absent."""
    path = MODELS_DIR / name
    if not path.exists():
        pytest.skip(f"{name} not found: the shared models live in {MODELS_DIR}")
    return path


@pytest.fixture
def models_dir() -> Path:
    if not MODELS_DIR.is_dir():
        pytest.skip(f"shared models not found at {MODELS_DIR}")
    return MODELS_DIR
