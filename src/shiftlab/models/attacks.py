"""Attacks on any classifier in [0, 1] pixel space: L2 and L∞ projected gradient descent (untargeted or targeted,
random start on or off, per-sample projection, clipping to [0, 1]), worst-of-k, and APGD-L2 for any per-sample
objective (the spurious-features study's feature visualisations).

``forward`` maps images in [0, 1] (N, C, H, W) to logits (N, K); the normalisation belongs inside it (as
``Classifier.forward`` applies the recipe's), so the threat model is in pixel units. All attacks leave the
model's training mode and the global RNG untouched; PGD with a random start draws from ``generator``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from shiftlab.errors import InputError, MissingDependencyError

#: the names ``attack`` accepts (``--attack``); ``autoattack`` is torchattacks' standard AutoAttack
ATTACKS = ("pgd-l2", "pgd-linf", "autoattack")


def _ascent(forward, x: torch.Tensor, delta: torch.Tensor, y: torch.Tensor, targeted: bool) -> torch.Tensor:
    """The gradient of the summed cross-entropy at ``x + delta`` w.r.t. ``delta``: the direction that raises
    the loss on ``y`` (lowers it, with ``targeted``)."""
    delta.requires_grad_(True)
    loss = F.cross_entropy(forward(x + delta), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, delta)
    return -g if targeted else g


def l2_random_start(x: torch.Tensor, eps: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A start ``delta`` drawn uniformly in direction and radius (torchattacks' PGDL2 start: a Gaussian direction,
    a norm uniform in [0, eps]), clipped so that ``x + delta`` stays in [0, 1] (clipping only shrinks it)."""
    shape = (-1,) + (1,) * (x.dim() - 1)
    d = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    r = torch.rand(x.shape[0], generator=generator, dtype=x.dtype, device=x.device).view(shape)
    d = d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape) * r * eps
    return (x + d).clamp(0, 1) - x


def pgd_l2(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, *, eps: float,
           steps: int, step_size: float, targeted: bool = False, random_start: bool = False,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """L2 projected gradient descent in [0, 1] pixel space.

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
    random_start : bool, default False
        Begin from :func:`l2_random_start` (drawn from ``generator``) instead of ``x`` itself.

    Every sample is projected onto its own ε-ball (per-sample norms), so a batch gives the same iterates as a
    per-image loop up to float rounding.

    Returns
    -------
    x_adv : float tensor (N, C, H, W), values in [0, 1], with ``||x_adv - x||₂ <= eps`` per sample: the last
    iterate, not the best one.
    """
    # gradients are needed even when called under no_grad() or inference_mode()
    with torch.inference_mode(False), torch.enable_grad():
        x, y = x.detach().clone(), y.detach().clone()
        shape = (-1,) + (1,) * (x.dim() - 1)
        delta = l2_random_start(x, eps, generator) if random_start else torch.zeros_like(x)
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


def default_step_size(eps: float, steps: int) -> float:
    """Madry et al.'s rule of thumb, 2.5 · ε / steps: enough to reach the ball's edge from anywhere inside it."""
    return 2.5 * eps / max(steps, 1)


def attack(name: str, forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, *,
           eps: float, steps: int, step_size: float | None = None, targeted: bool = False,
           random_start: bool = False, generator: torch.Generator | None = None, seed: int = 0,
           n_classes: int | None = None) -> torch.Tensor:
    """Run the attack called ``name`` (one of ``ATTACKS``) on a batch; returns adversarial images in [0, 1].

    ``step_size`` defaults to :func:`default_step_size`. ``autoattack`` (L2, the standard version, ``seed``) needs
    torchattacks and ``n_classes``; it is untargeted only and ignores ``steps`` and ``step_size``.
    """
    if name not in ATTACKS:
        raise InputError(f"unknown attack {name!r}; one of {', '.join(ATTACKS)}")
    if eps <= 0 or steps < 0:
        raise InputError(f"an attack needs eps > 0 and steps >= 0, not eps {eps}, steps {steps}")
    step = default_step_size(eps, steps) if step_size is None else step_size
    if name == "pgd-l2":
        return pgd_l2(forward, x, y, eps=eps, steps=steps, step_size=step, targeted=targeted,
                      random_start=random_start, generator=generator)
    if name == "pgd-linf":
        return pgd_linf(forward, x, y, eps=eps, steps=steps, step_size=step, targeted=targeted,
                        random_start=random_start, generator=generator)
    if targeted:
        raise InputError("autoattack is untargeted here; use pgd-l2 or pgd-linf for targeted attacks")
    try:
        import torchattacks
    except ImportError:
        raise MissingDependencyError("--attack autoattack needs torchattacks; install it with: "
                                     "pip install torchattacks") from None

    class _Net(torch.nn.Module):  # torchattacks takes an nn.Module; the normalisation stays inside forward
        def forward(self, z):
            return forward(z)

    with torch.inference_mode(False), torch.enable_grad():
        aa = torchattacks.AutoAttack(_Net().eval(), norm="L2", eps=eps, version="standard",
                                     n_classes=n_classes or int(y.max()) + 1, seed=seed)
        return aa(x.detach().clone(), y.detach().clone()).detach()
