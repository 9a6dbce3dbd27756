"""The one place that turns ``--device auto|cpu|cuda|cuda:N|mps`` into a torch.device."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gcgan_cli.errors import UsageError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
_PATTERN = re.compile(r"^(auto|cpu|cuda|mps)(?::(\d+))?$")


def resolve_device(spec: str) -> torch.device:
    """``auto`` is the first CUDA GPU when torch sees one, else the CPU (``mps``, Apple's GPU, only
    when asked for: not every op gcgan uses runs there).

    Raises UsageError (naming ``--device``) for a malformed value or a GPU that
    is not there, rather than failing later inside a model.
    """
    import torch  # here, not at import: `gcgan --help` and `--version` do not load torch

    text = spec.strip().lower()
    match = _PATTERN.match(text)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise UsageError(f"--device {spec!r} is not valid: use {DEVICE_CHOICES}")
    kind, index = match.group(1), match.group(2)
    if kind == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError(
                f"--device mps: torch {torch.__version__} sees no Apple MPS GPU on this machine; "
                "use --device cpu (or auto)"
            )
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise UsageError(
            f"--device {spec}: torch {torch.__version__} sees no CUDA GPU on this machine; use --device cpu (or auto)"
        )
    count = torch.cuda.device_count()
    number = int(index) if index is not None else 0
    if number >= count:
        raise UsageError(f"--device {spec}: only {count} CUDA device(s) here (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", number)


def place(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`module` on `device` in the memory layout its convolutions run fastest in there: channels-last
    on the CPU (oneDNN; 1.2x training throughput at the tiny and small presets, benchmarks/train.py),
    the default NCHW elsewhere, which the CUDA kernels of cuda_ops read."""
    import torch

    module.to(device)
    if device.type == "cpu":
        module.to(memory_format=torch.channels_last)
    return module


def place_images(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch [B, C, H, W] on `device` in the layout `place` gives the networks there, so that their
    first convolutions read it without a copy."""
    import torch

    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else images
