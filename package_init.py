"""mesa_npu: a Python prototype of Mesa's open-source NPU stack.

Subpackages mirror Mesa's tree: ``gallium`` (the ML interface), ``nir_tensor``
(the tensor IR), ``frontends.teflon`` (TFLite frontend and delegate),
``drivers.{reference,etnaviv,rocket}`` and ``drm_shim.{etnaviv,rocket}``
(simulated kernel devices), and ``util`` (register database and helpers).
"""

__version__ = "0.1.0"
