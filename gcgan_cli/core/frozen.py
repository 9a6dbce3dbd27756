"""Networks used as fixed functions inside a loss (gaze estimators, landmark networks): loaded
from a file, in eval mode, without parameter gradients, yet differentiable in their input; the
file's SHA-256 goes into the checkpoint so an evaluator can be checked for independence."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from gcgan_cli.core.synthesis import file_sha256
from gcgan_cli.errors import UsageError


def set_requires_grad(modules: Iterable[torch.nn.Module], flag: bool) -> None:
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(flag)


def refuse_loss_network(path: Path, loss_networks: dict[str, dict | None], flag: str, owner: str) -> None:
    """Refuse `path` as an evaluator when it is one of the networks (name -> {"path", "sha256"})
    that `owner` was trained through: its readings would flatter."""
    digest = file_sha256(Path(path))
    for name, record in loss_networks.items():
        if record and record.get("sha256") == digest:
            raise UsageError(
                f"{flag} {path} was in this {owner}'s training loss ({name}); judge it with an evaluator "
                "no loss saw (another seed or --arch)"
            )


class FrozenNet:
    def __init__(self, path: Path, network: torch.nn.Module, config: dict):
        self.path, self.sha256, self.network, self.config = Path(path), file_sha256(Path(path)), network.eval(), config
        set_requires_grad([self.network], False)

    def record(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(images)
