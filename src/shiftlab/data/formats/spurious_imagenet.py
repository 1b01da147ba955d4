"""The Spurious ImageNet folder layout (Neuhaus et al. 2023; SPECS S3) → Manifest.

The released data set keeps one folder per (class, spurious component) under ``images/``::

    spurious_imagenet/
      images/
        timestamp.txt                       ignored (files beside the folders are never read)
        <a>_<b>_<class>_..._<component>/    75 images each, per the README
          *.jpg / *.png …

The folder name split on ``_`` gives the class index at Python index 2 (the third field) and the component at
index −1, exactly as the published ``SpuriousDataset`` reads it. Every image takes its folder's class: it is a
*negative* of that class (it shows the class's spurious feature without the class object). Two folders of one
class (two spurious components) pool their images as that class's negatives.

We are stricter than the published reader in one way: a folder whose name breaks the pattern (fewer than four
fields, so that the class and the component would be the same field; a class or component field that is not a
whole number; a class outside the vocabulary) is a one-line ``InputError`` instead of a traceback.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pandas as pd

from shiftlab.data.classes import Vocabulary, imagenet_1k
from shiftlab.data.layouts import hash_files, scan_class_folders
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError
from shiftlab.progress import info

#: images per (class, component) folder in the released set (counted and reported, never required)
EXPECTED_PER_FOLDER = 75
#: the column naming the class whose spurious feature a row shows (the class whose negative it is)
CLASS_COLUMN = "spurious_class"
#: the neural-PCA component of that class the folder was collected for
COMPONENT_COLUMN = "component"
LAYOUT = "spurious-imagenet"
_NUMBER = re.compile(r"[0-9]+")


def parse_folder_name(name: str, n_classes: int = 1000) -> tuple[int, int]:
    """``(class index, component)`` of a Spurious ImageNet folder name; ``InputError`` when it breaks the pattern.

    The name is split on ``_``: field 2 (Python index) is the class index, the last field the component.
    """
    fields = name.split("_")
    if len(fields) < 4:
        raise InputError(f"folder {name!r} is not a Spurious ImageNet folder: expected a name like "
                         "spurious_imagenet_<class>_..._<component> (at least four '_'-separated fields)")
    cls, comp = fields[2], fields[-1]
    if not _NUMBER.fullmatch(cls) or not _NUMBER.fullmatch(comp):
        raise InputError(f"folder {name!r} is not a Spurious ImageNet folder: field 3 ({cls!r}, the class index) "
                         f"and the last field ({comp!r}, the component) must be whole numbers")
    k = int(cls)
    if k >= n_classes:
        raise InputError(f"folder {name!r}: class index {k} is beyond the {n_classes} classes of the vocabulary")
    return k, int(comp)


def images_folder(path: str | os.PathLike) -> Path:
    """The folder holding the (class, component) folders: ``path/images`` when it exists, else ``path``."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise InputError(f"{p}: no such folder (give the Spurious ImageNet folder or its images/ folder)")
    return (p / "images").resolve() if (p / "images").is_dir() else p.resolve()


def read_spurious_imagenet(path: str | os.PathLike, *, vocabulary: Vocabulary | None = None,
                           name: str | None = None, progress: bool = True) -> Manifest:
    """Read the Spurious ImageNet layout → Manifest of negatives, one row per image.

    Parameters
    ----------
    path : folder
        The data set's folder (holding ``images/``) or its ``images/`` folder.
    vocabulary : Vocabulary, default ImageNet-1k
    name : str, default ``spurious-imagenet``
    progress : bool, default True
        Progress of hashing, and the per-folder count line on stderr.

    Returns
    -------
    Manifest
        ``id`` (``<folder>/<file>``, unique), ``path``, ``sha256``, ``label`` = the folder's class, then
        ``spurious_class`` (the same class: the class whose negative the image is) and ``component``.
        ``parameters`` record the layout, the images per folder (``per_folder``: folder → count), the folders
        whose count differs from 75 (``unexpected_counts``) and the files beside the folders that were ignored.

    Raises
    ------
    InputError
        No (class, component) folders, a folder name that breaks the pattern (one line naming it), or no image
        files at all.
    """
    root = images_folder(path)
    vocab = vocabulary or imagenet_1k()
    folders = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)
    if not folders:
        raise InputError(f"{root}: no (class, component) folders; the Spurious ImageNet layout has one folder "
                         "per class and component under images/")
    parsed = [parse_folder_name(d.name, len(vocab)) for d in folders]
    # ordered by class, then component, then name: the rows of one class sit together
    order = sorted(range(len(folders)), key=lambda i: (parsed[i], folders[i].name))
    folders, parsed = [folders[i] for i in order], [parsed[i] for i in order]
    scan, files = scan_class_folders(root, folders)
    rows = [(str(f.relative_to(root)), k, comp) for (k, comp), fs in zip(parsed, files) for f in fs]
    if not rows:
        raise InputError(f"{root}: the Spurious ImageNet folders hold no image files")
    per_folder = {d.name: len(fs) for d, fs in zip(folders, files)}
    unexpected = {n: c for n, c in per_folder.items() if c != EXPECTED_PER_FOLDER}
    df = pd.DataFrame(rows, columns=["path", "label", COMPONENT_COLUMN])
    df.insert(0, "id", df["path"])
    df.insert(3, CLASS_COLUMN, df["label"])
    df["sha256"] = hash_files([root / p for p in df["path"]], progress=progress, what="hashing spurious images")
    classes = Counter(k for k, _ in parsed)
    if progress:
        info(f"{root}: {len(df)} images in {len(folders)} folders of {len(classes)} classes "
             f"({sum(c > 1 for c in classes.values())} with more than one component); "
             + (f"{len(unexpected)} folder(s) hold other than {EXPECTED_PER_FOLDER} images, e.g. "
                f"{next(iter(unexpected))} ({next(iter(unexpected.values()))})" if unexpected
                else f"every folder holds {EXPECTED_PER_FOLDER}"))
    params = {"layout": LAYOUT, "per_folder": per_folder, "unexpected_counts": unexpected, **scan.parameters()}
    return Manifest(df[["id", "path", "sha256", "label", CLASS_COLUMN, COMPONENT_COLUMN]], name=name or LAYOUT,
                    vocabulary=vocab, root=str(root), dataset=name or LAYOUT, parameters=params)


def read_spurious_folder(path: str | os.PathLike, klass: int, *, vocabulary: Vocabulary | None = None,
                         name: str | None = None, progress: bool = True) -> Manifest:
    """A user's own spurious set: every image under ``path`` (recursively) shows class ``klass``'s spurious
    feature without the class → Manifest with ``label`` = ``spurious_class`` = ``klass``.

    ``vocabulary`` defaults to ImageNet-1k (give the positives' vocabulary). Ids are paths relative to ``path``.
    ``InputError`` when ``path`` is not a folder, holds no image files, or ``klass`` is outside the vocabulary.
    """
    from shiftlab.data.layouts import scan_image_files

    vocab = vocabulary or imagenet_1k()
    root = Path(path).expanduser()
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    root = root.resolve()
    if not 0 <= int(klass) < len(vocab):
        raise InputError(f"class {klass} is outside the {len(vocab)} classes of {vocab.name} (0..{len(vocab) - 1})")
    scan = scan_image_files(root)
    scan.report(root)
    if not scan.files:
        raise InputError(f"{root}: no image files to use as negatives")
    rel = [str(f.relative_to(root)) for f in scan.files]
    df = pd.DataFrame({"id": rel, "path": rel, "sha256": hash_files(scan.files, progress=progress),
                       "label": int(klass), CLASS_COLUMN: int(klass)})
    return Manifest(df, name=name or root.name, vocabulary=vocab, root=str(root), dataset=name or root.name,
                    parameters={"layout": "spurious-folder", "spurious_class": int(klass), **scan.parameters()})
