"""The S4 protocol: build D_R, D_NR, D_det and D_rand from a (robust, standard) model pair, then train a fresh
standard model on each of D, D_R, D_NR, D_det, D_rand and measure clean and robust accuracy on the original test
set (L2 PGD at ε 0.25, as the published robust figures).

Published CIFAR-10 pattern (Ilyas et al. 2019): D_R ≈ 84 % clean / 48 % robust, D_NR ≈ 88 % / 0 %, D_rand ≈ 63 %,
D_det ≈ 44 % clean: robust features alone give robustness, non-robust features alone generalise, and the
relabelled adversarial sets generalise to the true labels although every training label looks wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from shiftlab.analyze.robustfeatures.construct import KINDS, InversionSettings, TargetedSettings, build_set
from shiftlab.analyze.robustfeatures.evaluate import attacked_correct
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError
from shiftlab.metrics.accuracy import clopper_pearson
from shiftlab.models.classifier import TorchClassifier
from shiftlab.models.nets import SmallCNN
from shiftlab.models.specs import load_model
from shiftlab.models.train import TrainSettings, train_classifier
from shiftlab.predict.engine import Engine
from shiftlab.progress import info
from shiftlab.registry import register_dataset

#: the training sets of the study, in the table's order: the original D and the four constructed ones
SETS = ("D", "D_R", "D_NR", "D_det", "D_rand")
_KIND_OF = {"D_R": "robust", "D_NR": "nonrobust", "D_det": "det", "D_rand": "rand"}


def _classifier(spec, ws) -> TorchClassifier:
    clf = load_model(spec, workspace=ws) if isinstance(spec, str) else spec
    if not isinstance(clf, TorchClassifier):
        raise InputError(f"{spec}: building D_R / D_NR needs a torch model (penultimate-feature gradients)")
    return clf


def decoded_pixels(manifest: Manifest, recipe, engine: Engine) -> np.ndarray:
    """uint8 (N, C, H, W) of the manifest at the recipe's geometry, through the decode-once cache."""
    cache = engine.cache(manifest, recipe).build()
    valid = cache.valid_mask()
    if not valid.all():
        raise InputError(f"{manifest.name}: {int((~valid).sum())} undecodable image(s); remove them first")
    return np.array(cache.pixels())  # a writable copy: torch refuses read-only memory maps


def robust_datasets(train: Manifest, robust_model, standard_model, *, workspace=None, seed: int = 0,
                    inversion: InversionSettings = InversionSettings(),
                    targeted: TargetedSettings = TargetedSettings(), progress: bool = True) -> dict[str, Manifest]:
    """D_R (inverting ``robust_model``), D_NR (inverting ``standard_model``), D_det and D_rand (targeted PGD on
    ``standard_model``) from ``train``; each written under ``<workspace>/robustfeatures/<name>/`` and registered
    as ``<train>-robust``, ``-nonrobust``, ``-det``, ``-rand``. Returns {set name in ``SETS``: Manifest}; finished
    sets are read back, not rebuilt."""
    engine = Engine(workspace, progress=progress)
    ws = engine.workspace
    try:
        robust, standard = _classifier(robust_model, ws), _classifier(standard_model, ws)
        out = {}
        for name, kind in _KIND_OF.items():
            clf = robust if kind == "robust" else standard
            pixels = decoded_pixels(train, clf.recipe, engine)
            set_name = f"{train.name}-{kind}"
            m = build_set(kind, clf, train, pixels, ws.root / "robustfeatures" / set_name, set_name, seed=seed,
                          inversion=inversion, targeted=targeted, progress=progress)
            register_dataset(m, set_name, workspace=ws)
            out[name] = m
        return out
    finally:
        engine.close()


@dataclass
class StudyResult:
    """One row per training set: ``set``, ``n_train``, ``clean`` (+ ``_low``/``_high``), ``robust`` (+ interval),
    the constructed sets' checks (``final/start distance`` median, targeted ``success``), and the settings."""

    table: pd.DataFrame
    settings: dict


def default_module(in_shape: tuple[int, int, int], n_classes: int, seed: int) -> nn.Module:
    """The study's fresh standard model: the zoo CNN at width 16, initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(in_shape, n_classes, width=16)


def robust_study(sets: Mapping[str, Manifest], test: Manifest, recipe, *, workspace=None,
                 settings: TrainSettings = TrainSettings(shift=2),
                 make_module: Callable[[tuple, int, int], nn.Module] = default_module, eps: float = 0.25,
                 steps: int = 20, seed: int = 0, progress: bool = True) -> StudyResult:
    """Train a fresh standard model on each of ``sets`` ({name: manifest}, e.g. ``{"D": train, **robust_datasets(…)}``)
    with ``settings`` and ``recipe``'s normalisation, and score it on ``test``: clean, and robust under L2 PGD
    (``eps``, ``steps``, step 2.5 ε/steps, no random start). Labels of ``test`` are the true ones."""
    engine = Engine(workspace, progress=progress)
    try:
        xt = torch.from_numpy(decoded_pixels(test, recipe, engine)).float().div_(255)
        yt = torch.from_numpy(np.array(test.labels))  # a copy: the manifest's array is read-only
        n_classes = len(test.vocabulary)
        rows = []
        for name, m in sets.items():
            px = torch.from_numpy(decoded_pixels(m, recipe, engine))
            module = make_module(tuple(px.shape[1:]), n_classes, seed)
            module, record = train_classifier(module, px, torch.from_numpy(np.array(m.labels)), settings,
                                              normalize=recipe.normalize, progress=progress, label=f"on {name}")
            clf = TorchClassifier(module, recipe, name=f"trained on {name}")
            with torch.no_grad():
                clean = (clf.logits(xt).argmax(1) == yt).numpy()
            robust = attacked_correct(clf, xt, yt, eps=eps, steps=steps, seed=seed) & clean
            n, c, r = len(yt), int(clean.sum()), int(robust.sum())
            t = m.table
            rows.append({"set": name, "n_train": len(m), "clean": c / n, **dict(zip(("clean_low", "clean_high"),
                         clopper_pearson(c, n))), "robust": r / n,
                         **dict(zip(("robust_low", "robust_high"), clopper_pearson(r, n))),
                         "feature_distance_ratio": float(np.median(t["final_distance"] / t["start_distance"]))
                         if "final_distance" in t else float("nan"),
                         "targeted_success": float(t["success"].mean()) if "success" in t else float("nan"),
                         "train_seconds": record["seconds"]})
            if progress:
                info(f"robust study: trained on {name}: clean {c / n:.1%}, robust {r / n:.1%}")
        cfg = {"eps": eps, "steps": steps, "seed": seed, "chance": 1 / n_classes, "test": test.name,
               "training": {k: getattr(settings, k) for k in ("epochs", "batch_size", "lr", "shift", "seed")}}
        return StudyResult(pd.DataFrame(rows), cfg)
    finally:
        engine.close()


def kinds() -> dict[str, str]:
    """The constructed sets by study name, with what each keeps as its label."""
    return {name: KINDS[kind] for name, kind in _KIND_OF.items()}


def write_study(result: StudyResult, folder: str | Path) -> Path:
    """``study.csv`` (and ``study.json`` with the settings) in ``folder``; returns the CSV's path."""
    from shiftlab.fsutil import atomic_write_bytes, atomic_write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "study.csv", result.table.to_csv(index=False).encode())
    atomic_write_json(folder / "study.json", {"settings": result.settings, "rows": result.table.to_dict("records")})
    return folder / "study.csv"
