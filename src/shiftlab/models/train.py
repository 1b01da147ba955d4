"""The seeded training loop: standard, adversarial (L2 PGD) or worst-of-k, on uint8 images of any size.

Deterministic for a given thread count: initialisation is the caller's (``torch.random.fork_rng`` around the
module's construction), sample order, augmentation and attacks draw from one generator seeded with
``TrainSettings.seed``; the global RNG is not touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.errors import InputError
from shiftlab.models.attacks import pgd_l2, worst_of
from shiftlab.models.nets import n_params
from shiftlab.progress import bar

TRAININGS = ("standard", "pgd-l2", "worst-of-k")


@dataclass(frozen=True)
class TrainSettings:
    """How to train (the loop's knobs; what to train is the module).

    Parameters
    ----------
    epochs, batch_size : int, default 15, 64
    lr, weight_decay : float, default 3e-3, 0.0
        Adam with a one-cycle schedule peaking at ``lr``.
    seed : int, default 0
        Seeds sample order, augmentation and attacks.
    shift : int, default 0
        Augmentation: a random translation of up to ±``shift`` px per axis and sample (edges replicated).
    training : {"standard", "pgd-l2", "worst-of-k"}, default "standard"
        ``pgd-l2``: each batch is replaced by its L2 PGD adversarial examples (``eps``, ``pgd_steps``,
        ``pgd_step``; no random start; inputs in [0, 1], normalisation inside). ``worst-of-k``: each sample is
        trained on whichever of its versions (``train_classifier(versions=...)``) has the highest loss then.
    eps, pgd_step : float or None
        L2 radius and step size of the attack, in [0, 1] pixel units.
    pgd_steps : int or None
    """

    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0
    seed: int = 0
    shift: int = 0
    training: str = "standard"
    eps: float | None = None
    pgd_steps: int | None = None
    pgd_step: float | None = None

    def __post_init__(self):
        if self.training not in TRAININGS:
            raise InputError(f"training must be one of {', '.join(TRAININGS)}, not {self.training!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError("epochs and batch_size must be at least 1")
        if self.training == "pgd-l2" and not (self.eps and self.pgd_steps and self.pgd_step):
            raise InputError("pgd-l2 training needs eps, pgd_steps and pgd_step")


def shift_images(x: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Translate each image by (dx[i], dy[i]) px, replicating the edge pixels (the paper) into the gap."""
    pad = int(max(dx.abs().max(), dy.abs().max())) if len(dx) else 0
    if pad == 0:
        return x
    n, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    rows = (pad - dy).view(n, 1) + torch.arange(h).view(1, h)
    cols = (pad - dx).view(n, 1) + torch.arange(w).view(1, w)
    return xp[torch.arange(n).view(n, 1, 1, 1), torch.arange(c).view(1, c, 1, 1),
              rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]




def train_classifier(module: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, settings: TrainSettings, *,
                     normalize: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
                     versions: torch.Tensor | None = None, progress: bool = True,
                     label: str = "model") -> tuple[nn.Module, dict]:
    """Train ``module`` (in place) on uint8 images; returns it in eval mode with a training record.

    Parameters
    ----------
    module : nn.Module
        Maps normalised images (N, C, H, W) to logits (N, K).
    pixels : uint8 tensor (N, C, H, W); labels : int64 tensor (N,)
    settings : TrainSettings
    normalize : callable, default identity
        Applied to images in [0, 1] before ``module`` (the recipe's mean/std), so attacks work in pixel space.
    versions : uint8 tensor (k, N, C, H, W), optional
        Worst-of-k training: the k versions of each sample (required exactly when ``settings.training`` is
        "worst-of-k"). A shift augmentation moves all versions of a sample alike.
    progress : bool, default True
    label : str
        Name on the progress bar.

    Returns
    -------
    module : nn.Module in eval mode
    record : dict
        ``seconds`` (wall time), ``epochs``, ``final_loss`` and ``final_acc`` (mean training loss and accuracy over
        the last epoch, on the inputs actually trained on: augmented, adversarial or worst-of-k),
        ``loss_per_epoch``, ``n_train``, ``threads``, ``params``, ``torch``, ``trained_at``.
    """
    cfg = settings
    if (versions is not None) != (cfg.training == "worst-of-k"):
        raise InputError("worst-of-k training needs versions, and only it takes them")
    t0 = time.perf_counter()
    n = len(labels)
    module.train()
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = (n + cfg.batch_size - 1) // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * per_epoch)

    def forward(x01: torch.Tensor) -> torch.Tensor:
        return module(normalize(x01))

    losses = []
    last_loss = last_acc = float("nan")
    with bar(f"training {label}", cfg.epochs, disable=not progress) as b:
        for _epoch in range(cfg.epochs):
            order = torch.randperm(n, generator=gen)
            tot_loss, tot_correct = 0.0, 0
            for s in range(0, n, cfg.batch_size):
                idx = order[s:s + cfg.batch_size]
                y = labels[idx]
                m = len(idx)
                if cfg.shift:
                    dx = torch.randint(-cfg.shift, cfg.shift + 1, (m,), generator=gen)
                    dy = torch.randint(-cfg.shift, cfg.shift + 1, (m,), generator=gen)
                if versions is not None:
                    xs = versions[:, idx].flatten(0, 1).float().div_(255)
                    if cfg.shift:  # the same translation for all versions of a sample
                        xs = shift_images(xs, dx.repeat(len(versions)), dy.repeat(len(versions)))
                    x = worst_of(forward, xs.view(len(versions), m, *xs.shape[1:]), y)
                else:
                    x = pixels[idx].float().div_(255)
                    if cfg.shift:
                        x = shift_images(x, dx, dy)
                if cfg.training == "pgd-l2":
                    module.eval()
                    x = pgd_l2(forward, x, y, eps=cfg.eps, steps=cfg.pgd_steps, step_size=cfg.pgd_step)
                    module.train()
                out = forward(x)
                loss = F.cross_entropy(out, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                tot_loss += loss.item() * m
                tot_correct += int((out.argmax(1) == y).sum())
            last_loss, last_acc = tot_loss / n, tot_correct / n
            losses.append(round(last_loss, 6))
            b.advance(1)
    module.eval()
    record = {
        "seconds": round(time.perf_counter() - t0, 3), "epochs": cfg.epochs,
        "final_loss": round(last_loss, 6), "final_acc": round(last_acc, 6), "loss_per_epoch": losses,
        "n_train": n, "threads": torch.get_num_threads(), "params": n_params(module),
        "torch": str(torch.__version__), "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return module, record
