"""Attacks on any classifier in [0, 1] pixel space: L2 and L∞ projected gradient descent, worst-of-k, and APGD-L2
for any per-sample objective (the spurious-features study's feature visualisations).

``forward`` maps images in [0, 1] (N, C, H, W) to logits (N, K); the normalisation belongs inside it (as
``Classifier.forward`` applies the recipe's), so the threat model is in pixel units. All attacks leave the
model's training mode and the global RNG untouched; L∞ PGD with a random start draws from ``generator``.
"""

from __future__ import annotations

import math
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


def _apgd_checkpoints(steps: int) -> list[int]:
    """APGD's checkpoints (Croce & Hein 2020): p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03,
    0.06), as iteration numbers ⌈p_j · steps⌉ below ``steps``."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({int(math.ceil(q * steps)) for q in p[1:] if q < 1})


def apgd_l2_maximize(objective: Callable[[torch.Tensor], torch.Tensor], center: torch.Tensor, *, eps: float,
                     steps: int, generator: torch.Generator | None = None, momentum: float = 0.75,
                     rho: float = 0.75, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise a per-sample ``objective`` over the L2 ball of radius ``eps`` around ``center``, in [0, 1], by
    APGD (Croce & Hein 2020, the L2 version, one restart).

    Start: ``center`` plus random noise of L2 norm ``eps`` (from ``generator``), clipped to [0, 1]. Each step:
    a gradient step of size η along the per-sample L2-normalised gradient, projected onto the ε-ball around
    ``center`` and clipped; then the momentum combination (``momentum`` 0.75) of that point and the last step,
    projected and clipped again. η starts at 2ε and is halved per sample at the checkpoints where fewer than
    ``rho`` of the steps since the last checkpoint raised the objective, or where neither η nor the best value
    changed; a halving restarts that sample from its best point.

    Parameters: ``objective`` maps (N, C, H, W) in [0, 1] to (N,) values; ``center`` (N, C, H, W) in [0, 1];
    ``noise``: the start's direction per sample (N, C, H, W), scaled here to norm ε (default: drawn from
    ``generator``; a caller that gives each sample its own seed passes it, so batching changes nothing).
    Returns (best x (N, C, H, W), best objective (N,)): the best iterate per sample, not the last.
    """
    with torch.inference_mode(False), torch.enable_grad():
        c = center.detach().clone()
        n = c.shape[0]
        shape = (-1,) + (1,) * (c.dim() - 1)

        def project(x):
            d = x - c
            norm = d.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
            return (c + d * (eps / norm).clamp(max=1.0)).clamp(0, 1)

        def value_and_grad(x):
            x = x.detach().requires_grad_(True)
            f = objective(x)
            (g,) = torch.autograd.grad(f.sum(), x)
            return f.detach(), g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)

        if noise is None:
            noise = torch.randn(c.shape, generator=generator, dtype=c.dtype, device=c.device)
        x = (c + eps * noise / noise.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)).clamp(0, 1)
        f, g = value_and_grad(x)
        best_x, best_f = x.clone(), f.clone()
        eta = torch.full((n,), 2.0 * eps, dtype=c.dtype, device=c.device)
        x_prev = x.clone()
        checkpoints = set(_apgd_checkpoints(steps))
        last_cp, improved = 0, torch.zeros(n, device=c.device)
        eta_at_cp, best_at_cp = eta.clone(), best_f.clone()
        for k in range(steps):
            z = project(x + eta.view(shape) * g)
            a = 1.0 if k == 0 else momentum
            x_new = project(x + a * (z - x) + (1 - a) * (x - x_prev))
            f_new, g_new = value_and_grad(x_new)
            improved += (f_new > f).float()
            better = f_new > best_f
            best_x[better], best_f[better] = x_new[better], f_new[better]
            x_prev, x, f, g = x, x_new, f_new, g_new
            if k + 1 in checkpoints:
                few = improved < rho * (k + 1 - last_cp)
                stuck = (eta == eta_at_cp) & (best_f == best_at_cp)
                halve = few | stuck
                eta = torch.where(halve, eta / 2, eta)
                if halve.any():  # restart the halved samples from their best point
                    x = torch.where(halve.view(shape), best_x, x)
                    x_prev = torch.where(halve.view(shape), best_x, x_prev)
                    f2, g2 = value_and_grad(x)
                    f = torch.where(halve, f2, f)
                    g = torch.where(halve.view(shape), g2, g)
                last_cp, improved = k + 1, torch.zeros(n, device=c.device)
                eta_at_cp, best_at_cp = eta.clone(), best_f.clone()
        return best_x.detach(), best_f.detach()
