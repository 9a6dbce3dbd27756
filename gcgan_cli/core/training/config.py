"""Training options: one frozen dataclass, resolved in a fixed order and stored with every run.

Order (later wins): the dataclass defaults (the reference's, spec §5.1), the stored
`DIR/config.json` when resuming, a `--config run.toml`, then the options given on the command
line. Only what the user actually gave overrides, so `gcgan train --resume --outdir DIR`
alone continues a run exactly as it was configured.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from gcgan_cli.core.model.config import D_CONDITIONINGS, PRESETS, checked_options, option_flag
from gcgan_cli.errors import UsageError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PRECISIONS = ("fp32", "tf32", "bf16")
SWAP_CHECKS = ("pretrained", "current")
# EMA of G: half-life of 10,000 images at the reference's nominal 32 images per step.
REFERENCE_EMA_DECAY = 0.5 ** (32 / 10_000)
# Stage 2's unbroken-mask test: 10,000 iris pixels of 256 x 256 (spec §6.2), as a fraction.
REFERENCE_UNBROKEN_FRACTION = 10_000 / 256**2
# Options that shape the model or the data stream: a resumed run may not change them.
FIXED_ON_RESUME = (
    "stage",
    "preset",
    "size",
    "seg_dim",
    "residual_refine",
    "batch",
    "seed",
    "ckpt",
    "gaze_norm",
    "d_conditioning",
    "d_gaze_head",
    "gaze_model",
)
# R1's gammas are the reference's at 256 px; at size S they act (256 / S)^2 times stronger, so an
# unset gamma is scaled by (S / 256)^2.
REFERENCE_R1 = {"r1_img": 10.0, "r1_seg": 1000.0}
REFERENCE_R1_SIZE = 256


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = ""
    checkpoint_dir: str = ""
    stage: int = 1
    # model: a preset, with the three overrides the reference's README sets
    preset: str = "ref256"
    size: int | None = None
    seg_dim: int | None = None  # the first seg_dim classes of the DB (ids >= seg_dim count as background)
    residual_refine: bool | None = None
    # schedule
    batch: int = 4  # per process
    iters: int = 600_000
    lr: float = 0.002
    r1_img: float | None = None  # default: 10 x (size / 256)^2
    r1_seg: float | None = None  # default: 1000 x (size / 256)^2
    path_regularize: float = 0.5
    path_batch_shrink: int = 2
    d_reg_every: int = 16
    g_reg_every: int = 4
    mixing: float = 0.0
    lambda_mask: float = 100.0
    # gaze conditioning beyond the reference (stage 1)
    gaze_norm: bool = True  # G and D embed the gaze standardised by the label set's mean and std
    d_conditioning: str | None = None  # concat | projection (default: the preset's)
    d_gaze_mismatch: float = 0.5  # D calls (real image, wrong gaze) fake with this weight
    mismatch_min_deg: float = 15.0  # a wrong gaze is at least this far from the true one
    d_gaze_head: int | None = None  # width of D's gaze-regression head (default: the preset's; 0 = none)
    lambda_gaze_head: float = 1.0  # D regresses real gaze, G is pulled to make D read its gaze
    gaze_model: str | None = None  # a frozen estimator (`gcgan gaze fit`) whose reading of G's images...
    lambda_gaze: float = 0.0  # ...is pulled toward the conditioning gaze with this weight
    gaze_warmup: int = 2000  # steps before the estimator loss starts (G must draw irises first)
    gaze_ramp: int = 2000  # steps over which its weight then rises linearly to lambda_gaze
    mirror: bool = False  # flip real data horizontally with p = 0.5, yaw negated
    augment: bool = False  # translate and cut out real and fake (image and mask together) for D
    ema_decay: float = REFERENCE_EMA_DECAY
    # observation
    n_sample: int = 16
    log_every: int = 100
    viz_every: int = 1000
    save_every: int = 10_000
    fid_every: int = 10_000
    fid_n: int = 10_000
    inception: str | None = None  # FID statistics (.npz from `gcgan inception`)
    inception_weights: str | None = None
    keep: int = 5  # newest checkpoints kept, the older pruned after each save (0 = all, unbounded)
    # stage 2
    ckpt: str | None = None  # the stage-1 checkpoint
    gaze_labels: str | None = None  # default: the label set stored in the stage-1 checkpoint
    swap_check: str = "pretrained"
    unbroken_class: str = "iris"
    unbroken_fraction: float = REFERENCE_UNBROKEN_FRACTION
    # machinery
    seed: int = 0
    precision: str = "fp32"
    workers: int | None = None  # DataLoader workers per process (default: cores / processes - 1)
    deterministic: bool = False
    compile: bool = False  # torch.compile the main passes (the lazy regularisers stay eager)
    device: str = "auto"

    def validate(self) -> TrainConfig:
        problems = []
        if not self.dataset:
            problems.append("--data is required")
        if not self.checkpoint_dir:
            problems.append("--outdir is required")
        if self.stage not in (1, 2):
            problems.append(f"--stage {self.stage}: use 1 or 2")
        if self.stage == 2 and not self.ckpt:
            problems.append("--stage 2 needs --network, the stage-1 checkpoint")
        if self.stage == 1 and (self.ckpt or self.gaze_labels):
            problems.append("--network and --gaze-labels belong to --stage 2 (stage 1 resumes with --resume)")
        if self.preset not in PRESETS:
            problems.append(f"--preset {self.preset}: choose one of {', '.join(PRESETS)}")
        elif self.size is not None and self.stage == 1:  # stage 2's model is the checkpoint's: --size must match it
            least = 2 * PRESETS[self.preset].coarse_size  # the preset's fusion grid is at most half the image
            if self.size < least or self.size & (self.size - 1):
                problems.append(f"--size {self.size}: must be a power of two >= {least} with --preset {self.preset}")
        if self.seg_dim is not None and self.seg_dim < 2:
            problems.append(f"--seg-dim {self.seg_dim}: must be >= 2 (the background and at least one part)")
        for name in (
            "batch",
            "iters",
            "d_reg_every",
            "g_reg_every",
            "path_batch_shrink",
            "n_sample",
            "log_every",
            "fid_n",
        ):
            if getattr(self, name) < 1:
                problems.append(f"--{option_flag(name)} {getattr(self, name)}: must be >= 1")
        for name in ("viz_every", "save_every", "fid_every", "keep", "gaze_warmup", "gaze_ramp"):
            if getattr(self, name) < 0:
                problems.append(f"--{option_flag(name)} {getattr(self, name)}: must be >= 0 (0 = off)")
        for name in (
            "lr",
            "r1_img",
            "r1_seg",
            "path_regularize",
            "lambda_mask",
            "d_gaze_mismatch",
            "mismatch_min_deg",
            "lambda_gaze_head",
            "lambda_gaze",
        ):
            value = getattr(self, name)
            if value is None and name in REFERENCE_R1:
                continue
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                bound = "> 0" if name == "lr" else ">= 0"
                problems.append(f"--{option_flag(name)} {value}: must be a finite number {bound}")
        for name in ("mixing", "ema_decay", "unbroken_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"--{option_flag(name)} {getattr(self, name)}: must be in [0, 1]")
        if self.precision not in PRECISIONS:
            problems.append(f"--precision {self.precision}: choose one of {', '.join(PRECISIONS)}")
        if self.swap_check not in SWAP_CHECKS:
            problems.append(f"--swap-check {self.swap_check}: choose one of {', '.join(SWAP_CHECKS)}")
        if self.d_conditioning is not None and self.d_conditioning not in D_CONDITIONINGS:
            problems.append(f"--d-conditioning {self.d_conditioning}: choose one of {', '.join(D_CONDITIONINGS)}")
        if self.d_gaze_head is not None and self.d_gaze_head < 0:
            problems.append(f"--d-gaze-head {self.d_gaze_head}: must be >= 0 (0 = no head)")
        if self.lambda_gaze > 0 and not self.gaze_model:
            problems.append(
                f"--lambda-gaze {self.lambda_gaze} needs --gaze-model, the frozen estimator (from `gcgan gaze fit`)"
            )
        if self.stage == 2 and (self.gaze_model or self.mirror):
            problems.append("--gaze-model and --mirror belong to --stage 1 (stage 2 has no gaze labels)")
        if self.workers is not None and self.workers < 0:
            problems.append(f"--workers {self.workers}: must be >= 0")
        if problems:
            raise UsageError("; ".join(problems))
        return self

    def r1(self, size: int) -> tuple[float, float]:
        """(image, mask) R1 gammas at this image size: as given, else the reference's scaled to it."""
        scale = (size / REFERENCE_R1_SIZE) ** 2
        return tuple(
            REFERENCE_R1[n] * scale if getattr(self, n) is None else getattr(self, n) for n in ("r1_img", "r1_seg")
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any], where: str) -> TrainConfig:
        return cls(**checked_options(cls, record, where))


def read_options(path: Path, schema: type = None) -> dict[str, Any]:
    """Options from a TOML file (or JSON, as `--nproc` hands them to its workers): top-level keys
    named like the flags, with dashes or underscores, checked against `schema` (a config
    dataclass with `from_dict`; TrainConfig by default)."""
    try:
        with open(path, "rb") as handle:
            raw = json.load(handle) if Path(path).suffix == ".json" else tomllib.load(handle)
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"--config {path}: not valid {'JSON' if Path(path).suffix == '.json' else 'TOML'} ({exc})"
        ) from None
    if not isinstance(raw, dict):
        raise UsageError(f"--config {path}: expected a table of options, got a {type(raw).__name__}")
    options = {key.replace("-", "_"): value for key, value in raw.items()}
    nested = [key for key, value in options.items() if isinstance(value, dict)]
    if nested:
        raise UsageError(
            f"--config {path}: tables ({', '.join(nested)}) are not options; write flat keys like batch = 8"
        )
    (schema or TrainConfig).from_dict(options, f"--config {path}")  # names checked here, values with the rest
    return options


def resolve(
    given: dict[str, Any], toml: dict[str, Any] | None = None, stored: dict[str, Any] | None = None
) -> TrainConfig:
    """Defaults < stored (resume) < TOML < given (non-None command-line options)."""
    return resolve_layers(TrainConfig, given, toml, stored, FIXED_ON_RESUME, "its model and data stream")


def resolve_layers(
    schema: type,
    given: dict[str, Any],
    file_options: dict[str, Any] | None,
    stored: dict[str, Any] | None,
    fixed: tuple[str, ...],
    what: str,
):
    """A validated `schema` from its defaults < stored < file < given (non-None) values; with a
    stored config, the `fixed` fields may not change (`what` says what they are)."""
    values: dict[str, Any] = {}
    for layer in (stored or {}, file_options or {}, {k: v for k, v in given.items() if v is not None}):
        values.update(layer)
    try:
        config = schema.from_dict(values, "options")
    except TypeError as exc:
        raise UsageError(f"options: {exc}") from None
    if stored:
        changed = [name for name in fixed if getattr(config, name) != stored.get(name)]
        if changed:
            detail = ", ".join(f"--{option_flag(n)} {stored.get(n)!r} -> {getattr(config, n)!r}" for n in changed)
            raise UsageError(f"a resumed run keeps {what}; these differ from the run's config.json: {detail}")
    return config.validate()


def with_paths_absolute(config: TrainConfig) -> TrainConfig:
    """Paths stored in config.json resolve from anywhere (a resumed run may start elsewhere)."""
    updates = {}
    for name in ("dataset", "checkpoint_dir", "inception", "inception_weights", "ckpt", "gaze_labels", "gaze_model"):
        value = getattr(config, name)
        if value:
            updates[name] = str(Path(value).expanduser().resolve())
    return replace(config, **updates)
