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

from shiftlab.analyze.evaluate import summarize
from shiftlab.analyze.mistakes import review_config, review_queue_items
from shiftlab.analyze.robustness import fit_warnings
from shiftlab.metrics.robustness import effective_robustness
from shiftlab.predict.engine import predict
from shiftlab.registry import register_dataset
from shiftlab.report import Report, Section
from shiftlab.report.figure_cache import FigureCall, figure_cache
from shiftlab.report.figures import robustness_plot
from shiftlab.review import tasks as tk
from shiftlab.review.images import warm_thumbnails
from shiftlab.workspace import Workspace
from shiftlab.world import World, WorldConfig, build_world
from shiftlab.world.easyset_section import easyset_section
from shiftlab.world.imagenetv2 import WorldTestSets, build_world_testsets
from shiftlab.world.label_sections import label_issues_section, multilabel_section
from shiftlab.world.plants import mark_examples
from shiftlab.world.robust_section import robust_section
from shiftlab.world.spurious_section import spurious_section
from shiftlab.world.zoo import ZOO, train_zoo

POOL_SAMPLE = 300


@dataclass
class DemoResult:
    """``run_demo``'s result: the report, the path of its ``index.html``, the zoo's test vs pool-sample accuracies
    (``accuracy_on_test_and_pool``) and the world's own ImageNetV2 test sets.
    """

    report: Report
    path: Path  # index.html
    accuracy: pd.DataFrame  # one row per zoo model: test vs pool-sample accuracy
    imagenetv2: WorldTestSets  # the world's own ImageNetV2: dedup, recall, resolution, the three variants


def pool_sample(world: World, n: int = POOL_SAMPLE) -> np.ndarray:
    """Row indices of a uniform, seeded sample of the pool among the candidates that really show the class
    they were collected for (a freshly collected test set keeps only those), with their true labels."""
    truth = world.truth("pool").set_index("id").loc[world.manifest("pool").ids]
    shows = np.flatnonzero((truth.collected_for == truth.true_label).to_numpy())
    rng = np.random.default_rng([world.seed, 7])
    return np.sort(rng.choice(shows, size=min(n, len(shows)), replace=False))


def accuracy_on_test_and_pool(world: World, models: list[str], *, progress: bool = True) -> pd.DataFrame:
    """Top-1 of each model on the world's test set and on the pool sample (``pool_sample``): one row per model.

    Columns ``model, family, training``, ``top1_id`` and ``top1_ood`` with their ``_low`` / ``_high`` 95%
    intervals, and ``drop`` = top1_id − top1_ood (all fractions). Predicts on the whole pool, which later
    studies reuse.
    """
    ws = world.workspace
    test, pool = world.manifest("test"), world.manifest("pool")
    on_test = predict(test, models, workspace=ws, progress=progress)
    on_pool = predict(pool, models, workspace=ws, progress=progress)  # the whole pool: later studies reuse it
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


def shift_fit(world: World, acc: pd.DataFrame):
    """The line of pool-sample against test top-1 in logit space over the standard-trained zoo models
    (``effective_robustness`` of ``acc``, types = the training column), with a seeded bootstrap."""
    return effective_robustness(acc, "top1_id", "top1_ood", reference="standard", group_col="training", n_boot=500,
                                seed=world.seed)


def shift_figure(er):
    """The collection shift's scatter: each zoo model's pool-sample against test top-1 on logit axes, coloured by
    training, with the line of ``shift_fit`` and its band (the legend beside the axes, where it covers nothing)."""
    return robustness_plot(er, **_shift_plot_options(er))


def _shift_plot_options(er) -> dict:
    return dict(band=er.band(), group_col="type", xlabel="world test top-1 (original process)",
                ylabel="pool sample top-1 (shifted process)", title="Accuracy under the collection shift",
                legend_loc="outside", warning="; ".join(fit_warnings(er)) or None, figsize=(9.0, 6.0))


def section_shift(world: World, acc: pd.DataFrame) -> Section:
    """The report section on the collection shift: the accuracy table of ``acc`` (``accuracy_on_test_and_pool``),
    its logit-scaled scatter plot with the line fitted over the standard-trained models, a legend of the marks
    the world plants, and 16 test and 16 pool-sample images.
    """
    n_sample = len(pool_sample(world))
    er = shift_fit(world, acc)
    robust = sorted({t for t in acc.training if t != "standard"})
    sec = Section("Does accuracy hold on freshly collected data?",
                  f"Every zoo model on the world's **test** set (the original collection process, "
                  f"{len(world.manifest('test'))} images, with its planted label errors) against a uniform sample of "
                  f"**{n_sample} pool images** drawn by the shifted collection process (other pens, paper, focus "
                  "and placement). As on ImageNetV2, the models keep their order but all lose accuracy; the "
                  "points lie below the dashed y = x line, close to a straight line in logit space: the red line, "
                  f"fitted over the {er.fit.n} standard-trained models.",
                  anchor="shift")
    t = acc[["model", "family", "training", "top1_id", "top1_id_low", "top1_id_high", "top1_ood", "top1_ood_low",
             "top1_ood_high", "drop"]].rename(columns={"top1_id": "test top-1", "top1_ood": "pool top-1",
                                                       "drop": "drop (points)"})
    sec.table(t, caption="Top-1 accuracy with 95% Clopper–Pearson intervals.",
              formats={"test top-1": "{:.1%}", "pool top-1": "{:.1%}", "drop (points)": lambda v: f"{100 * v:.1f}"},
              intervals={"test top-1": ("top1_id_low", "top1_id_high"),
                         "pool top-1": ("top1_ood_low", "top1_ood_high")},
              highlight={"test top-1": "max", "pool top-1": "max"})
    sec.figure(FigureCall(robustness_plot, er, **_shift_plot_options(er)), "shift-scatter",  # = shift_figure(er)
               f"Logit-scaled axes, ticks in percent; bars are 95% intervals. The red line is the least-squares fit in "
               f"logit space over the {er.fit.n} standard-trained models, with its 95% bootstrap band; the "
               f"robust-trained models ({', '.join(robust)}) have markers of their own and are not in the fit.")
    test, pool = world.manifest("test"), world.manifest("pool")
    names = test.vocabulary.names
    truth = world.truth()
    sec.images(mark_examples([int(c) for c in truth["spurious"]["classes"]], names, world.seed),
               "The marks on the thumbnails of this report, each drawn by the code that plants it: the spurious cues "
               "of "
               f"{', '.join(names[int(c)] for c in truth['spurious']['classes'])} (on "
               f"{truth['spurious']['rate_train']:.0%} of those classes' train and test images, "
               f"{truth['spurious']['rate_other']:.0%} of the others' and {truth['spurious']['rate_pool']:.0%} in the "
               "pool) and the two kinds of watermark. The blue dot shows as a small cross at this size.",
               name="marks", size=96)
    rows = pool_sample(world)[:16]
    sec.images([(p, f"{names[y]}") for p, y in zip(test.abspaths()[:16], test.labels[:16])],
               "The first 16 test images (original process), with their given labels.", name="test-images",
               size=72)
    pool_true = world.truth("pool").set_index("id").true_label
    sec.images([(pool.abspaths()[i], names[pool_true[pool.ids[i]]]) for i in rows],
               "16 images of the pool sample (shifted process), with their true labels.", name="pool-images", size=72)
    return sec


VARIANT_TITLES = {"a": "Threshold0.7 (a)", "b": "MatchedFrequency (b)", "c": "TopImages (c)"}


def section_imagenetv2(world: World, models: list[str], acc: pd.DataFrame, *,
                       progress: bool = True) -> tuple[Section, pd.DataFrame, object]:
    """The world's own ImageNetV2: pool → HITs → votes → near-duplicates → the three variants → the zoo."""
    sets = build_world_testsets(world, seed=world.seed, progress=progress)
    on_test = acc.set_index("model").rename(columns={"top1_id": "top1"})  # section 1 scored the test set
    truth = world.truth()
    dup_of_originals = {d["id"] for d in truth["duplicates"] if d["source_split"] in ("train", "test")}
    watermarked = {w["id"] for w in truth["watermarks"] if w["split"] == "pool"}
    wrong = {w["id"] for w in truth["wrong_class_candidates"]}
    rows, drops = [], []
    for letter, m in sets.manifests.items():
        on_set = summarize(m, predict(m, models, workspace=world.workspace, progress=progress)).set_index("model")
        d = on_test.top1.loc[on_set.index] - on_set.top1
        ids = set(m.ids)
        rows.append({"variant": VARIANT_TITLES[letter], "images": len(m), "valid": sets.revisions[letter].is_valid,
                     "mean drop": d.mean(), "min drop": d.min(), "max drop": d.max(),
                     "train/test copies": len(ids & dup_of_originals),
                     "watermarked": len(ids & watermarked), "wrong class": len(ids & wrong)})
        drops.append(pd.DataFrame({"model": on_set.index, "variant": letter,
                                   "id_acc": on_test.top1.loc[on_set.index].to_numpy(),
                                   "ood_acc": on_set.top1.to_numpy()}))
    pool = world.manifest("pool")
    rows.append({"variant": "whole pool", "images": len(pool), "valid": None,
                 "mean drop": float("nan"), "min drop": float("nan"), "max drop": float("nan"),
                 "train/test copies": len(set(pool.ids) & dup_of_originals),
                 "watermarked": len(set(pool.ids) & watermarked), "wrong class": len(set(pool.ids) & wrong)})
    table = pd.DataFrame(rows)
    sec = Section("A new test set, built like ImageNetV2",
                  "The world's candidate pool goes through ImageNetV2's process with the same code a dataset "
                  "builder runs from the CLI: the simulated crowd's votes give each candidate a selection "
                  "frequency; near-duplicates of train, test and pool images are searched with l2, DSSIM, "
                  "embedding and perceptual-hash distances (review thresholds read off the data, as the digits "
                  "resemble one another far more than photos do) and with l2 at the best of a few small crops "
                  "and shifts (its own threshold: correlation ≥ 0.99), and reviewed — here by an oracle that knows "
                  "the planted pairs, in the real process by a person — then resolved; and the three variants are "
                  "sampled, 10 images per class. Every zoo model is then evaluated on each variant.",
                  anchor="imagenetv2")
    pct = lambda v: "—" if v != v else f"{100 * v:.1f}"  # noqa: E731
    sec.table(table, caption="Drop = world-test top-1 − variant top-1, over the zoo, in points. The last "
              "three columns count planted facts that reached each set.",
              formats={"mean drop": pct, "min drop": pct, "max drop": pct,
                       "valid": lambda v: "—" if v is None else ("yes" if v else "no")})
    sec.table(sets.recall, caption="Near-duplicate recall on the planted pairs, per metric: found = within the "
              "review threshold among the neighbours looked at; queued = in the review queue, which by S1.3 "
              "never holds a pair of one source id (queueable = the planted pairs that are not; the rest are "
              "linked by their source id without review); and the queue's size.")
    b = pd.concat(drops)
    b = b[b.variant == "b"].assign(type=[ZOO[m].training for m in b[b.variant == "b"].model])
    er = effective_robustness(b, "id_acc", "ood_acc", reference="standard", n_boot=500, seed=world.seed)
    sec.figure(FigureCall(robustness_plot, er, band=er.band(), group_col="type",
                          xlabel="world test top-1", ylabel="MatchedFrequency (b) top-1",
                          title="Effective robustness on the world's MatchedFrequency set", legend_loc="outside",
                          warning="; ".join(fit_warnings(er)) or None, figsize=(9.0, 6.0)),
               "imagenetv2-robustness", "Fit over the standard-trained zoo models with its 95% bootstrap band; "
               "points above it are effectively robust.")
    return sec, table, sets


#: the mistakes queue of the review app holds this model's errors on the world's multi-label set
REVIEW_MISTAKES_MODEL = "cnn-medium-s0"


def prepare_review_tasks(world: World, sets, study, *, progress: bool = True) -> list[dict]:
    """The review app's tasks on the demo workspace, so that ``shiftlab review serve`` opens real work:
    the near-duplicate queue of the ImageNetV2 section, the class browser over the voted pool, the HIT
    pages of the world's batch, watermark flagging over the pool and one model's mistakes to confirm."""
    ws = world.workspace
    sets.dedup.write(ws.root / "dedup" / "world-pool")
    register_dataset(sets.pool, "world-pool-voted", ws)  # the pool with its selection frequencies
    mistakes = next(r for r in study.mistakes if r.model.split(":")[-1] == REVIEW_MISTAKES_MODEL)
    # the demo's own tasks: a rerun rebuilds them, and one that changed (a workspace moved to another folder
    # names its dedup folder anew) replaces the old file, which the review package keeps as a backup
    made = [
        tk.duplicates_task(ws.root / "dedup" / "world-pool", query="world-pool", workspace=ws, replace=True),
        tk.classes_task("world-pool-voted", reference="world-train", workspace=ws, replace=True),
        tk.labelling_task(world.root / "hits" / "batch.json", ["world-pool", "world-test"], workspace=ws,
                          replace=True),
        tk.images_task("world-pool", "watermarks", workspace=ws, replace=True),
        tk.images_task("world-multilabel", review_config(), name=f"mistakes-{REVIEW_MISTAKES_MODEL}",
                       items=review_queue_items(mistakes.table, include_not_mistakes=False), workspace=ws,
                       replace=True),
    ]
    for t in made:
        warm_thumbnails(t, ws, progress=progress)
    return made


def intro(world: World) -> str:
    """The demo report's intro: what the world holds, with its counts and planted facts (little markdown)."""
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
    """``shiftlab demo``: build the digits world (seed ``seed``), train its zoo, run every study on it and write
    the report to ``<workspace>/reports/demo/index.html``. Everything is cached in the workspace, so a second
    run recomputes nothing that it has."""

    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    world = build_world(ws, WorldConfig(seed=seed), progress=progress)
    train_zoo(world.manifest("train"), ws, progress=progress)
    models = [f"world:{name}" for name in ZOO]
    acc = accuracy_on_test_and_pool(world, models, progress=progress)
    report = Report("The digits world", intro(world), kind="shiftlab demo report",
                    meta={"world seed": world.seed, "zoo models": len(ZOO), "workspace": str(ws.root)})
    with figure_cache(ws.figures):  # a rerun draws only the figures whose data or code changed
        report.add(section_shift(world, acc))
        sec, _, sets = section_imagenetv2(world, models, acc, progress=progress)
        report.add(sec)
        sec, study = multilabel_section(world, models, progress=progress)
        report.add(sec)
        report.add(label_issues_section(world, models, progress=progress)[0])
        report.add(spurious_section(world, models, acc, progress=progress)[0])
        report.add(robust_section(world, models, progress=progress)[0])
        report.add(easyset_section(world, models, progress=progress)[0])
    prepare_review_tasks(world, sets, study, progress=progress)
    path = report.write(ws.reports / "demo")
    return DemoResult(report, path, acc, sets)
