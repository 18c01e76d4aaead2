"""Device options of the rocket driver (``rocket?key=value&...``) and how a device's files are
opened: the kernel node, or the simulated device with the switches the options name."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ...gallium.loader import DeviceInfo

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


def open_file_factory(info: DeviceInfo) -> Callable[[], object]:
    """A function that opens one file of the device ``info`` describes."""
    options = parse(info.options)
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
