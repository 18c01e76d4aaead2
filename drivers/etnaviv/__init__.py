"""Etnaviv: the VeriSilicon Vivante NPU driver (Mesa: src/gallium/drivers/etnaviv/etnaviv_ml*).

Devices (``gallium/loader.py`` names them): ``etnaviv:a311d`` (v7), ``etnaviv:imx8mp`` and
``etnaviv:s905d3`` (v8) on the simulated device (``drm_shim.etnaviv``), listed A311D first so
the bare name ``etnaviv`` means the A311D; and every kernel render node whose DRM driver is
etnaviv with an NPU core that matches a SoC row (by GPU model, revision and customer id),
listed before the simulated ones. Options follow the name: ``etnaviv:imx8mp?search=off``
(``options.EtnaOptions``).

This file stays light: the simulated device imports the generated registers and the weight
codec decoders from this package, so driver modules are imported only inside the functions.
"""

from __future__ import annotations

import glob
import os

DRIVER = "etnaviv"
DRM_DRIVER_LINK = "/sys/class/drm/{node}/device/driver"  # the bound kernel driver's symlink


def _etnaviv_socs() -> list[str]:
    from ...util.soc import SOCS

    rows = [name for name, row in SOCS.items() if row.driver == DRIVER]
    return sorted(rows, key=lambda n: n != "a311d")  # the bare name means the A311D


def _kernel_nodes():
    from ...gallium.loader import DeviceInfo
    from ...util import uapi

    found = []
    for path in sorted(glob.glob(uapi.ETNAVIV_NODE_GLOB)):
        link = DRM_DRIVER_LINK.format(node=os.path.basename(path))
        if os.path.basename(os.path.realpath(link)) != DRIVER:
            continue
        soc = _match_kernel_node(path)
        if soc is not None:
            desc = f"{soc} NPU on {path} (kernel)"
            found.append(DeviceInfo(f"{DRIVER}:{soc}", DRIVER, "kernel", desc, node=path))
    return found


def _match_kernel_node(path: str) -> str | None:
    """The SoC row whose NPU is one of the node's cores, or None (only GPUs, or an unknown NPU)."""
    from ...util.drm import KernelDrmFile
    from ...util.soc import SOCS
    from .winsys import npu_pipe

    try:
        drm = KernelDrmFile(path)
    except OSError:
        return None
    try:
        for name in _etnaviv_socs():
            npu = SOCS[name].npu
            if npu_pipe(drm, (npu.gpu_model, npu.gpu_revision, npu.customer_id)) is not None:
                return name
    finally:
        drm.close()
    return None


def probe():
    """Kernel render nodes with an etnaviv NPU, then the simulated devices."""
    from ...gallium.loader import DeviceInfo
    from ...util.soc import SOCS

    devices = _kernel_nodes()
    for name in _etnaviv_socs():
        desc = f"simulated {SOCS[name].marketing_name} (drm_shim.etnaviv)"
        devices.append(DeviceInfo(f"{DRIVER}:{name}", DRIVER, "simulated", desc))
    return devices


def create_device(info):
    """The device a probe described, with the options of its name (``?key=value&...``)."""
    from ...gallium.loader import DeviceNotFound
    from ...util.soc import soc
    from .device import EtnaDevice
    from .options import EtnaOptions, NpuTarget, OptionError

    try:
        options = EtnaOptions.parse(info.options)
    except OptionError as e:
        raise DeviceNotFound(str(e)) from None
    _, _, soc_name = info.name.partition(":")
    target = NpuTarget(soc(soc_name or "a311d"), options)
    name = info.name + (f"?{info.options}" if info.options else "")
    return EtnaDevice(target, node=info.node if info.backend == "kernel" else None, name=name)
