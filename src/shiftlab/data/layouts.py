"""Readers that turn what is on disk into a Manifest.

Layouts:
- ``imagefolder``: one folder per class, named by wnid or by class name (mapped through a vocabulary;
  wnid folders map onto ImageNet-1k indices, so a 2-class folder still scores a 1000-way model).
- ``imagenetv2``: the released ImageNetV2 layout, folders ``0 … 999`` holding class *indices* — folder
  ``10`` is class 10, not the third folder in string order.
- ``revision``: an ImageNetV2 revision JSON (``image_filenames = [[id, wnid], …]``), with or without an
  image root; a labels-only manifest is valid for precomputed predictions.
- ``csv``: a CSV with ``path,label`` (+ optional ``id`` and attribute columns).
- ``manifest``: a shiftlab Parquet manifest.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from shiftlab.data.classes import Vocabulary, guess_vocabulary, imagenet_1k
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError, UnknownNameError
from shiftlab.fsutil import read_json
from shiftlab.progress import info, track
from shiftlab.registry import dataset_path, list_datasets

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                    ".pbm", ".pnm", ".jfif"}


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes as 64 hex digits (read in 1 MiB blocks); ``OSError`` if unreadable or not a
    regular file (a FIFO would block for ever and ``/dev/zero`` never ends)."""
    h = hashlib.sha256()
    # O_NONBLOCK: opening a FIFO for reading must not wait for a writer before fstat can refuse it
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path}: not a regular file")
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_files(paths: list[Path], *, progress: bool = True, what: str = "hashing") -> list[str | None]:
    """sha256 of each file (None for unreadable ones: decoding reports them later)."""
    def one(p: Path) -> str | None:
        try:
            return sha256_file(p)
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        return list(track(pool.map(one, paths), total=len(paths), description=what, disable=not progress))


@dataclass
class FolderScan:
    """What a walk over image folders found: the image files (in walk order), how many other files it ignored,
    and what it skipped and why. ``seen`` holds the (device, inode) of every folder visited, so one scan can
    span several class folders and still visit each real folder once."""

    files: list[Path] = field(default_factory=list)
    ignored: int = 0
    skipped: Counter = field(default_factory=Counter)
    seen: set = field(default_factory=set)

    def report(self, root) -> None:
        """Say on stderr what was skipped (nothing when nothing was), and why."""
        if self.skipped:
            info(f"{root}: skipped " + "; ".join(f"{n} {why}" for why, n in sorted(self.skipped.items())))

    def parameters(self) -> dict:
        """What a manifest records about the scan: ``ignored_files``, and ``skipped`` (reason → count) when any."""
        return {"ignored_files": self.ignored, **({"skipped": dict(sorted(self.skipped.items()))}
                                                   if self.skipped else {})}


#: the reasons a scan gives for what it skipped
LINKED_AGAIN = "folder(s) reached again through a link (each real folder is read once)"
NOT_REGULAR = "image name(s) that are not regular files (FIFO, device, broken link)"
UNREADABLE = "unreadable folder(s)"


def scan_image_files(folder: Path, scan: FolderScan | None = None, *, claimed: bool = False) -> FolderScan:
    """Image files under ``folder``, recursively, in sorted pre-order (os.walk's top-down order). Links to
    folders are followed, but each real folder (by device and inode) is read once per scan: a link loop or a
    second link to the same folder adds nothing. Only regular files are kept; the rest is counted in
    ``skipped`` by reason, other files (not images, hidden) in ``ignored``. Pass ``scan`` to continue one;
    ``claimed``: ``folder`` is already in ``scan.seen`` (put there by the caller) and is read all the same."""
    scan = scan if scan is not None else FolderScan()
    stack = [Path(folder)]
    while stack:
        d = stack.pop()
        try:
            st = d.stat()
            if (st.st_dev, st.st_ino) in scan.seen and not (claimed and d == Path(folder)):
                scan.skipped[LINKED_AGAIN] += 1
                continue
            scan.seen.add((st.st_dev, st.st_ino))
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            scan.skipped[UNREADABLE] += 1
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                is_dir = e.is_dir()  # follows links
                is_file = not is_dir and e.is_file()  # a regular file (through links too)
            except OSError:
                is_dir = is_file = False
            if is_dir:
                subdirs.append(Path(e.path))
            elif Path(e.name).suffix.lower() not in IMAGE_EXTENSIONS:
                scan.ignored += 1
            elif is_file:
                scan.files.append(Path(e.path))
            else:
                scan.skipped[NOT_REGULAR] += 1
        stack.extend(reversed(subdirs))
    return scan


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte: no such file
        return False


def _dev_ino(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_dev, st.st_ino


def scan_class_folders(root: Path, folders: list[Path]) -> tuple[FolderScan, list[list[Path]]]:
    """The image files of each class folder under ``root`` (one list per folder, in order), in one scan.

    Every class folder is claimed before any is read, so a link inside one class to another class's folder
    (or to the root) adds nothing instead of giving that class's images a second label; a class folder that
    is the same real folder as an earlier one is skipped. What was skipped is said on stderr."""
    scan = FolderScan(ignored=_loose_files(root), seen={_dev_ino(root)})
    first: dict[tuple[int, int], Path] = {}
    for d in folders:
        first.setdefault(_dev_ino(d), d)
    scan.seen |= set(first)
    per_folder = []
    for d in folders:
        if first[_dev_ino(d)] != d:
            scan.skipped[LINKED_AGAIN] += 1
            per_folder.append([])
            continue
        start = len(scan.files)
        scan_image_files(d, scan, claimed=True)
        per_folder.append(scan.files[start:])
    scan.report(root)
    return scan, per_folder


def _loose_files(root: Path) -> int:
    """Files beside the class folders: never read, but counted so that nothing is dropped unnoticed."""
    return sum(1 for f in root.iterdir() if f.is_file() and not f.name.startswith("."))


def _ids_for(rel_paths: list[str], use_stem: bool = False) -> list[str]:
    """File names when they are unique (that is how ImageNet predictions are keyed), else relative paths."""
    names = [Path(p).stem if use_stem else Path(p).name for p in rel_paths]
    return names if len(set(names)) == len(names) else list(rel_paths)


def _finish(rows: pd.DataFrame, root: Path, name: str, vocab: Vocabulary, layout: str,
            progress: bool, **params) -> Manifest:
    rows = rows.reset_index(drop=True)
    rows["sha256"] = hash_files([root / p for p in rows["path"]], progress=progress)
    return Manifest(rows[["id", "path", "sha256", "label"] + [c for c in rows.columns
                                                           if c not in ("id", "path", "sha256", "label")]],
                    name=name, vocabulary=vocab, root=str(root), dataset=name,
                    parameters={"layout": layout, **params})


def read_imagefolder(root: str | os.PathLike, *, vocabulary: Vocabulary | None = None,
                     name: str | None = None, progress: bool = True) -> Manifest:
    """Read an ImageFolder: one sub-folder per class, named by wnid or class name → Manifest.

    The vocabulary is ``vocabulary``, else ImageNet-1k when every folder name is one of its wnids or names, else
    a custom one of the folder names (sorted; all-digit names numerically). Image files are found recursively;
    ids are file names when unique, else relative paths; every file is hashed. ``name`` defaults to the folder's
    name; ``parameters`` record how many other files were ignored. Raises ``InputError`` when there are no
    class folders or no image files, ``UnknownNameError`` when a folder names no class of ``vocabulary``.
    """
    root = _existing_dir(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise InputError(f"{root}: no class folders; an ImageFolder has one sub-folder per class")
    if all(c.isdigit() for c in classes):  # "10" after "9", not after "1"
        classes.sort(key=int)
    vocab = vocabulary or guess_vocabulary(classes) or Vocabulary.from_names(classes, name=f"{root.name}-classes")
    labels = [vocab.index_of(c) for c in classes]
    scan, files = scan_class_folders(root, [root / c for c in classes])
    rows = [(str(f.relative_to(root)), label) for label, fs in zip(labels, files) for f in fs]
    if not rows:
        raise InputError(f"{root}: the class folders hold no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")
    df = pd.DataFrame(rows, columns=["path", "label"])
    df.insert(0, "id", _ids_for(df["path"].tolist()))
    return _finish(df, root, name or root.name, vocab, "imagefolder", progress, **scan.parameters())


def read_imagenetv2_folders(root: str | os.PathLike, *, vocabulary: Vocabulary | None = None,
                            name: str | None = None, progress: bool = True) -> Manifest:
    """Read the released ImageNetV2 layout: folders ``0 … 999`` holding the images of that class *index* → Manifest.

    Labels are indices of ``vocabulary`` (default ImageNet-1k); ids are the file stems (``<sha1>`` as in the
    revision files) when unique, else relative paths. Raises ``InputError`` when a folder is not a number or is
    beyond the vocabulary.
    """
    root = _existing_dir(root)
    dirs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    not_num = [d.name for d in dirs if not d.name.isdigit()]
    if not dirs or not_num:
        raise InputError(f"{root}: the imagenetv2 layout needs folders named 0 … 999 "
                         f"(found {not_num[0]!r}); use --layout imagefolder for named class folders")
    vocab = vocabulary or imagenet_1k()
    dirs = sorted(dirs, key=lambda d: int(d.name))  # numeric order: folder "10" is class 10
    for d in dirs:
        if int(d.name) >= len(vocab):
            raise InputError(f"{root}: folder {d.name!r} is beyond the {len(vocab)} classes of {vocab.name}")
    scan, files = scan_class_folders(root, dirs)
    rows = [(str(f.relative_to(root)), int(d.name)) for d, fs in zip(dirs, files) for f in fs]
    df = pd.DataFrame(rows, columns=["path", "label"])
    # released files are <sha1>.jpeg while revision JSONs list <sha1>: the stem is the id
    df.insert(0, "id", _ids_for(df["path"].tolist(), use_stem=True))
    return _finish(df, root, name or root.name, vocab, "imagenetv2", progress, **scan.parameters())


def read_revision_json(path: str | os.PathLike, *, root: str | os.PathLike | None = None,
                       name: str | None = None, progress: bool = True) -> Manifest:
    """Read an ImageNetV2 revision file (``image_filenames = [[id, wnid], …]``) → Manifest with ImageNet-1k labels.

    The name splits into ``<dataset>-<variant>-<revision>``; the file's other keys become ``parameters`` and
    ``starting_from`` the ``parent``. Without ``root`` the manifest is labels-only (no paths or hashes, enough for
    precomputed predictions); with it, each id is looked up under ``root`` by file name, stem or ``<wnid>/<id>``
    and hashed. Raises ``InputError`` when the file is not a revision or an image is missing under ``root``.
    """
    path = Path(path)
    # strict: NaN / Infinity, or nesting too deep, is one InputError line
    doc = read_json(path, what="not an ImageNetV2 revision file")
    try:
        rows = doc["image_filenames"]
        if not isinstance(rows, list) or not all(
                isinstance(r, list) and len(r) == 2 and isinstance(r[1], str)
                and (isinstance(r[0], str) or type(r[0]) is int) for r in rows):
            raise TypeError("each row must be [id, wnid]: text (or a whole-number id) and text")
        ids = [str(r[0]) for r in rows]
        wnids = [r[1] for r in rows]
    except (KeyError, TypeError) as e:
        raise InputError(f"{path}: not an ImageNetV2 revision file (needs image_filenames = [[id, wnid], …]): "
                         f"{type(e).__name__} {e}") from None
    vocab = imagenet_1k()
    labels = [vocab.index_of(w) for w in wnids]
    stem = path.name[:-5] if path.name.endswith(".json") else path.stem
    dataset, variant, revision = split_name(stem)
    params = {k: v for k, v in doc.items() if k != "image_filenames"}
    params["layout"] = "revision"
    df = pd.DataFrame({"id": ids, "path": None, "sha256": None, "label": labels})
    seed = doc.get("seed")
    parent = doc.get("starting_from")
    if isinstance(parent, str) and parent.endswith(".json"):
        parent = parent[:-5]
    common = dict(name=name or stem, vocabulary=vocab, dataset=dataset, variant=variant, revision=revision,
                  parent=parent, seed=seed, parameters=params)
    if root is None:
        return Manifest(df, **common)
    root = _existing_dir(root)
    found = _index_files(root)
    rel = []
    missing = []
    for i, w in zip(ids, wnids):
        p = found.get(i) or found.get(f"{w}/{i}") or found.get(Path(i).stem)
        if p is None:
            missing.append(i)
        rel.append(p)
    if missing:
        raise InputError(f"{len(missing)} of {len(ids)} images of {stem} are not under {root} "
                         f"(first: {missing[0]}); point --root at the folder that holds them")
    df["path"] = rel
    df["sha256"] = hash_files([root / p for p in rel], progress=progress)
    return Manifest(df, root=str(root), **common)


def _index_files(root: Path) -> dict[str, str]:
    """name, stem and parent/stem of every image file under root → relative path."""
    idx: dict[str, str] = {}
    scan = scan_image_files(root)
    scan.report(root)
    for f in scan.files:
        rel = str(f.relative_to(root))
        for k in (f.name, f.stem, f"{f.parent.name}/{f.stem}", f"{f.parent.name}/{f.name}"):
            idx.setdefault(k, rel)
    return idx


def read_csv(path: str | os.PathLike, *, root: str | os.PathLike | None = None,
             vocabulary: Vocabulary | None = None, name: str | None = None, progress: bool = True) -> Manifest:
    """Read a CSV with ``path,label`` (+ optional ``id`` and attribute columns) → Manifest.

    Paths are relative to ``root``, by default the CSV's folder. Integer labels are class indices of
    ``vocabulary`` (default ImageNet-1k); other labels are wnids or class names (of ``vocabulary``, else of a
    guessed one or one made from the sorted names), ``-1`` = unknown. Without an ``id`` column, ids are file
    names when unique, else paths.
    Raises ``InputError`` when the CSV is unreadable, lacks a column, or lists files that do not exist.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"path": str, "id": str})
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise InputError(f"{path}: not a readable CSV ({e})") from None
    if "path" not in df.columns or "label" not in df.columns:
        raise InputError(f"{path}: a CSV dataset needs columns path,label (has {', '.join(map(str, df.columns))})")
    if not len(df):
        raise InputError(f"{path}: the CSV lists no images")
    empty = df["path"].isna() | (df["path"].str.strip() == "")
    if empty.any():
        raise InputError(f"{path}: row {int(empty.to_numpy().argmax()) + 2} has an empty path")
    root = _existing_dir(root) if root is not None else path.parent.resolve()
    labels = df["label"]
    if labels.isna().any():  # an empty cell is no class (-1 marks an unknown label)
        raise InputError(f"{path}: row {int(labels.isna().to_numpy().argmax()) + 2} has no label (-1 = unknown)")
    if pd.api.types.is_integer_dtype(labels):
        vocab = vocabulary or imagenet_1k()
        lab = labels.astype(int).tolist()
    else:
        keys = [str(k) for k in labels]
        classes = sorted(set(keys) - {"-1"})  # -1 marks an unknown label, not a class named "-1"
        vocab = vocabulary or guess_vocabulary(classes) or Vocabulary.from_names(
            classes, name=f"{path.stem}-classes")
        lab = [vocab.index_of(k) if k != "-1" else -1 for k in keys]
    df["label"] = lab
    if "id" not in df.columns:
        df.insert(0, "id", _ids_for(df["path"].tolist()))
    absent = [p for p in df["path"] if not _exists(root / p)]
    if absent:
        raise InputError(f"{path}: {len(absent)} listed file(s) do not exist under {root} (first: {absent[0]}); "
                         "paths are relative to the CSV's folder unless --root is given")
    return _finish(df, root, name or path.stem, vocab, "csv", progress)


def split_name(stem: str) -> tuple[str, str | None, str | None]:
    """``imagenetv2-b-33`` → (imagenetv2, b, 33): names follow ``<dataset>-<variant>-<revision>``."""
    parts = stem.split("-")
    if len(parts) >= 3 and parts[-1].isdigit():
        return "-".join(parts[:-2]), parts[-2], parts[-1]
    return stem, None, None


def _existing_dir(p) -> Path:
    p = Path(p).expanduser()
    if not p.is_dir():
        raise InputError(f"{p}: no such folder")
    return p.resolve()


LAYOUTS: dict[str, Callable[..., Manifest]] = {
    "imagefolder": read_imagefolder,
    "imagenetv2": read_imagenetv2_folders,
    "revision": read_revision_json,
    "csv": read_csv,
    "manifest": lambda path, **_: Manifest.load(path),
}


def detect_layout(path: Path) -> str:
    """The layout of ``path`` by its look: ``.json`` → revision, ``.csv`` → csv, ``.parquet`` → manifest; a folder
    whose sub-folders are all numbers → imagenetv2, any other folder → imagefolder. ``InputError`` otherwise.
    """
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".json":
            return "revision"
        if suffix == ".csv":
            return "csv"
        if suffix == ".parquet":
            return "manifest"
        raise InputError(f"{path}: cannot tell the layout of a {suffix or 'suffix-less'} file; "
                         "pass --layout revision|csv|manifest")
    if path.is_dir():
        subdirs = [d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")]
        if subdirs and all(d.isdigit() for d in subdirs):
            return "imagenetv2"
        return "imagefolder"
    raise InputError(f"{path}: no such file or folder")


def read_dataset(spec: str | os.PathLike, *, layout: str | None = None, workspace=None,
                 root: str | os.PathLike | None = None, vocabulary: Vocabulary | None = None,
                 progress: bool = True) -> Manifest:
    """A registered dataset name or a path (layout detected unless given) → Manifest."""
    reg = dataset_path(str(spec), workspace) if layout is None else None
    if reg is not None:
        m = Manifest.load(reg)
        return m.with_root(root) if root is not None else m
    path = Path(spec).expanduser()
    try:
        exists = path.exists()
    except OSError:  # a name too long for the file system, a NUL byte: no such path either
        exists = False
    if not exists:
        known = list_datasets(workspace)
        hint = f"registered: {', '.join(known)}" if known else "no datasets are registered yet"
        raise UnknownNameError(f"dataset {str(spec)!r} is neither a registered name nor a path ({hint}; "
                               "register one with 'shiftlab datasets add NAME PATH')")
    layout = layout or detect_layout(path)
    if layout not in LAYOUTS:
        raise UnknownNameError(f"unknown layout {layout!r}; one of {', '.join(LAYOUTS)}")
    kw: dict = {"progress": progress}
    if layout in ("revision", "csv") and root is not None:
        kw["root"] = root
    if layout in ("imagefolder", "imagenetv2", "csv") and vocabulary is not None:
        kw["vocabulary"] = vocabulary
    reader = LAYOUTS[layout]
    wants_folder = layout in ("imagefolder", "imagenetv2")
    if layout != "manifest" and path.is_dir() != wants_folder:
        raise InputError(f"{path}: layout {layout} expects a {'folder' if wants_folder else 'file'}")
    return reader(path, **kw)


