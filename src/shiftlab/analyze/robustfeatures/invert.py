"""Representation inversion (SPECS S4): find z whose representation g(z) matches g(x), starting from another image.

The loss is ``||g(z) − g(x)||₂`` per sample (not squared); each step moves every sample along its own
L2-normalised gradient and clips to [0, 1]; there is no ε-ball. Two settings of the same loop:

- Ilyas et al.'s D_R / D_NR: step 0.1, ``1e-10`` added to the gradient norm, no decay, a fixed number of steps;
- the MNIST study: step 1.0 · 0.996^t, no epsilon, at most 100 steps, stopping a sample once
  ``|loss_t − loss_{t−1}| < 1e-3`` (with loss_{−1} = 0; the test runs at the top of the loop, so one more
  step is taken after it first holds).

The last iterate is returned (the robustness library's ``use_best=False``). Samples never interact (the model is
in eval mode), so a batch gives the iterates of a per-image loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from shiftlab.errors import InputError


@contextmanager
def straight_through_last_relu(module: nn.Module) -> Iterator[None]:
    """Inside the block, the module's last ``nn.ReLU`` passes gradients straight through on the backward pass (the
    robustness library's ``fake_relu``), its forward values unchanged: inverting post-ReLU features then still
    moves the units that are off."""
    relus = [m for m in module.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        yield
        return
    if relus[-1].inplace:
        raise InputError(f"{type(module).__name__}: the last ReLU is in-place; straight-through needs its input")

    def hook(_m, inputs, out):
        x = inputs[0]
        return x + (out - x).detach()  # value relu(x), gradient identity

    handle = relus[-1].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@dataclass
class Inversion:
    """The result of :func:`invert`: ``z`` (N, C, H, W) in [0, 1], the feature distance at the start and at the end
    (N,), and the number of steps each sample took (N,)."""

    z: torch.Tensor
    start_distance: torch.Tensor
    final_distance: torch.Tensor
    steps: torch.Tensor


def invert(represent: Callable[[torch.Tensor], torch.Tensor], target: torch.Tensor, start: torch.Tensor, *,
           steps: int, step_size: float, decay: float = 1.0, grad_eps: float = 1e-10,
           tol: float | None = None) -> Inversion:
    """Minimise ``||represent(z) − target||₂`` per sample from ``start`` (module docstring).

    Parameters
    ----------
    represent : (N, C, H, W) in [0, 1] → (N, D) features, differentiable.
    target : (N, D) the features to match, g(x).
    start : (N, C, H, W) in [0, 1], the start images (another training image for each x).
    steps : maximum number of steps; step_size, decay : the step at t is ``step_size · decay**t``.
    grad_eps : added to the per-sample gradient norm (0: plain normalisation).
    tol : stop a sample once ``|loss_t − loss_{t−1}| < tol`` (None: always ``steps`` steps).
    """
    if steps < 0 or step_size <= 0:
        raise InputError(f"inversion needs steps >= 0 and step_size > 0, not {steps}, {step_size}")
    with torch.inference_mode(False), torch.enable_grad():
        target = target.detach()
        z = start.detach().clone()
        n = z.shape[0]
        shape = (-1,) + (1,) * (z.dim() - 1)
        active = torch.ones(n, dtype=torch.bool, device=z.device)
        taken = torch.zeros(n, dtype=torch.long, device=z.device)
        prev = torch.zeros(n, dtype=z.dtype, device=z.device)
        cur: torch.Tensor | None = None
        start_distance = None
        for t in range(steps):
            if tol is not None and cur is not None:
                active &= (cur - prev).abs() >= tol
                if not active.any():
                    break
            z.requires_grad_(True)
            dist = (represent(z) - target).flatten(1).norm(dim=1)
            (g,) = torch.autograd.grad(dist.sum(), z)
            dist = dist.detach()
            if start_distance is None:
                start_distance = dist.clone()
            if cur is not None:
                prev = torch.where(active, cur, prev)
            cur = dist if cur is None else torch.where(active, dist, cur)
            g = g / (g.flatten(1).norm(dim=1).view(shape) + grad_eps).clamp_min(1e-30)  # 0/0 only if matched
            step = step_size * decay ** t
            moved = (z.detach() - step * g).clamp(0, 1)
            z = torch.where(active.view(shape), moved, z.detach())
            taken += active.long()
        z = z.detach()
        with torch.no_grad():
            final = (represent(z) - target).flatten(1).norm(dim=1)
        if start_distance is None:
            start_distance = final.clone()
        return Inversion(z, start_distance, final, taken)
