"""Simulated etnaviv GEM device with a functional model of the NN and TP units
(``docs/etnaviv-npu-model.md``). ``SimulatedEtnavivFile(soc_name)`` is the entry point."""

from .device import SimulatedEtnavivFile
from .switches import ModelSwitches

__all__ = ["ModelSwitches", "SimulatedEtnavivFile"]
