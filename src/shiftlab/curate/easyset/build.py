"""The final curated set (SPECS S5 "After edits"): the records folded into image files (crops applied to copies, the
originals untouched), a manifest with each image's provenance, and the post-edit check: the target model, with its
own benchmark preprocessing, must classify 100 % of the final files correctly. Otherwise the failing images are
listed and nothing is written: the set is assembled in a temporary folder beside the destination and renamed into
place only after the check passes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from shiftlab.curate.easyset.records import split_reasons
from shiftlab.curate.easyset.stats import EasysetStats, easyset_statistics, fold_images
from shiftlab.data.layouts import sha256_file
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError
from shiftlab.progress import track


@dataclass
class EasysetBuild:
    """``manifest``: the final set (its ``root`` the destination's ``images/``); ``stats``: the reconciled statistics
    of the records it was built from; ``check``: per image the target's prediction and whether it is right."""

    manifest: Manifest
    stats: EasysetStats
    check: pd.DataFrame
    folder: Path


def _crop_copy(src: Path, dst: Path, box) -> None:
    with Image.open(src) as im:
        im.load()
        w, h = im.size
        x0, y0, x1, y1 = (int(v) for v in box)
        box = (max(0, x0), max(0, y0), min(w, x1), min(h, y1))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise InputError(f"{src.name}: crop box {tuple(int(v) for v in (x0, y0, x1, y1))} lies outside the "
                             f"{w}×{h} image; redraw it")
        out = im.crop(box)
        fmt = im.format or "PNG"
        # JPEG crops are re-encoded at high quality: the post-edit check then judges the very bytes shipped
        out.save(dst, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))


def provenance(records: pd.DataFrame, stats: EasysetStats, queue: pd.DataFrame,
               confidences: pd.DataFrame) -> pd.DataFrame:
    """One row per image of the set: ``id, class, rank, stage, crop (JSON or None), reasons`` and
    ``confidence_<model>`` for each model of ``confidences`` (``model, id, confidence``; the rows of the images
    each model classifies correctly, so a missing value means that model gets the image wrong)."""
    state = fold_images(records)
    q = queue.set_index("id")
    rows = []
    for k, images in zip(stats.classes["class"], stats.classes["images"]):
        for f in images:
            s = state.get((int(k), f), {})
            box = s.get("crop") if s.get("cropped") else None
            rows.append({"id": f, "class": int(k), "rank": int(q.loc[f, "rank"]) if f in q.index else 0,
                         "stage": q.loc[f, "stage"] if f in q.index else "extra",
                         "crop": json.dumps(list(box)) if box is not None else None,
                         "needs_crop": bool(s.get("cropped")), "reasons": "; ".join(split_reasons(s.get("reason")))})
    out = pd.DataFrame(rows, columns=["id", "class", "rank", "stage", "crop", "needs_crop", "reasons"])
    for m, t in confidences.groupby("model", sort=False):
        out[f"confidence_{m}"] = out["id"].map(dict(zip(t["id"], t["confidence"].astype(float))))
    return out


def build_easyset(source: Manifest, records: pd.DataFrame, queue: pd.DataFrame, target: str, dest: str | os.PathLike,
                  *, confidences: pd.DataFrame, classes: Sequence[int] | None = None, name: str | None = None,
                  final_size: int = 3, top: int = 5, workspace=None, device: str = "auto", batch_size: int = 64,
                  progress: bool = True) -> EasysetBuild:
    """Fold ``records`` over the target's ranked ``queue`` (``decisions.queue_items``) into the set at ``dest``
    (``images/<class>/<file>``, ``manifest.parquet``, ``provenance.csv``, ``statistics.csv``).

    ``target``: the target model's spec, re-run on the final files. Raises ``InputError`` listing the images the
    target gets wrong (or cannot decode), a crop the reviewer asked for without a box, or an existing ``dest``; in
    every refusal nothing is left at ``dest``."""
    from shiftlab.models.adapters.predictions import PrecomputedPredictions
    from shiftlab.models.specs import load_model
    from shiftlab.predict.engine import predict

    if isinstance(load_model(target, workspace=workspace), PrecomputedPredictions):
        raise InputError(f"{target}: the post-edit check re-runs the target on the edited files; give a model that "
                         "runs (precomputed predictions know only the original images)")
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise InputError(f"{dest} exists and is not empty; give a new folder for the set")
    ranked = {int(k): list(t.sort_values("rank")["id"]) for k, t in queue[queue["stage"] != "extra"].groupby("class")}
    classes = sorted(set(queue["class"])) if classes is None else list(classes)
    stats = easyset_statistics(records, ranked, classes, final_size, top)
    prov = provenance(records, stats, queue, confidences)
    unboxed = prov[prov["needs_crop"] & prov["crop"].isna()]
    if len(unboxed):
        raise InputError(f"{len(unboxed)} image(s) need a crop but have no crop box (first: {unboxed['id'].iloc[0]}); "
                         "draw the box in the review app")
    paths = dict(zip(source.ids, source.abspaths()))
    missing = [f for f in prov["id"] if f not in paths]
    if missing:
        raise InputError(f"{len(missing)} image(s) of the set are not in {source.name} (first: {missing[0]})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        rel = []
        for f, k, box in track(list(zip(prov["id"], prov["class"], prov["crop"])), description="writing the set",
                               disable=not progress):
            out = work / "images" / str(k) / Path(paths[f]).name
            out.parent.mkdir(parents=True, exist_ok=True)
            if not isinstance(box, str):  # None (or NaN once pandas had its say): no crop
                shutil.copyfile(paths[f], out)
            else:
                _crop_copy(Path(paths[f]), out, json.loads(box))
            rel.append(str(out.relative_to(work / "images")))
        table = prov.drop(columns=["needs_crop"]).assign(path=rel, label=prov["class"])
        table["sha256"] = [sha256_file(work / "images" / p) for p in rel]
        m = Manifest(table, name=name or f"{source.dataset or source.name}-easyset-1",
                     vocabulary=source.vocabulary, root=str(work / "images"), dataset=source.dataset,
                     variant="easyset", revision="1", parent=source.name,
                     parameters={"target": target, "final_size": final_size})
        pred = predict(m, [target], workspace=workspace, device=device, batch_size=batch_size, progress=progress)[0]
        top1 = np.where(pred.valid, np.nan_to_num(pred.values, nan=-np.inf).argmax(axis=1), -1)
        check = pd.DataFrame({"id": m.ids, "label": m.labels, "prediction": top1, "valid": pred.valid})
        check["right"] = check["valid"] & (check["prediction"] == check["label"])
        wrong = check[~check["right"]]
        if len(wrong):  # the post-edit check: refuse, naming every failing image
            listed = ", ".join(f"{r.id} (class {r.label}: " + (f"predicted {r.prediction})" if r.valid else
                                                              f"{pred.bad.get(r.id, 'undecodable')})")
                               for r in wrong.itertuples())
            raise InputError(f"post-edit check: {pred.model} gets {len(wrong)} of {len(check)} final image(s) "
                             f"wrong, export refused: {listed}")
        m.save(work / "manifest.parquet")
        prov.to_csv(work / "provenance.csv", index=False)
        stats.table.to_csv(work / "statistics.csv", index=False)
        if dest.exists():
            dest.rmdir()
        os.replace(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    final = replace(Manifest.load(dest / "manifest.parquet"), root=str((dest / "images").resolve()))
    final.save(dest / "manifest.parquet")
    return EasysetBuild(final, stats, check, dest)


def confidences_of(candidates: pd.DataFrame) -> pd.DataFrame:
    """``model, id, confidence`` of each model's correct rows (what the provenance reports)."""
    right = candidates[candidates["prediction"] == candidates["label"]]
    return right[["model", "id", "confidence"]].reset_index(drop=True)

