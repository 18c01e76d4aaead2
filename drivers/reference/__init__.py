"""The reference device: nir_tensor's exact evaluator as a Gallium ML device.

``reference`` evaluates the graph as built; ``reference:<pipeline>`` first runs a named
lowering pipeline (``pipelines.PIPELINES``) and evaluates the lowered graph.
"""

from ...gallium.loader import DeviceInfo
from .device import ReferenceDevice
from .pipelines import available, load_pipeline


def probe() -> list[DeviceInfo]:
    devices = [
        DeviceInfo(
            "reference", "reference", "software", "exact evaluator (LiteRT BUILTIN_REF semantics)"
        )
    ]
    for name in available():
        devices.append(
            DeviceInfo(
                f"reference:{name}",
                "reference",
                "software",
                f"exact evaluator after the '{name}' lowering pipeline",
            )
        )
    return devices


def create_device(info: DeviceInfo) -> ReferenceDevice:
    _, _, name = info.name.partition(":")
    return ReferenceDevice(load_pipeline(name) if name else None)
