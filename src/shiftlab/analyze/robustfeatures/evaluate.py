"""Clean and robust accuracy of many models on one test set: the library behind ``shiftlab robust eval``.

Clean accuracy comes from the decode-once prediction engine (and its store); the robust accuracy attacks the same
decoded pixels (one decoded cache per manifest × geometry, shared by every model) in [0, 1] pixel space with the
model's normalisation inside its forward, so ε is in pixel units whatever the model's recipe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from shiftlab.data.layouts import read_dataset
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError
from shiftlab.metrics.accuracy import clopper_pearson
from shiftlab.models.attacks import attack, default_step_size
from shiftlab.models.classifier import Classifier
from shiftlab.models.specs import load_model
from shiftlab.predict.engine import Engine, resolve_device
from shiftlab.progress import bar

COLUMNS = ["model", "dataset", "attack", "eps", "steps", "n_scored", "clean", "clean_low", "clean_high",
           "robust", "robust_low", "robust_high"]


@dataclass
class RobustEvalResult:
    """One row per model (``COLUMNS``; accuracies as fractions) and the attack's settings."""

    table: pd.DataFrame
    settings: dict


def attacked_correct(clf: Classifier, x: torch.Tensor, y: torch.Tensor, *, name: str = "pgd-l2", eps: float,
                     steps: int, step_size: float | None = None, seed: int = 0, random_start: bool = False,
                     batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """(N,) bool: is ``clf`` still right on each image of ``x`` (float (N, C, H, W) in [0, 1]) after the attack?

    Batches are attacked independently (per-sample projection), each with its own generator seeded from
    (``seed``, batch index), so the result does not depend on anything but the inputs and the seed.
    """
    out = np.zeros(len(y), bool)
    with bar(f"attacking {clf.name}", len(y), disable=not progress) as b:
        for i, s in enumerate(range(0, len(y), batch_size)):
            xb, yb = x[s:s + batch_size].to(clf.device), y[s:s + batch_size].to(clf.device)
            gen = torch.Generator(device=clf.device).manual_seed(seed * 1_000_003 + i)
            xa = attack(name, clf.logits, xb, yb, eps=eps, steps=steps, step_size=step_size, seed=seed,
                        random_start=random_start, generator=gen, n_classes=clf.num_classes)
            with torch.no_grad():
                out[s:s + len(yb)] = (clf.logits(xa).argmax(1) == yb).cpu().numpy()
            b.advance(len(yb))
    return out


def robust_accuracy(dataset: str | Manifest, models: Sequence[str | Classifier], *, attack_name: str = "pgd-l2",
                    eps: float | Sequence[float] = 0.5, steps: int = 20, step_size: float | None = None,
                    random_start: bool = False, seed: int = 0, limit: int | None = None, workspace=None,
                    device: str = "auto", batch_size: int = 128, progress: bool = True) -> RobustEvalResult:
    """Clean and robust top-1 (Clopper–Pearson 95 % intervals) of every model on ``dataset``, at one radius or at
    each of several (one row per model and radius: a robustness curve, the same decoded images and clean
    predictions for every radius).

    Parameters
    ----------
    dataset : registered name, path or Manifest; its labelled, decodable images are scored.
    models : list of specs or Classifiers.
    attack_name : one of ``shiftlab.models.attacks.ATTACKS`` (default ``pgd-l2``).
    eps : the attack's radius in pixel units in [0, 1], or a list of radii.
    steps, step_size : the attack's iterations and step (default 2.5 ε/steps, for each radius).
    limit : int, optional
        Score only the first ``limit`` labelled images (in manifest order) — the attack costs ``steps`` backward
        passes per image.
    """
    if limit is not None and limit < 1:
        raise InputError(f"limit must be at least 1, not {limit}")
    radii = [float(e) for e in (eps if isinstance(eps, Sequence) else [eps])]
    if not radii or any(not np.isfinite(e) or e <= 0 for e in radii):
        raise InputError(f"eps must be one or more radii > 0, not {eps!r}")
    aa = attack_name == "autoattack"  # its own schedules: our steps and step size do not reach it
    engine = Engine(workspace, device=device, batch_size=batch_size, progress=progress)
    manifest = dataset if isinstance(dataset, Manifest) else read_dataset(dataset, workspace=engine.workspace)
    labels = np.asarray(manifest.labels)
    rows = []
    try:
        for m in models:
            clf = load_model(m, workspace=engine.workspace) if isinstance(m, str) else m
            if not isinstance(clf, Classifier):
                raise InputError(f"{m}: precomputed predictions cannot be attacked; give a model")
            clf.to(resolve_device(device))
            pred = engine.predict(manifest, clf)  # decodes once into the cache the attack reads too
            use = np.flatnonzero(pred.valid & (labels >= 0))[:limit]
            if not len(use):
                raise InputError(f"{manifest.name} has no labelled, decodable image to score")
            clean = pred.values[use].argmax(1) == labels[use]
            pixels = engine.cache(manifest, clf.recipe).build().pixels()
            x = torch.from_numpy(np.ascontiguousarray(pixels[use])).float().div_(255)
            n, c = len(use), int(clean.sum())
            for e in radii:
                robust = attacked_correct(clf, x, torch.from_numpy(labels[use]), name=attack_name, eps=e,
                                          steps=steps, step_size=step_size, seed=seed, random_start=random_start,
                                          batch_size=batch_size, progress=progress)
                robust &= clean  # an image the model already gets wrong counts as broken (RobustBench's convention)
                r = int(robust.sum())
                rows.append({"model": clf.name, "dataset": manifest.name, "attack": attack_name, "eps": e,
                             "steps": None if aa else steps, "n_scored": n, "clean": c / n,
                             **_interval("clean", c, n), "robust": r / n, **_interval("robust", r, n)})
    finally:
        engine.close()
    step_sizes = [None if aa else step_size if step_size is not None else default_step_size(e, steps) for e in radii]
    one = len(radii) == 1  # one radius: plain numbers, as before radii could be listed
    settings = {"attack": attack_name, "eps": radii[0] if one else radii, "steps": None if aa else steps,
                "random_start": random_start, "seed": seed, "limit": limit,
                "step_size": step_sizes[0] if one else step_sizes}
    return RobustEvalResult(pd.DataFrame(rows, columns=COLUMNS), settings)


def _interval(name: str, k: int, n: int) -> dict:
    lo, hi = clopper_pearson(k, n)
    return {f"{name}_low": lo, f"{name}_high": hi}
