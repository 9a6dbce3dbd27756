"""Choosing between the CUDA kernels and the reference for one call."""

from __future__ import annotations

from types import ModuleType

import torch

from . import build

IMPLS = ("auto", "ref", "cuda")


def kernels_for(x: torch.Tensor, impl: str) -> ModuleType | None:
    """The extension to run ``x`` through, or None for the reference path.

    impl: "auto" follows ``GCGAN_CUDA_OPS``; "ref" always takes the reference;
    "cuda" demands the kernels (a CUDA tensor and a working build) or raises.
    Under torch.compile the policy and the build are read once, when a graph is traced.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "ref":
        return None
    if impl == "cuda":
        if not x.is_cuda:
            raise ValueError(f"impl='cuda' needs a CUDA tensor, got one on {x.device}")
        return _required_extension()
    if not x.is_cuda:
        return None
    return _policy_extension()


# torch.compile calls these as they are and keeps the result as a constant of the graph: the build
# (a lock, a compiler run, a warning) is not traceable and is the same for every call of a process.


@torch.compiler.assume_constant_result
def _required_extension() -> ModuleType:
    return build.extension(strict=True)


@torch.compiler.assume_constant_result
def _policy_extension() -> ModuleType | None:
    mode = build.policy()
    if mode == "off":
        return None
    return build.extension(strict=mode == "force")
