"""From a dataset and an ensemble to the ranked candidate lists (SPECS S5 "Filter" and "Ranking"): predictions come
through the prediction store (any adapter, ``predictions:`` included), the optional single-label filter drops images
without exactly one ReaL label and classes left with fewer than ``min_class_images``; ``extras`` are the target's
correctly classified images outside its top-k, the pool that fills short classes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.curate.easyset.ranking import candidate_table, correct_rows, rank, softmax_rows
from shiftlab.errors import InputError


@dataclass
class EasysetRanking:
    """The ranked lists of one run. ``ranking``: ``{model: {class: [[file, confidence], …]}}``; ``target``: the
    model the set is for (a key of ``ranking``); ``candidates``: every model's row per image (``CANDIDATE_COLUMNS``);
    ``dropped_classes``: classes left out for having fewer than ``min_class_images`` images after the filter."""

    ranking: dict
    target: str
    candidates: pd.DataFrame
    n_images: int
    n_filtered: int
    dropped_classes: list[int] = field(default_factory=list)
    parameters: dict = field(default_factory=dict)

    def target_ranking(self) -> dict[int, list[tuple[str, float]]]:
        """The target model's lists as ``{class: [(file, confidence), …]}``."""
        return {int(k): [(f, c) for f, c in v] for k, v in self.ranking[self.target].items()}


def single_labels(manifest, label_source: str) -> np.ndarray:
    """Each image's one ReaL label, or -1 where it has none or several (SPECS S5: class membership and "correct"
    both use that label). ``label_source``: ``real:PATH``."""
    from shiftlab.data.labelfiles import REAL_COLUMN, apply_label_sources

    if not label_source.startswith("real:"):
        raise InputError(f"--single-label {label_source!r}: give real:PATH (ReaL's real.json)")
    real = apply_label_sources(manifest, [label_source]).table[REAL_COLUMN]
    return np.array([int(v[0]) if v is not None and len(v) == 1 else -1 for v in real], dtype=np.int64)


def _scores(p) -> np.ndarray:
    if p.kind == "topk":
        raise InputError(f"{p.model}: top-k predictions carry no confidence; the ranking needs logits or "
                         "probabilities")
    return p.values.astype(np.float32) if p.kind == "probabilities" else softmax_rows(p.values)


def rank_dataset(manifest, ensemble: Sequence[str], target: str, *, single_label: str | None = None, top: int = 5,
                 min_class_images: int = 5, agreement: str = "own", tie: str = "name", workspace=None,
                 device: str = "auto", batch_size: int = 64, progress: bool = True) -> EasysetRanking:
    """Rank ``manifest``'s images per class and per model (module docstring). ``ensemble``: model specs; ``target``
    one of them (or an extra spec, then ranked too). Defaults reproduce the released ``safebets.json``."""
    from shiftlab.predict.engine import predict

    specs = list(dict.fromkeys([*ensemble, target]))
    labels = single_labels(manifest, single_label) if single_label else np.asarray(manifest.labels)
    counts = pd.Series(labels[labels >= 0]).value_counts()
    dropped = sorted(int(k) for k, n in counts.items() if n < min_class_images)
    keep = (labels >= 0) & ~np.isin(labels, dropped)
    # predictions of the whole dataset (one stored cell per model, whatever the filter), then the kept rows
    preds = predict(manifest, specs, workspace=workspace, device=device, batch_size=batch_size, progress=progress)
    names = [p.model for p in preds]
    if len(set(names)) != len(names):
        raise InputError(f"two models share the display name {names}; give each spec once")
    cand = candidate_table(manifest.ids[keep], labels[keep], {p.model: _scores(p)[keep] for p in preds},
                           {p.model: p.valid[keep] for p in preds})
    ranking = rank(cand, top=top, agreement=agreement, tie=tie, models=names)
    params = {"ensemble": list(ensemble), "target": target, "top": top, "agreement": agreement, "tie": tie,
              "single_label": single_label, "min_class_images": min_class_images, "dataset": manifest.name}
    return EasysetRanking(ranking, names[specs.index(target)], cand, len(manifest), int(keep.sum()), dropped, params)


def extras(candidates: pd.DataFrame, target: str, klass: int, exclude: Sequence[str], n: int,
           *, agreement: str = "own") -> list[tuple[str, float]]:
    """Up to ``n`` images of ``klass`` outside ``exclude`` (the ranked top-k) that the target classifies correctly,
    by confidence desc, then file name: the order a reviewer is offered them in."""
    right = correct_rows(candidates, agreement=agreement)
    rows = right[(right["model"] == target) & (right["label"] == klass) & ~right["id"].isin(list(exclude))]
    rows = rows.sort_values(["confidence", "id"], ascending=[False, True], kind="mergesort").head(n)
    return [(str(f), float(np.float32(c))) for f, c in zip(rows["id"], rows["confidence"])]


# --- the ranking folder: what ``easyset rank`` writes and the later steps read -----------------------------------
RANKING_FILE, CANDIDATES_FILE, QUEUE_FILE, PARAMS_FILE = ("safebets.json", "candidates.parquet", "queue.parquet",
                                                          "easyset.json")


def review_queue(result: EasysetRanking, *, n_extras: int = 5, final_size: int = 3) -> pd.DataFrame:
    """The review queue (``decisions.queue_items``): the target's ranked images and, per class, up to ``n_extras``
    extras (its next correctly classified images, by confidence)."""
    from shiftlab.curate.easyset.decisions import queue_items

    ranked = result.target_ranking()
    agreement = result.parameters.get("agreement", "own")
    more = {k: extras(result.candidates, result.target, k, [f for f, _ in v], n_extras, agreement=agreement)
            for k, v in ranked.items()}
    return queue_items(ranked, more, final_size, result.parameters.get("top", 5))


def write_ranking_folder(result: EasysetRanking, folder, *, n_extras: int = 5, final_size: int = 3) -> list[Path]:
    """``safebets.json``, ``candidates.parquet``, ``queue.parquet`` and ``easyset.json`` (parameters) in ``folder``."""
    from shiftlab.curate.easyset.ranking import write_ranking
    from shiftlab.fsutil import atomic_write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    queue = review_queue(result, n_extras=n_extras, final_size=final_size)
    out = [write_ranking(folder / RANKING_FILE, result.ranking)]
    for name, t in ((CANDIDATES_FILE, result.candidates), (QUEUE_FILE, queue)):
        tmp = folder / f".{name}.tmp"
        t.to_parquet(tmp, index=False)
        os.replace(tmp, folder / name)
        out.append(folder / name)
    atomic_write_json(folder / PARAMS_FILE, {**result.parameters, "target_name": result.target, "n_extras": n_extras,
                                             "final_size": final_size, "n_images": result.n_images,
                                             "n_filtered": result.n_filtered,
                                             "dropped_classes": result.dropped_classes})
    return out + [folder / PARAMS_FILE]


def read_ranking_folder(folder) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """(parameters, candidates, queue) of a folder ``easyset rank`` wrote; ``InputError`` naming what is missing."""
    from shiftlab.fsutil import read_json

    folder = Path(folder)
    missing = [n for n in (PARAMS_FILE, CANDIDATES_FILE, QUEUE_FILE) if not (folder / n).is_file()]
    if missing:
        raise InputError(f"{folder}: no {', '.join(missing)}; give the folder 'shiftlab easyset rank --out' wrote")
    return (read_json(folder / PARAMS_FILE), pd.read_parquet(folder / CANDIDATES_FILE),
            pd.read_parquet(folder / QUEUE_FILE))
