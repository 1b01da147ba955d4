"""The candidate pool (SPECS S1.1): raw collected images → a pool manifest, scaled copies and a blacklist.

Input: a folder laid out ``<class>/<files>`` (class = wnid or class name of the vocabulary), or a CSV with
columns ``path, class`` (+ optional ``source_id, date_taken, search_key, url, width, height``; paths
relative to the CSV's folder). Each candidate gets a stable id, the sha1 of its source id (the given
``source_id``, else the file's path relative to the source), as ImageNetV2 did.

Written under ``out_dir``:
- ``scaled/<id>.png`` — 256×256, aspect ratio not kept (for near-duplicate metrics);
- ``annotator/<id>.jpg`` — long side 500 px (what the crowd sees);
- ``blacklist.json`` — ``{id: reason}`` for files that could not be decoded (never fatal);
- ``<name>.parquet`` — the pool manifest: ``path`` = the scaled copy (relative to ``out_dir``), ``label`` =
  the class the image was collected for, plus ``source_id``, ``original_path`` (absolute),
  ``original_sha256``, ``annotator_path``, ``width``/``height`` (decoded, EXIF-oriented), ``class_key``
  and the optional source columns.

Everything is validated before anything is written; the same input gives a byte-identical manifest.
"""

from __future__ import annotations

import hashlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image

from shiftlab.data.classes import Vocabulary
from shiftlab.data.decode import decode_image
from shiftlab.data.layouts import IMAGE_EXTENSIONS, scan_class_folders, sha256_file
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError
from shiftlab.fsutil import atomic_write_bytes, atomic_write_json
from shiftlab.progress import track

SCALED_SIZE = 256
ANNOTATOR_SIDE = 500
OPTIONAL_COLUMNS = ("date_taken", "search_key", "url", "width", "height")


def candidate_id(source_id: str) -> str:
    """The stable id of a candidate: sha1 of its source id (ImageNetV2's convention)."""
    return hashlib.sha1(str(source_id).encode()).hexdigest()


def _read_source(source: Path) -> tuple[pd.DataFrame, Path]:
    """(rows with columns path (relative to base), class_key, source_id [+ optional], base folder)."""
    if source.is_dir():
        classes = sorted(d.name for d in source.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not classes:
            raise InputError(f"{source}: no class folders; a candidate folder has one sub-folder per class")
        _, files = scan_class_folders(source, [source / c for c in classes])
        rows = [(f.relative_to(source).as_posix(), c) for c, fs in zip(classes, files) for f in fs]
        if not rows:
            raise InputError(f"{source}: the class folders hold no image files "
                             f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
        df = pd.DataFrame(rows, columns=["path", "class_key"])
        df["source_id"] = df["path"]
        return df, source
    if source.is_file():
        try:
            df = pd.read_csv(source, dtype=str, keep_default_na=False)
        except (OSError, ValueError, pd.errors.ParserError) as e:
            raise InputError(f"{source}: not a readable CSV ({e})") from None
        missing = [c for c in ("path", "class") if c not in df.columns]
        if missing:
            raise InputError(f"{source}: a candidate CSV needs columns path,class "
                             f"(missing {', '.join(missing)}; has {', '.join(df.columns)})")
        if not len(df):
            raise InputError(f"{source}: the candidate CSV has no rows")
        df = df.rename(columns={"class": "class_key"})
        if "source_id" not in df.columns:
            df["source_id"] = df["path"]
        empty = df["source_id"].eq("")
        df.loc[empty, "source_id"] = df.loc[empty, "path"]
        for c in ("width", "height"):
            if c in df.columns:
                v = pd.to_numeric(df[c].replace("", None), errors="coerce")
                bad = df[c].ne("") & v.isna()
                if bad.any():
                    raise InputError(f"{source}: column {c} must be a whole number "
                                     f"(row {int(bad.idxmax()) + 2}: {df[c][bad].iloc[0]!r})")
                df[c] = v.astype("Int64")
        keep = ["path", "class_key", "source_id"] + [c for c in OPTIONAL_COLUMNS if c in df.columns]
        return df[keep], source.parent.resolve()
    raise InputError(f"{source}: no such folder or CSV file")


def _validate(df: pd.DataFrame, vocabulary: Vocabulary, source: Path) -> pd.DataFrame:
    unknown = sorted({k for k in df["class_key"] if vocabulary.try_index_of(k) is None})
    if unknown:
        raise InputError(f"{source}: {len(unknown)} class(es) not in the {vocabulary.name} vocabulary, "
                         f"e.g. {unknown[0]!r}; name classes by wnid or class name, or pass --vocabulary")
    df = df.copy()
    df["label"] = [vocabulary.index_of(k) for k in df["class_key"]]
    df["id"] = [candidate_id(s) for s in df["source_id"]]
    dup = df["source_id"][df["source_id"].duplicated()]
    if len(dup):
        raise InputError(f"{source}: {len(dup)} repeated source id(s), e.g. {dup.iloc[0]!r}; "
                         "each candidate needs its own source id")
    return df


def _encode(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "PNG":
        im.save(buf, format="PNG", optimize=False)
    else:
        im.save(buf, format="JPEG", quality=90, subsampling=0)
    return buf.getvalue()


def _process(path: Path, scaled_size: int, annotator_side: int):
    """(scaled bytes, annotator bytes, (w, h), original sha256) or a reason string."""
    res = decode_image(path)
    if not res.ok:
        return res.reason
    im = res.image
    w, h = im.size
    scaled = im.resize((scaled_size, scaled_size), Image.BILINEAR)
    f = annotator_side / max(w, h)
    ann = im.resize((max(1, round(w * f)), max(1, round(h * f))), Image.BICUBIC) if f != 1 else im
    try:
        digest = sha256_file(path)
    except OSError as e:
        return f"unreadable: {e}"
    return _encode(scaled, "PNG"), _encode(ann, "JPEG"), (w, h), digest


def import_candidates(source: str | os.PathLike, *, vocabulary: Vocabulary, out_dir: str | os.PathLike,
                      name: str, scaled_size: int = SCALED_SIZE, annotator_side: int = ANNOTATOR_SIDE,
                      progress: bool = True) -> tuple[Manifest, dict[str, str]]:
    """Import a candidate pool; returns (pool manifest, blacklist ``{id: reason}``).

    Raises InputError (before writing anything) for an unreadable source, a class not in ``vocabulary``,
    or repeated source ids. Undecodable files are blacklisted, never fatal.
    """
    if scaled_size < 1 or annotator_side < 1:
        raise InputError(f"sizes must be positive (scaled {scaled_size}, annotator {annotator_side})")
    src = Path(source)
    df, base = _read_source(src)
    df = _validate(df, vocabulary, src)
    base = base.resolve()

    out = Path(out_dir)
    (out / "scaled").mkdir(parents=True, exist_ok=True)
    (out / "annotator").mkdir(parents=True, exist_ok=True)
    files = [base / p for p in df["path"]]

    def one(args):
        path, id_ = args
        r = _process(path, scaled_size, annotator_side)
        if isinstance(r, str):
            return r
        scaled, ann, size, digest = r
        atomic_write_bytes(out / "scaled" / f"{id_}.png", scaled)
        atomic_write_bytes(out / "annotator" / f"{id_}.jpg", ann)
        return size, digest, hashlib.sha256(scaled).hexdigest()

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2))) as pool:
        results = list(track(pool.map(one, zip(files, df["id"])), total=len(files),
                             description="importing candidates", disable=not progress))

    blacklist: dict[str, str] = {}
    rows = []
    for (_, r), f, res in zip(df.iterrows(), files, results):
        if isinstance(res, str):
            blacklist[r["id"]] = res
            continue
        (w, h), digest, scaled_sha = res
        row = {"id": r["id"], "path": f"scaled/{r['id']}.png", "sha256": scaled_sha, "label": int(r["label"]),
               "class_key": r["class_key"], "source_id": r["source_id"], "original_path": str(f),
               "original_sha256": digest, "annotator_path": f"annotator/{r['id']}.jpg"}
        for c in ("date_taken", "search_key", "url"):
            if c in df.columns:
                row[c] = r[c]
        row["width"], row["height"] = int(w), int(h)
        for c in ("width", "height"):  # as the source reported it (may differ from the decoded file)
            if c in df.columns:
                row[f"source_{c}"] = None if pd.isna(r[c]) else int(r[c])
        rows.append(row)
    for id_ in blacklist:  # an earlier import may have left copies of a file that is now bad
        (out / "scaled" / f"{id_}.png").unlink(missing_ok=True)
        (out / "annotator" / f"{id_}.jpg").unlink(missing_ok=True)
    columns = ["id", "path", "sha256", "label", "class_key", "source_id", "original_path", "original_sha256",
               "annotator_path"] + [c for c in ("date_taken", "search_key", "url") if c in df.columns] + \
        ["width", "height"] + [f"source_{c}" for c in ("width", "height") if c in df.columns]
    table = pd.DataFrame(rows, columns=columns).sort_values("id", kind="stable").reset_index(drop=True)
    table["width"] = table["width"].astype("int64")
    table["height"] = table["height"].astype("int64")
    manifest = Manifest(table, name=name, vocabulary=vocabulary, root=str(out.resolve()), dataset=name,
                        variant="candidates",
                        parameters={"source": str(src.resolve()), "scaled_size": scaled_size,
                                    "annotator_side": annotator_side, "n_input": len(df),
                                    "n_blacklisted": len(blacklist)})
    blacklist = dict(sorted(blacklist.items()))
    atomic_write_json(out / "blacklist.json", blacklist)
    manifest.save(out / f"{name}.parquet")
    return manifest, blacklist
