"""Gaze estimator networks, image [B, 3, S, S] in [-1, 1] -> (pitch, yaw) [B, 2] radians, and
their checkpoints.

    small     four stride-2 conv-BN-ReLU blocks (32-64-128-128), the first two each followed by a
              stride-1 block (at 64 px the iris and the eye corners span a few pixels, and
              pitch needs their relative position to a fraction of one: the extra blocks take
              the error on new people from 4.1 to 3.8 degrees), flattened (the iris position
              matters, so no global pooling), a 256-unit hidden layer; ~0.8M parameters at 64 px.
              Files written before the stride-1 blocks (no "layout" in their config) load as
              the four-block net they are
    resnet18  ResNet-18 (basic blocks 2-2-2-2, 64-512 channels, global average pooling)
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gcgan_cli.checkpoint import load_checkpoint, save_checkpoint
from gcgan_cli.errors import CheckpointError, UsageError

ARCHS = ("small", "resnet18")
LAYOUT = 2  # of the small net: 2 has the stride-1 blocks; files without a layout are 1
KIND = "gcgan-gaze-estimator"


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallNet(nn.Module):
    def __init__(self, size: int, layout: int = LAYOUT):
        super().__init__()
        if layout == 1:
            self.features = nn.Sequential(_conv_bn(3, 32, 2), _conv_bn(32, 64, 2), _conv_bn(64, 128, 2), _conv_bn(128, 128, 2))
        else:
            self.features = nn.Sequential(_conv_bn(3, 32, 2), _conv_bn(32, 32, 1), _conv_bn(32, 64, 2), _conv_bn(64, 64, 1),
                                          _conv_bn(64, 128, 2), _conv_bn(128, 128, 2))
        cells = (size // 16) ** 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(128 * cells, 256), nn.ReLU(inplace=True), nn.Linear(256, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, cout, stride), nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(512, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def build(arch: str, size: int, layout: int = LAYOUT) -> nn.Module:
    if arch not in ARCHS:
        raise UsageError(f"--arch {arch}: choose one of {', '.join(ARCHS)}")
    if size < 16 or size % 16:
        raise UsageError(f"--size {size}: use a multiple of 16, at least 16")
    return SmallNet(size, layout) if arch == "small" else ResNet18()


def save_estimator(path: Path, model: nn.Module, config: dict, report: dict) -> None:
    save_checkpoint(path, {"kind": KIND, "config": config, "model": model.state_dict(), "report": report})


def load_estimator(path: Path, device: torch.device) -> tuple[nn.Module, dict]:
    """(network in eval mode on device, its config: arch, size, mean_gaze, sources...)."""
    record = load_checkpoint(path, required=("kind", "config", "model"))
    if record["kind"] != KIND:
        raise CheckpointError(f"--model {path} is not a gaze estimator (from `gcgan gaze fit`)")
    model = build(record["config"]["arch"], record["config"]["size"], record["config"].get("layout", 1))
    try:
        model.load_state_dict(record["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"--model {path}: its weights do not fit the {record['config']['arch']} network ({exc})") from None
    return model.to(device).eval(), {**record["config"], "report": record.get("report", {})}


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """(pitch, yaw) [N, 2] float32 on the CPU for images [N, 3, S, S] (any device)."""
    device = next(model.parameters()).device
    return torch.cat([model(images[i : i + batch].to(device)).float().cpu() for i in range(0, len(images), batch)])
