"""Reference kernels, one module per family; :data:`KERNELS` is their union."""

from . import conv, data, lowered
from .base import Kernel

KERNELS: dict = {
    **conv.KERNELS,
    **data.KERNELS,
    **lowered.KERNELS,
}

__all__ = ["KERNELS", "Kernel"]
