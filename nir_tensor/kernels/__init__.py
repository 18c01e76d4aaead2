"""Reference kernels, one module per family; :data:`KERNELS` is their union."""

from . import activation, conv, data, elementwise, lowered, pool, resize, softmax
from .base import Kernel

KERNELS: dict = {
    **activation.KERNELS,
    **conv.KERNELS,
    **data.KERNELS,
    **elementwise.KERNELS,
    **lowered.KERNELS,
    **pool.KERNELS,
    **resize.KERNELS,
    **softmax.KERNELS,
}

__all__ = ["KERNELS", "Kernel"]
