"""Sampling the ImageNetV2 variants from an annotated, de-duplicated candidate pool (SPECS S1.5).

Inputs are plain DataFrames:

- **candidates** — one row per (candidate image, class it was collected for):
  ``id`` (str), ``class`` (int), ``frequency`` (selection frequency in [0, 1]; NaN = never shown → 0),
  ``n_annotations`` (number of valid annotations), ``blacklisted`` (bool), ``near_duplicate`` (bool, resolved
  per S1.4), ``reviewed`` (bool: every metric's review threshold is above its target, S1.3).
- **validation** (MatchedFrequency only) — one row per validation image: ``id``, ``class``, ``frequency``,
  ``n_annotations``.
- **previous** — the parent revision's images as ``(id, class)`` pairs or a mapping ``class → [ids]``
  (``shiftlab.curate.revisions.previous_by_class`` turns a revision file into that).

Eligible (S1.5) = not blacklisted, ≥ ``min_num_annotations`` valid annotations, not a near-duplicate,
reviewed. Classes are visited in sorted order, one ``random.Random(seed)`` drives every random choice
(``rng.sample(sorted(pool), k)``), and the whole list is shuffled with the same RNG at the end. A class
with too few eligible images contributes everything it has and makes the set invalid.

Strategies: ``a`` Threshold0.7 (``sample_threshold``), ``b`` MatchedFrequency
(``sample_matched_frequency``), ``c`` TopImages (``sample_top``); ``sample`` dispatches on the letter.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shiftlab.curate.dedup.thresholds import DEFAULT_REVIEW_TARGETS, IMAGENETV2_THRESHOLDS
from shiftlab.errors import InputError

CANDIDATE_COLUMNS = ("id", "class", "frequency", "n_annotations", "blacklisted", "near_duplicate", "reviewed")
VALIDATION_COLUMNS = ("id", "class", "frequency", "n_annotations")
STANDARD_BINS = (0.2, 0.4, 0.6, 0.8)
VARIANTS = {"a": "sample_above_threshold", "b": "sample_wnid_histogram", "c": "sample_best"}
VARIANT_NAMES = {"a": "Threshold0.7", "b": "MatchedFrequency", "c": "TopImages"}

Previous = Mapping[int, Sequence[str]] | Iterable[tuple[str, int]] | None


@dataclass
class SampleResult:
    """What a sampler chose.

    images: ``(id, class)`` in final (shuffled) order; is_valid: every class got ``per_class`` images (and,
    for MatchedFrequency, had a usable validation histogram); short_classes: classes that fell short;
    carried_over: class → ids kept from the previous revision; upward_sampled: class → ``(id, from_bin,
    to_bin)``; targets: class → per-bin target counts (MatchedFrequency; None = no usable histogram).
    """

    variant: str
    images: list[tuple[str, int]]
    is_valid: bool
    per_class: int
    classes: list[int]
    short_classes: list[int] = field(default_factory=list)
    carried_over: dict[int, list[str]] = field(default_factory=dict)
    upward_sampled: dict[int, list[tuple[str, int, int]]] = field(default_factory=dict)
    targets: dict[int, list[int] | None] = field(default_factory=dict)

    @property
    def target_size(self) -> int:
        """The number of images a valid result has: ``per_class`` × the number of classes."""
        return self.per_class * len(self.classes)

    def by_class(self) -> dict[int, list[str]]:
        """Class → the chosen ids, in ``images`` order; every class of ``classes`` is a key (possibly empty)."""
        out: dict[int, list[str]] = {k: [] for k in self.classes}
        for i, k in self.images:
            out.setdefault(k, []).append(i)
        return out


# --- inputs --------------------------------------------------------------------------------------------
def _common(table: pd.DataFrame, columns: Sequence[str], what: str) -> pd.DataFrame:
    """A copy with the required columns checked and id / class / frequency / n_annotations typed."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(f"{what} table lacks column(s) {', '.join(missing)} (needs {', '.join(columns)})")
    t = table.copy()
    t["id"] = t["id"].astype(str)
    t["class"] = t["class"].astype("int64")
    t["frequency"] = pd.to_numeric(t["frequency"], errors="coerce").astype(float)
    t["n_annotations"] = pd.to_numeric(t["n_annotations"], errors="coerce").fillna(0).astype("int64")
    return t


def check_candidates(candidates: pd.DataFrame) -> pd.DataFrame:
    """Validate and normalise a candidates table (see the module docstring); returns a clean copy."""
    t = _common(candidates, CANDIDATE_COLUMNS, "candidates")
    t["frequency"] = t["frequency"].fillna(0.0)
    for c in ("blacklisted", "near_duplicate", "reviewed"):
        t[c] = t[c].fillna(c != "reviewed").astype(bool)  # unknown: blacklisted/duplicate yes, reviewed no
    bad = t["frequency"][(t["frequency"] < 0) | (t["frequency"] > 1)]
    if len(bad):
        raise InputError(f"candidates: selection frequency {bad.iloc[0]} is outside [0, 1]")
    dup = t[t.duplicated(["id", "class"])]
    if len(dup):
        raise InputError(f"candidates: ({dup['id'].iloc[0]!r}, class {dup['class'].iloc[0]}) appears twice")
    return t


def check_validation(validation: pd.DataFrame) -> pd.DataFrame:
    """Validate and normalise a validation table (``VALIDATION_COLUMNS``); returns a typed copy.

    A column missing is an ``InputError``; a ``frequency`` that is not a number becomes NaN, a missing
    ``n_annotations`` 0.
    """
    return _common(validation, VALIDATION_COLUMNS, "validation")


def read_table(path, kind: str = "candidates") -> pd.DataFrame:
    """Read a candidates (``kind="candidates"``) or validation (``kind="validation"``) table from CSV,
    Parquet or JSON (records) and check its columns — for the CLI."""
    from pathlib import Path

    p = Path(path)
    try:
        if p.suffix == ".parquet":
            t = pd.read_parquet(p)
        elif p.suffix == ".json":
            t = pd.read_json(p, orient="records", dtype={"id": str})
        else:
            t = pd.read_csv(p, dtype={"id": str})
    except (OSError, ValueError) as e:
        raise InputError(f"{p}: not a readable {kind} table ({type(e).__name__} {e})") from None
    if kind == "candidates":
        return check_candidates(t)
    if kind == "validation":
        return check_validation(t)
    raise InputError(f"unknown table kind {kind!r} (candidates | validation)")


def frequency_table(manifest, what: str = "the pool") -> pd.DataFrame:
    """``id, class, frequency, n_annotations`` of a Manifest that carries selection frequencies (a pool or
    validation set after ``shiftlab hits import --pool``); ``what`` names it in the error otherwise."""
    t = manifest.table
    if "selection_frequency" not in t.columns:
        raise InputError(f"{manifest.name} has no selection frequencies: run 'shiftlab hits import RESULTS --batch "
                         f"BATCH --pool {manifest.name}' first ({what})")
    return pd.DataFrame({"id": t["id"], "class": t["label"], "frequency": t["selection_frequency"],
                         "n_annotations": t["n_annotations"]})


def review_targets(metrics: Iterable[str], targets: Mapping[str, float] | None = None) -> dict[str, float]:
    """The target each metric's review threshold must exceed (S1.3): ``targets`` where given, else
    ``DEFAULT_REVIEW_TARGETS`` (l2, dssim, fc7 — also for ``embedding``), else the metric's review
    threshold in ``shiftlab.curate.dedup.IMAGENETV2_THRESHOLDS`` (phash, aligned). Unknown metric →
    InputError."""
    out = {}
    for m in map(str, metrics):
        names = (m, "fc7") if m == "embedding" else (m,)
        found = [t[n] for t in (targets or {}, DEFAULT_REVIEW_TARGETS, IMAGENETV2_THRESHOLDS) for n in names if n in t]
        if not found:
            raise InputError(f"no near-duplicate review target for metric {m!r}")
        out[m] = float(found[0])
    return out


def reviewed_mask(review_thresholds: pd.DataFrame, targets: Mapping[str, float] | None = None) -> pd.Series:
    """S1.3's "reviewed": True for each candidate (the index of ``review_thresholds``, one column per metric,
    as ``shiftlab.curate.dedup.review_thresholds`` returns) whose review threshold is above its metric's
    target (``review_targets``) for every metric."""
    t = review_targets(review_thresholds.columns, targets)
    above = pd.Series(True, index=review_thresholds.index)
    for metric in review_thresholds.columns:
        above &= review_thresholds[metric] > t[str(metric)]
    return above


def candidate_table(pool, *, resolution: pd.DataFrame | None = None, review_thresholds: pd.DataFrame | None = None,
                    targets: Mapping[str, float] | None = None, dedup: bool = True) -> pd.DataFrame:
    """The sampler's candidates table (module doc) for a pool Manifest carrying selection frequencies.

    resolution: ``id, keep`` (``resolve_duplicates``; an id missing from it is not marked a near-duplicate);
    review_thresholds: as ``reviewed_mask`` takes them, compared with ``targets`` (an id missing from them
    counts as unreviewed, so a candidate the near-duplicate search never saw is not eligible).
    ``dedup=False``: no near-duplicate review at all (near_duplicate False, reviewed True) — not
    ImageNetV2's process. Nobody is blacklisted here."""
    cands = frequency_table(pool, "the pool")
    cands["blacklisted"] = False
    if not dedup:
        cands["near_duplicate"], cands["reviewed"] = False, True
        return cands
    if resolution is None or review_thresholds is None:
        raise InputError("candidate_table needs the near-duplicate resolution and review thresholds "
                         "(or dedup=False)")
    keep = resolution.set_index("id")["keep"]
    cands["near_duplicate"] = ~cands["id"].map(keep).fillna(True).astype(bool)
    cands["reviewed"] = cands["id"].map(reviewed_mask(review_thresholds, targets)).fillna(False).astype(bool)
    return cands


def read_dedup_folder(folder) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(resolution, review thresholds) from a folder written by ``shiftlab dedup --reviews``."""
    from pathlib import Path

    folder = Path(folder)
    res_f, thr_f = folder / "resolution.parquet", folder / "review_thresholds.parquet"
    if not res_f.is_file() or not thr_f.is_file():
        raise InputError(f"{folder}: no resolution.parquet / review_thresholds.parquet; run "
                         "'shiftlab dedup … --reviews REVIEWS.csv --out' into it")
    return pd.read_parquet(res_f), pd.read_parquet(thr_f)


def read_queue_thresholds(folder) -> dict[str, float] | None:
    """The thresholds ``dedup`` queued with (``queue_thresholds.json``), None for a folder without them."""
    from pathlib import Path

    from shiftlab.fsutil import read_json

    f = Path(folder) / "queue_thresholds.json"
    if not f.is_file():
        return None
    try:
        return {str(k): float(v) for k, v in read_json(f).items()}
    except (ValueError, AttributeError, TypeError) as e:
        raise InputError(f"{f}: not a metric → threshold JSON ({e})") from None


def eligible_mask(candidates: pd.DataFrame, min_num_annotations: int = 10) -> pd.Series:
    """Eligible (S1.5): not blacklisted, ≥ min_num_annotations, not a near-duplicate, reviewed (S1.3)."""
    c = candidates
    return (~c["blacklisted"].astype(bool)) & (c["n_annotations"] >= min_num_annotations) & \
        (~c["near_duplicate"].astype(bool)) & c["reviewed"].astype(bool)


def _previous_by_class(previous: Previous) -> dict[int, list[str]]:
    if previous is None:
        return {}
    if isinstance(previous, Mapping):
        return {int(k): [str(i) for i in v] for k, v in previous.items()}
    out: dict[int, list[str]] = {}
    for i, k in previous:
        out.setdefault(int(k), []).append(str(i))
    return out


def _classes(candidates: pd.DataFrame, classes: Iterable[int] | None, *extra: Iterable[int]) -> list[int]:
    if classes is not None:
        return sorted({int(k) for k in classes})
    ks = {int(k) for k in candidates["class"]}
    for e in extra:
        ks |= {int(k) for k in e}
    return sorted(ks)


def _check_args(per_class: int, seed) -> None:
    if int(per_class) < 1:
        raise InputError(f"per_class must be at least 1 (got {per_class})")
    if seed is None or isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"a sampling seed must be an int (got {seed!r})")


# --- histograms ----------------------------------------------------------------------------------------
def histogram_bin(frequency: float, bins: Sequence[float] = STANDARD_BINS) -> int:
    """Bin index: bins are ``[0, b0) [b0, b1) … [b_last, 1]``."""
    for i, b in enumerate(bins):
        if frequency < b:
            return i
    return len(bins)


def build_histogram(frequencies: Iterable[float], bins: Sequence[float] = STANDARD_BINS) -> list[int]:
    """Counts of ``frequencies`` (fractions in [0, 1]) per bin of ``bins`` (``histogram_bin``): len(bins) + 1 ints."""
    hist = [0] * (len(bins) + 1)
    for f in frequencies:
        hist[histogram_bin(float(f), bins)] += 1
    return hist


def round_histogram(hist: Sequence[int], total: int) -> list[int]:
    """Scale ``hist`` to sum to ``total`` by largest remainder, as ImageNetV2's ``round_histogram`` does it:
    in float64, ``total * hist / hist.sum()``, floor, then +1 to the bins with the largest remainders
    ``frac - floor(frac)`` in order of (remainder, bin index) descending. Float rounding, not exact fractions,
    decides near-ties: [2, 5, 2, 2, 4] scaled to 10 gives [1, 4, 1, 1, 3] (bin 1's remainder comes out as
    0.3333333333333335, the others' as 0.33333333333333326)."""
    h = np.asarray([int(x) for x in hist], dtype=np.float64)
    if h.sum() <= 0:
        raise InputError("cannot scale an empty histogram")
    frac = int(total) * h / h.sum()
    floor = np.floor(frac)
    left = int(total) - int(np.round(floor.sum()))
    rem = frac - floor
    order = sorted(range(len(h)), key=lambda i: (rem[i], i), reverse=True)
    out = [int(x) for x in floor]
    for i in order[:left]:
        out[i] += 1
    return out


def class_targets(validation: pd.DataFrame, classes: Sequence[int], *, per_class: int = 10,
                  bins: Sequence[float] = STANDARD_BINS, min_num_annotations_val: int = 10,
                  min_num_val_images_per_class: int = 20) -> dict[int, list[int] | None]:
    """Per class: the validation histogram (images with ≥ min_num_annotations_val annotations) scaled to
    per_class; None when fewer than min_num_val_images_per_class such images exist (class invalid)."""
    v = check_validation(validation)
    v = v[(v["n_annotations"] >= min_num_annotations_val) & v["frequency"].notna()]
    groups = {int(k): g["frequency"].tolist() for k, g in v.groupby("class")}
    out: dict[int, list[int] | None] = {}
    for k in classes:
        freqs = groups.get(int(k), [])
        out[int(k)] = None if len(freqs) < min_num_val_images_per_class else \
            round_histogram(build_histogram(freqs, bins), per_class)
    return out


# --- strategies ----------------------------------------------------------------------------------------
def sample_threshold(candidates: pd.DataFrame, *, seed: int, per_class: int = 10, threshold: float = 0.7,
                     class_thresholds: Mapping[int, float] | None = None, min_num_annotations: int = 10,
                     previous: Previous = None, classes: Iterable[int] | None = None) -> SampleResult:
    """``a`` Threshold0.7: eligible images with frequency ≥ threshold (per-class overrides in
    ``class_thresholds``). The previous revision's still-eligible images are kept; the rest of each class
    is ``rng.sample(sorted(rest), need)``."""
    _check_args(per_class, seed)
    c = check_candidates(candidates)
    overrides = {int(k): float(v) for k, v in (class_thresholds or {}).items()}
    thr = c["class"].map(lambda k: overrides.get(int(k), threshold)).astype(float)
    ok = c[eligible_mask(c, min_num_annotations) & (c["frequency"] >= thr)]
    ok_by_class = {int(k): set(g["id"]) for k, g in ok.groupby("class")}
    prev = _previous_by_class(previous)
    rng = random.Random(seed)
    res = SampleResult("a", [], True, per_class, _classes(c, classes))
    for k in res.classes:
        pool = ok_by_class.get(k, set())
        kept = [i for i in dict.fromkeys(prev.get(k, [])) if i in pool]  # the parent file's order
        if len(kept) > per_class:  # a parent can't hold more than per_class; be safe with foreign files
            kept = rng.sample(kept, per_class)
        res.carried_over[k] = kept
        rest = sorted(pool - set(kept))
        need = per_class - len(kept)
        if len(rest) < need:
            res.short_classes.append(k)
            new = rest
        else:
            new = rng.sample(rest, need)
        res.images += [(i, k) for i in kept + new]
    return _finish(res, rng)


def sample_matched_frequency(candidates: pd.DataFrame, validation: pd.DataFrame, *, seed: int,
                             per_class: int = 10, bins: Sequence[float] = STANDARD_BINS,
                             min_num_annotations: int = 10, min_num_annotations_val: int = 10,
                             min_num_val_images_per_class: int = 20, allow_upward_sampling: bool = False,
                             previous: Previous = None, classes: Iterable[int] | None = None) -> SampleResult:
    """``b`` MatchedFrequency: per class, match the frequency histogram of its validation images.

    Per bin: keep the previous revision's eligible images in that bin (a random subset if more than the
    bin's target), then ``rng.sample`` the sorted remaining eligible candidates of the bin. With
    ``allow_upward_sampling`` a short bin is filled one image at a time from the next higher bin that still
    has unused candidates, preferring previous-revision images (smallest id first), else a random one.
    A class without a usable validation histogram contributes nothing and makes the set invalid.
    """
    _check_args(per_class, seed)
    c = check_candidates(candidates)
    v = check_validation(validation)
    bins = tuple(float(b) for b in bins)
    nb = len(bins) + 1
    res = SampleResult("b", [], True, per_class, _classes(c, classes))
    res.targets = class_targets(v, res.classes, per_class=per_class, bins=bins,
                                min_num_annotations_val=min_num_annotations_val,
                                min_num_val_images_per_class=min_num_val_images_per_class)
    ok = c[eligible_mask(c, min_num_annotations)]
    freq = {(i, int(k)): f for i, k, f in zip(ok["id"], ok["class"], ok["frequency"])}
    ok_by_class: dict[int, list[str]] = {int(k): list(g["id"]) for k, g in ok.groupby("class")}
    prev = _previous_by_class(previous)
    rng = random.Random(seed)
    for k in res.classes:
        target = res.targets[k]
        if target is None:
            res.short_classes.append(k)
            continue
        chosen: list[list[str]] = [[] for _ in range(nb)]
        prev_k = set(prev.get(k, []))
        prev_bins: list[list[str]] = [[] for _ in range(nb)]
        # in the parent file's order, as ImageNetV2: a too-full bin's random subset is drawn from this list
        for i in dict.fromkeys(prev.get(k, [])):
            if (i, k) in freq:
                prev_bins[histogram_bin(freq[(i, k)], bins)].append(i)
        for b in range(nb):
            keep = prev_bins[b] if len(prev_bins[b]) <= target[b] else rng.sample(prev_bins[b], target[b])
            chosen[b] = list(keep)
        carried = {i for ch in chosen for i in ch}
        res.carried_over[k] = sorted(carried)
        pools: list[list[str]] = [[] for _ in range(nb)]
        for i in sorted(ok_by_class.get(k, [])):
            if i not in carried:
                pools[histogram_bin(freq[(i, k)], bins)].append(i)
        short = False
        for b in range(nb):
            need = target[b] - len(chosen[b])
            if need > len(pools[b]):
                short = short or not allow_upward_sampling
                new, pools[b] = pools[b], []
            else:
                new = rng.sample(pools[b], need)
                taken = set(new)
                pools[b] = [i for i in pools[b] if i not in taken]
            chosen[b] += new
        if allow_upward_sampling:
            ups = []
            for b in range(nb):
                for _ in range(target[b] - len(chosen[b])):
                    src = next((n for n in range(b + 1, nb) if pools[n]), None)
                    if src is None:
                        short = True
                        break
                    from_prev = [i for i in pools[src] if i in prev_k]
                    pick = from_prev[0] if from_prev else rng.sample(pools[src], 1)[0]
                    pools[src] = [i for i in pools[src] if i != pick]
                    chosen[b].append(pick)
                    ups.append((pick, src, b))
            if ups:
                res.upward_sampled[k] = ups
        if short:
            res.short_classes.append(k)
        res.images += [(i, k) for ch in chosen for i in ch]
    return _finish(res, rng)


def sample_top(candidates: pd.DataFrame, *, seed: int, per_class: int = 10, min_num_annotations: int = 10,
               previous: Previous = None, classes: Iterable[int] | None = None) -> SampleResult:
    """``c`` TopImages: eligible images sorted by (frequency, #annotations, in previous revision, id),
    descending; the top per_class of each class. Only the final shuffle uses the RNG."""
    _check_args(per_class, seed)
    c = check_candidates(candidates)
    ok = c[eligible_mask(c, min_num_annotations)]
    prev = _previous_by_class(previous)
    rng = random.Random(seed)
    res = SampleResult("c", [], True, per_class, _classes(c, classes))
    groups = {int(k): g for k, g in ok.groupby("class")}
    for k in res.classes:
        g = groups.get(k)
        rows = [] if g is None else list(zip(g["frequency"], g["n_annotations"], g["id"]))
        prev_k = set(prev.get(k, []))
        ranked = sorted(rows, key=lambda r: (float(r[0]), int(r[1]), r[2] in prev_k, r[2]), reverse=True)
        top = [r[2] for r in ranked[:per_class]]
        if len(top) < per_class:
            res.short_classes.append(k)
        res.carried_over[k] = sorted(i for i in top if i in prev_k)
        res.images += [(i, k) for i in top]
    return _finish(res, rng)


def sample(variant: str, candidates: pd.DataFrame, *, seed: int, validation: pd.DataFrame | None = None,
           **kwargs) -> SampleResult:
    """Dispatch on the variant letter (``a`` | ``b`` | ``c``); kwargs go to the strategy."""
    if variant == "a":
        return sample_threshold(candidates, seed=seed, **kwargs)
    if variant == "b":
        if validation is None:
            raise InputError("MatchedFrequency (b) needs the validation table (id, class, frequency, n_annotations)")
        return sample_matched_frequency(candidates, validation, seed=seed, **kwargs)
    if variant == "c":
        return sample_top(candidates, seed=seed, **kwargs)
    raise InputError(f"unknown sampling variant {variant!r}; use a (Threshold0.7), b (MatchedFrequency) "
                     "or c (TopImages)")


def _finish(res: SampleResult, rng: random.Random) -> SampleResult:
    rng.shuffle(res.images)
    res.is_valid = not res.short_classes
    return res
