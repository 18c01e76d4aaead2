"""Find the ML devices present (Mesa: pipe-loader).

Each driver package exposes ``probe() -> list[DeviceInfo]`` and
``create_device(info) -> MlDevice``. Kernel device nodes are listed when the machine has them,
simulated devices (drm_shim) always. A device is named ``driver[:soc]``, e.g. ``rocket``,
``etnaviv:imx8mp`` or ``reference``; ``MESA_NPU_DEVICE`` picks one when no name is given, and
``MESA_NPU_BACKEND=sim`` ignores kernel nodes. A name may end in driver options,
``driver[:soc]?key=value&key=value`` (``etnaviv:a311d?compression=off``): the loader matches the
part before ``?`` and hands the rest, unparsed, to the driver's ``create_device`` as
``DeviceInfo.options``; each driver documents and validates its keys.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from dataclasses import dataclass

from .device import MlDevice

# Probe order: hardware drivers first (as Teflon probes), the software device last.
DRIVER_MODULES = ("etnaviv", "rocket", "reference")


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    name: str  # driver[:soc]
    driver: str
    backend: str  # "kernel", "simulated" or "software"
    description: str
    node: str | None = None  # device node for the kernel backend
    options: str = ""  # driver options from the name after "?", e.g. "compression=off"

    @property
    def aliases(self) -> tuple[str, ...]:
        """Names that select this device: the full name, and the bare driver name for the
        driver's default SoC (drivers list their default first)."""
        return (self.name, self.driver)


class DeviceNotFound(LookupError):
    pass


def _driver(name: str):
    return importlib.import_module(f"mesa_npu.drivers.{name}")


def list_devices() -> list[DeviceInfo]:
    """Every device, kernel nodes before simulated ones, in probe order."""
    force_sim = os.environ.get("MESA_NPU_BACKEND") == "sim"
    found: list[DeviceInfo] = []
    for module in DRIVER_MODULES:
        try:
            probe = getattr(_driver(module), "probe", None)
        except ImportError:
            continue
        if probe is not None:  # a driver still being brought up may not probe yet
            found.extend(d for d in probe() if not (force_sim and d.backend == "kernel"))
    kernel = [d for d in found if d.backend == "kernel"]
    return kernel + [d for d in found if d.backend != "kernel"]


def find_device(name: str | None = None) -> DeviceInfo:
    devices = list_devices()
    name = name or os.environ.get("MESA_NPU_DEVICE") or None
    if not devices:
        raise DeviceNotFound("no ML device available")
    if name is None:
        return devices[0]
    name, _, options = name.partition("?")
    for info in devices:
        if name in info.aliases:
            return dataclasses.replace(info, options=options) if options else info
    known = ", ".join(sorted({d.name for d in devices}))
    raise DeviceNotFound(f"unknown device '{name}' (available: {known})")


def create_device(info: DeviceInfo) -> MlDevice:
    """Open the device a probe described (no second probe)."""
    return _driver(info.driver).create_device(info)


def open_device(name: str | None = None) -> MlDevice:
    """Open a device by name (or the default one)."""
    return create_device(find_device(name))
