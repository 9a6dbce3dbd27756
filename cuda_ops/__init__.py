"""Custom ops for the StyleGAN2-family networks: CUDA kernels with an exact PyTorch twin.

Public API: ``upfirdn2d``, ``make_kernel``, ``fused_leaky_relu``, ``FusedLeakyReLU``,
``status()``, ``OpsBuildError``. Importing this package compiles nothing; the
kernels are built on the first call with a CUDA tensor (see ``cuda_ops.build``) and run as
the operators ``torch.ops.gcgan.*`` (``cuda_ops.library``), which torch.compile traces.
This package imports nothing from ``gcgan_cli``.
"""

from .build import OpsBuildError, status
from .fused_act import FusedLeakyReLU, fused_leaky_relu
from .upfirdn2d import make_kernel, upfirdn2d

__all__ = [
    "FusedLeakyReLU",
    "OpsBuildError",
    "fused_leaky_relu",
    "make_kernel",
    "status",
    "upfirdn2d",
]
