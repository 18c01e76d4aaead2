"""Reference kernels, one module per family; :data:`KERNELS` is their union."""

from . import data
from .base import Kernel

KERNELS: dict = {
    **data.KERNELS,
}

__all__ = ["KERNELS", "Kernel"]
