"""The main job on the embedded world: build it, train the zoo, evaluate, write the demo report.

``run_demo()`` is what ``shiftlab demo`` and ``make demo`` run. Everything it computes is cached in the
workspace (world, zoo weights, decoded tensors, predictions), so a second run only rewrites the report.
Each study adds its own section to the same report (one function per section below).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.data.world import World, WorldConfig, build_world
from shiftlab.evaluate import summarize
from shiftlab.models.zoo import ZOO, train_zoo
from shiftlab.predict.engine import predict
from shiftlab.report import Report, Section
from shiftlab.report.plots import accuracy_scatter
from shiftlab.workspace import Workspace

POOL_SAMPLE = 300


@dataclass
class DemoResult:
    report: Report
    path: Path  # index.html
    accuracy: pd.DataFrame  # one row per zoo model: test vs pool-sample accuracy


def pool_sample(world: World, n: int = POOL_SAMPLE) -> np.ndarray:
    """Row indices of a uniform, seeded sample of the pool among the candidates that really show the class
    they were collected for (a freshly collected test set keeps only those), with their true labels."""
    truth = world.truth("pool").set_index("id").loc[world.manifest("pool").ids]
    shows = np.flatnonzero((truth.collected_for == truth.true_label).to_numpy())
    rng = np.random.default_rng([world.seed, 7])
    return np.sort(rng.choice(shows, size=min(n, len(shows)), replace=False))


def accuracy_on_test_and_pool(world: World, specs: list[str], *, progress: bool = True) -> pd.DataFrame:
    ws = world.workspace
    test, pool = world.manifest("test"), world.manifest("pool")
    on_test = predict(test, specs, workspace=ws, progress=progress)
    on_pool = predict(pool, specs, workspace=ws, progress=progress)  # the whole pool: later studies reuse it
    rows = pool_sample(world)
    sample = pool.subset(rows, name="world-pool-sample")
    for p in on_pool:
        p.values, p.valid = p.values[rows], p.valid[rows]
    a = summarize(test, on_test).set_index("model")
    b = summarize(sample, on_pool).set_index("model")
    df = pd.DataFrame({
        "model": a.index, "family": [ZOO[m].family for m in a.index], "training": [ZOO[m].training for m in a.index],
        "top1_id": a.top1.to_numpy(), "top1_id_low": a.top1_low.to_numpy(), "top1_id_high": a.top1_high.to_numpy(),
        "top1_ood": b.top1.to_numpy(), "top1_ood_low": b.top1_low.to_numpy(),
        "top1_ood_high": b.top1_high.to_numpy()})
    df["drop"] = df.top1_id - df.top1_ood
    return df


def section_shift(world: World, acc: pd.DataFrame) -> Section:
    n_sample = len(pool_sample(world))
    sec = Section("Does accuracy hold on freshly collected data?",
                  f"Every zoo model on the world's **test** set (the original collection process, "
                  f"{len(world.manifest('test'))} images, with its planted label errors) against a uniform sample of "
                  f"**{n_sample} pool images** drawn by the shifted collection process (other pens, paper, focus "
                  "and placement). As on ImageNetV2, the models keep their order but all lose accuracy; the "
                  "points lie below the dashed y = x line, on a roughly straight line in logit space.",
                  anchor="shift")
    t = acc[["model", "family", "training", "top1_id", "top1_id_low", "top1_id_high", "top1_ood", "top1_ood_low",
             "top1_ood_high", "drop"]].rename(columns={"top1_id": "test top-1", "top1_ood": "pool top-1",
                                                       "drop": "drop (points)"})
    sec.table(t, caption="Top-1 accuracy with 95% Clopper–Pearson intervals.",
              formats={"test top-1": "{:.1%}", "pool top-1": "{:.1%}", "drop (points)": lambda v: f"{100 * v:.1f}"},
              intervals={"test top-1": ("top1_id_low", "top1_id_high"),
                         "pool top-1": ("top1_ood_low", "top1_ood_high")},
              highlight={"test top-1": "max", "pool top-1": "max"})
    fig = accuracy_scatter(acc, x="top1_id", y="top1_ood", label="model", group="family",
                           x_err=("top1_id_low", "top1_id_high"), y_err=("top1_ood_low", "top1_ood_high"),
                           xlabel="world test top-1 (original process)",
                           ylabel="pool sample top-1 (shifted process)",
                           title="Accuracy under the collection shift")
    sec.figure(fig, "shift-scatter", "Logit-scaled axes, ticks in percent; bars are 95% intervals.")
    test, pool = world.manifest("test"), world.manifest("pool")
    rows = pool_sample(world)[:16]
    sec.images([(p, f"{test.vocabulary.names[y]}") for p, y in zip(test.abspaths()[:16], test.labels[:16])],
               "The first 16 test images (original process), with their given labels.", name="test-images",
               size=72)
    pool_true = world.truth("pool").set_index("id").true_label
    sec.images([(pool.abspaths()[i], test.vocabulary.names[pool_true[pool.ids[i]]]) for i in rows],
               "16 images of the pool sample (shifted process).", name="pool-images", size=72)
    return sec


def intro(world: World) -> str:
    t = world.truth()
    c = world.info["counts"]
    return (
        "shiftlab's embedded default: a small, deterministic universe built from scikit-learn's 1,797 real "
        "8×8 handwritten-digit scans, rendered as 32×32 images by two collection processes and written as "
        "image files and manifests, so that every study runs end to end on a laptop CPU and can be checked "
        "against what was planted.\n\n"
        f"- **train** {c['train']} and **test** {c['test']} images from the original process; a candidate **pool** "
        f"of {c['pool']} images from a shifted process, with simulated crowd votes on HITs of 48;\n"
        f"- planted: {len(t['duplicates'])} near-duplicates of train, test and pool images in the pool; "
        f"{len(t['watermarks'])} watermarks (corner ones croppable); {len(t['label_errors'])} wrong labels in test; "
        f"{len(t['wrong_class_candidates'])} pool candidates collected for a class they do not show; a spurious "
        f"mark on classes {', '.join(t['spurious']['classes'])} (on {t['spurious']['rate_train']:.0%} of their "
        "training images) and a spurious set showing the marks without the digits;\n"
        f"- a multi-label set of {c['multilabel']} images in the TFDS shape (two-digit images, ambiguous blends, "
        "problematic images, and an ImageNet-M-like split of hard ones), a 28×28 grey view, and a class "
        "hierarchy over the ten digits;\n"
        f"- a zoo of {len(ZOO)} models (linear, MLP, CNNs of several widths and seeds, one L2-PGD adversarially "
        "trained and one worst-of-k-trained CNN), trained on train and cached.\n\n"
        "Each section below says what it shows. Everything here comes from files in the workspace and can be "
        "reproduced with `shiftlab demo`."
    )


def run_demo(workspace=None, *, seed: int = 0, progress: bool = True) -> DemoResult:
    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    world = build_world(ws, WorldConfig(seed=seed), progress=progress)
    train_zoo(world.manifest("train"), ws, progress=progress)
    specs = [f"world:{name}" for name in ZOO]
    acc = accuracy_on_test_and_pool(world, specs, progress=progress)
    report = Report("The digits world", intro(world), kind="shiftlab demo report",
                    meta={"world seed": world.seed, "zoo models": len(ZOO), "workspace": str(ws.root)})
    report.add(section_shift(world, acc))
    path = report.write(ws.reports / "demo")
    return DemoResult(report, path, acc)
