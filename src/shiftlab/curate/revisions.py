"""ImageNetV2 revision files (SPECS S1.5): sample a variant, write/read the JSON, turn it into a Manifest.

A revision is named ``<dataset>-<variant letter>-<revision>`` (``imagenetv2-b-33``) and stored as
``<name>.json`` with exactly the keys, key order and formatting of the released files
(``json.dumps(doc, indent=2)``, no trailing newline):

- ``a`` (``sample_above_threshold``): sampling_function, target_size, selection_frequency_threshold,
  min_num_annotations, near_duplicate_review_targets, time_string, username, seed, image_filenames,
  is_valid, starting_from, wnid_thresholds, output_filename;
- ``b`` (``sample_wnid_histogram``): sampling_function, target_size, histogram_bins,
  min_num_annotations_candidates, min_num_annotations_val, min_num_val_images_per_wnid,
  near_duplicate_review_targets, time_string, username, seed, image_filenames, is_valid,
  allow_upward_sampling, starting_from, output_filename;
- ``c`` (``sample_best``): sampling_function, target_size, min_num_annotations,
  near_duplicate_review_targets, time_string, username, seed, image_filenames, is_valid, starting_from,
  output_filename.

``image_filenames`` = ``[[id, class name], …]`` in dataset order (class name = wnid for ImageNet);
``starting_from`` = the parent's file name (``imagenetv2-b-32.json``); a first revision has no such key (as
ImageNetV2's ``imagenetv2-{a,b,c}-0.json``);
``wnid_thresholds`` = the per-class overrides of ``a`` keyed by class name ({} when none). Same inputs,
seed, time_string and username ⇒ a byte-identical file.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from shiftlab.curate.dedup.thresholds import DEFAULT_REVIEW_TARGETS
from shiftlab.curate.sample import (
    STANDARD_BINS,
    VARIANTS,
    SampleResult,
    sample_matched_frequency,
    sample_threshold,
    sample_top,
)
from shiftlab.data.classes import Vocabulary, imagenet_1k
from shiftlab.data.layouts import split_name
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_write_bytes, read_json

KEYS = {
    "a": ("sampling_function", "target_size", "selection_frequency_threshold", "min_num_annotations",
          "near_duplicate_review_targets", "time_string", "username", "seed", "image_filenames", "is_valid",
          "starting_from", "wnid_thresholds", "output_filename"),
    "b": ("sampling_function", "target_size", "histogram_bins", "min_num_annotations_candidates",
          "min_num_annotations_val", "min_num_val_images_per_wnid", "near_duplicate_review_targets",
          "time_string", "username", "seed", "image_filenames", "is_valid", "allow_upward_sampling",
          "starting_from", "output_filename"),
    "c": ("sampling_function", "target_size", "min_num_annotations", "near_duplicate_review_targets",
          "time_string", "username", "seed", "image_filenames", "is_valid", "starting_from", "output_filename"),
}
VARIANT_OF_FUNCTION = {f: v for v, f in VARIANTS.items()}
# fullmatch, ASCII digits: "$" would also match before a final newline, and \d alone takes any script's digits
_NAME = re.compile(r"(?P<dataset>.+)-(?P<variant>[abc])-(?P<revision>\d+)", re.ASCII | re.DOTALL)

ClassNames = Vocabulary | Sequence[str] | Mapping[int, str]
Parent = Mapping[str, Any] | Iterable[Sequence[str]] | str | os.PathLike | None


# --- names ---------------------------------------------------------------------------------------------
def revision_name(dataset: str, variant: str, revision: int) -> str:
    """``revision_name("imagenetv2", "b", 33)`` → ``imagenetv2-b-33``."""
    if variant not in VARIANTS:
        raise InputError(f"unknown variant {variant!r}; use a, b or c")
    if int(revision) < 0 or not dataset or "/" in dataset:
        raise InputError(f"bad revision name parts: dataset {dataset!r}, revision {revision!r}")
    return f"{dataset}-{variant}-{int(revision)}"


def parse_revision_name(name: str) -> tuple[str, str, int]:
    """``imagenetv2-b-33`` (or ``imagenetv2-b-33.json``) → ("imagenetv2", "b", 33)."""
    stem = Path(str(name)).name
    stem = stem[:-5] if stem.endswith(".json") else stem
    m = _NAME.fullmatch(stem)
    if not m:
        raise InputError(f"{name!r} is not a revision name <dataset>-<a|b|c>-<revision> (e.g. imagenetv2-b-33)")
    return m["dataset"], m["variant"], int(m["revision"])


def next_revision_name(parent: str) -> str:
    """The child of ``imagenetv2-b-32`` is ``imagenetv2-b-33``."""
    d, v, r = parse_revision_name(parent)
    return revision_name(d, v, r + 1)


def new_revision_name(dataset: str, variant: str, parent: str | os.PathLike | None = None) -> str:
    """The name of a new revision of ``<dataset>-<variant>``: revision 0 without a parent, else the
    successor of the parent revision file's name. InputError when that file is missing or is a revision
    of another dataset or variant."""
    if parent is None:
        return revision_name(dataset, variant, 0)
    parent = Path(parent)
    if not parent.is_file():
        raise InputError(f"{parent}: no such revision file")
    pd_, pv, pr = parse_revision_name(parent.name[:-5] if parent.name.endswith(".json") else parent.stem)
    if pd_ != dataset or pv != variant:
        raise InputError(f"parent {parent.name} is a revision of {pd_}-{pv}, not of {dataset}-{variant}")
    return revision_name(pd_, pv, pr + 1)


def now_time_string(now: datetime | None = None) -> str:
    """The released files' format, e.g. ``2018-12-13_09:53:50_UTC``."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%d_%H:%M:%S_UTC")


# --- class names ---------------------------------------------------------------------------------------
def _name_table(class_names: ClassNames | None) -> dict[int, str]:
    if class_names is None:
        class_names = imagenet_1k()
    if isinstance(class_names, Vocabulary):
        return {c.index: (c.wnid or c.name) for c in class_names.classes}
    if isinstance(class_names, Mapping):
        return {int(k): str(v) for k, v in class_names.items()}
    return {i: str(n) for i, n in enumerate(class_names)}


def _index_table(names: Mapping[int, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, n in names.items():
        if n in out:
            raise InputError(f"class name {n!r} is used by classes {out[n]} and {i}; class names must be unique")
        out[n] = i
    return out


def _class_index(key, index: Mapping[str, int]) -> int:
    """A class given by name, or by index (a whole number, or its digits) of one of the classes in ``index``."""
    if isinstance(key, float) and key.is_integer():
        key = int(key)
    if isinstance(key, int) and not isinstance(key, bool):
        k = key
    elif isinstance(key, str) and key in index:
        return index[key]
    elif isinstance(key, str) and key.isascii() and key.isdigit():
        k = int(key)
    else:  # NaN, Infinity, 2.5, a list: no class
        raise InputError(f"class {str(key)[:60]!r} is not among the given class names")
    if k not in index.values():
        raise InputError(f"class index {k} is not among the {len(index)} given classes")
    return k


# --- reading and writing -------------------------------------------------------------------------------
def dumps_revision(doc: Mapping[str, Any]) -> str:
    """The exact text of a revision file (the released files are ``json.dumps(doc, indent=2)``)."""
    d = dict(doc)
    if "image_filenames" in d:
        d["image_filenames"] = [[str(i), str(k)] for i, k in d["image_filenames"]]
    return json.dumps(d, indent=2)


def write_revision(doc: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write atomically; ``path`` may be a folder (then ``<folder>/<output_filename>``)."""
    path = Path(path)
    if path.is_dir():
        fn = doc.get("output_filename")
        if not fn:
            raise InputError("the revision has no output_filename; give a file path")
        path = path / str(fn)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, dumps_revision(doc).encode("utf-8"))
    return path


def read_revision(path: str | os.PathLike) -> dict[str, Any]:
    """Load a revision file as a dict (key order kept); checks ``image_filenames`` = [[id, class], …]."""
    path = Path(path)
    # strict: NaN / Infinity as a class, or nesting too deep, is one InputError line
    doc = read_json(path, what="not an ImageNetV2 revision file")
    try:
        rows = doc["image_filenames"]
        if not isinstance(rows, list) or not all(
                isinstance(r, list) and len(r) == 2 and isinstance(r[0], str | int) and not isinstance(r[0], bool)
                and isinstance(r[1], str | int) and not isinstance(r[1], bool) for r in rows):
            raise ValueError("rows must be [id, class] with text or whole-number entries")
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not an ImageNetV2 revision file (needs image_filenames = [[id, wnid], …]): "
                         f"{type(e).__name__} {e}") from None
    return doc


def read_class_thresholds(path: str | os.PathLike) -> dict[str, float]:
    """A ``{class name: threshold}`` JSON (like ImageNetV2's ``sampling_thresholds_a.json``), order kept."""
    path = Path(path)
    d = read_json(path)
    try:
        out = {str(k): float(v) for k, v in d.items()}
    except (ValueError, AttributeError, TypeError) as e:
        raise InputError(f"{path}: not a {{class: threshold}} JSON ({type(e).__name__} {e})") from None
    bad = [k for k, v in out.items() if not 0.0 <= v <= 1.0]
    if bad:
        raise InputError(f"{path}: threshold of {bad[0]!r} is outside [0, 1]")
    return out


def _parent_doc(parent: Parent) -> dict[str, Any] | None:
    if parent is None:
        return None
    if isinstance(parent, str | os.PathLike):
        return read_revision(parent)
    if isinstance(parent, Mapping):
        return dict(parent)
    return {"image_filenames": [list(r) for r in parent]}


def previous_by_class(parent: Parent, class_names: ClassNames | None = None) -> dict[int, list[str]]:
    """A parent revision (path, loaded dict, or [[id, class name], …] rows) → class index → [ids]."""
    doc = _parent_doc(parent)
    if doc is None:
        return {}
    index = _index_table(_name_table(class_names))
    out: dict[int, list[str]] = {}
    for i, k in doc["image_filenames"]:
        out.setdefault(_class_index(k, index), []).append(str(i))
    return out


def revision_manifest(doc: Mapping[str, Any], *, name: str | None = None,
                      vocabulary: Vocabulary | None = None) -> Manifest:
    """A labels-only Manifest for a revision dict — the same one ``read_revision_json`` gives for its file."""
    vocab = vocabulary or imagenet_1k()
    rows = doc["image_filenames"]
    stem = name or str(doc.get("output_filename") or "revision")
    stem = stem[:-5] if stem.endswith(".json") else stem
    dataset, variant, revision = split_name(stem)
    params = {k: v for k, v in doc.items() if k != "image_filenames"}
    params["layout"] = "revision"
    parent = doc.get("starting_from")
    if isinstance(parent, str) and parent.endswith(".json"):
        parent = parent[:-5]
    df = pd.DataFrame({"id": [str(r[0]) for r in rows], "path": None, "sha256": None,
                       "label": [vocab.index_of(str(r[1])) for r in rows]})
    return Manifest(df, name=stem, vocabulary=vocab, dataset=dataset, variant=variant, revision=revision,
                    parent=parent, seed=doc.get("seed"), parameters=params)


# --- building a revision -------------------------------------------------------------------------------
@dataclass
class Revision:
    """A sampled revision: its name, the file's dict (``doc``) and what the sampler did (``result``)."""

    name: str
    doc: dict[str, Any]
    result: SampleResult

    @property
    def is_valid(self) -> bool:
        """The file's ``is_valid`` flag: whether every class got its ``per_class`` images (see ``SampleResult``)."""
        return bool(self.doc["is_valid"])

    @property
    def filename(self) -> str:
        """The file name, ``<name>.json``."""
        return f"{self.name}.json"

    def dumps(self) -> str:
        """The exact text of the revision file (``dumps_revision``)."""
        return dumps_revision(self.doc)

    def write(self, path: str | os.PathLike) -> Path:
        """Write to ``path`` (a file, or a folder → ``<folder>/<name>.json``)."""
        return write_revision(self.doc, path)

    def manifest(self, vocabulary: Vocabulary | None = None) -> Manifest:
        """A labels-only Manifest of the sampled images (``revision_manifest``; ImageNet-1k by default)."""
        return revision_manifest(self.doc, name=self.name, vocabulary=vocabulary)


def make_revision(name: str, candidates: pd.DataFrame, *, seed: int, validation: pd.DataFrame | None = None,
                  parent: Parent = None, class_names: ClassNames | None = None,
                  classes: Iterable[int] | None = None, per_class: int = 10,
                  threshold: float = 0.7, class_thresholds: Mapping[int | str, float] | None = None,
                  min_num_annotations: int = 10, min_num_annotations_val: int = 10,
                  min_num_val_images_per_class: int = 20, bins: Sequence[float] = STANDARD_BINS,
                  allow_upward_sampling: bool = False,
                  review_targets: Mapping[str, float] | None = None,
                  time_string: str | None = None, username: str | None = None) -> Revision:
    """Sample revision ``name`` (``<dataset>-<a|b|c>-<revision>``; the letter picks the strategy).

    candidates / validation: the tables of ``shiftlab.curate.sample``. parent: the previous revision (path,
    loaded dict, or [[id, class name], …] rows); its still-eligible images carry over. class_names: class
    index → name written in ``image_filenames`` (a Vocabulary → wnids; default ImageNet-1k). classes: the
    classes to sample (default: every class in the candidates). class_thresholds (``a`` only): class index
    or name → threshold. min_num_annotations applies to candidates (``min_num_annotations_candidates`` in
    ``b``). review_targets: the near-duplicate review targets the ``reviewed`` column was computed against
    (recorded only; default S1.3's). time_string / username: recorded (default now / the current user).
    """
    dataset, variant, revision = parse_revision_name(name)
    name = revision_name(dataset, variant, revision)
    names = _name_table(class_names)
    index = _index_table(names)
    parent_doc = _parent_doc(parent)
    previous = previous_by_class(parent_doc, names) if parent_doc is not None else None
    overrides = {_class_index(k, index): float(v) for k, v in (class_thresholds or {}).items()}
    if class_thresholds and variant != "a":
        raise InputError("per-class thresholds apply to Threshold0.7 (variant a) only")
    targets = {k: float(v) for k, v in (review_targets or DEFAULT_REVIEW_TARGETS).items()}
    if variant == "a":
        res = sample_threshold(candidates, seed=seed, per_class=per_class, threshold=threshold,
                               class_thresholds=overrides, min_num_annotations=min_num_annotations,
                               previous=previous, classes=classes)
    elif variant == "b":
        if validation is None:
            raise InputError("MatchedFrequency (b) needs the validation table (id, class, frequency, n_annotations)")
        res = sample_matched_frequency(candidates, validation, seed=seed, per_class=per_class, bins=bins,
                                       min_num_annotations=min_num_annotations,
                                       min_num_annotations_val=min_num_annotations_val,
                                       min_num_val_images_per_class=min_num_val_images_per_class,
                                       allow_upward_sampling=allow_upward_sampling, previous=previous,
                                       classes=classes)
    else:
        res = sample_top(candidates, seed=seed, per_class=per_class, min_num_annotations=min_num_annotations,
                         previous=previous, classes=classes)
    missing = sorted({k for _, k in res.images} - set(names))
    if missing:
        raise InputError(f"class {missing[0]} has no name in class_names ({len(names)} names given)")
    starting_from = None
    if parent_doc is not None:
        starting_from = parent_doc.get("output_filename")
        if starting_from is None and isinstance(parent, str | os.PathLike):
            starting_from = Path(parent).name
    values: dict[str, Any] = {
        "sampling_function": VARIANTS[variant],
        "target_size": res.target_size,
        "selection_frequency_threshold": float(threshold),
        "histogram_bins": [float(b) for b in bins],
        "min_num_annotations": int(min_num_annotations),
        "min_num_annotations_candidates": int(min_num_annotations),
        "min_num_annotations_val": int(min_num_annotations_val),
        "min_num_val_images_per_wnid": int(min_num_val_images_per_class),
        "near_duplicate_review_targets": targets,
        "time_string": time_string if time_string is not None else now_time_string(),
        "username": username if username is not None else _user(),
        "seed": int(seed),
        "image_filenames": [[i, names[k]] for i, k in res.images],
        "is_valid": bool(res.is_valid),
        "allow_upward_sampling": bool(allow_upward_sampling),
        "starting_from": starting_from,
        "wnid_thresholds": {names.get(k, str(k)): v for k, v in overrides.items()},  # given order
        "output_filename": f"{name}.json",
    }
    # a first revision has no "starting_from" key at all, as ImageNetV2's files (imagenetv2-{a,b,c}-0.json)
    doc = {k: values[k] for k in KEYS[variant] if not (k == "starting_from" and starting_from is None)}
    return Revision(name, doc, res)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
