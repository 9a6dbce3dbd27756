"""The GC-GAN loss terms as pure functions (spec §5.2, §5.3, §6.2), each testable alone."""

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
    (logit > 0); spec §6.2's unbroken-mask test, vectorised."""
    area = (seg[:, class_id] > 0).flatten(1).sum(1)
    return area > fraction * seg.shape[2] * seg.shape[3]
