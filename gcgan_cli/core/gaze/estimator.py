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
    resnet18      ResNet-18 (basic blocks 2-2-2-2, 64-512 channels, global average pooling) under
                  torchvision's module names, so its state_dict is that of torchvision's
                  resnet18(num_classes=2); face input only. A torchvision ImageNet file can start
                  its backbone (`gaze fit --init`), and the net then maps its [-1, 1] input to the
                  normalisation those weights were trained on
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

import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gcgan_cli.checkpoint import load_checkpoint, load_error_reason, save_checkpoint
from gcgan_cli.core.gaze.kinds import ARCH_INPUTS, ARCHS
from gcgan_cli.errors import CheckpointError, UsageError

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
# torchvision's ImageNet weights read RGB in [0, 1] less this mean, over this std
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET = "imagenet"  # the config's "input_norm" of a net that maps its input so; None: [-1, 1] as it is
INIT_ARCH = "resnet18"  # the one arch an ImageNet file initialises
CLASSIFIER = "fc."  # torchvision's 1000-class head: never loaded, ours answers two angles
INIT_FORMAT = "a torchvision resnet18 state_dict (keys conv1.weight, bn1.*, layer1.0.conv1.weight, ..., fc.*)"


def input_of(shape: tuple[int, ...]) -> str:
    """ "face" or "eye" for an input shape (C, H, W); another shape is a UsageError."""
    channels, height, width = shape
    if channels == CHANNELS["face"] and height == width and height >= 16 and height % 16 == 0:
        return "face"
    if channels == CHANNELS["eye"] and min(height, width) >= 1:
        return "eye"
    if channels == CHANNELS["face"]:
        raise UsageError(f"--size {height}: use a multiple of 16, at least 16 (face strips are square)")
    raise UsageError(
        f"input {channels} x {height} x {width}: face strips are 3 x S x S, eye patches 1 x H x W (1 x 36 x 60)"
    )


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
            self.features = nn.Sequential(
                _conv_bn(channels, 32, 2), _conv_bn(32, 64, 2), _conv_bn(64, 128, 2), _conv_bn(128, 128, 2)
            )
        else:
            self.features = nn.Sequential(
                _conv_bn(channels, 32, 2),
                _conv_bn(32, 32, 1),
                _conv_bn(32, 64, 2),
                _conv_bn(64, 64, 1),
                _conv_bn(64, 128, 2),
                _conv_bn(128, 128, 2),
            )
        cells = _stride2(height, 4) * _stride2(width, 4)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(128 * cells, 256), nn.ReLU(inplace=True), nn.Linear(256, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    """torchvision's basic block, under its module names (conv1, bn1, conv2, bn2, downsample)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """ResNet-18 whose state_dict keys are torchvision's `resnet18(num_classes=2)` keys, so an
    ImageNet file initialises it and its weights load into torchvision as they are. With
    `imagenet_input` the [-1, 1] input is first mapped to what ImageNet weights were trained on
    (RGB in [0, 1] less IMAGENET_MEAN, over IMAGENET_STD); those buffers are not in the
    state_dict: the config's "input_norm" rebuilds them."""

    def __init__(self, imagenet_input: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for index, (cout, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), 1):
            self.add_module(f"layer{index}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, 2)
        self.imagenet_input = imagenet_input
        if imagenet_input:
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.imagenet_input:
            x = ((x + 1) / 2 - self.mean) / self.std
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _old_resnet_names() -> dict[str, str]:
    """Module prefixes of resnet18 files from before torchvision's names -> torchvision's: the stem
    was features.0 (conv) and .1 (BN), the blocks features.4-11 with body.0.0 / body.0.1 / body.1 /
    body.2 and skip.0 / skip.1 for conv1 / bn1 / conv2 / bn2 and the downsample pair."""
    names = {"features.0.": "conv1.", "features.1.": "bn1."}
    parts = (
        ("body.0.0.", "conv1."),
        ("body.0.1.", "bn1."),
        ("body.1.", "conv2."),
        ("body.2.", "bn2."),
        ("skip.0.", "downsample.0."),
        ("skip.1.", "downsample.1."),
    )
    for block in range(8):
        names.update({f"features.{block + 4}.{old}": f"layer{block // 2 + 1}.{block % 2}.{new}" for old, new in parts})
    return names


OLD_RESNET_NAMES = _old_resnet_names()


def torchvision_names(state: dict) -> dict:
    """A resnet18 state_dict with every key of the old naming renamed to torchvision's (fc.* is
    the same in both)."""
    renamed = {}
    for key, value in state.items():
        head, dot, name = key.rpartition(".")
        renamed[OLD_RESNET_NAMES.get(head + dot, head + dot) + name] = value
    return renamed


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
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
        nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM),
        nn.LeakyReLU(LEAK, inplace=True),
    )


class GazeNet(nn.Module):
    """GazeNet's conv trunk and a dense head of the given widths; `shared_bias` gives each dense
    layer one scalar bias (the reference), else one per unit."""

    def __init__(self, shape: tuple[int, int, int], dense: tuple[int, ...], shared_bias: bool):
        super().__init__()
        channels, height, width = shape
        self.features = nn.Sequential(
            TfSame(nn.Conv2d(channels, 32, 3, 2, bias=False), 3, 2),
            nn.LeakyReLU(LEAK, inplace=True),
            _conv_bn_lrelu(32, 32),
            _conv_bn_lrelu(32, 64),
            TfSame(nn.MaxPool2d(3, 2), 3, 2, -math.inf),
            _conv_bn_lrelu(64, 80),
            _conv_bn_lrelu(80, 192),
            TfSame(nn.MaxPool2d(2, 2), 2, 2, -math.inf),
        )
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


def build(
    arch: str, size: int, layout: int = LAYOUT, shape: tuple[int, int, int] | None = None, input_norm: str | None = None
) -> nn.Module:
    """The network for `arch` at input `shape` (C, H, W), by default a face strip 3 x size x size;
    `input_norm` IMAGENET (resnet18 only) maps the input as ImageNet weights expect."""
    if arch not in ARCHS:
        raise UsageError(f"--arch {arch}: choose one of {', '.join(ARCHS)}")
    if not _norm_fits(arch, input_norm):
        raise ValueError(f"input_norm {input_norm!r} for {arch}: only {INIT_ARCH} takes {IMAGENET!r}")
    shape = tuple(shape) if shape is not None else (3, size, size)
    kind = input_of(shape)
    if kind not in ARCH_INPUTS[arch]:
        fitting = ", ".join(a for a, inputs in ARCH_INPUTS.items() if kind in inputs)
        raise UsageError(
            f"--arch {arch} takes {' or '.join(ARCH_INPUTS[arch])} input only; for --input {kind} use {fitting}"
        )
    if arch == "small":
        return SmallNet(shape, layout)
    if arch == "resnet18":
        return ResNet18(imagenet_input=input_norm == IMAGENET)
    return (
        GazeNet(shape, GAZENET_DENSE, shared_bias=True)
        if arch == "gazenet"
        else GazeNet(shape, SLIM_DENSE, shared_bias=False)
    )


def _norm_fits(arch: str, input_norm: str | None) -> bool:
    return input_norm is None or (input_norm == IMAGENET and arch == INIT_ARCH)


def network_config(arch: str, shape: tuple[int, int, int], input_norm: str | None = None) -> dict:
    """The config keys `load_estimator` rebuilds the network from; "size" is a face strip's side
    (what face sources are opened at), 0 for eye patches."""
    kind = input_of(shape)
    return {
        "arch": arch,
        "size": shape[-1] if kind == "face" else 0,
        "layout": LAYOUT,
        "input": kind,
        "shape": list(shape),
        "units": UNITS,
        "input_norm": input_norm,
    }


@dataclass(frozen=True)
class BackboneInit:
    """The backbone tensors of an ImageNet file (torchvision's names), checked against our
    ResNet18, and where they came from."""

    path: Path
    sha256: str  # of the bytes the tensors were read from
    state: dict
    skipped: tuple[str, ...]  # the file's classifier keys

    def record(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "loaded": len(self.state), "skipped": list(self.skipped)}


def read_init(path: Path, arch: str) -> BackboneInit:
    """The ResNet-18 backbone in a local torchvision-format file (a plain state_dict from
    torch.save, or .safetensors where the safetensors package is installed): every tensor but the
    classifier, which must all fit our ResNet18 by name and shape. Read once, so the hash is of
    what was loaded; never unpickles code."""
    if arch != INIT_ARCH:
        raise UsageError(
            f"--init {path}: only --arch {INIT_ARCH} starts from ImageNet weights; "
            f"add --arch {INIT_ARCH} or drop --init"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"--init {path}: cannot read it ({exc.strerror or exc}); give a local copy of {INIT_FORMAT}"
        ) from None
    state = _tensors_of(path, data)
    backbone = {k: v for k, v in state.items() if not k.startswith(CLASSIFIER)}
    expected = {k: v.shape for k, v in ResNet18().state_dict().items() if not k.startswith(CLASSIFIER)}
    problems = [
        (what, keys)
        for what, keys in (
            ("missing", [k for k in expected if k not in backbone and not k.endswith("num_batches_tracked")]),
            ("unexpected", [k for k in backbone if k not in expected]),
            (
                "of another shape",
                [
                    f"{k} {_dims(backbone[k].shape)} (the network's {_dims(expected[k])})"
                    for k in expected
                    if k in backbone and backbone[k].shape != expected[k]
                ],
            ),
        )
        if keys
    ]
    if problems:
        listed = "; ".join(
            f"{len(keys)} {what}: {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}" for what, keys in problems
        )
        raise CheckpointError(f"--init {path}: does not fit {INIT_ARCH} ({listed}); give {INIT_FORMAT}")
    skipped = tuple(k for k in state if k.startswith(CLASSIFIER))
    return BackboneInit(path, hashlib.sha256(data).hexdigest(), backbone, skipped)


def load_backbone(model: nn.Module, init: BackboneInit) -> None:
    """Copy the file's backbone into `model` (a ResNet18); its head keeps its fresh weights."""
    model.load_state_dict(init.state, strict=False)


def _tensors_of(path: Path, data: bytes) -> dict:
    """{name: tensor} of a state_dict file's bytes; any other content is a one-line error."""
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load as load_safetensors
        except ImportError:
            raise UsageError(
                f"--init {path}: reading .safetensors needs the safetensors package "
                "(pip install safetensors); or give the .pth file"
            ) from None
        try:
            return load_safetensors(data)
        except Exception as exc:  # the reader's own error type: a cut or foreign file
            raise CheckpointError(
                f"--init {path}: not a readable safetensors file ({load_error_reason(exc)}); give {INIT_FORMAT}"
            ) from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for foreign, cut and pickled-object files alike
        raise CheckpointError(
            f"--init {path}: not a plain state_dict of tensors that loads without running code "
            f"({load_error_reason(exc)}); give {INIT_FORMAT}, saved with torch.save(model.state_dict(), PATH)"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(
            f"--init {path}: holds a {type(state).__name__}, not a state_dict of tensors; give {INIT_FORMAT}"
        )
    return state


def _dims(shape: torch.Size) -> str:
    return "x".join(map(str, shape)) or "scalar"


def save_estimator(path: Path, model: nn.Module, config: dict, report: dict) -> None:
    save_checkpoint(path, {"kind": KIND, "config": config, "model": model.state_dict(), "report": report})


def load_estimator(path: Path, device: torch.device) -> tuple[nn.Module, dict]:
    """(network in eval mode on device, its config: arch, size, input, shape, units, input_norm,
    mean_gaze, sources...). Files without a shape are face estimators at 3 x size x size, in
    radians; resnet18 files from before torchvision's key names are renamed as they load."""
    record = load_checkpoint(path, required=("kind", "config", "model"))
    if record["kind"] != KIND:
        raise CheckpointError(f"--model {path} is not a gaze estimator (from `gcgan gaze fit`)")
    config = record["config"]
    shape = tuple(config.get("shape", (3, config["size"], config["size"])))
    input_norm = config.get("input_norm")
    if not _norm_fits(config["arch"], input_norm):
        raise CheckpointError(
            f"--model {path}: input_norm {input_norm!r} does not go with --arch {config['arch']}; "
            "re-fit it with `gcgan gaze fit`"
        )
    model = build(config["arch"], config["size"], config.get("layout", 1), shape, input_norm)
    state = torchvision_names(record["model"]) if config["arch"] == "resnet18" else record["model"]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"--model {path}: its weights do not fit the {config['arch']} network ({exc})") from None
    config = {
        **config,
        "input": input_of(shape),
        "shape": list(shape),
        "units": config.get("units", UNITS),
        "input_norm": input_norm,
    }
    return model.to(device).eval(), {**config, "report": record.get("report", {})}


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """(pitch, yaw) [N, 2] float32 on the CPU for images [N, C, H, W] (any device)."""
    device = next(model.parameters()).device
    return torch.cat([model(images[i : i + batch].to(device)).float().cpu() for i in range(0, len(images), batch)])
