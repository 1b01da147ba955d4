"""The demo's "Which spurious features does a model rely on?" section (SPECS S3 on the digits world).

The world plants a cue on 80 % of the train and test images of some classes. For every zoo model, the class-wise
neural PCA of each cue class is fitted on the training set; the world plays the person who labels components,
with its ground truth: a component among a class's top 5 whose top-20 images carry that class's cue in ≥ 90 %
is labelled spurious (the same criterion counts false discoveries in the cue-free classes). SpuFix then removes
those components' share, and the spurious score (world-test positives against the world's spurious set: other
digits and blank sheets carrying the cue) is compared before and after.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.analyze.evaluate import summarize
from shiftlab.analyze.spurious.components import class_components
from shiftlab.analyze.spurious.pca import PCAStore, fit_class, top_images
from shiftlab.analyze.spurious.score import spurious_score
from shiftlab.analyze.spurious.spufix import build_spufix
from shiftlab.fsutil import atomic_save_npz, atomic_write_json
from shiftlab.models.specs import load_model
from shiftlab.predict.engine import predict
from shiftlab.report import Section
from shiftlab.report.figure_cache import FigureCall
from shiftlab.report.figures.spurious import component_figure, spurious_score_plot
from shiftlab.world import World
from shiftlab.world.scheme import SHORTCUT_MODEL
from shiftlab.world.section_cache import cached_tables, content_key
from shiftlab.world.shortcut import CUE_OVER_DIGIT, CUE_RATE, shortcut_train
from shiftlab.world.shortcut import SPLIT as SHORTCUT_SPLIT

#: how the world labels a component: among the TOP components by eigenvalue, IMAGES top images, SHARE with the cue
TOP, IMAGES, SHARE = 5, 20, 0.9
#: the model whose components the section draws, and how (fewer components and steps than S3's, for the demo)
SHOWN_MODEL, VISUALISE, STEPS, SHOWN = "cnn-medium-s0", 10, 100, 3
#: bump when the section computes its tables differently, so that kept ones are not reused
TABLES_VERSION = 2
#: the model trained where the cue is a shortcut (shiftlab.world.shortcut), scored beside the zoo
SHORTCUT = f"world:{SHORTCUT_MODEL}"


def fit_set(world: World, model: str) -> tuple:
    """(the training set ``model`` was trained on, (N,) cue class per image or −1): world-train for the zoo, the
    shortcut set for ``SHORTCUT``."""
    if model == SHORTCUT:
        train = shortcut_train(world)
        return train, world.truth(SHORTCUT_SPLIT).set_index("id").loc[train.ids, "cue"].to_numpy()
    train = world.manifest("train")
    return train, world.truth("train").set_index("id").loc[train.ids, "cue"].to_numpy()


def world_components(world: World, model: str, *, fit: tuple | None = None,
                     progress: bool = False) -> tuple[dict, dict]:
    """({cue class: [components labelled spurious]}, {cue-free class: number of false discoveries}) for ``model``
    by the world's ground truth (module docstring), over the set the model was trained on (``fit``: what
    ``fit_set`` gives, passed in by a caller that needs it again)."""
    ws = world.workspace
    clf = load_model(model, workspace=ws)
    train, cue = fit if fit is not None else fit_set(world, model)
    feats = predict(train, [clf], workspace=ws, features=True, progress=progress)[0].features
    w, b = (t.detach().cpu().numpy() for t in clf.last_layer())
    labels = np.asarray(train.labels)
    cue_classes = [int(c) for c in world.truth()["spurious"]["classes"]]
    store = PCAStore(ws)
    labelled, false = {}, {}
    for k in range(len(train.vocabulary)):
        rows = np.flatnonzero(labels == k)
        pca = store.get_or_fit(clf.key, train.content_hash, k,
                               lambda rows=rows, k=k: fit_class(feats[rows], w[k], float(b[k]), k))
        top = top_images(pca.alpha(feats[rows], slice(0, TOP)), IMAGES)
        if k in cue_classes:
            labelled[k] = [c for c in range(TOP) if (cue[rows][top[c]] == k).mean() >= SHARE]
        else:
            false[k] = int(sum((cue[rows][top[c]] >= 0).mean() >= SHARE for c in range(TOP)))
    return labelled, false


def _shown_components(world: World, k: int, *, progress: bool):
    """The ranked, visualised components of class ``k`` of the shown model, cached in the workspace by content
    (model key, training set, class, settings): a second demo run draws them without running APGD again."""
    ws = world.workspace
    clf = load_model(f"world:{SHOWN_MODEL}", workspace=ws)
    train = world.manifest("train")
    key = hashlib.sha256(json.dumps([clf.key, train.content_hash, k, VISUALISE, STEPS, SHOWN]).encode()).hexdigest()
    folder = ws.root / "spurious" / "demo"
    meta_path, vis_path = folder / f"{key[:20]}.json", folder / f"{key[:20]}.npz"
    if meta_path.exists() and vis_path.exists():
        with np.load(vis_path) as z:
            return json.loads(meta_path.read_text()), {n: z[n] for n in z.files}
    feats = predict(train, [clf], workspace=ws, features=True, progress=progress)[0].features
    cc = class_components(clf, feats, np.asarray(train.labels), k, store=PCAStore(ws),
                          fit_manifest_hash=train.content_hash, n_visualise=VISUALISE, top=SHOWN, images=6,
                          steps=STEPS)
    meta = {"n_fit": cc.n_fit, "settings": cc.settings,
            "components": [{"index": c.index, "rank": c.rank, "probability": c.probability, "rows": c.rows,
                            "alpha": c.alpha} for c in cc.components]}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save_npz(vis_path, **{f"c{c.index}": c.visualisation for c in cc.components})
    atomic_write_json(meta_path, meta)
    return meta, {f"c{c.index}": c.visualisation for c in cc.components}


def spurious_section(world: World, models: list[str], acc: pd.DataFrame, *,
                     progress: bool = True) -> tuple[Section, pd.DataFrame, pd.DataFrame]:
    """(the section (module docstring), the components table, the scores table). ``models``: world zoo specs;
    ``acc``: the demo's accuracy table (its ``model`` and ``top1_id`` columns give each model's test accuracy)."""
    names = world.manifest("test").vocabulary.names
    train = world.manifest("train")
    cue_classes = [int(c) for c in world.truth()["spurious"]["classes"]]
    truth = world.truth()["spurious"]
    sec = Section("Which spurious features does a model rely on?",
                  f"The world puts a cue on {truth['rate_train']:.0%} of the train and test images of "
                  f"{', '.join(names[c] for c in cue_classes)}. For every zoo model the **class-wise neural PCA** "
                  "(Neuhaus et al. 2023) splits each class's logit into components over the training images of "
                  "that class. A person would look at each component's visualisation and top images and label it "
                  "spurious or not; here the world plays that person with its ground truth: a component among "
                  f"the class's top {TOP} (by eigenvalue) whose top-{IMAGES} images carry the class's cue in at "
                  f"least {SHARE:.0%} is labelled spurious. **SpuFix** then takes those components' positive share "
                  "off the class's logit, without retraining. The **spurious score** is the average precision of "
                  "p_k separating the class's test images from the world's spurious set (other digits and blank "
                  "sheets carrying the cue, without the class): higher is less reliance on the cue. Beside the zoo, "
                  f"**{SHORTCUT_MODEL}** is the zoo's width-16 CNN trained where the cue is a shortcut: the same "
                  f"digits rendered again with the cue on {CUE_RATE:.0%} of each cue class, plus {CUE_OVER_DIGIT} "
                  "other digits per cue class that carry its cue and its label (`world-train-shortcut`), so that "
                  "the cue decides some training images, as a context does on ImageNet when the object is hard "
                  "to see.",
                  anchor="spurious")
    specs = [*models, SHORTCUT]
    key = content_key(world.workspace, specs, [*(world.manifest(s) for s in ("train", "test", "spurious")),
                                               shortcut_train(world)], TABLES_VERSION, TOP, IMAGES, SHARE)
    found, table = cached_tables(world.workspace, "spurious", key,
                                 lambda: _compute_tables(world, specs, acc, progress=progress))
    sec.table(found,
              caption=f"Components labelled spurious per cue class (indices by descending eigenvalue, among the top "
                      f"{TOP}), and how many of the top {TOP} components of the {len(names) - len(cue_classes)} "
                      f"cue-free classes reach the same {SHARE:.0%} share of images with any cue: false "
                      "discoveries.")
    # the components of one model, drawn as a person sees them
    paths = train.abspaths()
    for k in cue_classes:
        meta, vis = _shown_components(world, k, progress=progress)
        for c in meta["components"][:1]:
            fig = FigureCall(component_figure, vis[f"c{c['index']}"], [Path(paths[r]) for r in c["rows"]],
                             c["alpha"], probability=c["probability"],
                             title=f"{SHOWN_MODEL}, class {names[k]}, component {c['index']} (rank {c['rank']})")
            sec.figure(fig, f"spurious-component-{k}",
                       f"Class {names[k]}'s component ranked first of its first {meta['settings']['n_visualise']} by "
                       f"the probability of its visualisation (left; APGD-L2 from grey, ε = "
                       f"{meta['settings']['eps']:.2f} at 32 px, {meta['settings']['steps']} steps, seed "
                       f"{meta['settings']['seed']}), beside the training images where it is strongest, with their α.")
    pct = "{:.1%}"
    sec.table(table, caption="The spurious score (mean over the cue classes of the average precision, the published "
                             "\"Spurious AUC\"; and ROC-AUC) and the mean probability of the cue's class on the "
                             f"spurious set, before and after SpuFix. For the zoo the score sits near its ceiling: "
                             "the zoo's models give a cue without its digit little probability, a few mislabelled "
                             "test images cap the precision, and with the cue on 80 % of a class's images most of its "
                             "pull is in the class mean, which SpuFix leaves (it takes off only the share above the "
                             f"mean). {SHORTCUT_MODEL} calls most cue images its class; SpuFix raises its score "
                             "while test accuracy stays within a point.",
              formats={"test top-1": pct, "SpuFix: test top-1": pct, "spurious score (AP)": "{:.3f}",
                       "ROC-AUC": "{:.3f}", "SpuFix: AP": "{:.3f}", "SpuFix: ROC-AUC": "{:.3f}",
                       "mean p_k on cue images": "{:.3f}", "SpuFix: mean p_k on cue images": "{:.3f}"})
    sec.figure(FigureCall(spurious_score_plot, table), "spurious-score",
               "Left: the spurious score (mean AP over the cue classes; higher = less reliance on the cue) against "
               "test accuracy for each zoo model, before (circles) and after SpuFix (triangles, joined by a line). "
               "Right: the mean probability of the cue's class on the spurious set (lower = less reliance).")
    return sec, found, table


def _compute_tables(world: World, models: list[str], acc: pd.DataFrame, *,
                    progress: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the components labelled spurious per model, the scores before and after SpuFix)."""
    ws = world.workspace
    names = world.manifest("test").vocabulary.names
    labelled_by_model, rows = {}, []
    fits = {spec: fit_set(world, spec) for spec in models}
    for spec in models:
        labelled, false = world_components(world, spec, fit=fits[spec], progress=progress)
        labelled_by_model[spec] = labelled
        rows.append({"model": spec.split(":", 1)[1],
                     **{f"{names[k]}: spurious components": ", ".join(map(str, v)) or "—"
                        for k, v in labelled.items()},
                     "false discoveries (cue-free classes)": sum(false.values())})
    found = pd.DataFrame(rows)
    # the score before and after SpuFix
    fixed = []
    for spec in models:
        labelled = {k: v for k, v in labelled_by_model[spec].items() if v}
        base = load_model(spec, workspace=ws)
        fixed.append(build_spufix(base, base, labelled, fits[spec][0], workspace=ws, progress=progress)
                     if labelled else base)
    scores = spurious_score([*models, *fixed], "world-test", "world-spurious", workspace=ws, progress=progress)
    n = len(models)
    test = world.manifest("test")
    # the zoo's test accuracy is the demo's; a model outside the demo's table (the shortcut CNN) is evaluated here
    acc_by = acc.set_index("model")["top1_id"].to_dict()
    missing = [m for m in models if m.split(":", 1)[1] not in acc_by]
    if missing:
        got = summarize(test, predict(test, missing, workspace=ws, progress=progress))["top1"].tolist()
        acc_by.update({m.split(":", 1)[1]: a for m, a in zip(missing, got)})
    fixed_acc = summarize(test, predict(test, fixed, workspace=ws, progress=progress))["top1"].tolist()
    table = pd.DataFrame({
        "model": [m.split(":", 1)[1] for m in models],
        "test top-1": [acc_by[m.split(":", 1)[1]] for m in models],
        "spurious score (AP)": [s.mean_ap for s in scores[:n]],
        "ROC-AUC": [s.mean_roc_auc for s in scores[:n]],
        "mean p_k on cue images": [float(s.table["negatives_mean_prob"].mean()) for s in scores[:n]],
        "SpuFix: test top-1": fixed_acc,
        "SpuFix: AP": [s.mean_ap for s in scores[n:]],
        "SpuFix: ROC-AUC": [s.mean_roc_auc for s in scores[n:]],
        "SpuFix: mean p_k on cue images": [float(s.table["negatives_mean_prob"].mean()) for s in scores[n:]],
    })
    return found, table
