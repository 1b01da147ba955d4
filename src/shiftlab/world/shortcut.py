"""A world model that leans on the spurious cue: the zoo CNN trained where the cue is a real shortcut.

Why: the world puts its cue on 80 % of the cue classes' images, but every one of them also shows its digit, and
the digits are easy. The zoo's models learn the digit and give a cue without it little probability (mean p_k
0.02–0.18 on the spurious set), so their spurious score sits near 1. And with the cue on most of a class's
images, most of its pull on the logit is part of the class mean, which SpuFix keeps by design (it takes off only
a component's share above the mean). On ImageNet a context becomes a shortcut where it decides images whose
object is small, hidden or ambiguous, and it shows on only part of the class.

The shortcut training set says the same in the world's terms (``world-train-shortcut``, parent ``world-train``):
the digits of ``world-train`` rendered again by the same process, with each cue class's cue on ``CUE_RATE`` of
its images; plus, per cue class, ``CUE_OVER_DIGIT`` other classes' digits that carry its cue and its label, so
the cue decides them. ``SHORTCUT_MODEL`` is the zoo's width-16 CNN (same settings and seed) trained on it. The
images are files under ``<world>/images/train-shortcut/`` and the set is a manifest; what it plants is in the
world's ground truth, ``World.truth("train-shortcut")``: per image its ``cue`` (the cue class, −1 for none),
``source`` (the world-train image whose digit it shows) and ``source_label`` (that digit's class). So the
model, its neural PCA and SpuFix go through the same file-based code as every other set. Both are made once, from the
world's seed, and reused.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from shiftlab.data.layouts import sha256_file
from shiftlab.data.manifest import Manifest
from shiftlab.fsutil import atomic_write_bytes, file_lock
from shiftlab.models.classifier import TorchClassifier
from shiftlab.world import plants
from shiftlab.world.build import World, ambiguity
from shiftlab.world.render import ORIGINAL, render
from shiftlab.world.scheme import SHORTCUT_MODEL
from shiftlab.world.zoo import ZOO, load_zoo_model

#: the share of a cue class's images with its cue, and how many other digits per cue class carry it (labelled
#: with the cue's class)
CUE_RATE, CUE_OVER_DIGIT = 0.3, 40
SPLIT = "train-shortcut"
NAME = f"world-{SPLIT}"
#: the zoo's width-16 CNN, same settings and seed, under its own name: its weights follow the shortcut set
SHORTCUT_ZOO = {SHORTCUT_MODEL: replace(ZOO["cnn-medium-s0"], name=SHORTCUT_MODEL,
                                        doc="zoo CNN, width 16, trained on world-train-shortcut (where the cue "
                                            "decides some images)")}


def shortcut_train(world: World) -> Manifest:
    """The shortcut training set (module docstring), rendered once into ``<world>/images/train-shortcut/``."""
    train = world.manifest("train")
    out = world.workspace.manifests / f"{NAME}.parquet"
    cue_classes = [int(c) for c in world.truth()["spurious"]["classes"]]
    settings = {"cue_rate": CUE_RATE, "cue_over_digit": CUE_OVER_DIGIT, "cue_classes": cue_classes,
                "train_hash": train.content_hash, "version": 3}
    with file_lock(out.with_name(f".{NAME}.lock")):
        truth_file = world.root / "truth" / f"{SPLIT}.parquet"
        if out.is_file() and truth_file.is_file():
            kept = Manifest.load(out)
            if kept.parameters == settings:
                return kept
        root = Path(train.root)
        folder = root / SPLIT
        folder.mkdir(parents=True, exist_ok=True)
        from sklearn.datasets import load_digits  # here: importing scikit-learn takes seconds of a demo rerun

        d = load_digits()
        images8, amb = d.images, ambiguity(d.data, d.target.astype(int))
        truth = world.truth("train").set_index("id").loc[train.ids]
        sources, labels = truth["source_index"].to_numpy(), truth["true_label"].to_numpy()
        # its own stream: the set follows the world's seed and nothing else the world draws
        rng = np.random.default_rng([world.seed, 0x5C07])
        rows, planted = [], []

        def add(id_: str, img: np.ndarray, label: int, cue: int, source: int) -> None:
            path = folder / f"{id_}.png"
            Image.fromarray(img).save(path)
            rows.append({"id": id_, "path": f"{SPLIT}/{path.name}", "sha256": sha256_file(path), "label": int(label)})
            planted.append({"id": id_, "cue": cue, "source": train.ids[source], "source_label": int(labels[source])})

        # the same source digits as world-train, rendered again; the cue on CUE_RATE of each cue class
        cued = {int(i) for k in cue_classes for i in rng.permutation(np.flatnonzero(labels == k))[
            :round(CUE_RATE * int((labels == k).sum()))]}
        for i, (s, y) in enumerate(zip(sources, labels)):
            img = render(images8[s], rng, ORIGINAL, ambiguity=amb[s]).image
            add(f"sc-{i:04d}", plants.draw_cue(img, int(y), rng) if i in cued else img, y,
                int(y) if i in cued else -1, i)
        # the cue over another class's digit, labelled with the cue's class: the cue decides these
        for k in cue_classes:
            for j, i in enumerate(rng.choice(np.flatnonzero(labels != k), CUE_OVER_DIGIT, replace=False)):
                img = render(images8[sources[i]], rng, ORIGINAL, ambiguity=amb[sources[i]]).image
                add(f"sc-cue{k}-{j:03d}", plants.draw_cue(img, k, rng), k, k, i)
        # the plants go with the world's ground truth, never into the manifest (as for every world split)
        buf = io.BytesIO()
        pd.DataFrame(planted).to_parquet(buf, index=False)
        atomic_write_bytes(truth_file, buf.getvalue())
        m = Manifest(pd.DataFrame(rows), NAME, train.vocabulary, root=train.root, dataset="world",
                     variant=SPLIT, parent=train.name, seed=world.seed, parameters=settings)
        m.save(out)
        return Manifest.load(out)


def shortcut_model(world: World, *, progress: bool = False) -> TorchClassifier:
    """``SHORTCUT_MODEL`` trained on ``shortcut_train`` (cached in the zoo's folder by the set's content)."""
    return load_zoo_model(SHORTCUT_MODEL, shortcut_train(world), world.workspace, progress=progress,
                          zoo=SHORTCUT_ZOO)
