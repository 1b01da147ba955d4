"""Images for the review app, by (registered dataset, manifest id) only — never by a client-supplied path.

Thumbnails cost a decode and an encode each; a grid of 200 must still open in well under a second. So they
are kept in three places: a bounded in-memory LRU, a disk cache in the workspace
(``cache/thumbs/``, keyed by the file's real path, size, mtime and the thumbnail size, so an edited image
is re-rendered), and :func:`warm_thumbnails` fills that cache when a task is created, at the sizes its page
asks for (``THUMB_SIZES``), so the first page view only reads small files.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from pathlib import Path

from shiftlab.data.decode import DEFAULT_MAX_PIXELS, decode_image
from shiftlab.data.manifest import Manifest
from shiftlab.fsutil import atomic_write_bytes
from shiftlab.progress import bar
from shiftlab.registry import dataset_path
from shiftlab.review.tasks import image_dataset
from shiftlab.workspace import Workspace

#: the thumbnail side (px) each view's pages request (the templates pass them to the scripts)
THUMB_SIZES = {"grid": 112, "reference": 112, "strip": 64, "hit": 160, "neighbour": 256, "query": 512}

#: formats a browser shows as they are: when no resize, rotation or mode change is needed, the file's own
#: bytes go out (no decode, no re-encode)
_AS_IS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
_EXT = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}


def _render(path: Path, size: int | None) -> tuple[bytes, str, bool] | None:
    """What the browser gets for one image, its media type, and whether the bytes are the file's own: the
    file itself when it can be shown as it is, else an RGB rendering (EXIF orientation applied) shrunk to
    ``size`` — JPEG for JPEG sources, PNG otherwise. JPEGs are decoded at a reduced DCT scale when shrinking
    (PIL's draft mode): several times faster on photos. None when the file cannot be decoded (the page
    shows a gap; nothing fails)."""
    from PIL import Image, ImageOps


    try:
        with Image.open(path) as im:
            fmt, (w, h) = im.format, im.size
            if w * h > DEFAULT_MAX_PIXELS:
                return None
            rotated = im.getexif().get(0x0112, 1) not in (None, 1)
            if fmt in _AS_IS and not rotated and (not size or max(w, h) <= size) and im.mode in ("RGB", "L"):
                return path.read_bytes(), _AS_IS[fmt], True
            if fmt == "JPEG" and size:
                im.draft("RGB", (size, size))
                im.load()
                rgb = ImageOps.exif_transpose(im).convert("RGB")
            else:
                rgb = None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    if rgb is None:
        res = decode_image(path)  # every mode, 16-bit grey, transparency: the same rules as the models see
        if not res.ok:
            return None
        rgb = res.image
    if size and max(rgb.size) > size:
        rgb.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if fmt == "JPEG":
        rgb.save(buf, format="JPEG", quality=88)
        return buf.getvalue(), "image/jpeg", False
    rgb.save(buf, format="PNG", compress_level=1)
    return buf.getvalue(), "image/png", False


class ImageServer:
    """Image bytes by (dataset, id): manifests cached by file mtime; rendered images in memory and on disk."""

    def __init__(self, workspace: Workspace, max_items: int = 4096):
        self.ws = workspace
        self.disk = workspace.root / "cache" / "thumbs"
        self._manifests: dict[str, tuple[float, Path, dict[str, str]]] = {}
        self._cache: OrderedDict = OrderedDict()
        self._keys: dict[tuple, tuple] = {}  # (dataset, id, size) → cache key, for the no-I/O fast path
        self._max = max_items
        self._lock = threading.Lock()

    def _index(self, dataset: str):
        p = dataset_path(dataset, self.ws)
        if p is None:
            return None
        mtime = p.stat().st_mtime
        hit = self._manifests.get(dataset)
        if hit is None or hit[0] != mtime:
            m = Manifest.load(p)
            if not m.has_images:
                return None
            hit = (mtime, Path(m.root).resolve(), dict(zip(m.table["id"], m.table["path"])))
            self._manifests[dataset] = hit
        return hit

    def path(self, dataset: str, image_id: str) -> Path | None:
        """The file of image ``image_id`` of the registered ``dataset``, resolved; None when the dataset, the id or the
        file is missing, the manifest has no images, or the path leads outside the dataset's root.
        """
        idx = self._index(dataset)
        if idx is None:
            return None
        _, root, paths = idx
        rel = paths.get(image_id)
        if rel is None:
            return None
        p = (root / rel).resolve()
        # a manifest (hand-edited or hostile) may point outside its root, or through a symlink out of it
        if not p.is_relative_to(root) or not p.is_file():
            return None
        return p

    def size(self, dataset: str, image_id: str) -> tuple[int, int] | None:
        """(width, height) of the image as shown (EXIF rotation applied), from its header; None if unreadable."""
        from PIL import Image

        p = self.path(dataset, image_id)
        if p is None:
            return None
        try:
            with Image.open(p) as im:
                w, h = im.size
                turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            return None
        return (h, w) if turned else (w, h)

    def _disk_key(self, p: Path, size: int | None) -> Path:
        st = p.stat()
        h = hashlib.sha1(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\0{size}".encode()).hexdigest()
        return self.disk / h[:2] / h[2:]

    def in_memory(self, dataset: str, image_id: str, size: int | None) -> tuple[bytes, str] | None:
        """The answer when it is already in memory (no file is read), else None."""
        with self._lock:
            key = self._keys.get((dataset, image_id, size))
        if key is None:
            return None
        # two stats, no read: a re-registered manifest or an edited file goes the slow way again

        mp = dataset_path(dataset, self.ws)
        idx = self._manifests.get(dataset)
        if mp is None or idx is None or idx[0] != mp.stat().st_mtime or idx[2].get(image_id) is None:
            return None
        try:
            if Path(key[0]).stat().st_mtime_ns != key[1]:
                return None
        except OSError:
            return None
        with self._lock:
            if key not in self._cache:
                return None
            self._cache.move_to_end(key)
            return self._cache[key]

    def image(self, dataset: str, image_id: str, size: int | None) -> tuple[bytes, str] | None:
        """(bytes, media type) of the image, shrunk to fit ``size`` px; None when absent or undecodable."""
        p = self.path(dataset, image_id)
        if p is None:
            return None
        key = (str(p), p.stat().st_mtime_ns, size)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        base = self._disk_key(p, size)
        out = None
        for media, ext in _EXT.items():
            f = base.with_suffix(ext)
            if f.is_file():
                out = (f.read_bytes(), media)
                break
        if out is None:
            rendered = _render(p, size)
            if rendered is None:
                return None
            out, as_is = rendered[:2], rendered[2]
            if not as_is:  # a file shown as it is needs no second copy
                base.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(base.with_suffix(_EXT[out[1]]), out[0])
        with self._lock:
            self._cache[key] = out
            self._keys[(dataset, image_id, size)] = key
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
            if len(self._keys) > 4 * max(self._max, 1):
                self._keys = {k: v for k, v in self._keys.items() if v in self._cache}
        return out


def task_thumbnails(task: dict, workspace) -> list[tuple[str, str, int]]:
    """(dataset, id, size) of the thumbnails a task's page asks for first."""
    kind = task["kind"]
    if kind == "classes":
        m = image_dataset(task["dataset"], workspace)
        out = [(task["dataset"], i, THUMB_SIZES["grid"]) for i in m.ids]
        if task.get("reference"):
            r = image_dataset(task["reference"], workspace)
            seen: dict[int, int] = {}
            for i, y in zip(r.ids, r.labels):
                seen[int(y)] = seen.get(int(y), 0) + 1
                if seen[int(y)] <= 8:
                    out.append((task["reference"], i, THUMB_SIZES["reference"]))
        return out
    if kind == "images":
        return [(task["dataset"], it["id"], THUMB_SIZES["strip"]) for it in task["items"]]
    if kind == "duplicates":
        out = []
        for it in task["items"]:
            out += [(it["query_dataset"], it["query"], THUMB_SIZES["query"]),
                    (it["reference_dataset"], it["reference"], THUMB_SIZES["neighbour"])]
        return list(dict.fromkeys(out))
    return [(im["dataset"], im["id"], THUMB_SIZES["hit"]) for it in task["items"] for im in it["images"]]


def warm_thumbnails(task: dict, workspace, *, progress: bool = True) -> tuple[int, int]:
    """Render a task's thumbnails into the workspace's disk cache (with a progress bar); returns (how many
    could be shown, how many were wanted) — undecodable images are skipped, never fatal."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    server = ImageServer(ws, max_items=0)
    want = task_thumbnails(task, ws)
    ok = 0
    with bar("thumbnails", len(want), disable=not progress) as b:
        for ds, i, size in want:
            ok += server.image(ds, i, size) is not None
            b.advance(1)
    return ok, len(want)
