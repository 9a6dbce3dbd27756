"""`gcgan transfer fit` options: one frozen dataclass, resolved defaults < stored (resume) < TOML
or `.ini` < flags, and stored with every run.

The defaults are the reference's: LSGAN with the real label at 0.9, cycle weights 10/10, the
self-regularisation weight 2, Adam 2e-4 with beta1 0.5, batch 8, 150,000 steps whose learning rate
falls linearly to 0 over the second half, a pool of 50. Two documented deviations are defaults:
the standard CycleGAN image pool (`pool = "legacy"` for the reference's) and landmarks normalised
by (width, height) (the reference divides x by the height and y by the width).

The networks' sizes (NetConfig, NET_PRESETS) are data here too, without torch, so `gcgan transfer fit --help`
can show the presets' values; `networks` builds the modules from them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from gcgan_cli.core.options import option
from gcgan_cli.core.training.config import checked_options, resolve_layers
from gcgan_cli.device import DEVICE_CHOICES
from gcgan_cli.errors import UsageError

POOLS = ("standard", "legacy")
LANDMARK_NORMS = ("wh", "legacy-hw", "legacy-max")
GAZE_TARGETS = ("pred", "label")
# A resumed run may not change what shapes its networks or its data stream.
# The optimisers' stored state carries the learning rate and beta1, so they stay too.
FIXED_ON_RESUME = (
    "s",
    "r",
    "preset",
    "upsample",
    "net_d",
    "d_layers",
    "d_last_stride",
    "norm",
    "batch",
    "seed",
    "gaze_model",
    "landmark_model",
    "gray_s",
    "gray_r",
    "crop_jitter",
    "max_head_pose",
    "lr",
    "beta1",
)

UPSAMPLES = ("deconv", "resize")  # resize = nearest x2 then a conv: no checkerboard
NORMS = ("instance", "batch")
DISCRIMINATORS = ("patch", "local")


@dataclass(frozen=True)
class NetConfig:
    """G and D sizes; JSON-able through `asdict`, stored with every transfer checkpoint.

    `norm` applies to G's first layer and its down / up layers and to D layers 2 and on; G's
    residual blocks always use instance norm and its output layer none. `d_layers` counts D's
    hidden k4 convolutions, all stride 2 except the last, which has stride `d_last_stride` (2 in
    the reference, 1 in the standard PatchGAN). The local D (SimGAN's) has widths 1.5, 1, 0.5,
    0.5 x ndf and no norm; `d_layers` and `d_last_stride` do not apply to it.
    """

    channels: int = 1
    ngf: int = 64
    blocks: int = 6
    upsample: str = "deconv"
    norm: str = "instance"
    netD: str = "patch"
    ndf: int = 64
    d_layers: int = 4
    d_last_stride: int = 2

    def validate(self) -> NetConfig:
        """Raise UsageError on the first value the networks cannot be built with."""
        for name in ("channels", "ngf", "ndf", "d_layers"):
            if getattr(self, name) < 1:
                raise UsageError(f"network {name} must be at least 1, got {getattr(self, name)}")
        if self.blocks < 0:
            raise UsageError(f"network blocks must be 0 or more, got {self.blocks}")
        if self.d_last_stride not in (1, 2):
            raise UsageError(f"network d_last_stride must be 1 or 2, got {self.d_last_stride}")
        for name, allowed in (("upsample", UPSAMPLES), ("norm", NORMS), ("netD", DISCRIMINATORS)):
            if getattr(self, name) not in allowed:
                raise UsageError(f"network {name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.netD == "local" and self.ndf < 2:
            raise UsageError(f"the local discriminator needs ndf of at least 2, got {self.ndf}")
        return self

    @classmethod
    def from_dict(cls, values: dict) -> NetConfig:
        """Rebuild a stored config; unknown keys and wrong types are refused, missing ones take the defaults."""
        return cls(**checked_options(cls, values, "network settings")).validate()


NET_PRESETS = {
    "reference": NetConfig(),
    # About 1/25 of the reference's multiply-adds per training step. The D's last hidden layer
    # has stride 1, so it sees 34 px, less than the patch's 36 px height (the reference D's 94 px
    # sees the whole patch), and judges a 9x15 map of overlapping windows.
    "tiny": NetConfig(ngf=16, blocks=3, ndf=16, d_layers=3, d_last_stride=1),
}


# The help panels of `gcgan transfer fit --help`.
DATA, MODEL, LOSSES, SCHEDULE = "Data and run", "Model", "Losses and feature networks", "Schedule"
OUTPUT, DEVICE = "Output and logging", "Device"
EYE_SOURCES = "an eye source: an MPIIFaceGaze .h5, a UnityEyes folder, or a translated folder from `gcgan transfer run`"


@dataclass(frozen=True)
class TransferConfig:
    """Every option of `gcgan transfer fit`: a field with `option(...)` metadata is also its command-line flag
    (`commands/transfer.py` builds the options from them); the others are set in a TOML or INI file only."""

    s: str = option("", DATA, f"The synthetic domain S: {EYE_SOURCES}.", "--s", path=True)
    r: str = option("", DATA, f"The real domain R: {EYE_SOURCES}.", "--r", path=True)
    out: str = option(
        "", DATA, "The run folder: checkpoints/, samples/, metrics.jsonl, config.json.", "--outdir", "-o", path=True
    )
    # networks: a preset and the architecture switches (None = the preset's)
    preset: str = option("reference", MODEL, "reference (ngf 64, 6 blocks: GPU) or tiny (CPU).")
    upsample: str | None = option(None, MODEL, "deconv (the reference) or resize (nearest x2 + conv, no checkerboard).")
    net_d: str | None = option(
        None, MODEL, "patch (the reference's 4 stride-2 layers) or local (SimGAN's small receptive field).", "--netD"
    )
    d_layers: int | None = option(None, MODEL, "Stride-2 layers of the patch discriminator.")
    d_last_stride: int | None = option(
        None, MODEL, "Stride of the last of them: 2 (the reference) or 1 (standard PatchGAN)."
    )
    norm: str | None = option(
        None,
        MODEL,
        "instance (every FP-GAN run) or batch, for G's outer layers and D; residual blocks keep instance "
        "norm, and translation runs in eval mode.",
    )
    # objective
    real_label: float = 0.9  # one-sided label smoothing of LSGAN
    lambda_cycle_s: float = option(10.0, LOSSES, "Cycle weight |F(G(s)) - s|.")
    lambda_cycle_r: float = option(10.0, LOSSES, "Cycle weight |G(F(r)) - r|.")
    lambda_self: float = option(
        2.0, LOSSES, "Self-regularisation |G(x) - x| on the generator's own input (the reference's 'identity')."
    )
    lambda_idt: float = option(
        0.0,
        LOSSES,
        "CycleGAN's identity term |G(r) - r| on the target domain (not the reference's); the weight itself, "
        "not CycleGAN's multiple of the cycle weight (its 0.5 is 5 here).",
    )
    lambda_gaze: float = option(0.0, LOSSES, "Gaze consistency weight in rad^-2 (the reference's selected run: 30).")
    lambda_landmarks: float = option(0.0, LOSSES, "Landmark consistency weight (the reference's selected run: 15).")
    gaze_target: str = option(
        "pred", LOSSES, "pred: G(s) must read as s reads (the reference); label: as s's true gaze."
    )
    landmark_norm: str = option(
        "wh", LOSSES, "wh: x / width, y / height; legacy-hw: the reference's swapped axes; legacy-max: / 60."
    )
    gaze_model: str | None = option(
        None, LOSSES, "The frozen gaze loss network (`gcgan gaze fit --input eye`, trained on S).", path=True
    )
    landmark_model: str | None = option(
        None, LOSSES, "The frozen landmark loss network (`gcgan transfer landmarks-fit`, trained on S).", path=True
    )
    # schedule
    batch: int = option(8, SCHEDULE, "Patches per domain per step.")
    steps: int = option(
        150_000, SCHEDULE, "Training steps; the learning rate falls linearly to 0 over the second half."
    )
    lr: float = option(2e-4, SCHEDULE, "Adam learning rate.")
    beta1: float = 0.5
    pool_size: int = option(50, SCHEDULE, "Fakes kept for D (0 = none).")
    pool: str = option("standard", SCHEDULE, "standard (CycleGAN's per-image pool) or legacy (the reference's).")
    # data
    gray_s: str | None = None  # mean | luma (None: the source kind's own)
    gray_r: str | None = None
    crop_jitter: bool = option(False, DATA, "UnityEyes crop jitter on S (scale 10%, shift 10 px sd).")
    max_head_pose: float | None = option(
        None, DATA, "Drop UnityEyes samples with head pitch or yaw beyond this many degrees (GazeML: 20)."
    )
    # observation
    log_every: int = option(100, OUTPUT, "A metrics.jsonl row every N steps.")
    sample_every: int = option(1000, OUTPUT, "A sample sheet every N steps (0 = only at the end).")
    save_every: int = option(5000, OUTPUT, "A checkpoint every N steps (0 = only at the end).")
    keep: int = option(3, OUTPUT, "Newest checkpoints kept (0 = all).")
    n_sample: int = 6  # rows per direction in a sample sheet
    # machinery
    seed: int = option(0, SCHEDULE, "Seed of weights, data order and pools.")
    device: str = option("auto", DEVICE, f"{DEVICE_CHOICES}.")

    def net(self) -> NetConfig:
        """The preset with the switches given here."""
        if self.preset not in NET_PRESETS:
            raise UsageError(f"--preset {self.preset}: choose one of {', '.join(NET_PRESETS)}")
        base = asdict(NET_PRESETS[self.preset])
        switches = {
            "upsample": self.upsample,
            "netD": self.net_d,
            "d_layers": self.d_layers,
            "d_last_stride": self.d_last_stride,
            "norm": self.norm,
        }
        net = NetConfig(**{**base, **{k: v for k, v in switches.items() if v is not None}})
        net.validate()
        return net

    def validate(self) -> TransferConfig:
        problems = []
        for name, what in (("s", "the synthetic domain"), ("r", "the real domain"), ("out", "the run folder")):
            if not getattr(self, name):
                problems.append(f"--{name} is required ({what})")
        for name in ("batch", "steps", "log_every", "n_sample"):
            if getattr(self, name) < 1:
                problems.append(f"--{_flag(name)} {getattr(self, name)}: must be >= 1")
        for name in ("sample_every", "save_every", "keep", "pool_size"):
            if getattr(self, name) < 0:
                problems.append(f"--{_flag(name)} {getattr(self, name)}: must be >= 0")
        for name in (
            "lambda_cycle_s",
            "lambda_cycle_r",
            "lambda_self",
            "lambda_idt",
            "lambda_gaze",
            "lambda_landmarks",
            "lr",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                problems.append(f"--{_flag(name)} {value}: must be a finite number {'> 0' if name == 'lr' else '>= 0'}")
        if not 0.0 < self.real_label <= 1.0:
            problems.append(f"--real-label {self.real_label}: must be in (0, 1]")
        if not 0.0 <= self.beta1 < 1.0:
            problems.append(f"--beta1 {self.beta1}: must be in [0, 1)")
        for name, choices in (("pool", POOLS), ("landmark_norm", LANDMARK_NORMS), ("gaze_target", GAZE_TARGETS)):
            if getattr(self, name) not in choices:
                problems.append(f"--{_flag(name)} {getattr(self, name)}: choose one of {', '.join(choices)}")
        for name in ("gray_s", "gray_r"):
            if getattr(self, name) not in (None, "mean", "luma"):
                problems.append(f"--{_flag(name)} {getattr(self, name)}: choose mean or luma")
        if self.lambda_gaze > 0 and not self.gaze_model:
            problems.append(
                f"--lambda-gaze {self.lambda_gaze} needs --gaze-model (an estimator from `gcgan gaze fit --input eye`)"
            )
        if self.lambda_landmarks > 0 and not self.landmark_model:
            problems.append(
                f"--lambda-landmarks {self.lambda_landmarks} needs --landmark-model (from `gcgan transfer "
                "landmarks-fit`)"
            )
        if self.max_head_pose is not None and not self.max_head_pose > 0:
            problems.append(f"--max-head-pose {self.max_head_pose}: must be > 0 degrees")
        if problems:
            raise UsageError("; ".join(problems))
        self.net()
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any], where: str) -> TransferConfig:
        return cls(**checked_options(cls, record, where))


def _flag(name: str) -> str:
    return name.replace("_", "-")


def resolve(
    given: dict[str, Any], file_options: dict[str, Any] | None = None, stored: dict[str, Any] | None = None
) -> TransferConfig:
    """Defaults < stored (resume) < TOML / .ini < given (non-None command-line options)."""
    return resolve_layers(
        TransferConfig, given, file_options, stored, FIXED_ON_RESUME, "its networks, data and optimiser settings"
    )
