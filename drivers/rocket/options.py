"""Device options of the rocket driver (``rocket?key=value&...``) and how a device's files are
opened: the kernel node, or the simulated device with the switches the options name.

Driver options: ``fuse_add=1`` fuses each ADD into the convolution producing an operand, as Mesa
does (``ml.PIPELINE_FUSED``); by default an ADD gets its own identity convolution, which keeps
every result exact. Every other key is a switch of the simulated device
(``docs/rocket-npu-model.md`` §6).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from ...gallium.loader import DeviceInfo

DRIVER_KEYS = ("fuse_add",)
# DeviceOptions fields a user may set on the simulated device.
SIM_DEVICE_KEYS = ("scheduling", "job_timeout_ns", "submit_errors", "job_errors")


def parse(text: str) -> dict[str, str]:
    """``key=value&key=value`` -> dict; a malformed item is a one-line ValueError."""
    items = {}
    for item in filter(None, text.split("&")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"rocket: device option '{item}' is not key=value")
        items[key] = value
    return items


@dataclass(frozen=True, slots=True)
class DriverOptions:
    fuse_add: bool = False


def driver_options(info: DeviceInfo) -> DriverOptions:
    options = parse(info.options)
    fuse = options.get("fuse_add", "0")
    if fuse not in ("0", "1"):
        raise ValueError(f"rocket: fuse_add={fuse} (expected 0 or 1)")
    return DriverOptions(fuse_add=fuse == "1")


def open_file_factory(info: DeviceInfo) -> Callable[[], object]:
    """A function that opens one file of the device ``info`` describes."""
    options = {k: v for k, v in parse(info.options).items() if k not in DRIVER_KEYS}
    if info.backend == "kernel":
        if options:
            raise ValueError(f"rocket: options {sorted(options)} apply to the simulated device")
        from ...util.drm import KernelDrmFile

        return lambda: KernelDrmFile(info.node)
    from ...drm_shim.rocket import DeviceOptions, NpuModelOptions, SimulatedRocketDevice

    model_keys = {f.name: f for f in dataclasses.fields(NpuModelOptions)}
    device_keys = {
        f.name: f for f in dataclasses.fields(DeviceOptions) if f.name in SIM_DEVICE_KEYS
    }
    model, device = {}, {}
    for key, value in options.items():
        if key in model_keys:
            model[key] = _typed(model_keys[key], value)
        elif key in device_keys:
            device[key] = _typed(device_keys[key], value)
        else:
            known = ", ".join([*device_keys, *model_keys])
            raise ValueError(f"rocket: unknown device option '{key}' (known: {known})")
    sim = SimulatedRocketDevice(DeviceOptions(**device), NpuModelOptions(**model))
    return sim.open


def _typed(f: dataclasses.Field, value: str):
    if f.type in ("bool", bool):
        return value.lower() in ("1", "true", "yes", "on")
    if f.type in ("int", int):
        return int(value)
    return value
