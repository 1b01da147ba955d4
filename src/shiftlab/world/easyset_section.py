"""The demo's "Clean, easy images for one model" section (SPECS S5 on the digits world).

The world's easy set for its adversarially trained CNN: three zoo models rank the test images they classify
correctly (the target among them, as Salman's model was in S-R50-N), and a reviewer goes through the target's top-5
per class and its extras. The world plays the reviewer with its ground truth, through the ReviewLog like a person:
an image with a planted corner watermark is cropped with the planted box (reason watermark), one with a central
watermark, which no crop removes, is removed (reason watermark), every other image is kept. The set is then built
(crops written to copies) and must pass the post-edit check: the target, with its own preprocessing, classifies
every final image correctly.

We: the world has 10 classes of about 35 test images, not 1,000 of 50, so the demo ranks the top 20 per class and
keeps 12 (S5: top 5, keep 3). With S5's sizes no planted mark reaches a reviewer at all: the target's confidence
ranking alone pushes every watermarked image below rank 10 of its class (the section says the best rank).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import pandas as pd

from shiftlab.curate.easyset.build import EasysetBuild, build_easyset, confidences_of
from shiftlab.curate.easyset.decisions import CROP, KEEP, REMOVE, decision_records
from shiftlab.curate.easyset.select import EasysetRanking, rank_dataset, review_queue
from shiftlab.errors import InputError
from shiftlab.report import Section
from shiftlab.report.figure_cache import FigureCall
from shiftlab.report.figures.easyset import reasons_chart
from shiftlab.review.log import ReviewLog, read_decisions
from shiftlab.review.tasks import images_task, log_path
from shiftlab.world import World

#: the target (the robust zoo model) and the three-model ensemble that includes it
TARGET, ENSEMBLE = "cnn-adv-l2", ("cnn-adv-l2", "cnn-medium-s0", "mlp")
#: the world's sizes (module docstring): rank the top 20 per class, keep 12, offer 5 extras
SPLIT, TOP, EXTRAS, FINAL = "test", 20, 5, 12
TASK, REVIEWER = "easyset-world-test", "world-oracle"


@dataclass
class WorldEasyset:
    """What the section shows, for tests too: the ranking, the review queue, the simulated decisions (``target,
    decision, reason, crop``), the records and the built set."""

    ranking: EasysetRanking
    queue: pd.DataFrame
    decisions: pd.DataFrame
    records: pd.DataFrame
    build: EasysetBuild


def oracle_decisions(world: World, queue: pd.DataFrame) -> list[dict]:
    """The world's reviewer (module docstring): one decision per queued image, from the planted watermarks."""
    marks = {w["id"]: w for w in world.truth()["watermarks"] if w["split"] == SPLIT}
    out = []
    for f in queue["id"]:
        w = marks.get(f)
        if w is None:
            out.append({"target": f, "decision": KEEP, "reason": None, "crop": None})
        elif w["kind"] == "corner":
            out.append({"target": f, "decision": CROP, "reason": "watermark", "crop": tuple(w["crop_box"])})
        else:
            out.append({"target": f, "decision": REMOVE, "reason": "watermark", "crop": None})
    return out


def world_easyset(world: World, models: list[str], *, progress: bool = False) -> WorldEasyset:
    """Rank, review (as the world's oracle, through the workspace's ReviewLog), build and check the world's easy set
    (module docstring); ``models``: the demo's zoo specs, which must include ``ENSEMBLE``."""
    ws = world.workspace
    specs = [f"world:{m}" for m in ENSEMBLE]
    if not set(specs) <= set(models):
        raise InputError(f"the easy-set section needs the zoo models {', '.join(ENSEMBLE)}")
    test = world.manifest(SPLIT)
    ranking = rank_dataset(test, specs, f"world:{TARGET}", top=TOP, workspace=ws, progress=progress)
    queue = review_queue(ranking, n_extras=EXTRAS, final_size=FINAL)
    items = [{"id": r.id, "caption": f"class {r[1]} · {r.stage}" + (f" · rank {r.rank}" if r.rank else "")}
             for r in queue.itertuples(index=False)]
    images_task(f"world-{SPLIT}", "easyset", name=TASK, items=items, workspace=ws, replace=True)
    said = oracle_decisions(world, queue)
    with ReviewLog(log_path(ws)) as log:
        # keyed events: a second demo run finds them stored and adds nothing
        log.append_many([{**d, "reviewer": REVIEWER, "task": TASK, "key": f"{d['target']}:{d['decision']}"}
                         for d in said])
        decisions = read_decisions(log, TASK)
    records = decision_records(decisions, queue, FINAL)
    dest = ws.root / "easyset" / "demo" / f"world-{SPLIT}"  # beside, not in, what "easyset rank" writes
    if dest.exists():  # the demo's own output, rebuilt on every run
        shutil.rmtree(dest)
    build = build_easyset(test, records, queue, f"world:{TARGET}", dest, confidences=confidences_of(ranking.candidates),
                          final_size=FINAL, top=TOP, workspace=ws, progress=progress)
    return WorldEasyset(ranking, queue, pd.DataFrame(said), records, build)


def easyset_section(world: World, models: list[str], *, progress: bool = False) -> tuple[Section, ...]:
    """(the section,) for the demo report (module docstring)."""
    es = world_easyset(world, models, progress=progress)
    st = es.build.stats
    n_wm = es.decisions["reason"].eq("watermark").sum()
    marked = {w["id"] for w in world.truth()["watermarks"] if w["split"] == SPLIT}
    ranks = [r for f, r in zip(es.queue["id"], es.queue["rank"]) if f in marked and r > 0]
    sec = Section("Clean, easy images for one model",
                  f"A **model-specific curated set** (SCOOTER's ImageNet S-R50-N): for the adversarially trained "
                  f"`{TARGET}`, the test images that it and two other zoo models ({', '.join(ENSEMBLE[1:])}) "
                  f"classify correctly, ranked per class by the target's softmax confidence. A reviewer keeps, crops "
                  f"or removes each of the top {TOP} per class with a reason, so that {FINAL} clean images per class "
                  f"remain; short classes are filled with extras. Here the world reviews with its planted "
                  f"watermarks: a corner mark is cropped away with the planted box, a central one removes the image "
                  f"({n_wm} of the {len(es.queue)} queued images carry one). Every decision is a ReviewLog event "
                  f"(task `{TASK}`), so `shiftlab review serve` shows them. The world has 10 small classes, so the "
                  f"demo ranks {TOP} per class and keeps {FINAL} (S-R50-N: 5 and 3): the confidence ranking alone "
                  f"keeps the planted marks low (the best-ranked watermarked image is at rank "
                  f"{min(ranks) if ranks else '—'} of its class)"
                  + (", so with S5's sizes (top 5 and 5 extras) no reviewer would see one." if ranks and
                     min(ranks) > 5 + EXTRAS else "."),
                  anchor="easyset")
    sec.table(st.table[["figure", "count"]],
              caption="The statistics, derived from the records; each class is in exactly one of clean, crop-only, "
                      "substituted and needing additions, and the code asserts that they add up.")
    if st.reasons["removal_classes"].sum():
        sec.figure(FigureCall(reasons_chart, st.reasons), "easyset-reasons", "Classes per removal reason.")
    sec.note(f"Post-edit check: `{TARGET}`, re-run on the {len(es.build.check)} final files with its own "
             f"preprocessing, classifies every one correctly; the export would have been refused otherwise. Crops "
             "were written to copies, the originals are untouched.")
    cropped = es.build.manifest.table[es.build.manifest.table["crop"].notna()]
    if len(cropped):
        root = es.build.manifest.root
        sec.images([(f"{root}/{p}", f"class {k}: cropped {c}") for p, k, c in
                    zip(cropped["path"], cropped["label"], cropped["crop"])][:12],
                   caption="Cropped images of the set, as written (the planted corner mark is gone).",
                   name="easyset-cropped")
    return (sec,)
