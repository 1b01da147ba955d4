"""Building the digits world: every split, every plant, every ground-truth record, written to disk.

Layout of ``<workspace>/world/``:
- ``images/<split>/<id>.png`` — the image files (32×32 RGB; the grey view 28×28 L);
- ``truth/<split>.parquet`` + ``truth/truth.json`` — what was planted, per image and in summary; the
  manifests carry only what a dataset builder would know (given labels, the class a candidate was
  collected for, its source id), never the truth;
- ``hits/`` — the HIT batch (``batch.json``, ``input.csv``) and the simulated crowd's ``results.csv``;
- ``multilabel/`` — the TFDS ``imagenet2012_multilabel``-shaped labels (``validation.jsonl``,
  ``imagenet_m.jsonl``);
- ``hierarchy/`` — the digits' class hierarchy in BREEDS format and ``most_similar.json``;
- ``world.json`` — config, version and counts, written last (its presence marks a finished world).
Manifests are registered in the workspace as ``world-<split>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from shiftlab.curate.annotate import input_table, make_hits
from shiftlab.data.classes import DIGIT_NAMES, digits
from shiftlab.data.layouts import sha256_file
from shiftlab.data.manifest import Manifest
from shiftlab.errors import ShiftlabError
from shiftlab.fsutil import atomic_write_json, file_lock
from shiftlab.progress import bar
from shiftlab.registry import register_dataset
from shiftlab.workspace import Workspace
from shiftlab.world import hierarchy, plants
from shiftlab.world.crowd import simulate_votes
from shiftlab.world.render import HARD, ORIGINAL, SHIFTED, render, render_grey28

WORLD_VERSION = 2  # 2: two-digit images show a prominent digit and the labelled one small in a corner
SPLITS = ("train", "test", "pool", "spurious", "multilabel", "grey28-train", "grey28-test")


@dataclass(frozen=True)
class WorldConfig:
    """Sizes and rates of the world; every random choice derives from ``seed``."""

    seed: int = 0
    n_train: int = 1000
    n_test: int = 350  # the remaining 447 scans are rendered by the shifted process into the pool
    spurious_classes: tuple[int, ...] = (2, 6, 9)
    cue_rate_train: float = 0.8  # fraction of a spurious class's train (and test) images with its cue
    cue_rate_other: float = 0.02  # fraction of other classes' images with some cue
    cue_rate_pool: float = 0.2  # in the shifted pool the correlation is weaker
    label_error_rate: float = 0.03  # test images with a wrong given label
    wrong_class_rate: float = 0.12  # pool candidates collected for a class they do not show
    n_dup_train: int = 30  # pool copies of train images
    n_dup_test: int = 20  # pool copies of test images
    n_dup_pool: int = 16  # pool copies of pool images
    watermark_corner_rate: float = 0.05
    watermark_central_rate: float = 0.03
    n_spurious_per_class: int = 30  # 25 other digits + 5 blank sheets, with the cue
    multilabel_counts: dict = field(default_factory=lambda: {
        "single": 160, "two-digit": 50, "blend": 40, "problematic": 20, "hard": 30})

    def to_json(self) -> dict:
        """The fields as a JSON-ready dict (as recorded in ``world.json``)."""
        return asdict(self)


def _rng(seed: int, *key) -> np.random.Generator:
    """An independent stream per purpose, so adding a plant never changes the others."""
    h = int.from_bytes(hashlib.sha256(repr((seed, *key)).encode()).digest()[:8], "little")
    return np.random.default_rng(h)


def _hex_id(seed: int, *key) -> str:
    return hashlib.sha1(repr((seed, *key)).encode()).hexdigest()[:16]


def ambiguity(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How close each 8×8 scan is to another class's mean, relative to its own: 0 typical, 1 ambiguous."""
    cent = np.stack([x[y == k].mean(0) for k in range(10)])
    d = np.linalg.norm(x[:, None, :] - cent[None], axis=2)
    own = d[np.arange(len(y)), y]
    d[np.arange(len(y)), y] = np.inf
    return np.clip((own / d.min(1) - 0.55) / 0.5, 0, 1)


class _Writer:
    """Collects rows per split and writes image files under a staging root."""

    def __init__(self, root: Path):
        self.root = root
        self.rows: dict[str, list[dict]] = {s: [] for s in SPLITS}
        self.truth: dict[str, list[dict]] = {s: [] for s in SPLITS}

    def add(self, split: str, id_: str, img: np.ndarray, label: int, truth: dict, **attrs) -> None:
        """Write ``img`` as ``images/<split>/<id_>.png`` and record its manifest row (id, path, sha256, label,
        ``attrs``) and its ground-truth row (``truth``).
        """
        rel = f"{split}/{id_}.png"
        path = self.root / "images" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path, format="PNG", optimize=False)
        self.rows[split].append({"id": id_, "path": rel, "sha256": sha256_file(path), "label": int(label), **attrs})
        self.truth[split].append({"id": id_, **truth})


def _build(stage: Path, final_root: Path, cfg: WorldConfig, progress: bool) -> dict:
    from sklearn.datasets import load_digits

    d = load_digits()
    images8, y_all = d.images, d.target.astype(int)
    amb = ambiguity(d.data, y_all)
    order = _rng(cfg.seed, "split").permutation(len(y_all))
    src = {"train": order[:cfg.n_train], "test": order[cfg.n_train:cfg.n_train + cfg.n_test],
           "pool": order[cfg.n_train + cfg.n_test:]}
    w = _Writer(stage)
    rendered: dict[str, np.ndarray] = {}  # id → image, for duplicates
    clarity: dict[str, float] = {}
    true_of: dict[str, int] = {}
    spur = set(cfg.spurious_classes)

    def cue_plan(split: str, rate_own: float) -> dict[int, int]:
        """Exactly round(rate · n_k) images of each class get a cue: position in split → cue class."""
        rng = _rng(cfg.seed, "cues", split)
        labels = y_all[src[split]]
        plan = {}
        for k in range(10):
            at = np.flatnonzero(labels == k)
            rate = rate_own if k in spur else cfg.cue_rate_other
            for i in rng.choice(at, round(rate * len(at)), replace=False):
                plan[int(i)] = k if k in spur else int(rng.choice(cfg.spurious_classes))
        return plan

    def with_cue(img, i, plan, rng):
        if i in plan:
            return plants.draw_cue(img, plan[i], rng), plan[i]
        return img, -1

    total = sum(len(v) for v in src.values()) + cfg.n_dup_train + cfg.n_dup_test + cfg.n_dup_pool + \
        len(spur) * cfg.n_spurious_per_class + sum(cfg.multilabel_counts.values()) + cfg.n_train + cfg.n_test
    with bar("building the digits world", total, disable=not progress) as b:
        # --- train and test: the original collection process ------------------------------------------
        n_err = round(cfg.label_error_rate * cfg.n_test)
        err_rng = _rng(cfg.seed, "label-errors")
        err_at = set(err_rng.choice(cfg.n_test, n_err, replace=False).tolist())
        wm_rng = _rng(cfg.seed, "watermarks-test")
        for split in ("train", "test"):
            rng = _rng(cfg.seed, "render", split)
            plan = cue_plan(split, cfg.cue_rate_train)
            for i, s in enumerate(src[split]):
                y = int(y_all[s])
                id_ = f"{split[:2]}-{i:04d}"
                wm = _watermark_kind(wm_rng, cfg) if split == "test" else "none"
                r = _render_for(images8[s], rng, ORIGINAL, amb[s], wm)
                img, cue = with_cue(r.image, i, plan, rng)
                img, box = _watermark(img, wm, wm_rng)
                given = y
                if split == "test" and i in err_at:
                    given = int(hierarchy.SIMILAR[y][0]) if err_rng.random() < 0.6 else \
                        int(err_rng.choice([k for k in range(10) if k != y]))
                truth = {"true_label": y, "given_label": given, "clarity": r.clarity, "cue": cue,
                         "watermark": wm, "watermark_box": box, "source_index": int(s), **r.params}
                w.add(split, id_, img, given, truth)
                rendered[id_], clarity[id_], true_of[id_] = img, r.clarity, y
                b.advance()

        # --- the candidate pool: the shifted process, wrong-class candidates, watermarks, duplicates ----
        rng = _rng(cfg.seed, "render", "pool")
        wm_rng = _rng(cfg.seed, "watermarks-pool")
        wrong_rng = _rng(cfg.seed, "wrong-class")
        pool_items = []  # (id, img, collected_for, truth, source_id)
        plan = cue_plan("pool", cfg.cue_rate_pool)
        for i, s in enumerate(src["pool"]):
            y = int(y_all[s])
            wm = _watermark_kind(wm_rng, cfg)
            r = _render_for(images8[s], rng, SHIFTED, amb[s], wm)
            img, cue = with_cue(r.image, i, plan, rng)
            img, box = _watermark(img, wm, wm_rng)
            collected = y
            if wrong_rng.random() < cfg.wrong_class_rate:
                collected = int(hierarchy.SIMILAR[y][0]) if wrong_rng.random() < 0.7 else \
                    int(wrong_rng.choice([k for k in range(10) if k != y]))
            id_ = _hex_id(cfg.seed, "pool", i)
            truth = {"true_label": y, "collected_for": collected, "clarity": r.clarity, "cue": cue,
                     "watermark": wm, "watermark_box": box, "source_index": int(s), "duplicate_of": None,
                     "duplicate_split": None, "duplicate_transform": None, **r.params}
            pool_items.append((id_, img, collected, truth, f"src-{_hex_id(cfg.seed, 'source', i)[:12]}"))
            rendered[id_], clarity[id_], true_of[id_] = img, r.clarity, y
            b.advance()

        dup_rng = _rng(cfg.seed, "duplicates")
        duplicates = []
        base_pool = [it for it in pool_items if it[3]["watermark"] == "none"]
        plans = [("train", f"tr-{int(j):04d}") for j in dup_rng.choice(cfg.n_train, cfg.n_dup_train, replace=False)]
        plans += [("test", f"te-{int(j):04d}") for j in dup_rng.choice(cfg.n_test, cfg.n_dup_test, replace=False)]
        plans += [("pool", base_pool[int(j)][0])
                  for j in dup_rng.choice(len(base_pool), cfg.n_dup_pool, replace=False)]
        pool_source = {it[0]: it[4] for it in pool_items}
        for k, (split, source) in enumerate(plans):
            transform = plants.DUPLICATE_TRANSFORMS[k % len(plants.DUPLICATE_TRANSFORMS)]
            img, info = plants.near_copy(rendered[source], transform, dup_rng)
            y = true_of[source]
            id_ = _hex_id(cfg.seed, "dup", k)
            # within the pool, half of the copies are the same upload seen twice (same source id)
            same_source = split == "pool" and k % 2 == 0
            source_id = pool_source[source] if same_source else f"src-{_hex_id(cfg.seed, 'dup-source', k)[:12]}"
            truth = {"true_label": y, "collected_for": y, "clarity": clarity[source] * 0.95, "cue": -2,
                     "watermark": "none", "watermark_box": None, "source_index": -1, "duplicate_of": source,
                     "duplicate_split": split, "duplicate_transform": json.dumps(info, sort_keys=True)}
            pool_items.append((id_, img, y, truth, source_id))
            clarity[id_], true_of[id_] = clarity[source] * 0.95, y
            duplicates.append({"id": id_, "source_id": source, "source_split": split, "same_source_id": same_source,
                               **info})
            b.advance()
        meta_rng = _rng(cfg.seed, "pool-metadata")
        for j in _rng(cfg.seed, "pool-order").permutation(len(pool_items)):
            id_, img, collected, truth, source_id = pool_items[j]
            day = int(meta_rng.integers(0, 365))
            w.add("pool", id_, img, collected, truth, source_id=source_id,
                  date_taken=str(np.datetime64("2025-01-01") + np.timedelta64(day, "D")),
                  search_key=f"handwritten {DIGIT_NAMES[collected]}")

        # --- the spurious set: each cue without its class's digit ---------------------------------------
        rng = _rng(cfg.seed, "spurious")
        n_blank = max(1, cfg.n_spurious_per_class // 6)
        for c in cfg.spurious_classes:
            others = [s for s in src["test"] if y_all[s] != c]
            for j in range(cfg.n_spurious_per_class):
                if j < cfg.n_spurious_per_class - n_blank:
                    s = int(rng.choice(others))
                    r = render(images8[s], rng, ORIGINAL, ambiguity=amb[s])
                    img, label = r.image, int(y_all[s])
                else:
                    img = plants.compose(plants.paper(rng, ORIGINAL), np.zeros((32, 32)), ORIGINAL.ink[0], 1.0,
                                         rng, ORIGINAL.noise)
                    label, s = -1, -1
                img = plants.draw_cue(img, c, rng)
                w.add("spurious", f"sp-{c}-{j:03d}", img, label, {"cue_class": c, "true_label": label,
                                                                  "source_index": int(s)}, cue_class=c)
                b.advance()

        # --- the multi-label set (TFDS imagenet2012_multilabel shape) and its ImageNet-M-like split ------
        rng = _rng(cfg.seed, "multilabel")
        tsrc = list(src["test"])
        records = []
        n = 0
        for kind, count in cfg.multilabel_counts.items():
            for _ in range(count):
                a = int(rng.choice(tsrc))
                ya = int(y_all[a])
                correct, wrong, unclear, problematic = [ya], [], [], False
                if kind in ("single", "hard"):
                    r = render(images8[a], rng, ORIGINAL if kind == "single" else HARD, ambiguity=amb[a])
                    img = r.image
                    if kind == "single" and rng.random() < 0.5:
                        wrong = [int(hierarchy.SIMILAR[ya][0])]
                else:
                    b_ = int(rng.choice([s for s in tsrc if y_all[s] != ya]))
                    yb = int(y_all[b_])
                    if kind == "two-digit":
                        img = plants.render_pair(images8[a], images8[b_], rng, ORIGINAL, "corner")
                        correct = sorted({ya, yb})
                    elif kind == "blend":
                        img = plants.render_pair(images8[a], images8[b_], rng, ORIGINAL, "blend")
                        correct, unclear = [], sorted({ya, yb})
                    else:
                        img = plants.render_problematic(rng, ORIGINAL)
                        correct, problematic = [], True
                id_ = f"ml-{n:04d}"
                rec = {"file_name": f"{id_}.png", "original_label": ya, "correct_multi_labels": correct,
                       "wrong_multi_labels": wrong, "unclear_multi_labels": unclear, "is_problematic": problematic}
                records.append((rec, kind))
                w.add("multilabel", id_, img, ya, {"kind": kind}, correct_multi_labels=correct,
                      wrong_multi_labels=wrong, unclear_multi_labels=unclear, is_problematic=problematic,
                      in_imagenet_m=kind == "hard")
                n += 1
                b.advance()

        # --- the 28×28 grey view of train and test (true labels) -----------------------------------------
        for split in ("train", "test"):
            for i, s in enumerate(src[split]):
                id_ = f"g{split[:2]}-{i:04d}"
                g = render_grey28(images8[s])
                rel = f"grey28-{split}/{id_}.png"
                path = stage / "images" / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(g, "L").save(path, format="PNG")
                w.rows[f"grey28-{split}"].append({"id": id_, "path": rel, "sha256": sha256_file(path),
                                                  "label": int(y_all[s])})
                w.truth[f"grey28-{split}"].append({"id": id_, "true_label": int(y_all[s]), "source_index": int(s)})
                b.advance()

    # --- crowd votes on HITs for the pool (positives / negatives: test images by given label) ------------
    test_rows = pd.DataFrame(w.rows["test"])
    pool_rows = pd.DataFrame(w.rows["pool"])
    # candidates of class k: the pool images collected for k and, as ImageNetV2 annotated its validation
    # images too (for MatchedFrequency's histograms), the test images labelled k
    candidates = {k: [*pool_rows.loc[pool_rows.label == k, "id"], *test_rows.loc[test_rows.label == k, "id"]]
                  for k in range(10)}
    positives = {k: test_rows.loc[test_rows.label == k, "id"].tolist() for k in range(10)}
    negatives = {k: positives[hierarchy.SIMILAR[k][0]] for k in range(10)}
    hits = make_hits(candidates, positives, negatives, seed=cfg.seed + 1)
    results, workers = simulate_votes(hits, true_of, clarity, hierarchy.SIMILAR, seed=cfg.seed + 2)
    (stage / "hits").mkdir(parents=True)
    atomic_write_json(stage / "hits" / "batch.json", {"seed": cfg.seed + 1, "hits": [h.to_json() for h in hits]})
    voc = digits()
    input_table(hits, voc.names, [c.gloss for c in voc.classes]).to_csv(stage / "hits" / "input.csv", index=False)
    results.to_csv(stage / "hits" / "results.csv", index=False)

    # --- multilabel files, hierarchy, truth, manifests ----------------------------------------------------
    ml = stage / "multilabel"
    ml.mkdir()
    with open(ml / "validation.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r, _ in records)
    with open(ml / "imagenet_m.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r, kind in records if kind == "hard")
    _write_hierarchy(stage / "hierarchy")

    tdir = stage / "truth"
    tdir.mkdir()
    for split in SPLITS:
        pd.DataFrame(w.truth[split]).to_parquet(tdir / f"{split}.parquet", index=False)
    workers.to_parquet(tdir / "workers.parquet", index=False)
    test_t, pool_t, train_t = (pd.DataFrame(w.truth[s]) for s in ("test", "pool", "train"))
    summary = {
        "seed": cfg.seed,
        "label_errors": [{"id": r.id, "given": int(r.given_label), "true": int(r.true_label)}
                         for r in test_t.itertuples() if r.given_label != r.true_label],
        "duplicates": duplicates,
        "watermarks": [{"id": r.id, "split": s, "kind": r.watermark, "crop_box": r.watermark_box}
                       for s, t in (("test", test_t), ("pool", pool_t)) for r in t.itertuples()
                       if r.watermark != "none"],
        "wrong_class_candidates": [{"id": r.id, "collected_for": int(r.collected_for), "true": int(r.true_label)}
                                   for r in pool_t.itertuples() if r.collected_for != r.true_label],
        "spurious": {"classes": {str(c): plants.CUES[c][0] for c in cfg.spurious_classes},
                     "rate_train": cfg.cue_rate_train, "rate_other": cfg.cue_rate_other,
                     "rate_pool": cfg.cue_rate_pool,
                     "train_fraction_measured": {
                         str(c): float((train_t[train_t.true_label == c].cue == c).mean())
                         for c in cfg.spurious_classes}},
        "multilabel": {kind: count for kind, count in cfg.multilabel_counts.items()},
        "hierarchy": {g: list(m) for g, m in hierarchy.GROUPS.items()},
        "processes": {"original": ORIGINAL.to_json(), "shifted": SHIFTED.to_json(), "hard": HARD.to_json()},
    }
    atomic_write_json(tdir / "truth.json", summary)

    params = {"world_version": WORLD_VERSION, "config": cfg.to_json()}
    manifests = {}
    for split in SPLITS:
        df = pd.DataFrame(w.rows[split])
        manifests[split] = Manifest(df, name=f"world-{split}", vocabulary=voc, root=str(final_root / "images"),
                                    dataset="world", variant=split, seed=cfg.seed,
                                    parameters={**params, "layout": "world"})
    return {"manifests": manifests, "counts": {s: len(w.rows[s]) for s in SPLITS}}


def _render_for(digit8, rng, process, ambiguity, watermark):
    """A corner-watermarked image needs room below the digit, so that a crop can remove the mark."""
    if watermark != "corner":
        return render(digit8, rng, process, ambiguity=ambiguity)
    for _ in range(20):
        r = render(digit8, rng, process, ambiguity=ambiguity, max_size=21)
        if r.box[3] <= plants.CORNER_CROP[3]:
            return r
    return r


def _watermark_kind(rng, cfg: WorldConfig) -> str:
    u = rng.random()
    if u < cfg.watermark_corner_rate:
        return "corner"
    return "central" if u < cfg.watermark_corner_rate + cfg.watermark_central_rate else "none"


def _watermark(img, kind, rng):
    if kind == "corner":
        return plants.draw_corner_watermark(img, rng), list(plants.CORNER_CROP)
    if kind == "central":
        return plants.draw_central_watermark(img, rng), None
    return img, None


def _write_hierarchy(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "class_hierarchy.txt").write_text("".join(f"{a} {b}\n" for a, b in hierarchy.edges()))
    (folder / "node_names.txt").write_text("".join(f"{k}\t{v}\n" for k, v in hierarchy.node_names().items()))
    info = [[k, hierarchy.class_id(k), [DIGIT_NAMES[k], str(k)]] for k in range(10)]
    (folder / "dataset_class_info.json").write_text(json.dumps(info))
    sim = {hierarchy.class_id(k): [hierarchy.class_id(j) for j in hierarchy.most_similar(k)] for k in range(10)}
    (folder / "most_similar.json").write_text(json.dumps(sim, indent=1))


# --- public API --------------------------------------------------------------------------------------------
@dataclass
class World:
    """A built digits world: its folder (``<workspace>/world``), the workspace it is registered in and the
    content of ``world.json`` (``info``: version, config and counts).
    """

    root: Path
    workspace: Workspace
    info: dict

    @property
    def seed(self) -> int:
        """The seed the world was built with."""
        return int(self.info["config"]["seed"])

    def manifest(self, split: str) -> Manifest:
        """The registered manifest ``world-<split>`` of one of ``SPLITS``; ``ShiftlabError`` for another name."""
        if split not in SPLITS:
            raise ShiftlabError(f"the world has no split {split!r}; splits: {', '.join(SPLITS)}")
        return Manifest.load(self.workspace.manifests / f"world-{split}.parquet")

    def truth(self, split: str | None = None):
        """The planted facts: the summary dict, or one split's per-image truth table."""
        if split is None:
            return json.loads((self.root / "truth" / "truth.json").read_text())
        return pd.read_parquet(self.root / "truth" / f"{split}.parquet")

    @property
    def hits_results(self) -> Path:
        """The simulated crowd's batch-results CSV, ``hits/results.csv``."""
        return self.root / "hits" / "results.csv"


def world_root(workspace=None) -> tuple[Workspace, Path]:
    """The workspace (resolved) and the world's folder in it, ``<workspace>/world``."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    return ws, ws.root / "world"


def load_world(workspace=None) -> World:
    """The digits world already built in the workspace (``build_world`` builds it); ShiftlabError if none is."""
    ws, root = world_root(workspace)
    f = root / "world.json"
    if not f.is_file() or not (ws.manifests / "world-train.parquet").is_file():
        raise ShiftlabError(f"the digits world is not built in {ws.root}: run 'shiftlab world build'")
    return World(root, ws, json.loads(f.read_text()))


def build_world(workspace=None, config: WorldConfig | None = None, *, progress: bool = True,
                force: bool = False) -> World:
    """Build (or reuse) the digits world in the workspace; same seed ⇒ byte-identical manifests."""
    cfg = config or WorldConfig()
    ws, root = world_root(workspace)
    ws.root.mkdir(parents=True, exist_ok=True)
    with file_lock(ws.root / ".world.lock"):
        if not force:
            try:
                w = load_world(ws)
                same = json.loads(json.dumps(cfg.to_json())) == w.info.get("config")  # tuples read back as lists
                if same and w.info.get("version") == WORLD_VERSION:
                    return w
            except ShiftlabError:
                pass
        stage = ws.root / f".world-building-{os.getpid()}"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
        try:
            built = _build(stage, root, cfg, progress)
            info = json.loads(json.dumps({"version": WORLD_VERSION, "config": cfg.to_json(),
                                          "counts": built["counts"]}))  # as load_world reads it back
            atomic_write_json(stage / "world.json", info)
            old = ws.root / f".world-old-{os.getpid()}"
            if root.exists():
                root.rename(old)
            stage.rename(root)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        for m in built["manifests"].values():
            register_dataset(m, workspace=ws)
        return World(root, ws, info)
