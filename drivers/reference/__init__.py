"""The reference device: nir_tensor's exact evaluator as a Gallium ML device."""

from ...gallium.loader import DeviceInfo
from .device import ReferenceDevice


def probe() -> list[DeviceInfo]:
    return [
        DeviceInfo(
            "reference", "reference", "software", "exact evaluator (LiteRT BUILTIN_REF semantics)"
        )
    ]


def create_device(info: DeviceInfo) -> ReferenceDevice:
    return ReferenceDevice()
