"""Gaze estimator networks, image [B, C, H, W] in [-1, 1] -> (pitch, yaw) [B, 2] radians, and
their checkpoints.

Two inputs: face strips [3, S, S] (RGB, S a multiple of 16) and eye patches [1, H, W] (grayscale,
36 x 60 as FP-GAN reads them). The config a file records says which ("input", "shape") and in
which units the net answers ("units": always radians here; a loss network from elsewhere may
differ, and a gaze loss must know).

    small         four stride-2 conv-BN-ReLU blocks (32-64-128-128), the first two each followed by
                  a stride-1 block (at 64 px the iris and the eye corners span a few pixels, and
                  pitch needs their relative position to a fraction of one: the extra blocks take
                  the error on new people from 4.1 to 3.8 degrees), flattened (the iris position
                  matters, so no global pooling), a 256-unit hidden layer; ~0.8M parameters at
                  64 px, 0.7M on eye patches. Face and eye input. Files written before the
                  stride-1 blocks (no "layout" in their config) load as the four-block net they are
    resnet18      ResNet-18 (basic blocks 2-2-2-2, 64-512 channels, global average pooling); face
                  input only
    gazenet       FP-GAN's GazeNet, eye input: conv 3x3/s2 without norm, BN convs 32-64, max-pool
                  3/s2, 80, 192, max-pool 2/s2 (TensorFlow SAME padding, so weights ported from the
                  original line up), flatten in NHWC order, dense 9600 and 1000 each with ONE bias
                  shared by all its units, ReLU, dense 2 with one shared bias; LeakyReLU 0.2, BN as
                  TensorFlow's (momentum 0.9, eps 1e-3); 83,542,995 parameters at 36 x 60, 88% of
                  them in the 9600-unit layer
    gazenet-slim  the same conv trunk with dense 512 and 128 (ordinary biases), 4.2M parameters:
                  trainable on a CPU, and an evaluator that differs from a `small` loss network
                  by architecture as well as by seed
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gcgan_cli.checkpoint import load_checkpoint, save_checkpoint
from gcgan_cli.errors import CheckpointError, UsageError

ARCH_INPUTS = {"small": ("face", "eye"), "resnet18": ("face",), "gazenet": ("eye",), "gazenet-slim": ("eye",)}
ARCHS = tuple(ARCH_INPUTS)
INPUTS = ("face", "eye")
CHANNELS = {"face": 3, "eye": 1}
UNITS = "rad"
LAYOUT = 2  # of the small net: 2 has the stride-1 blocks; files without a layout are 1
KIND = "gcgan-gaze-estimator"

LEAK = 0.2  # GazeNet's LeakyReLU slope
BN_MOMENTUM = 0.1  # TensorFlow's decay 0.9, in PyTorch's convention
BN_EPS = 1e-3  # TensorFlow's default
DENSE_STD = 0.02  # GazeNet's dense weights ~ N(0, 0.02)
GAZENET_DENSE = (9600, 1000)
SLIM_DENSE = (512, 128)


def input_of(shape: tuple[int, ...]) -> str:
    """"face" or "eye" for an input shape (C, H, W); another shape is a UsageError."""
    channels, height, width = shape
    if channels == CHANNELS["face"] and height == width and height >= 16 and height % 16 == 0:
        return "face"
    if channels == CHANNELS["eye"] and min(height, width) >= 1:
        return "eye"
    if channels == CHANNELS["face"]:
        raise UsageError(f"--size {height}: use a multiple of 16, at least 16 (face strips are square)")
    raise UsageError(f"input {channels} x {height} x {width}: face strips are 3 x S x S, eye patches 1 x H x W (1 x 36 x 60)")


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _stride2(side: int, times: int) -> int:
    """The side after `times` stride-2 layers that pad to keep ceil(side / 2)."""
    for _ in range(times):
        side = (side + 1) // 2
    return side


class SmallNet(nn.Module):
    def __init__(self, shape: tuple[int, int, int], layout: int = LAYOUT):
        super().__init__()
        channels, height, width = shape
        if layout == 1:
            self.features = nn.Sequential(_conv_bn(channels, 32, 2), _conv_bn(32, 64, 2), _conv_bn(64, 128, 2), _conv_bn(128, 128, 2))
        else:
            self.features = nn.Sequential(_conv_bn(channels, 32, 2), _conv_bn(32, 32, 1), _conv_bn(32, 64, 2), _conv_bn(64, 64, 1),
                                          _conv_bn(64, 128, 2), _conv_bn(128, 128, 2))
        cells = _stride2(height, 4) * _stride2(width, 4)
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


class TfSame(nn.Module):
    """A stride-s layer padded as TensorFlow's SAME pads: the odd pixel goes bottom/right (PyTorch's
    symmetric padding gives the same size but samples one pixel earlier)."""

    def __init__(self, layer: nn.Module, kernel: int, stride: int, fill: float = 0.0):
        super().__init__()
        self.layer, self.kernel, self.stride, self.fill = layer, kernel, stride, fill

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for side in (x.shape[-1], x.shape[-2]):  # F.pad takes the last axis first
            total = max((math.ceil(side / self.stride) - 1) * self.stride + self.kernel - side, 0)
            pads += [total // 2, total - total // 2]
        return self.layer(F.pad(x, pads, value=self.fill))


class SharedBiasLinear(nn.Module):
    """A dense layer whose units share one scalar bias, as GazeNet's are."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.linear = nn.Linear(cin, cout, bias=False)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) + self.bias


def _conv_bn_lrelu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM),
                         nn.LeakyReLU(LEAK, inplace=True))


class GazeNet(nn.Module):
    """GazeNet's conv trunk and a dense head of the given widths; `shared_bias` gives each dense
    layer one scalar bias (the reference), else one per unit."""

    def __init__(self, shape: tuple[int, int, int], dense: tuple[int, ...], shared_bias: bool):
        super().__init__()
        channels, height, width = shape
        self.features = nn.Sequential(
            TfSame(nn.Conv2d(channels, 32, 3, 2, bias=False), 3, 2), nn.LeakyReLU(LEAK, inplace=True),
            _conv_bn_lrelu(32, 32), _conv_bn_lrelu(32, 64), TfSame(nn.MaxPool2d(3, 2), 3, 2, -math.inf),
            _conv_bn_lrelu(64, 80), _conv_bn_lrelu(80, 192), TfSame(nn.MaxPool2d(2, 2), 2, 2, -math.inf))
        widths = (192 * _stride2(height, 3) * _stride2(width, 3), *dense)
        dense_layer = SharedBiasLinear if shared_bias else nn.Linear
        layers: list[nn.Module] = []
        for cin, cout in zip(widths, widths[1:]):
            layers += [dense_layer(cin, cout), nn.ReLU(inplace=True)]
        self.head = nn.Sequential(*layers, dense_layer(widths[-1], 2))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=DENSE_STD)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).permute(0, 2, 3, 1).flatten(1))  # NHWC order, as the reference flattens


def build(arch: str, size: int, layout: int = LAYOUT, shape: tuple[int, int, int] | None = None) -> nn.Module:
    """The network for `arch` at input `shape` (C, H, W), by default a face strip 3 x size x size."""
    if arch not in ARCHS:
        raise UsageError(f"--arch {arch}: choose one of {', '.join(ARCHS)}")
    shape = tuple(shape) if shape is not None else (3, size, size)
    kind = input_of(shape)
    if kind not in ARCH_INPUTS[arch]:
        fitting = ", ".join(a for a, inputs in ARCH_INPUTS.items() if kind in inputs)
        raise UsageError(f"--arch {arch} takes {' or '.join(ARCH_INPUTS[arch])} input only; for --input {kind} use {fitting}")
    if arch == "small":
        return SmallNet(shape, layout)
    if arch == "resnet18":
        return ResNet18()
    return GazeNet(shape, GAZENET_DENSE, shared_bias=True) if arch == "gazenet" else GazeNet(shape, SLIM_DENSE, shared_bias=False)


def network_config(arch: str, shape: tuple[int, int, int]) -> dict:
    """The config keys `load_estimator` rebuilds the network from; "size" is a face strip's side
    (what face sources are opened at), 0 for eye patches."""
    kind = input_of(shape)
    return {"arch": arch, "size": shape[-1] if kind == "face" else 0, "layout": LAYOUT, "input": kind, "shape": list(shape),
            "units": UNITS}


def save_estimator(path: Path, model: nn.Module, config: dict, report: dict) -> None:
    save_checkpoint(path, {"kind": KIND, "config": config, "model": model.state_dict(), "report": report})


def load_estimator(path: Path, device: torch.device) -> tuple[nn.Module, dict]:
    """(network in eval mode on device, its config: arch, size, input, shape, units, mean_gaze,
    sources...). Files without a shape are face estimators at 3 x size x size, in radians."""
    record = load_checkpoint(path, required=("kind", "config", "model"))
    if record["kind"] != KIND:
        raise CheckpointError(f"--model {path} is not a gaze estimator (from `gcgan gaze fit`)")
    config = record["config"]
    shape = tuple(config.get("shape", (3, config["size"], config["size"])))
    model = build(config["arch"], config["size"], config.get("layout", 1), shape)
    try:
        model.load_state_dict(record["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"--model {path}: its weights do not fit the {config['arch']} network ({exc})") from None
    config = {**config, "input": input_of(shape), "shape": list(shape), "units": config.get("units", UNITS)}
    return model.to(device).eval(), {**config, "report": record.get("report", {})}


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """(pitch, yaw) [N, 2] float32 on the CPU for images [N, C, H, W] (any device)."""
    device = next(model.parameters()).device
    return torch.cat([model(images[i : i + batch].to(device)).float().cpu() for i in range(0, len(images), batch)])
