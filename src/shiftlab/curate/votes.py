"""Crowd results → selection frequencies and worker accuracies (SPECS S1.2).

Input: the platform's batch results CSV (one row per assignment, shape documented in
``shiftlab.curate.annotate``) and the HIT batch (``batch.json`` or a list of ``Hit``) that maps the opaque
URLs back to image ids and roles.

- Valid assignments: status ``Submitted`` or ``Approved``; ``Rejected`` ones never count.
- Selection frequency of (image, class) = ticks / valid assignments, pooled over every non-blacklisted HIT
  of that class that shows the image (duplicates across HITs add up). Controls get frequencies too.
- Per-worker control accuracy: share of control images answered right (positives ticked, negatives not
  ticked), over all of the worker's assignments in non-blacklisted HITs (rejected ones included: they are
  evidence of how the worker answers). Opt-in: ``min_worker_accuracy`` drops workers below it from the
  frequencies.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shiftlab.curate.annotate import Hit, read_hit_batch
from shiftlab.data.layouts import read_dataset
from shiftlab.errors import InputError
from shiftlab.fsutil import replace_bytes
from shiftlab.registry import register_dataset

VALID_STATUSES = ("Submitted", "Approved")
STATUSES = ("Submitted", "Approved", "Rejected")
YES = {"true", "on", "1"}
NO = {"false", "", "0"}
_IMAGE_COL = re.compile(r"Input\.image_(\d+)", re.ASCII)  # used with fullmatch: whole column names only

FREQUENCY_COLUMNS = ("image_id", "class_index", "role", "n_hits", "n_answers", "n_valid", "n_yes", "frequency")
WORKER_COLUMNS = ("worker_id", "n_assignments", "n_valid_assignments", "n_rejected", "n_controls",
                  "n_controls_correct", "control_accuracy", "positive_recall", "negative_specificity",
                  "dropped")


@dataclass(frozen=True)
class VoteResult:
    """``import_votes``'s result: selection frequencies per (image, class), worker accuracies and counts.

    ``frequencies``: one row per (image_id, class_index), ``FREQUENCY_COLUMNS`` (``frequency`` a fraction in
    [0, 1]; ``role`` the image's roles joined by ``+`` when it had several). ``workers``: one row per worker,
    ``WORKER_COLUMNS``. The counts are of assignments; ``dropped_workers`` are those below ``min_worker_accuracy``.
    """

    frequencies: pd.DataFrame  # one row per (image_id, class_index), see FREQUENCY_COLUMNS
    workers: pd.DataFrame  # one row per worker, see WORKER_COLUMNS
    n_assignments: int
    n_valid_assignments: int
    n_rejected: int
    blacklisted_hits: tuple[str, ...] = ()
    min_worker_accuracy: float | None = None
    dropped_workers: tuple[str, ...] = ()
    n_dropped_assignments: int = 0
    parameters: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """The headline numbers as a flat dict: assignments (all, valid, rejected, dropped), blacklisted HITs,
        workers (all and dropped, with ``min_worker_accuracy``), images, candidate pairs, the fewest valid answers
        of a candidate and the mean candidate frequency (a fraction).
        """
        f = self.frequencies
        cand = f[f["role"] == "candidate"]
        return {"assignments": self.n_assignments, "valid_assignments": self.n_valid_assignments,
                "rejected_assignments": self.n_rejected, "blacklisted_hits": len(self.blacklisted_hits),
                "workers": len(self.workers), "min_worker_accuracy": self.min_worker_accuracy,
                "dropped_workers": len(self.dropped_workers),
                "dropped_assignments": self.n_dropped_assignments,
                "images": int(f["image_id"].nunique()), "candidate_pairs": len(cand),
                "min_valid_per_candidate": int(cand["n_valid"].min()) if len(cand) else 0,
                "mean_candidate_frequency": float(cand["frequency"].mean()) if len(cand) else float("nan")}

    def write(self, folder: str | os.PathLike) -> list[Path]:
        """``frequencies.parquet`` and ``workers.csv`` in ``folder`` (made if missing), each atomically, a different
        file already there kept as a dated ``.bak``; returns their paths."""
        import io

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        self.frequencies.to_parquet(buf, index=False)
        replace_bytes(folder / "frequencies.parquet", buf.getvalue())
        replace_bytes(folder / "workers.csv", self.workers.to_csv(index=False).encode())
        return [folder / "frequencies.parquet", folder / "workers.csv"]

    def for_role(self, role: str) -> pd.DataFrame:
        """The rows of ``frequencies`` whose roles include ``role`` (``candidate``, ``positive`` or ``negative``)."""
        return self.frequencies[self.frequencies["role"].str.split("+").map(lambda r: role in r)]


def _answer(v: str, where: str) -> bool:
    s = v.strip().lower()
    if s in YES:
        return True
    if s in NO:
        return False
    raise InputError(f"{where}: answer {v!r} is not true/false (allowed: true, false, on, 1, 0 or empty)")


def read_results(results_csv: str | os.PathLike) -> pd.DataFrame:
    """The results CSV as strings; InputError when unreadable or without the required columns."""
    p = Path(results_csv)
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(f"{p}: no such results file") from None
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise InputError(f"{p}: not a readable results CSV ({' '.join(str(e).split())})") from None
    return check_results(df, p)


def check_results(df: pd.DataFrame, p: Path) -> pd.DataFrame:
    """``df`` if it has the columns of a batch-results table (``p`` names it in errors); else InputError."""
    required = ["AssignmentId", "WorkerId", "AssignmentStatus"]
    missing = [c for c in required if c not in df.columns]
    if "HITId" not in df.columns and "Input.hit_id" not in df.columns:
        missing.append("HITId or Input.hit_id")
    n = sorted(int(m.group(1)) for c in df.columns if (m := _IMAGE_COL.fullmatch(c)))
    if not n:
        missing.append("Input.image_1 …")
    missing += [f"Answer.image_{i}" for i in n if f"Answer.image_{i}" not in df.columns][:1]
    if missing:
        raise InputError(f"{p}: the results CSV lacks column(s) {', '.join(missing)} "
                         "(expected the crowd platform's batch results: one row per assignment)")
    return df


def import_votes(results_csv: str | os.PathLike | pd.DataFrame, batch: str | os.PathLike | Sequence[Hit], *,
                 blacklist_hits: Iterable[str] = (), min_worker_accuracy: float | None = None) -> VoteResult:
    """Selection frequencies and worker accuracies from a results CSV (or the table ``read_results`` gives) and
    its HIT batch."""
    frame = results_csv if isinstance(results_csv, pd.DataFrame) else None
    p = Path("results") if frame is not None else Path(results_csv)
    hits = read_hit_batch(batch) if isinstance(batch, (str, os.PathLike)) else list(batch)
    by_id = {h.hit_id: h for h in hits}
    url_maps = {h.hit_id: {i.url: (i.image_id, i.role) for i in h.images} for h in hits}
    blacklist = tuple(sorted(set(blacklist_hits)))
    unknown_bl = [b for b in blacklist if b not in by_id]
    if unknown_bl:
        raise InputError(f"blacklisted HIT {unknown_bl[0]!r} is not in the HIT batch")
    if min_worker_accuracy is not None and not 0.0 <= min_worker_accuracy <= 1.0:
        raise InputError(f"min_worker_accuracy must be within 0..1 (got {min_worker_accuracy})")
    df = check_results(frame, p) if frame is not None else read_results(p)
    hit_col = "Input.hit_id" if "Input.hit_id" in df.columns else "HITId"
    n_img = sorted(int(m.group(1)) for c in df.columns if (m := _IMAGE_COL.fullmatch(c)))

    # --- parse every row (all checks before any counting) ------------------------------------------------
    votes = []  # (assignment row, worker, valid, hit, class, image_id, role, yes)
    assignments = []  # (row, worker, status, hit)
    seen_assignments: set[str] = set()
    for r, row in enumerate(df.to_dict("records")):
        where = f"{p} row {r + 2}"
        hit_id = row[hit_col].strip()
        if hit_id not in by_id:
            raise InputError(f"{where}: HIT {hit_id!r} is not in the HIT batch (wrong batch.json?)")
        status = row["AssignmentStatus"].strip()
        if status not in STATUSES:
            raise InputError(f"{where}: AssignmentStatus {status!r} is not one of {', '.join(STATUSES)}")
        aid = row["AssignmentId"].strip()
        if aid and aid in seen_assignments:
            raise InputError(f"{where}: assignment {aid!r} appears twice")
        seen_assignments.add(aid)
        worker = row["WorkerId"].strip()
        if not worker:
            raise InputError(f"{where}: empty WorkerId")
        urls = url_maps[hit_id]
        shown = 0
        for i in n_img:
            url = row[f"Input.image_{i}"].strip()
            ans = row.get(f"Answer.image_{i}", "")
            if not url:
                if ans.strip().lower() not in NO:
                    raise InputError(f"{where}: Answer.image_{i} is {ans!r} but there is no image {i}")
                continue
            if url not in urls:
                raise InputError(f"{where}: image URL {url!r} (image_{i}) is not in HIT {hit_id} of the batch")
            image_id, role = urls[url]
            votes.append((r, worker, status in VALID_STATUSES, hit_id, by_id[hit_id].class_index, image_id,
                          role, _answer(ans, f"{where} Answer.image_{i}")))
            shown += 1
        if shown != len(by_id[hit_id].images):
            raise InputError(f"{where}: the row shows {shown} images but HIT {hit_id} has "
                             f"{len(by_id[hit_id].images)}")
        assignments.append((r, worker, status, hit_id))

    cols = ["row", "worker_id", "valid", "hit_id", "class_index", "image_id", "role", "yes"]
    v = pd.DataFrame(votes, columns=cols)
    a = pd.DataFrame(assignments, columns=["row", "worker_id", "status", "hit_id"])
    keep_hits = ~a["hit_id"].isin(blacklist)
    a = a[keep_hits]
    v = v[~v["hit_id"].isin(blacklist)]

    # --- workers --------------------------------------------------------------------------------------
    ctrl = v[v["role"].isin(["positive", "negative"])].copy()
    ctrl["correct"] = np.where(ctrl["role"] == "positive", ctrl["yes"], ~ctrl["yes"])
    workers = sorted(a["worker_id"].unique())
    g_a = a.groupby("worker_id")
    n_ass = g_a.size().reindex(workers, fill_value=0)
    n_valid = g_a["status"].apply(lambda s: int(s.isin(VALID_STATUSES).sum())).reindex(workers, fill_value=0)
    n_rej = g_a["status"].apply(lambda s: int((s == "Rejected").sum())).reindex(workers, fill_value=0)
    g_c = ctrl.groupby("worker_id")
    n_ctrl = g_c.size().reindex(workers, fill_value=0)
    n_corr = g_c["correct"].sum().reindex(workers, fill_value=0)
    pos = ctrl[ctrl["role"] == "positive"].groupby("worker_id")["yes"].mean().reindex(workers)
    neg = ctrl[ctrl["role"] == "negative"].groupby("worker_id")["yes"].apply(lambda s: 1 - s.mean()).reindex(workers)
    acc = (n_corr / n_ctrl.replace(0, np.nan)).astype(float)
    dropped = []
    if min_worker_accuracy is not None:
        # a worker without any control answer cannot be judged and is kept
        dropped = sorted(w for w in workers if not np.isnan(acc[w]) and acc[w] < min_worker_accuracy)
    wt = pd.DataFrame({"worker_id": workers, "n_assignments": n_ass.to_numpy(dtype=np.int64),
                       "n_valid_assignments": n_valid.to_numpy(dtype=np.int64),
                       "n_rejected": n_rej.to_numpy(dtype=np.int64), "n_controls": n_ctrl.to_numpy(dtype=np.int64),
                       "n_controls_correct": n_corr.to_numpy(dtype=np.int64),
                       "control_accuracy": acc.to_numpy(), "positive_recall": pos.to_numpy(dtype=float),
                       "negative_specificity": neg.to_numpy(dtype=float),
                       "dropped": [w in set(dropped) for w in workers]}, columns=list(WORKER_COLUMNS))

    # --- frequencies ------------------------------------------------------------------------------------
    dropped_set = set(dropped)
    n_dropped_assignments = int((a["worker_id"].isin(dropped_set) & a["status"].isin(VALID_STATUSES)).sum())
    counted = v[~v["worker_id"].isin(dropped_set)]
    valid = counted[counted["valid"]]
    pairs = v.groupby(["image_id", "class_index"], sort=True).agg(
        role=("role", lambda s: "+".join(sorted(set(s)))), n_hits=("hit_id", "nunique"),
        n_answers=("yes", "size")).reset_index()
    stats = valid.groupby(["image_id", "class_index"]).agg(n_valid=("yes", "size"), n_yes=("yes", "sum"))
    f = pairs.merge(stats.reset_index(), on=["image_id", "class_index"], how="left")
    f["n_answers"] = f["n_answers"].astype(np.int64)  # every status, dropped workers included
    f["n_valid"] = f["n_valid"].fillna(0).astype(np.int64)
    f["n_yes"] = f["n_yes"].fillna(0).astype(np.int64)
    f["frequency"] = np.where(f["n_valid"] > 0, f["n_yes"] / f["n_valid"].where(f["n_valid"] > 0, 1), np.nan)
    f["class_index"] = f["class_index"].astype(np.int64)
    f = f.sort_values(["class_index", "image_id"], kind="stable").reset_index(drop=True)[list(FREQUENCY_COLUMNS)]

    return VoteResult(
        frequencies=f, workers=wt, n_assignments=len(a),
        n_valid_assignments=int(a["status"].isin(VALID_STATUSES).sum()),
        n_rejected=int((a["status"] == "Rejected").sum()), blacklisted_hits=blacklist,
        min_worker_accuracy=min_worker_accuracy, dropped_workers=tuple(dropped),
        n_dropped_assignments=n_dropped_assignments,
        parameters={"results": str(p.resolve()), "n_hits": len(hits)})


def attach_frequencies(manifest, result: VoteResult, *, column: str = "selection_frequency"):
    """The manifest with the frequency of each image for its own label (``column``) and the number of
    valid annotations behind it (``n_annotations``); NaN / 0 for images no HIT asked about."""
    from dataclasses import replace

    f = result.frequencies.set_index(["image_id", "class_index"])
    keys = list(zip(manifest.table["id"], manifest.table["label"].astype(np.int64)))
    t = manifest.table.copy()
    t[column] = [float(f.at[k, "frequency"]) if k in f.index else np.nan for k in keys]
    t["n_annotations"] = np.array([int(f.at[k, "n_valid"]) if k in f.index else 0 for k in keys], dtype=np.int64)
    return replace(manifest, table=t)


@dataclass(frozen=True)
class HitsImport:
    """What ``import_hits`` did: the votes, the files written, and the pool annotated with them (if any)."""

    votes: VoteResult
    written: list[Path]
    pool: object | None = None  # Manifest with selection_frequency and n_annotations, registered again
    n_earlier: int = 0  # assignments imported before into the same folder and kept
    n_updated: int = 0  # earlier assignments this file's rows replaced (same AssignmentId)


def import_hits(results_csv: str | os.PathLike, batch: str | os.PathLike, *, pool: str | None = None,
                min_worker_accuracy: float | None = None, out_dir: str | os.PathLike | None = None,
                workspace=None, replace: bool = False) -> HitsImport:
    """``shiftlab hits import``: votes of a batch → files beside the batch, and the pool annotated.

    results_csv, batch, min_worker_accuracy: as ``import_votes``. ``pool``: a registered name or path whose
    images get ``selection_frequency`` / ``n_annotations`` (``attach_frequencies``); it is read before anything
    is written and registered again under its name. ``out_dir``: default the batch's folder. Votes already
    imported there are kept: this file's assignments are merged in by AssignmentId (``assignments.csv`` holds them
    all) and the frequencies are computed over the union; ``replace`` starts over instead (the old files are kept
    as dated ``.bak``).
    """
    p = read_dataset(pool, workspace=workspace) if pool else None  # validate before writing anything
    b = Path(batch)
    folder = Path(out_dir) if out_dir is not None else (b.parent if b.is_file() else b)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: a file, not a folder; give --out a folder for the vote files")
    hits = read_hit_batch(batch)  # every input read and checked before anything is merged or written
    new = read_results(results_csv)
    merged, n_earlier, n_updated = _merge_assignments(folder, new, replace=replace)
    r = import_votes(merged, hits, min_worker_accuracy=min_worker_accuracy)
    written = r.write(folder)
    replace_bytes(folder / ASSIGNMENTS, merged.to_csv(index=False, lineterminator="\n").encode())
    written.append(folder / ASSIGNMENTS)
    annotated = None
    if p is not None:
        annotated = attach_frequencies(p, r)
        register_dataset(annotated, p.name, workspace)
    return HitsImport(r, written, annotated, n_earlier, n_updated)


#: the assignments imported into a votes folder so far: the rows of every results file, one per AssignmentId
ASSIGNMENTS = "assignments.csv"


def _merge_assignments(folder: Path, new: pd.DataFrame, *, replace: bool) -> tuple[pd.DataFrame, int, int]:
    """The folder's earlier assignments with ``new``'s rows merged in by AssignmentId (a row of ``new`` replaces an
    earlier row of the same assignment: a later export carries the later status); (table, earlier assignments
    kept, earlier ones replaced). An import therefore adds votes and never drops the ones imported before."""
    earlier_file, freq_file = folder / ASSIGNMENTS, folder / "frequencies.parquet"
    if replace or not (earlier_file.is_file() or freq_file.is_file()):
        return new, 0, 0
    if not earlier_file.is_file():
        raise InputError(f"{folder} holds votes imported without their assignments ({ASSIGNMENTS}), so they cannot "
                         "be merged; give --replace to replace them (kept as dated .bak files) or another --out")
    earlier = read_results(earlier_file)
    for what, t in ((str(earlier_file), earlier), ("the results file", new)):
        if t["AssignmentId"].str.strip().eq("").any():
            raise InputError(f"{what} has rows without an AssignmentId; votes are merged by assignment, so give "
                             "--replace to replace the earlier votes instead, or another --out")
    ids = set(new["AssignmentId"].str.strip())
    kept = earlier[~earlier["AssignmentId"].str.strip().isin(ids)]
    merged = pd.concat([kept, new], ignore_index=True).fillna("")
    return merged, len(kept), len(earlier) - len(kept)
