"""Training phases as data: what each iteration runs, in order, for each stage.

A phase is a set of forward passes, the weighted loss terms read from them, the optimiser that steps on
their sum and how often it runs. Stage 1 (labelled) and stage 2 (transfer to an unlabelled domain) are two
phase lists; `Trainer.iteration` runs whichever list its stage has and knows nothing of the terms.

A phase whose interval is N > 1 runs every N steps with its loss multiplied by N (lazy regularisation: R1
every `d_reg_every` steps, path length every `g_reg_every`). A term whose weight is 0 is not computed; a
phase with no term left is skipped. Adding a loss term: its math in `losses.py`, its weight as a
`TrainConfig` field, and a `Term` in the phase lists below (docs/adding-a-loss.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING

import torch

from gcgan_cli.core.training import conditioning, losses

if TYPE_CHECKING:
    from gcgan_cli.core.training.trainer import Trainer


@dataclass(frozen=True)
class Batch:
    """One batch of real data on the device; `gaze` is None for an unlabelled DB."""

    image: torch.Tensor
    mask: torch.Tensor  # one-hot as {-1, +1}
    gaze: torch.Tensor | None


class Passes(SimpleNamespace):
    """What one phase's forward passes produced: tensors its terms read (as attributes), `anchor`, a zero
    that keeps otherwise unused outputs in the graph (DDP then needs no search for unused parameters), and
    `records`, values logged beside the terms."""

    def __init__(self, anchor: torch.Tensor | float = 0.0, records: dict | None = None, **tensors):
        super().__init__(anchor=anchor, records=records or {}, **tensors)


@dataclass(frozen=True)
class Term:
    """One loss term: `value(trainer, passes)` -> a scalar, logged under `name`, weighted by `weight(trainer)`."""

    name: str
    value: Callable[[Trainer, Passes], torch.Tensor]
    weight: Callable[[Trainer], float]


@dataclass(frozen=True)
class Phase:
    name: str
    optimizer: str  # "d" or "g": whose parameters the summed terms update
    passes: Callable[[Trainer, Batch], Passes]
    terms: tuple[Term, ...]
    interval: str | None = None  # a TrainConfig field: run every that many steps (None: every step)
    autocast: bool = True  # the main passes run under --precision bf16; the regularisers (double backward) in fp32
    finish: Callable[[Trainer, Passes], dict] | None = None  # after the update; returns values to log

    def every(self, trainer: Trainer) -> int:
        return getattr(trainer.config, self.interval) if self.interval else 1


# --- weights ---


def one(trainer: Trainer) -> float:
    return 1.0


def config_weight(name: str) -> Callable[[Trainer], float]:
    """The weight is the TrainConfig field `name`."""
    return lambda trainer: getattr(trainer.config, name)


def head_weight(trainer: Trainer) -> float:
    """--lambda-gaze-head where D has a gaze head."""
    return trainer.config.lambda_gaze_head if trainer.d.gaze_head is not None else 0.0


def estimator_weight(trainer: Trainer) -> float:
    """--lambda-gaze after --gaze-warmup steps, ramped in linearly over --gaze-ramp."""
    config = trainer.config
    if trainer.gaze_estimator is None or trainer.step < config.gaze_warmup:
        return 0.0
    return config.lambda_gaze * min(1.0, (trainer.step - config.gaze_warmup + 1) / max(config.gaze_ramp, 1))


def r1_weight(name: str) -> Callable[[Trainer], float]:
    """gamma / 2, the gamma scaled to the image size unless given (TrainConfig.r1)."""
    index = ("r1_img", "r1_seg").index(name)
    return lambda trainer: trainer.r1_gammas[index] / 2


# --- passes ---


def d_passes_labelled(t: Trainer, batch: Batch) -> Passes:
    """Stage 1: D on G's fakes at their conditioning gazes and on real images at theirs; with the matching-aware
    term, the real images also at wrong gazes, from the same pass through D's convolutions."""
    with torch.no_grad():
        z, fake_gaze = t.draw_z(len(batch.image)), t.draw_gazes(len(batch.image))
        fake = t.main.g(z, fake_gaze)
    fake_logits = t.main.d_train(*t.augment(fake.image, fake.seg), fake_gaze)
    real, mask = t.augment(batch.image, batch.mask)
    gaze = batch.gaze
    mismatched = D_MISMATCH.weight(t) > 0
    if mismatched:
        gaze = torch.stack([gaze, conditioning.wrong_gazes(t.gaze_labels, gaze, t.config.mismatch_min_deg)])
    estimate = None
    if head_weight(t) > 0:
        real_logits, estimate = t.main.d_train(real, mask, gaze, estimate_gaze=True)
    else:
        real_logits = t.main.d_train(real, mask, gaze)
    wrong_logits = None
    if mismatched:
        real_logits, wrong_logits = real_logits.unbind(0)
    return Passes(
        gaze=batch.gaze,
        real_logits=real_logits,
        fake_logits=fake_logits,
        wrong_gaze_logits=wrong_logits,
        real_gaze_estimate=estimate,
        records={"real_score": real_logits.mean(), "fake_score": fake_logits.mean()},
    )


def d_passes_transfer(t: Trainer, batch: Batch) -> Passes:
    """Stage 2: an unconditional D; a fake is judged with the pretrained G's mask unless that is broken."""
    with torch.no_grad():
        z, fake_gaze = t.draw_z(len(batch.image)), t.draw_gazes(len(batch.image))
        fake = t.main.g(z, fake_gaze)
        fake_seg, swapped = t.paired_masks(fake.seg, t.g_pre(z, fake_gaze).seg)
    fake_logits = t.main.d_train(*t.augment(fake.image, fake_seg), None)
    real_logits = t.main.d_train(*t.augment(batch.image, batch.mask), None)
    records = {"swapped": swapped.float().mean(), "real_score": real_logits.mean(), "fake_score": fake_logits.mean()}
    return Passes(real_logits=real_logits, fake_logits=fake_logits, records=records)


def r1_passes(t: Trainer, batch: Batch) -> Passes:
    """D on real data that requires grad; the gradient penalties of image and mask from one backward."""
    real, mask = batch.image.detach().requires_grad_(True), batch.mask.detach().requires_grad_(True)
    anchor = 0.0
    if head_weight(t) > 0:  # the head is outside R1; a zero term keeps it in the graph
        logits, estimate = t.d_train(*t.augment(real, mask), batch.gaze, estimate_gaze=True)
        anchor = 0 * estimate.sum()
    else:
        logits = t.d_train(*t.augment(real, mask), batch.gaze)
    r1_img, r1_seg = losses.r1_penalties(logits, real, mask)
    return Passes(r1_img=r1_img, r1_seg=r1_seg, anchor=0 * logits[0, 0] + anchor)


def g_passes_labelled(t: Trainer, batch: Batch) -> Passes:
    """Stage 1: G's fakes at drawn gazes, and D's reading of them (with its gaze estimate where D has a head)."""
    z, fake_gaze = t.draw_z(len(batch.image)), t.draw_gazes(len(batch.image))
    fake = t.main.g_train(z, fake_gaze)
    seen = t.augment(fake.image, fake.seg)
    estimate = None
    if head_weight(t) > 0:
        logits, estimate = t.main.d(*seen, fake_gaze, estimate_gaze=True)
    else:
        logits = t.main.d(*seen, fake_gaze)
    return Passes(fake=fake, fake_gaze=fake_gaze, fake_logits=logits, fake_gaze_estimate=estimate)


def g_passes_transfer(t: Trainer, batch: Batch) -> Passes:
    """Stage 2: G's fakes judged with the paired mask; the pretrained G renders the current W+, so gradients
    reach the mapping through it."""
    z, fake_gaze = t.draw_z(len(batch.image)), t.draw_gazes(len(batch.image))
    fake = t.main.g_train(z, fake_gaze)
    paired, _ = t.paired_masks(fake.seg, t.g_pre.synthesize(fake.latent, fake_gaze).seg)
    return Passes(fake=fake, fake_gaze=fake_gaze, fake_logits=t.main.d(fake.image, paired), paired_seg=paired)


def path_passes(t: Trainer, batch: Batch) -> Passes:
    """G from W+ latents (a leaf) for the path-length penalty, on batch / path_batch_shrink samples."""
    size = max(1, len(batch.image) // t.config.path_batch_shrink)
    with torch.no_grad():
        latent = t.g.latent_of(torch.randn(size, t.model_config.style_dim, device=t.device))
    latent.requires_grad_(True)
    out = t.g_train(latent, t.draw_gazes(size), input_is_latent=True)
    penalty, new_mean = losses.path_penalty(losses.path_lengths(out.image, latent), t.mean_path_length)
    # W+ is a leaf, so the mapping is outside this graph: a zero term keeps its parameters in it.
    unused = sum(p.sum() for p in t.g.style.parameters() if p.requires_grad)
    return Passes(path=penalty, new_mean=new_mean, anchor=0 * (out.image[0, 0, 0, 0] + out.seg[0, 0, 0, 0] + unused))


def path_finish(t: Trainer, passes: Passes) -> dict:
    t.mean_path_length = t.ranks_mean(passes.new_mean.detach())
    return {"path_length": t.mean_path_length}


# --- terms ---

D_ADV = Term("d", lambda t, p: losses.d_logistic(p.real_logits, p.fake_logits), one)
D_GAZE_HEAD = Term(
    "d_gaze_head", lambda t, p: losses.gaze_regression(p.real_gaze_estimate, t.d.normalise(p.gaze)), head_weight
)
D_MISMATCH = Term("d_mismatch", lambda t, p: losses.d_mismatch(p.wrong_gaze_logits), config_weight("d_gaze_mismatch"))
R1_IMG = Term("r1_img", lambda t, p: p.r1_img, r1_weight("r1_img"))
R1_SEG = Term("r1_seg", lambda t, p: p.r1_seg, r1_weight("r1_seg"))
G_ADV = Term("g", lambda t, p: losses.g_nonsaturating(p.fake_logits), one)
MASK = Term("mask", lambda t, p: losses.mask_consistency(p.fake.seg_coarse, p.fake.seg), config_weight("lambda_mask"))
G_GAZE_HEAD = Term(
    "g_gaze_head", lambda t, p: losses.gaze_regression(p.fake_gaze_estimate, t.d.normalise(p.fake_gaze)), head_weight
)
G_GAZE_EST = Term(
    "g_gaze_est",
    lambda t, p: losses.scaled_gaze_error(t.gaze_estimator.read(p.fake.image), p.fake_gaze, t.d.gaze_std),
    estimator_weight,
)
PAIRED_MASK = Term(
    "pmask", lambda t, p: torch.nn.functional.mse_loss(p.fake.seg, p.paired_seg), config_weight("lambda_mask")
)
PATH = Term("path", lambda t, p: p.path, config_weight("path_regularize"))

R1 = Phase("D_r1", "d", r1_passes, (R1_IMG, R1_SEG), interval="d_reg_every", autocast=False)
PATH_LENGTH = Phase("G_path", "g", path_passes, (PATH,), interval="g_reg_every", autocast=False, finish=path_finish)

LABELLED = (
    Phase("D", "d", d_passes_labelled, (D_ADV, D_GAZE_HEAD, D_MISMATCH)),
    R1,
    Phase("G", "g", g_passes_labelled, (G_ADV, MASK, G_GAZE_HEAD, G_GAZE_EST)),
    PATH_LENGTH,
)
TRANSFER = (
    Phase("D", "d", d_passes_transfer, (D_ADV,)),
    R1,
    Phase("G", "g", g_passes_transfer, (G_ADV, MASK, PAIRED_MASK)),
    PATH_LENGTH,
)
PHASES = {1: LABELLED, 2: TRANSFER}


def phase_loss(t: Trainer, phase: Phase, batch: Batch) -> tuple[torch.Tensor, dict, Passes] | None:
    """(the weighted sum of the phase's terms times its interval, the unweighted terms, the passes), or None
    when every weight is 0 (nothing is computed then)."""
    active = [(term, weight) for term in phase.terms if (weight := term.weight(t)) > 0]
    if not active:
        return None
    passes = phase.passes(t, batch)
    values, total = {}, 0.0
    for term, weight in active:
        values[term.name] = term.value(t, passes)
        total = total + weight * values[term.name]
    every = phase.every(t)
    return (total * every if every > 1 else total) + passes.anchor, values, passes
