"""Reference kernels, one module per family; :data:`KERNELS` is their union."""

from . import data, lowered
from .base import Kernel

KERNELS: dict = {
    **data.KERNELS,
    **lowered.KERNELS,
}

__all__ = ["KERNELS", "Kernel"]
