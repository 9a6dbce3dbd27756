"""The GC-GAN loss terms as pure functions of tensors, each testable alone: stage 1's logistic D and G losses,
R1, mask consistency and path length, the gaze terms, and stage 2's mask pairing."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_logistic(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic D loss: mean softplus(D(fake)) + mean softplus(-D(real))."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def g_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """mean softplus(-D(fake))."""
    return F.softplus(-fake_logits).mean()


def r1_penalties(logits: torch.Tensor, image: torch.Tensor, seg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over the batch of the squared gradient norm of sum(D) w.r.t. the real image and the
    real mask (both must require grad); differentiable (create_graph) for the D update."""
    grad_image, grad_seg = torch.autograd.grad(logits.sum(), [image, seg], create_graph=True)
    return grad_image.pow(2).flatten(1).sum(1).mean(), grad_seg.pow(2).flatten(1).sum(1).mean()


def mask_consistency(seg_coarse: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """MSE between the coarse mask [B, C, c, c] and the fine logits average-pooled to c x c."""
    return F.mse_loss(seg_coarse, F.adaptive_avg_pool2d(seg, seg_coarse.shape[-1]))


def path_lengths(image: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
    """Per-sample path length [B']: sqrt(mean over W+ rows of |J^T y|^2), y ~ N(0, I)/sqrt(H W),
    the Jacobian of the image w.r.t. `latent` [B', rows, D] (a leaf that requires grad)."""
    noise = torch.randn_like(image) / (image.shape[2] * image.shape[3]) ** 0.5
    (grad,) = torch.autograd.grad((image * noise).sum(), latent, create_graph=True)
    return grad.pow(2).sum(2).mean(1).sqrt()


def path_penalty(
    lengths: torch.Tensor, mean_length: torch.Tensor, decay: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """(penalty, new running mean). The new mean a + decay (mean L - a) stays in the graph of the
    penalty, as in the reference; the caller detaches it before keeping it."""
    new_mean = mean_length + decay * (lengths.mean() - mean_length)
    return (lengths - new_mean).pow(2).mean(), new_mean


def broken_masks(seg: torch.Tensor, class_id: int, fraction: float) -> torch.Tensor:
    """[B] bool: samples whose class `class_id` covers more than `fraction` of the pixels
    (logit > 0): the reference's unbroken-mask test, which loops over the samples in Python, vectorised."""
    area = (seg[:, class_id] > 0).flatten(1).sum(1)
    return area > fraction * seg.shape[2] * seg.shape[3]


def paired_masks(
    seg: torch.Tensor, seg_pre: torch.Tensor, class_id: int, fraction: float, check: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 2: the mask a fake image is judged with, and [B] bool, which samples were swapped.

    The pretrained G's mask `seg_pre`, except where the checked mask's class `class_id` (iris) covers more than
    `fraction`: there the current G's own `seg`. `check="pretrained"` checks the pretrained mask (our default:
    never pair with a broken target); `"current"` is the reference, which checks the current mask and so drops
    the pull exactly when G breaks."""
    checked = seg_pre if check == "pretrained" else seg
    broken = broken_masks(checked.detach(), class_id, fraction)
    return torch.where(broken[:, None, None, None], seg, seg_pre), broken


def gaze_regression(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE between D's gaze-head estimate and the (standardised) gaze it should read."""
    return F.mse_loss(estimate, target)


def d_mismatch(logits_wrong_gaze: torch.Tensor) -> torch.Tensor:
    """Matching-aware D term: a real image shown with a wrong gaze is called fake, mean softplus(D)."""
    return F.softplus(logits_wrong_gaze).mean()


def scaled_gaze_error(estimate: torch.Tensor, gaze: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """MSE between an estimated and a target gaze [B, 2], per axis in units of `scale` (the label set's std), so
    pitch and yaw weigh alike whatever their spread."""
    return F.mse_loss(estimate / scale, gaze / scale)
