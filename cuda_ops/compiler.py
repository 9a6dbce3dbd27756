"""torch.compile for the networks built on these ops (``gcgan train --compile``, ``gcgan sample --compile``).

The backend comes from ``GCGAN_COMPILE_BACKEND``, default ``inductor``: generated Triton kernels on a
GPU, C++ built with the system compiler on the CPU. ``eager`` and ``aot_eager`` trace the same graphs
(dynamo; AOTAutograd's forward and backward for aot_eager) without generating code, so tests and a
quick check of a new model run in seconds. The custom ops trace as the ``torch.ops.gcgan`` operators.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import torch

BACKEND_ENV = "GCGAN_COMPILE_BACKEND"
DEFAULT_BACKEND = "inductor"

T = TypeVar("T", bound=Callable)


def backend(error: type[Exception] = ValueError) -> str:
    """The backend named by ``GCGAN_COMPILE_BACKEND`` (read on every call); an unknown name raises
    ``error`` (an application's one-line error type) with torch's list."""
    name = os.environ.get(BACKEND_ENV, "").strip() or DEFAULT_BACKEND
    known = torch.compiler.list_backends(exclude_tags=())
    if name not in known:
        raise error(f"{BACKEND_ENV}={name!r} is not a torch.compile backend; choose one of {', '.join(known)}")
    return name


def compiled(fn: T) -> T:
    """``fn`` (a module or a function) compiled lazily: tracing and code generation happen on the first
    call, and again for each new input shape, dtype or grad mode (a cached graph per combination)."""
    return torch.compile(fn, backend=backend())
