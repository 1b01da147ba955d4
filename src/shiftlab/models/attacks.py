"""Attacks on any classifier in [0, 1] pixel space: L2 and L∞ projected gradient descent, worst-of-k.

``forward`` maps images in [0, 1] (N, C, H, W) to logits (N, K); the normalisation belongs inside it (as
``Classifier.forward`` applies the recipe's), so the threat model is in pixel units. All attacks leave the
model's training mode and the global RNG untouched; L∞ PGD with a random start draws from ``generator``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def _ascent(forward, x: torch.Tensor, delta: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """The gradient of the summed cross-entropy at ``x + delta`` w.r.t. ``delta``: the direction that raises
    the loss on ``y`` (lowers it, with ``targeted``)."""
    delta.requires_grad_(True)
    loss = F.cross_entropy(forward(x + delta), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, delta)
    return -g if targeted else g


def pgd_l2(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, *, eps: float,
           steps: int, step_size: float, targeted: bool = False) -> torch.Tensor:
    """L2 projected gradient descent in [0, 1] pixel space (no random start).

    Parameters
    ----------
    forward : callable
        Images in [0, 1] (N, C, H, W) → logits (N, K); normalisation belongs inside it.
    x : float tensor (N, C, H, W) in [0, 1]
    y : int tensor (N,)
        True labels (untargeted: the loss on them is increased) or, with ``targeted``, the targets
        (the loss on them is decreased).
    eps, step_size : float
        L2 radius of the perturbation and length of each (per-sample L2-normalised) gradient step.
    steps : int

    Returns
    -------
    x_adv : float tensor (N, C, H, W), values in [0, 1], with ``||x_adv - x||₂ <= eps`` per sample.
    """
    # gradients are needed even when called under no_grad() or inference_mode()
    with torch.inference_mode(False), torch.enable_grad():
        x, y = x.detach().clone(), y.detach().clone()
        shape = (-1,) + (1,) * (x.dim() - 1)
        delta = torch.zeros_like(x)
        for _ in range(steps):
            g = _ascent(forward, x, delta, y, targeted)
            g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
            delta = delta.detach() + step_size * g
            norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
            delta = delta * (eps / norm).clamp(max=1.0)
            delta = (x + delta).clamp(0, 1) - x  # clipping moves towards x: the norm stays <= eps
        return (x + delta).detach()


def worst_of(forward: Callable[[torch.Tensor], torch.Tensor], versions: torch.Tensor,
             y: torch.Tensor) -> torch.Tensor:
    """Per sample, the version with the highest cross-entropy loss (ties: the lowest version index).

    versions: (k, N, C, H, W) in [0, 1]; y: (N,) labels. Returns (N, C, H, W), without gradients.
    """
    k, n = versions.shape[:2]
    with torch.no_grad():
        losses = F.cross_entropy(forward(versions.flatten(0, 1)), y.repeat(k), reduction="none").view(k, n)
    return versions[losses.argmax(0), torch.arange(n)]


def pgd_linf(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, *, eps: float,
             steps: int, step_size: float, targeted: bool = False, random_start: bool = False,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """L∞ projected gradient descent in [0, 1] pixel space (Madry et al. 2018): signed-gradient steps.

    Parameters as in :func:`pgd_l2`; ``eps`` and ``step_size`` are per-pixel bounds in [0, 1] units (8/255 is
    ImageNet's usual radius). ``random_start``: begin from a uniform draw in the ε-box (from ``generator``).

    Returns
    -------
    x_adv : float tensor (N, C, H, W), values in [0, 1], with ``|x_adv - x| <= eps`` elementwise.
    """
    with torch.inference_mode(False), torch.enable_grad():
        x, y = x.detach().clone(), y.detach().clone()
        if random_start:
            noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            delta = ((2 * noise - 1) * eps + x).clamp(0, 1) - x
        else:
            delta = torch.zeros_like(x)
        for _ in range(steps):
            g = _ascent(forward, x, delta, y, targeted)
            delta = (delta.detach() + step_size * g.sign()).clamp(-eps, eps)
            delta = (x + delta).clamp(0, 1) - x  # inside [0, 1] and still inside the ε-box around x
        return (x + delta).detach()
