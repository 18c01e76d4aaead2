"""Rocket: the Rockchip RK3588 NPU driver (Mesa: src/gallium/drivers/rocket).

``probe()`` lists the kernel's accel/rocket node when this machine has one and the simulated
device (``drm_shim.rocket``) always; ``create_device(info)`` opens one. This module stays
light: the simulator imports the generated ``rocket_regs`` from this package, so driver
modules are imported inside the functions only.

Device options (``rocket?key=value&...``): ``fuse_add=1`` (Mesa's ADD fusion), and for the
simulated device ``scheduling=entity|spread`` and the NPU model's switches (``round_mode``,
``truncate_round``, ``ow_term``, ``padded_channels``, ``cna_strides``, ``ew_fetch``;
docs/rocket-npu-model.md §6); see ``options.py``.
"""

from __future__ import annotations

import glob
import os

from ...gallium.loader import DeviceInfo

SOC = "rk3588"
# Linux drivers/accel/rocket registers its platform driver as "rocket".
KERNEL_DRIVER = "rocket"


def _kernel_nodes() -> list[str]:
    """accel nodes whose device is bound to the rocket kernel driver."""
    from ...util.uapi import ROCKET_NODE_GLOB

    nodes = []
    for node in sorted(glob.glob(ROCKET_NODE_GLOB)):
        link = f"/sys/class/accel/{os.path.basename(node)}/device/driver"
        if os.path.basename(os.path.realpath(link)) == KERNEL_DRIVER:
            nodes.append(node)
    return nodes


def probe() -> list[DeviceInfo]:
    devices = [
        DeviceInfo(f"rocket:{SOC}@{node}", "rocket", "kernel", f"RK3588 NPU at {node}", node)
        for node in _kernel_nodes()
    ]
    devices.append(
        DeviceInfo(
            f"rocket:{SOC}",
            "rocket",
            "simulated",
            "RK3588 NPU, simulated (drm_shim.rocket)",
        )
    )
    return devices


def create_device(info: DeviceInfo):
    from ...util.soc import soc
    from .device import RocketDevice
    from .options import driver_options, open_file_factory

    npu = soc(SOC).npu
    opts = driver_options(info)
    return RocketDevice(npu, open_file_factory(info), name=info.name, fuse_add=opts.fuse_add)
