"""The MNIST study's own training loop (SPECS S4), kept apart from ``models.train``: the study trains with a
constant or exponentially decaying Adam rate (not the zoo's one-cycle schedule), and its worst-of-k model draws the
training perturbations afresh each time a sample is used, which a fixed ``versions`` tensor cannot express.

- The standard CNN and Table 2's CNNs: Keras' ``model.fit`` — Adam (ε 1e-7, Keras' default) at a constant rate, the
  batch-mean cross-entropy, the samples reshuffled every epoch, dropout on.
- The worst-of-k CNN: the original's eager loop — for each batch, all five group versions of its images are drawn
  now (a generator seeded by (seed, epoch, batch), so a rerun is identical), the version with the highest loss under
  the current model is kept per sample, and one Adam step (TF1's ε 1e-8) is taken on the *summed* loss at
  ``lr · decay_rate^(step / decay_steps)`` (TF's ``exponential_decay``, not staircase). The original calls
  ``model(x)`` in TF1 eager mode without ``training=True``, so Keras' learning phase is 0 and its dropout layers
  pass everything through, in the selection and in the step alike: ``dropout`` False reproduces that.

Initialisation is Keras' (Glorot-uniform weights, zero biases; ``init_study_cnn``): at a rate of 3e-5 the start
matters, and PyTorch's default start is about √3 × smaller for these layers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftlab.errors import InputError
from shiftlab.models.attacks import worst_of
from shiftlab.progress import bar


class StudyCNN(nn.Module):
    """Conv 3×3 32 → ReLU → Conv 3×3 64 → ReLU → MaxPool 2 → Dropout → Dense 100 ("FC", post-ReLU) → Dropout →
    Dense 10 (``fc``); the FC layer is the representation the study reconstructs."""

    def __init__(self, drop1: float = 0.2, drop2: float = 0.3, n_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Dropout(drop1), nn.Flatten(), nn.Linear(64 * 12 * 12, 100), nn.ReLU(),
                                  nn.Dropout(drop2))
        self.fc = nn.Linear(100, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def init_study_cnn(seed: int, **kw) -> StudyCNN:
    """A ``StudyCNN`` started as Keras starts it (Glorot-uniform kernels, zero biases), from its own seed; the
    global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = StudyCNN(**kw)
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
    return model


@dataclass(frozen=True)
class StudyTraining:
    """One training run of the study (module docstring). ``lr`` at step t is ``lr · decay_rate^(t / decay_steps)``
    (1.0: constant); ``worst_of_k``: train on the worst of the five group versions drawn per use; ``sum_loss``:
    step on the summed instead of the mean batch loss; ``adam_eps``: Adam's ε; ``dropout``: dropout active in
    training."""

    epochs: int
    batch_size: int
    lr: float
    decay_rate: float = 1.0
    decay_steps: int = 1
    worst_of_k: bool = False
    sum_loss: bool = False
    adam_eps: float = 1e-7
    dropout: bool = True
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.decay_steps < 1:
            raise InputError("study training needs epochs, batch_size, decay_steps >= 1 and lr > 0")


def fit_study_cnn(module: nn.Module, pixels: torch.Tensor, labels: torch.Tensor, t: StudyTraining, *,
                  perturb: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
                  progress: bool = True, label: str = "model",
                  on_epoch: Callable[[int, nn.Module], dict] | None = None) -> tuple[nn.Module, dict]:
    """Train ``module`` in place on ``pixels`` (N, 1, 28, 28): uint8, or floats in [0, 1] (the reconstructed sets,
    trained on raw as the study did); returns it in eval mode and a record
    (``seconds``, ``loss_per_epoch``, ``final_acc`` on what was trained on, ``steps``, ``final_lr``).

    ``perturb(x, rng)``: (N, 1, 28, 28) floats in [0, 1] → (k, N, 1, 28, 28), the k versions of a batch; required
    exactly when ``t.worst_of_k``. ``on_epoch(epoch, module)``, called after each epoch with the module in eval
    mode, returns figures to keep for that epoch (the record's ``per_epoch``): how an epoch count was chosen.
    """
    if (perturb is not None) != t.worst_of_k:
        raise InputError("worst-of-k training needs a perturb function, and only it takes one")
    t0 = time.perf_counter()
    device = next(module.parameters()).device
    n = len(labels)
    gen = torch.Generator().manual_seed(t.seed)
    opt = torch.optim.Adam(module.parameters(), lr=t.lr, eps=t.adam_eps)
    step, losses, acc, lr, per_epoch = 0, [], float("nan"), t.lr, []
    # dropout draws from torch's global generator: seed it from t.seed for the run (and put it back after), so
    # that a rerun trains the same weights whatever ran before it
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(t.seed)
        with bar(f"training {label}", t.epochs, disable=not progress) as b:
            for epoch in range(t.epochs):
                order = torch.randperm(n, generator=gen)
                tot_loss, tot_correct = 0.0, 0
                for bi, s in enumerate(range(0, n, t.batch_size)):
                    idx = order[s:s + t.batch_size]
                    x = pixels[idx].float().div_(255) if pixels.dtype == torch.uint8 else pixels[idx].float()
                    y = labels[idx].to(device)
                    if perturb is not None:
                        rng = np.random.default_rng([t.seed, epoch, bi])
                        versions = torch.from_numpy(perturb(x.numpy(), rng)).to(device)
                        module.train(t.dropout)  # "under the current model": the mode its step runs in
                        x = worst_of(module, versions, y)
                    x = x.to(device)
                    lr = t.lr * t.decay_rate ** (step / t.decay_steps)
                    for g in opt.param_groups:
                        g["lr"] = lr
                    module.train(t.dropout)
                    out = module(x)
                    loss = F.cross_entropy(out, y, reduction="sum" if t.sum_loss else "mean")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    step += 1
                    tot_loss += loss.item() * (1 if t.sum_loss else len(idx))
                    tot_correct += int((out.argmax(1) == y).sum())
                losses.append(round(tot_loss / n, 6))
                acc = tot_correct / n
                if on_epoch is not None:
                    module.eval()
                    per_epoch.append({"epoch": epoch + 1, **on_epoch(epoch + 1, module)})
                b.advance(1)
    module.eval()
    return module, {"seconds": round(time.perf_counter() - t0, 3), "loss_per_epoch": losses, "final_acc": acc,
                    "steps": step, "final_lr": lr, "threads": torch.get_num_threads(),
                    **({"per_epoch": per_epoch} if on_epoch is not None else {})}
