"""Training options: one frozen dataclass, resolved in a fixed order and stored with every run.

Order (later wins): the dataclass defaults (the reference's stage-1 defaults: 600,000 steps, batch 4, lr 0.002,
R1 10 / 1000, path length 0.5, no style mixing), the stored
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
from gcgan_cli.core.options import option
from gcgan_cli.device import DEVICE_CHOICES
from gcgan_cli.errors import UsageError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PRECISIONS = ("fp32", "tf32", "bf16")
# The help panels of `gcgan train --help`.
DATA, MODEL, SCHEDULE, REGULARISATION = "Data and run", "Model", "Schedule", "Regularisation"
GAZE, STAGE2, OUTPUT, DEVICE = "Gaze conditioning", "Stage 2", "Output and logging", "Distributed and device"
SWAP_CHECKS = ("pretrained", "current")
# EMA of G: half-life of 10,000 images at the reference's nominal 32 images per step.
REFERENCE_EMA_DECAY = 0.5 ** (32 / 10_000)
# Stage 2's unbroken-mask test: the reference's iris logit > 0 on more than 10,000 of 256 x 256 pixels, as a fraction.
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
    """Every option of `gcgan train`: each field is also its command-line flag (`commands/train.py` builds the
    options from these fields), so a default, a type and a help text are written once, here."""

    dataset: str = option(
        "", DATA, "A DB from `gcgan pack`: labelled for stage 1, any for stage 2.", "--data", path=True
    )
    checkpoint_dir: str = option(
        "", DATA, "The run folder: checkpoints/, samples/, metrics.jsonl, config.json.", "--outdir", "-o", path=True
    )
    stage: int = option(
        1, DATA, "1: gaze-conditioned training on labelled data; 2: transfer to an unlabelled domain from --network."
    )
    preset: str = option(
        "ref256",
        MODEL,
        "Model preset: ref256 (the reference's), small (64 px, trains on a laptop CPU) or tiny (32 px, tests).",
    )
    size: int | None = option(None, MODEL, "Image size; DB images are resized on read.")
    seg_dim: int | None = option(
        None, MODEL, "Classes trained: the DB's first N (6: background..iris; ids >= N count as background)."
    )
    residual_refine: bool | None = option(None, MODEL, "Add the coarse mask into the render net's segmentation.")
    batch: int = option(4, SCHEDULE, "Images per process per step; the total batch is this x processes.")
    iters: int = option(600_000, SCHEDULE, "Train until this many steps.")
    lr: float = option(0.002, SCHEDULE, "Learning rate before lazy-regularisation scaling.")
    r1_img: float | None = option(None, REGULARISATION, "R1 gamma on real images.")
    r1_seg: float | None = option(None, REGULARISATION, "R1 gamma on real masks.")
    path_regularize: float = option(0.5, REGULARISATION, "Path-length weight (0 = off).")
    path_batch_shrink: int = option(2, REGULARISATION, "Path-length batch = batch / N.")
    d_reg_every: int = option(16, REGULARISATION, "R1 every N steps.")
    g_reg_every: int = option(4, REGULARISATION, "Path-length regularisation every N steps.")
    mixing: float = option(0.0, REGULARISATION, "Style-mixing probability.")
    lambda_mask: float = option(
        100.0, REGULARISATION, "Weight of the mask terms (coarse vs fine; stage 2 adds the pretrained-mask MSE)."
    )
    gaze_norm: bool = option(
        True, GAZE, "G and D embed the gaze standardised by the label set's mean and std (the reference: raw radians)."
    )
    d_conditioning: str | None = option(
        None,
        GAZE,
        "How D sees the gaze: concat (the reference: joined before the first linear layer) or projection (inner "
        "product with D's features).",
    )
    d_gaze_mismatch: float = option(
        0.5,
        GAZE,
        "Stage 1: weight of a D term that calls real images with a wrong gaze fake (matching-aware D); 0 = the "
        "reference, which computes it and never uses it.",
    )
    mismatch_min_deg: float = option(15.0, GAZE, "Stage 1: a wrong gaze is drawn at least this far from the true one.")
    d_gaze_head: int | None = option(None, GAZE, "Width of D's gaze-regression head (0 = none).")
    lambda_gaze_head: float = option(
        1.0,
        GAZE,
        "Stage 1, AC-GAN style: D's head regresses the gaze of real images and G is pulled to make it read the "
        "conditioning gaze.",
    )
    gaze_model: str | None = option(
        None,
        GAZE,
        "Stage 1: a frozen gaze estimator (from `gcgan gaze fit`) for the --lambda-gaze loss; judge the result with "
        "another estimator.",
        path=True,
    )
    lambda_gaze: float = option(
        0.0, GAZE, "Stage 1: weight of the MSE between --gaze-model's reading of G's image and the conditioning gaze."
    )
    gaze_warmup: int = option(2000, GAZE, "Steps before the --lambda-gaze loss starts (G must draw irises first).")
    gaze_ramp: int = option(2000, GAZE, "Steps over which the --lambda-gaze weight then rises linearly.")
    mirror: bool = option(False, DATA, "Stage 1: flip real images and masks horizontally with p = 0.5, negating yaw.")
    augment: bool = option(
        False, DATA, "Translate and cut out real and fake images with their masks before D (differentiable)."
    )
    ema_decay: float = option(REFERENCE_EMA_DECAY, SCHEDULE, "EMA decay of G_ema per step.")
    n_sample: int = option(16, OUTPUT, "Samples in each grid.")
    log_every: int = option(100, OUTPUT, "Write a metrics.jsonl row (means since the last) every N steps.")
    viz_every: int = option(1000, OUTPUT, "Write a sample grid every N steps (0 = off).")
    save_every: int = option(10_000, OUTPUT, "Save a checkpoint every N steps (0 = only at the end).")
    fid_every: int = option(
        10_000, OUTPUT, "FID every N steps when --inception is given and the weights are here (0 = off)."
    )
    fid_n: int = option(10_000, OUTPUT, "Generated images per FID.")
    inception: str | None = option(
        None, OUTPUT, "FID statistics of the training domain (.npz from `gcgan inception`).", path=True
    )
    inception_weights: str | None = option(
        None,
        OUTPUT,
        "The FID Inception weights file (else $GCGAN_INCEPTION_WEIGHTS or the torch hub cache).",
        path=True,
    )
    keep: int = option(5, OUTPUT, "Keep the newest N checkpoints (0 = all).")
    ckpt: str | None = option(None, DATA, "Stage 2: the stage-1 checkpoint to start from.", "--network", path=True)
    gaze_labels: str | None = option(
        None,
        DATA,
        "Stage 2: the gaze label set (.npy [N, 2] or .json); default: the one stored in --network.",
        path=True,
    )
    swap_check: str = option(
        "pretrained",
        STAGE2,
        f"Stage 2, {'|'.join(SWAP_CHECKS)}: whose mask the unbroken test checks. pretrained never pairs a fake with "
        "a broken pretrained mask; current is the reference's inverted test.",
    )
    unbroken_class: str = option("iris", STAGE2, "Stage 2: the class of the unbroken-mask test.")
    unbroken_fraction: float = option(
        REFERENCE_UNBROKEN_FRACTION, STAGE2, "Stage 2: a mask is broken when that class covers more than this fraction."
    )
    seed: int = option(0, SCHEDULE, "Seed of weights, data order and sampling (rank r draws from seed + r).")
    precision: str = option(
        "fp32",
        DEVICE,
        f"{'|'.join(PRECISIONS)}: bf16 autocasts the main passes on CUDA (the regularisers stay fp32); tf32 allows "
        "TF32 matmuls.",
    )
    workers: int | None = option(
        None, DATA, "DataLoader workers per process (on the CPU 0 leaves the cores to the math).", "--workers", "-j"
    )
    deterministic: bool = option(
        False, DEVICE, "Deterministic algorithms (a resumed run repeats an unbroken one exactly)."
    )
    compile: bool = option(
        False,
        DEVICE,
        "torch.compile the G and D passes of the D and G steps (R1 and path length take a double backward "
        "and stay eager). For GPUs: the first steps are slow while each graph compiles. It works on the CPU "
        "too (inductor builds C++ with gcc). GCGAN_COMPILE_BACKEND picks the backend: inductor (default), "
        "or eager / aot_eager, which trace without generating code.",
    )
    device: str = option("auto", DEVICE, f"{DEVICE_CHOICES} (under torchrun: cuda:LOCAL_RANK).")

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
