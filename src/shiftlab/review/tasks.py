"""Review tasks: what a reviewer is asked to decide, and how decisions flow back out.

A task is a small JSON file ``<workspace>/review/tasks/<name>.json``; every decision about it goes to the
workspace's ReviewLog (``<workspace>/review/log.sqlite``) under the task's name. Four kinds serve the five
reproduced works:

- ``classes`` — ImageNetV2's review server: browse a pool class by class (selection frequency, annotation
  count, reference images) and blacklist candidates with a reason. Targets are image ids; decisions
  ``ok`` or ``blacklist`` (reason = why). :func:`blacklist` reads the result.
- ``duplicates`` — the near-duplicate review queue of ``shiftlab dedup``: a query beside its flagged
  neighbours. Targets are ``query|reference`` pairs; decisions ``duplicate`` / ``distinct``.
  :func:`duplicate_reviews` writes them in the ``query,reference,is_duplicate,reviewer`` shape that
  ``shiftlab dedup --reviews`` and S1.4 resolution read.
- ``labelling`` — the annotator's page of a HIT batch ("select every image that contains X"). Targets are
  HIT ids; a submission stores the 48 answers. :func:`labelling_results` writes them as an MTurk
  batch-results CSV, the shape ``shiftlab hits import`` reads, so a lab can collect votes locally.
- ``images`` — a generic per-image queue with configurable decisions, reasons and an optional crop box
  (original-image pixels). Ships configured for flagging watermarks (``configs/watermarks.json``); the
  curated-set, mistake and spurious-component work configure their own.

A builder never silently replaces a different task of the same name: ``replace=True`` (``--replace``) does, and
keeps the old file as a dated ``.bak``; building the same task again is a no-op.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from shiftlab.curate.annotate import read_hit_batch
from shiftlab.curate.dedup import REVIEW_COLUMNS
from shiftlab.data.layouts import read_dataset
from shiftlab.errors import InputError
from shiftlab.fsutil import parse_json, read_json, replace_bytes
from shiftlab.registry import check_name, dataset_path
from shiftlab.review.decision_configs import builtin_config, check_config
from shiftlab.review.log import UNDO, ReviewLog, open_log, read_decisions
from shiftlab.workspace import Workspace

KINDS = ("classes", "duplicates", "labelling", "images")
DUPLICATE, DISTINCT = "duplicate", "distinct"
OK, BLACKLIST = "ok", "blacklist"
#: why a candidate leaves the pool (ImageNetV2's review server offered these)
BLACKLIST_REASONS = ("wrong class", "near-duplicate", "low quality", "text or watermark", "inappropriate")
SUBMITTED = "submitted"
PAIR_SEP = "|"


def _ws(workspace) -> Workspace:
    return workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)


def review_dir(workspace=None) -> Path:
    """``<workspace>/review``, made (with its ``tasks/`` folder) if missing."""
    d = _ws(workspace).root / "review"
    (d / "tasks").mkdir(parents=True, exist_ok=True)
    return d


def task_path(name: str, tasks_dir: Path) -> Path:
    """The file of task ``name`` in ``tasks_dir`` (``review_dir(ws) / "tasks"``); InputError for a bad name."""
    return tasks_dir / f"{check_name(name)}.json"


#: the fields each item of a task kind must have, with their types (what the pages and builders read)
_ITEM_FIELDS = {
    "duplicates": {"target": str, "query": str, "query_dataset": str, "reference": str, "reference_dataset": str,
                   "distances": dict, "ranks": dict, "queued_by": list},
    "labelling": {"target": str, "class_index": int, "class_name": str, "gloss": str, "images": list},
    "images": {"id": str},
}


def check_task(task) -> dict:
    """``task`` if it has every field its kind's pages and builders read, with the right types; else
    ``InputError`` naming the first thing wrong (a hand-edited file must fail as one line, not as a crash
    deep inside a page)."""
    if not isinstance(task, dict):
        raise InputError("not a task: a task file holds one JSON object")
    check_name(task.get("name") if isinstance(task.get("name"), str) else "")
    kind = task.get("kind")
    if kind not in KINDS:
        raise InputError(f"task kind {kind!r}: one of {', '.join(KINDS)}")

    def need(obj, key, typ, where):
        v = obj.get(key)
        # bool is an int to Python, never to a task file
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            raise InputError(f"{where}: '{key}' must be {typ.__name__}, not {type(v).__name__}")
        return v

    if kind in ("classes", "images"):
        check_name(need(task, "dataset", str, "task"))
    if kind == "classes":
        if task.get("reference") is not None:
            check_name(need(task, "reference", str, "task"))
        reasons = need(task, "reasons", list, "task")
        if not 1 <= len(reasons) <= 9 or not all(isinstance(r, str) for r in reasons):
            raise InputError("task: 'reasons' must be 1 to 9 strings")
        return task
    if kind == "images":
        check_config(need(task, "config", dict, "task"))
    items = need(task, "items", list, "task")
    seen = set()
    for n, it in enumerate(items):
        where = f"item {n + 1}"
        if not isinstance(it, dict):
            raise InputError(f"{where}: must be an object, not {type(it).__name__}")
        for key, typ in _ITEM_FIELDS[kind].items():
            need(it, key, typ, where)
        target = it["id"] if kind == "images" else it["target"]
        if target in seen:
            raise InputError(f"{where}: {target!r} appears twice")
        seen.add(target)
        if kind == "images" and it.get("suggestion") is not None and not isinstance(it["suggestion"], dict):
            raise InputError(f"{where}: 'suggestion' must be an object or null")
        if kind == "labelling":
            for im in it["images"]:
                if not isinstance(im, dict) or not all(isinstance(im.get(k), str) for k in ("url", "id", "dataset")):
                    raise InputError(f"{where}: each image needs text 'url', 'id' and 'dataset'")
    return task


def task_datasets(task: dict) -> set[str]:
    """The registered datasets whose images a (checked) task shows."""
    kind = task["kind"]
    if kind in ("classes", "images"):
        return {task["dataset"]} | ({task["reference"]} if task.get("reference") else set())
    if kind == "duplicates":
        return {d for it in task["items"] for d in (it["query_dataset"], it["reference_dataset"])}
    return {im["dataset"] for it in task["items"] for im in it["images"]}


def log_path(workspace=None) -> Path:
    """The workspace's ReviewLog file, ``<workspace>/review/log.sqlite``."""
    return review_dir(workspace) / "log.sqlite"


def open_workspace_log(workspace=None):
    """The workspace's ReviewLog (the file is created on first use)."""
    return ReviewLog(log_path(workspace))


# --- the task files ------------------------------------------------------------------------------------
def write_task(task: dict, workspace=None, *, replace: bool = False) -> Path:
    """Write a task dict as ``review/tasks/<name>.json`` (atomically); returns the path. ``InputError`` for a task
    ``check_task`` refuses, and for a different task already under that name unless ``replace`` (the old file
    is then kept as a dated ``.bak``); the same task again (items, config, datasets; its source path may differ)
    is written without a word.
    """
    check_task(task)
    path = task_path(task["name"], review_dir(workspace) / "tasks")
    data = json.dumps(task, indent=1, sort_keys=True, default=str).encode()
    if path.is_file() and path.read_bytes() != data and not replace:
        try:
            old_task = _read_task_file(path)
            old = f"{len(old_task.get('items', []))} items"
        except InputError:
            old_task, old = None, "unreadable"
        if old_task is not None and _what_is_asked(old_task) == _what_is_asked(json.loads(data)):
            replace_bytes(path, data)  # only where it came from differs (a folder vs its batch.json): nothing lost
            return path
        raise InputError(f"review task {task['name']!r} already exists ({old}); give another --name, or --replace "
                         "to replace it (the old file is kept as a dated .bak; its decisions stay in the log)")
    replace_bytes(path, data)
    return path


#: task fields that record where a task came from, not what it asks
_PROVENANCE = ("batch", "dedup_dir")


def _what_is_asked(task: dict) -> dict:
    return {k: v for k, v in task.items() if k not in _PROVENANCE}


def scan_tasks(workspace=None) -> list[tuple[str, dict | None, str | None]]:
    """Every task file of the workspace, in file-name order: (name, task, None) for a good one, (name, None,
    one-line reason) for one that cannot be read or is not a task (a hand-edited file gone bad is shown, and
    takes nothing else down)."""
    out = []
    for p in sorted((review_dir(workspace) / "tasks").glob("*.json")):
        try:
            out.append((p.stem, _read_task_file(p), None))
        except InputError as e:
            out.append((p.stem, None, str(e)))
    return out


def list_tasks(workspace=None) -> list[dict]:
    """The workspace's good task dicts, in file-name order (``scan_tasks`` also names the broken ones)."""
    return [t for _, t, _ in scan_tasks(workspace) if t is not None]


def _read_task_file(p: Path) -> dict:
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p.name}: cannot read it ({e})") from None
    task = parse_json(text, f"{p.name}: not a task file")
    try:
        check_task(task)
    except InputError as e:
        raise InputError(f"{p.name}: not a task file ({e})") from None
    if task["name"] != p.stem:
        raise InputError(f"{p.name}: names task {task['name']!r}; a task file is named after its task")
    return task


def load_task(name: str, workspace=None) -> dict:
    """The task dict named ``name``; ``InputError`` when there is none or its file is not a task."""
    try:
        p = task_path(name, review_dir(workspace) / "tasks")
        found = p.is_file()
    except (OSError, InputError):
        found = False
    if not found:
        known = ", ".join(t["name"] for t in list_tasks(workspace)) or "none yet"
        raise InputError(f"no review task {name!r} (tasks: {known}; create one with 'shiftlab review task …')")
    return _read_task_file(p)


def image_dataset(name: str, workspace=None):
    """A registered dataset with image files: the only kind the app shows (it serves images by id, and a
    name is all a page ever sends). InputError otherwise."""
    if dataset_path(name, workspace) is None:
        raise InputError(f"{name!r} is not a registered dataset; the review app shows registered datasets "
                         "only ('shiftlab datasets add NAME PATH')")
    m = read_dataset(name, workspace=workspace)
    if not m.has_images:
        raise InputError(f"dataset {name!r} has labels only (no image files to review)")
    return m


# --- classes ---------------------------------------------------------------------------------------------
def classes_task(dataset: str, *, reference: str | None = None, name: str | None = None,
                 reasons: Sequence[str] = BLACKLIST_REASONS, workspace=None, replace: bool = False) -> dict:
    """A class browser over ``dataset`` (a pool with ``selection_frequency`` / ``n_annotations`` columns,
    if annotated), showing up to 8 images per class of ``reference`` for comparison."""
    image_dataset(dataset, workspace)
    if reference:
        image_dataset(reference, workspace)
    if not 1 <= len(reasons) <= 9:
        raise InputError("give 1 to 9 blacklist reasons (one digit key each)")
    task = {"kind": "classes", "name": name or f"classes-{dataset}", "dataset": dataset, "reference": reference,
            "reasons": list(reasons)}
    write_task(task, workspace, replace=replace)
    return task


def _num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def classes_items(task: dict, workspace=None) -> dict:
    """What the page of a ``classes`` task shows: its dataset, reference and reasons; ``classes`` (index, names,
    gloss, wnid, up to 8 reference ids, number of images) for each class with images; and ``images`` (id,
    label, selection frequency, n_annotations, date, where the manifest has them).
    """
    m = image_dataset(task["dataset"], workspace)
    t = m.table
    voc = m.vocabulary
    date_col = next((c for c in ("date", "search_date", "time") if c in t.columns), None)
    images = [{"id": i, "label": int(y),
               "frequency": _num(f) if f is not None else None,
               "n_annotations": int(n) if _num(n) is not None else None,
               "date": str(d) if d is not None and d == d else None}
              for i, y, f, n, d in zip(t["id"], t["label"], t.get("selection_frequency", [None] * len(t)),
                                       t.get("n_annotations", [None] * len(t)),
                                       t[date_col] if date_col else [None] * len(t))]
    refs: dict[int, list[str]] = {}
    if task.get("reference"):
        r = image_dataset(task["reference"], workspace)
        for i, y in zip(r.table["id"], r.table["label"]):
            if len(refs.setdefault(int(y), [])) < 8:
                refs[int(y)].append(i)
    n_of = Counter(im["label"] for im in images if im["label"] >= 0)
    classes = [{"index": k, "name": voc.classes[k].name, "names": list(voc.classes[k].names),
                "gloss": voc.classes[k].gloss, "wnid": voc.classes[k].wnid, "references": refs.get(k, []),
                "n": n_of[k]} for k in sorted(n_of)]
    return {"dataset": task["dataset"], "reference": task.get("reference"), "reasons": task["reasons"],
            "classes": classes, "images": images}


def blacklist(log, task: str) -> dict[str, str]:
    """``{image id: reason}`` of the candidates blacklisted in a classes task (the candidates-import shape)."""
    d = read_decisions(log, task)
    d = d[d["decision"] == BLACKLIST]
    return {t: (r or "blacklisted") for t, r in zip(d["target"], d["reason"])}


# --- duplicates -------------------------------------------------------------------------------------------
def duplicates_task(dedup_dir: str | os.PathLike, *, query: str | None = None, name: str | None = None,
                    workspace=None, replace: bool = False) -> dict:
    """The review queue of a ``shiftlab dedup`` folder (``queue.csv`` + ``neighbours.parquet``): one item per
    queued (query, reference) pair with its distance under every metric that found it."""
    folder = Path(dedup_dir)
    qf, nf = folder / "queue.csv", folder / "neighbours.parquet"
    if not qf.is_file() or not nf.is_file():
        raise InputError(f"{folder}: no queue.csv / neighbours.parquet; run 'shiftlab dedup --query … --out {folder}'")
    query = query or folder.name
    qm = image_dataset(query, workspace)
    queue = pd.read_csv(qf, dtype={"query_id": str, "reference_id": str, "reference_split": str})
    missing = set(queue["query_id"]) - set(qm.ids)
    if missing:
        raise InputError(f"the queue in {folder} names {len(missing)} image(s) not in {query!r} "
                         f"(e.g. {sorted(missing)[0]!r}); give --query with the dataset it was built from")
    for split in sorted(set(queue["reference_split"])):
        image_dataset(split, workspace)
    nb = pd.read_parquet(nf, columns=["query_id", "reference_split", "reference_id", "metric", "distance", "rank"])
    pair = ["query_id", "reference_split", "reference_id"]
    nb = nb[pd.MultiIndex.from_frame(nb[pair].astype(str)).isin(pd.MultiIndex.from_frame(queue[pair].astype(str)))]
    pairs: dict[tuple, dict] = {}
    for q, split, r, metric, dist, rank in nb.itertuples(index=False):
        p = pairs.setdefault((q, split, r), {"target": f"{q}{PAIR_SEP}{r}", "query": q, "query_dataset": query,
                                             "reference": r, "reference_dataset": split, "distances": {},
                                             "ranks": {}, "queued_by": []})
        p["distances"][metric] = float(dist)
        p["ranks"][metric] = int(rank)
    for q, r, split, metric in zip(queue["query_id"], queue["reference_id"], queue["reference_split"], queue["metric"]):
        pairs[(q, split, r)]["queued_by"].append(metric)
    # a reviewer works query by query, nearest first (by its best rank under any queuing metric)
    items = sorted(pairs.values(), key=lambda p: (p["query"], min(p["ranks"].values()), p["reference"]))
    task = {"kind": "duplicates", "name": name or f"duplicates-{query}", "query": query,
            "dedup_dir": str(folder.resolve()), "items": items}
    write_task(task, workspace, replace=replace)
    return task


def duplicate_reviews(log, task: dict) -> pd.DataFrame:
    """The decisions of a duplicates task as ``query,reference,is_duplicate,reviewer`` (the review CSV
    of ``shiftlab dedup --reviews``); undecided pairs are left out."""
    pair = {it["target"]: (it["query"], it["reference"]) for it in task["items"]}
    d = read_decisions(log, task["name"])
    rows = [(*pair[t], dec == DUPLICATE, who) for t, dec, who in zip(d["target"], d["decision"], d["reviewer"])
            if t in pair and dec in (DUPLICATE, DISTINCT)]
    return pd.DataFrame(rows, columns=REVIEW_COLUMNS).astype({"is_duplicate": bool})


# --- labelling ----------------------------------------------------------------------------------------------
def labelling_task(batch: str | os.PathLike, datasets: Sequence[str], *, name: str | None = None,
                   vocabulary_of: str | None = None, workspace=None, replace: bool = False) -> dict:
    """The annotator's pages of a HIT batch (``shiftlab hits make``); ``datasets`` hold its images (the pool
    and the validation set that gave the controls)."""
    hits = read_hit_batch(batch)
    where: dict[str, str] = {}
    for ds in datasets:
        for i in image_dataset(ds, workspace).ids:
            where.setdefault(i, ds)
    missing = {im.image_id for h in hits for im in h.images} - set(where)
    if missing:
        raise InputError(f"{len(missing)} image(s) of the batch are in none of {', '.join(datasets)} "
                         f"(e.g. {sorted(missing)[0]!r})")
    voc = image_dataset(vocabulary_of or datasets[0], workspace).vocabulary
    beyond = next((h for h in hits if h.class_index >= len(voc)), None)
    if beyond is not None:
        raise InputError(f"HIT {beyond.hit_id} asks about class {beyond.class_index}, beyond the {len(voc)} classes "
                         f"of {voc.name}")
    items = [{"target": h.hit_id, "class_index": h.class_index, "class_name": voc.classes[h.class_index].name,
              "gloss": voc.classes[h.class_index].gloss,
              "images": [{"url": im.url, "id": im.image_id, "dataset": where[im.image_id]} for im in h.images]}
             for h in hits]
    bpath = Path(batch)
    task = {"kind": "labelling", "name": name or f"labelling-{bpath.parent.name if bpath.is_file() else bpath.name}",
            "batch": str(bpath.resolve()), "items": items}
    write_task(task, workspace, replace=replace)
    return task


def labelling_results(log, task: dict) -> pd.DataFrame:
    """Submitted HIT pages as an MTurk batch-results table (one row per assignment = per HIT and reviewer,
    the latest submission in force), the shape ``shiftlab hits import`` reads."""
    lg = open_log(log)
    try:
        events = lg.events(task["name"])
    finally:
        if lg is not log:
            lg.close()
    undone = {e.supersedes for e in events if e.decision == UNDO}
    latest: dict[tuple[str, str], object] = {}
    for e in events:
        if e.decision == SUBMITTED and e.id not in undone:
            latest[(e.target, e.reviewer)] = e
    by_hit = {it["target"]: it for it in task["items"]}
    width = max((len(it["images"]) for it in task["items"]), default=0)
    rows = []
    for (hit, who), e in sorted(latest.items(), key=lambda kv: kv[1].id):
        it = by_hit.get(hit)
        if it is None:
            continue  # a HIT of an earlier batch under the same task name: not this batch's
        answers = json.loads(e.note)["answers"]
        row = {"HITId": hit, "AssignmentId": f"local-{e.id}", "WorkerId": who, "AssignmentStatus": "Submitted",
               "AcceptTime": e.time, "SubmitTime": e.time, "Input.hit_id": hit, "Input.class_index": it["class_index"]}
        for i in range(width):
            row[f"Input.image_{i + 1}"] = it["images"][i]["url"] if i < len(it["images"]) else ""
        for i in range(width):
            row[f"Answer.image_{i + 1}"] = ("true" if answers[i] else "false") if i < len(it["images"]) else ""
        rows.append(row)
    cols = (["HITId", "AssignmentId", "WorkerId", "AssignmentStatus", "AcceptTime", "SubmitTime", "Input.hit_id",
             "Input.class_index"] + [f"Input.image_{i + 1}" for i in range(width)]
            + [f"Answer.image_{i + 1}" for i in range(width)])
    return pd.DataFrame(rows, columns=cols)


def check_submission(task: dict, target: str, note: str | None) -> None:
    """A labelling submission names a HIT of the task and carries one true/false answer per image."""
    it = next((i for i in task["items"] if i["target"] == target), None)
    if it is None:
        raise InputError(f"no HIT {target!r} in task {task['name']!r}")
    try:
        answers = json.loads(note or "")["answers"]
    except (ValueError, TypeError, KeyError):
        raise InputError('a submission needs note = {"answers": [true|false, …]}') from None
    if len(answers) != len(it["images"]) or not all(isinstance(a, bool) for a in answers):
        raise InputError(f"a submission of HIT {target} needs {len(it['images'])} true/false answers")


# --- generic image decisions ----------------------------------------------------------------------------
def read_id_list(path: str | os.PathLike) -> list[str]:
    """Image ids from a text file, one per line, exactly as written (blank lines skipped): an id may begin or end
    with a space (a file named " a.png"), so stripping could name another image."""
    try:
        return [s for s in Path(path).read_text(encoding="utf-8").splitlines() if s.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read ids ({getattr(e, 'strerror', None) or e})") from None


def images_task(dataset: str, config: str | os.PathLike | Mapping = "watermarks", *, name: str | None = None,
                items: Sequence[Mapping] | None = None, workspace=None, replace: bool = False) -> dict:
    """A per-image queue over ``dataset``: ``config`` is a built-in name, a JSON path or a dict
    (see :func:`check_config`); ``items`` optionally restricts and annotates the queue with
    ``{id, caption?, suggestion?}`` (e.g. an automatic pre-category with its evidence)."""
    if isinstance(config, Mapping):
        cfg = dict(config)
    elif Path(config).suffix == ".json" or Path(config).is_file():
        cfg = read_json(config)
    else:
        cfg = builtin_config(str(config))
    cfg = check_config(cfg)
    m = image_dataset(dataset, workspace)
    ids = set(m.ids)
    if items is None:
        queue = [{"id": i} for i in m.ids]
    else:
        queue = [{"id": str(it["id"]), "caption": str(it.get("caption", "")),
                  "suggestion": it.get("suggestion")} for it in items]
        bad = [q["id"] for q in queue if q["id"] not in ids]
        if bad:
            raise InputError(f"{len(bad)} queued id(s) are not in {dataset!r} (e.g. {bad[0]!r})")
    names = [d["name"] for d in cfg["decisions"]]
    for q in queue:
        if q.get("suggestion") is not None and not isinstance(q["suggestion"], Mapping):
            raise InputError(f"suggestion for {q['id']}: give {{decision, reason?}}, not {q['suggestion']!r}")
        if q.get("suggestion") and q["suggestion"].get("decision") not in names:
            raise InputError(f"suggestion {q['suggestion']!r} for {q['id']} is not one of {', '.join(names)}")
    task = {"kind": "images", "name": name or f"images-{dataset}", "dataset": dataset, "config": cfg, "items": queue}
    write_task(task, workspace, replace=replace)
    return task


def check_decision(task: dict, decision: str, reason: str | None, crop) -> None:
    """Reject a decision the task does not offer (so the log only holds what the page could produce)."""
    kind = task["kind"]
    if crop is not None and kind != "images":
        raise InputError(f"a {kind} task takes no crop box")
    if decision == "undo":
        raise InputError("undo through the undo route, naming the event")
    if kind == "duplicates":
        allowed = {DUPLICATE, DISTINCT}
    elif kind == "classes":
        allowed = {OK, BLACKLIST}
        if decision == BLACKLIST and reason not in task["reasons"]:
            raise InputError(f"blacklist reason {reason!r}: one of {', '.join(task['reasons'])}")
    elif kind == "labelling":
        allowed = {SUBMITTED}
    else:
        spec = {d["name"]: d for d in task["config"]["decisions"]}
        allowed = set(spec)
        d = spec.get(decision)
        if d is not None:
            if d["reasons"] and reason not in d["reasons"]:
                raise InputError(f"{decision}: reason {reason!r} is not one of {', '.join(d['reasons'])}")
            if d["crop"] == "required" and crop is None:
                raise InputError(f"{decision} needs a crop box")
            if d["crop"] == "no" and crop is not None:
                raise InputError(f"{decision} takes no crop box")
    if decision not in allowed:
        raise InputError(f"decision {decision!r}: this {kind} task takes {', '.join(sorted(allowed))}")
