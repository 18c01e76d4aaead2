"""Simulated accel/rocket device with a functional model of the RK3588 NPU.

The device sees only what crosses the kernel UAPI (BOs, regcmd streams, job submissions) and
decodes it with the generated register tables; it never imports the rocket driver. See
``docs/rocket-npu-model.md``.
"""

from .device import JobRecord, SimulatedRocketDevice, SimulatedRocketFile
from .faults import NpuFault, NpuHang
from .options import DeviceOptions, NpuModelOptions

__all__ = [
    "DeviceOptions",
    "JobRecord",
    "NpuFault",
    "NpuHang",
    "NpuModelOptions",
    "SimulatedRocketDevice",
    "SimulatedRocketFile",
]
