"""Report sections of the label studies on the digits world (SPECS S2): which errors are real, and which given
labels are wrong. ``shiftlab.world.demo`` adds them to the demo report; each returns the Section and its tables."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from shiftlab.analyze import mistakes as mk
from shiftlab.analyze.label_issues import label_issues, recall_at
from shiftlab.analyze.multilabel import multilabel_summary
from shiftlab.predict.engine import predict
from shiftlab.report import Section, category_fraction_figure, confusion_figure
from shiftlab.report.figure_cache import FigureCall
from shiftlab.world.mistakes import world_cues
from shiftlab.world.section_cache import cached_tables, content_key


@dataclass
class MultilabelStudy:
    """``multilabel_study``'s result: per-model accuracies (top-1, multi-label, ImageNet-M), the share of each
    model's top-1 errors per suggested mistake category, the confusion pairs over all models and each model's
    ``MistakesResult``.
    """

    accuracy: pd.DataFrame  # model, top1, ml_accuracy, imagenet_m_correct, imagenet_m_size, …
    fractions: pd.DataFrame  # model, top1, errors, one column per category
    confusions: pd.DataFrame  # a, b, a_name, b_name, count, models
    mistakes: list = field(repr=False)  # MistakesResult per model


def multilabel_study(world, models: list[str], *, progress: bool = True) -> MultilabelStudy:
    """Every model on the world's multi-label set: accuracies, pre-categorised errors, confusions."""
    ml = world.manifest("multilabel")
    ctx = mk.default_context(ml, world.workspace)
    # find_mistakes stores each model's logits with its features; the plain predictions after it are then
    # read from that cache (the other order would run every model twice: a cell stored without features
    # is incomplete for a request that wants them)
    results = [mk.find_mistakes(ml, s, workspace=world.workspace, **ctx, progress=progress) for s in models]
    preds = predict(ml, models, workspace=world.workspace, progress=progress)
    acc = multilabel_summary(ml, preds)
    return MultilabelStudy(acc, mk.category_fractions(results), mk.model_confusions(ml, preds), results)


def multilabel_section(world, models: list[str], *, progress: bool = True) -> tuple[Section, MultilabelStudy]:
    """The report section "Which errors are real?" on the world's multi-label set (``multilabel_study``):
    accuracies, mistake categories, errors the multi-labels accept and the most frequent confusions.
    Returns the section and the study.
    """
    study = multilabel_study(world, models, progress=progress)
    ml = world.manifest("multilabel")
    counts = world.truth()["multilabel"]
    sec = Section("Which errors are real?",
                  f"The world's multi-label set ({len(ml)} images in the TFDS `imagenet2012_multilabel` shape: "
                  f"{counts['single']} single digits, {counts['two-digit']} images with two digits (both correct), "
                  f"{counts['blend']} ambiguous blends of two digits (both unclear), {counts['problematic']} "
                  f"problematic images without a usable digit, and an ImageNet-M-like split of {counts['hard']} hard "
                  "ones). Multi-label accuracy drops the problematic images, accepts any correct or unclear label "
                  "and averages per class; ImageNet-M counts the hard images whose prediction the labels accept.",
                  anchor="multilabel")
    a = study.accuracy
    t = pd.DataFrame({"model": a.model, "top-1": a.top1, "multi-label accuracy": a.ml_accuracy,
                      "ImageNet-M": [f"{c}/{n}" for c, n in zip(a.imagenet_m_correct, a.imagenet_m_size)]})
    sec.table(t, caption="Top-1 against the original labels (all images) and multi-label accuracy (problematic "
              "images dropped, mean over the 10 classes).",
              formats={"top-1": "{:.1%}", "multi-label accuracy": "{:.1%}"},
              highlight={"multi-label accuracy": "max"})
    f = study.fractions
    sec.paragraph("Every top-1 error is then pre-categorised in the order of SPECS S2: accepted by the multi-labels "
                  "(not a mistake), the same shape group of the digits' hierarchy (fine-grained), the prediction among "
                  "the classes of the image's 10 nearest training images in the model's feature space (fine-grained "
                  "or out of vocabulary), the predicted class's spurious mark in the image, else a Major candidate. "
                  "A reviewer confirms or changes each suggestion in the review app.")
    cats = [c for c in f.columns if c not in ("model", "top1", "errors")]
    # the multi-label set is rendered without the spurious marks: say so where a reader sees the category at 0 %
    n_cued = sum(bool(c) for c in world_cues(world, "multilabel").values())
    spurious = mk.SPURIOUS
    why = (f" {spurious} is 0% for every model because none of the {len(ml)} multi-label images carries a spurious "
           "mark (the world plants them in train, test, the pool and the spurious set only), so no error here can be "
           "put down to one." if n_cued == 0 and spurious in cats and (f[spurious] == 0).all() else "")
    sec.table(f.rename(columns={"top1": "top-1 (scored)"}),
              caption="Share of each model's top-1 errors per suggested category (problematic images not scored)."
                      + why,
              formats={"top-1 (scored)": "{:.1%}", **{c: "{:.0%}" for c in cats}})
    sec.figure(FigureCall(category_fraction_figure, f), "mistake-categories",
               "One point per model and category, with a least-squares line per category." + why)
    moved = [row for r in study.mistakes for row in r.table.itertuples() if row.category == mk.NOT_A_MISTAKE]
    if moved:
        seen, items = set(), []
        paths = dict(zip(ml.ids, ml.abspaths()))
        names = ml.vocabulary.names
        for row in moved:
            if row.id in seen:
                continue
            seen.add(row.id)
            items.append((paths[row.id], f"{names[row.label]} → {names[row.prediction]} ✓"))
            if len(items) == 16:
                break
        sec.images(items, "Top-1 errors that the multi-labels accept (label → prediction): two digits or a blend of "
                   "two.", name="not-a-mistake", size=72)
    if len(study.confusions):
        c = study.confusions.head(10)
        sec.table(c[["a_name", "b_name", "count", "models"]].rename(
            columns={"a_name": "class a", "b_name": "class b", "count": "errors", "models": "models"}),
            caption="The most frequent unordered confusions over all models (errors the multi-labels accept and "
                    "problematic images not counted).")
        top = min(15, len(study.confusions))
        sec.figure(FigureCall(confusion_figure, study.confusions, top,
                              title="Most frequent confusions, all zoo models"),
                   "confusions", f"The {top} most frequent unordered class confusions, in top-1 errors summed over "
                   f"the {len(models)} zoo models (the table above lists the first {min(10, top)}; errors the "
                   "multi-labels accept and problematic images are not counted).")
    return sec, study


#: bump when the label-issues ranking is computed differently, so that kept ones are not reused
LABEL_ISSUES_VERSION = 1


def label_issues_section(world, models: list[str], *, top: int = 16,
                         progress: bool = True) -> tuple[Section, pd.DataFrame]:
    """The test images whose given label is most likely wrong, ranked by cleanlab from the zoo's probabilities,
    against the planted label errors."""
    test = world.manifest("test")
    # cleanlab alone takes seconds to import: a rerun reads the ranking back
    key = content_key(world.workspace, models, [test], "label-issues", LABEL_ISSUES_VERSION)
    (ranking,) = cached_tables(world.workspace, "label_issues", key,
                               lambda: [label_issues(test, models, workspace=world.workspace, progress=progress)])
    planted = {e["id"] for e in world.truth()["label_errors"]}
    n = len(planted)
    rec = recall_at(ranking, planted, 2 * n)
    sec = Section("Which given labels are wrong?",
                  f"Confident learning (cleanlab's `find_label_issues`) on the mean class probabilities of the "
                  f"{len(models)} zoo models, which never saw the test images: the world planted {n} wrong labels in "
                  f"its test set, and **{round(rec * n)} of them are among the first {2 * n}** of the ranking "
                  f"(recall {rec:.0%}). cleanlab flags {int(ranking.is_label_issue.sum())} images.",
                  anchor="label-issues")
    head = ranking.head(2 * n).assign(planted=lambda d: d.id.isin(planted))
    sec.table(head[["rank", "id", "given_name", "suggested_name", "label_quality", "is_label_issue", "planted"]].rename(
        columns={"given_name": "given", "suggested_name": "suggested", "label_quality": "p(given)",
                 "is_label_issue": "flagged"}),
        caption="The top of the ranking; shaded rows are planted label errors.",
        formats={"p(given)": "{:.3f}", "flagged": lambda v: "yes" if v else "",
                 "planted": lambda v: "yes" if v else ""},
        highlight=head.planted.tolist())
    paths = dict(zip(test.ids, test.abspaths()))
    sec.images([(paths[r.id], f"{r.rank}. {r.given_name} → {r.suggested_name}")
                for r in ranking.head(top).itertuples()],
               "The first images of the ranking: given label → the ensemble's suggestion.", name="label-issues",
               size=72)
    return sec, ranking
