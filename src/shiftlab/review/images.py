"""Images for the review app, by (registered dataset, manifest id) only — never by a client-supplied path.

Thumbnails cost a decode and an encode each; a grid of 200 must still open in well under a second. So they
are kept in three places: an in-memory LRU bounded in bytes, a disk cache in the workspace (``cache/thumbs/``,
keyed by the image's content hash from its manifest, its file's real path, size, mtime and inode, and the
thumbnail size, so an edited or re-registered image is re-rendered), and :func:`warm_thumbnails` fills that
cache when a task is created, at the sizes its page asks for (``THUMB_SIZES``), so the first page view only
reads small files.

The server must survive hostile or merely huge files: requested sizes snap to ``SIZE_STEPS`` (so the disk
cache holds a few variants per image, not one per integer), at most ``max_decodes`` images are decoded at
once, JPEGs are decoded at a reduced scale, and nothing over ``APP_MAX_PIXELS`` decoded pixels is decoded at
all (a gap on the page; evaluation keeps its own, higher limit).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shiftlab.data.decode import decode_image
from shiftlab.data.manifest import Manifest
from shiftlab.fsutil import atomic_write_bytes
from shiftlab.progress import bar
from shiftlab.registry import dataset_path
from shiftlab.review.tasks import image_dataset
from shiftlab.workspace import Workspace

#: the thumbnail side (px) each view's pages request (the templates pass them to the scripts)
THUMB_SIZES = {"grid": 112, "reference": 112, "strip": 64, "hit": 160, "neighbour": 256, "query": 512}
#: the sizes rendered: a request is served at the smallest step at least as large (the browser scales it)
SIZE_STEPS = tuple(sorted(set(THUMB_SIZES.values()) | {1024, 2048}))
#: most pixels the app decodes for one image (after JPEG's reduced-scale decoding): 40 Mpx of RGB is 120 MB,
#: and the app decodes several at once; evaluation's limit (``data.decode.DEFAULT_MAX_PIXELS``) is 4.5× higher
APP_MAX_PIXELS = 40_000_000
#: default byte budget of the in-memory cache, and the largest single answer kept in it
MEMORY_BYTES = 128 * 1024 * 1024

#: formats a browser shows as they are: when no resize, rotation or mode change is needed, the file's own
#: bytes go out (no decode, no re-encode)
_AS_IS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
_EXT = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}
#: the disk cache's marker for an image the browser gets as it is (small enough, a shown format)
AS_IS = ".asis"


def snap_size(size: int | None) -> int | None:
    """The rendered size for a requested one: the smallest of ``SIZE_STEPS`` at least as large (the largest
    step above them all); None (the image as it is) stays None."""
    if size is None:
        return None
    return next((s for s in SIZE_STEPS if s >= size), SIZE_STEPS[-1])


def _render(path: Path, size: int | None, max_pixels: int = APP_MAX_PIXELS) -> tuple[bytes, str, bool] | None:
    """What the browser gets for one image, its media type, and whether the bytes are the file's own: the
    file itself when it can be shown as it is, else an RGB rendering (EXIF orientation applied) shrunk to
    ``size`` — JPEG for JPEG sources, PNG otherwise. JPEGs are decoded at a reduced DCT scale when shrinking
    (PIL's draft mode): several times faster, and a fraction of the memory. None when the file cannot be
    decoded or would decode to more than ``max_pixels`` (the page shows a gap; nothing fails)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            fmt, (w, h) = im.format, im.size
            if fmt != "JPEG" and w * h > max_pixels:
                return None  # from the header alone: nothing below may decode it
            rotated = _orientation(im) not in (None, 1)
            if fmt in _AS_IS and not rotated and (not size or max(w, h) <= size) and im.mode in ("RGB", "L"):
                if w * h > max_pixels and not size:
                    return None  # the page would decode it in the browser: the same limit
                return path.read_bytes(), _AS_IS[fmt], True
            if fmt == "JPEG" and size:
                im.draft("RGB", (size, size))  # header-only: sets the reduced scale the decoder will use
            if im.size[0] * im.size[1] > max_pixels:
                return None  # checked before any pixel is decoded
            if fmt == "JPEG" and size:
                im.load()
                rgb = ImageOps.exif_transpose(im).convert("RGB")
            else:
                rgb = None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    if rgb is None:
        # every mode, 16-bit grey, transparency: the same rules as the models see, under the app's limit
        res = decode_image(path, max_pixels=max_pixels)
        if not res.ok:
            return None
        rgb = res.image
    if size and max(rgb.size) > size:
        rgb.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)  # reduce() first: less work
    buf = io.BytesIO()
    if fmt == "JPEG":
        rgb.save(buf, format="JPEG", quality=88)
        return buf.getvalue(), "image/jpeg", False
    rgb.save(buf, format="PNG", compress_level=1)
    return buf.getvalue(), "image/png", False


def _orientation(im) -> int | None:
    """The EXIF orientation of an opened image, from its header. For a PNG only an eXIf chunk before the pixels
    counts: PIL's ``getexif`` would decode the whole image to look for one after them."""
    from PIL import Image

    if im.format == "PNG":
        raw = im.info.get("exif")
        if not raw:
            return None
        exif = Image.Exif()
        exif.load(raw)
        return exif.get(0x0112)
    return im.getexif().get(0x0112)


def _identity(st: os.stat_result) -> tuple:
    """What tells two versions of a file apart without reading it. The inode changes on every atomic
    replacement (a re-registered manifest); mtime alone can repeat within one clock tick (a few ms)."""
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ImageServer:
    """Image bytes by (dataset, id): manifests cached by file identity; rendered images in memory (at most
    ``max_bytes``) and on disk; at most ``max_decodes`` decodes at once."""

    def __init__(self, workspace: Workspace, max_bytes: int = MEMORY_BYTES, max_decodes: int | None = None,
                 max_pixels: int = APP_MAX_PIXELS):
        self.ws = workspace
        self.disk = workspace.root / "cache" / "thumbs"
        self.max_bytes, self.max_pixels = max_bytes, max_pixels
        # dataset → (manifest identity, root, id → (relative path, sha256))
        self._manifests: dict[str, tuple[tuple, Path, dict[str, tuple[str, str]]]] = {}
        self._cache: OrderedDict = OrderedDict()
        self._bytes = 0
        self._keys: dict[tuple, tuple] = {}  # (dataset, id, size) → cache key, for the no-I/O fast path
        self._lock = threading.Lock()
        # decoding runs on these few threads only, not on whichever of the server's 40 asked: it caps the decodes
        # at once, and the memory a decode frees stays with a few threads' malloc arenas instead of 40 of them
        # (measured: 60 size variants of a 2048² PNG grew the process by 754 MB when any thread decoded)
        self._decoder = ThreadPoolExecutor(max_decodes or min(4, os.cpu_count() or 1),
                                           thread_name_prefix="thumbnail")

    @property
    def cached_bytes(self) -> int:
        """Bytes held by the in-memory cache now (never more than ``max_bytes``)."""
        return self._bytes

    def _manifest_identity(self, dataset: str) -> tuple | None:
        p = dataset_path(dataset, self.ws)
        if p is None:
            return None
        try:
            return _identity(p.stat())
        except OSError:
            return None

    def _index(self, dataset: str):
        ident = self._manifest_identity(dataset)
        if ident is None:
            return None
        hit = self._manifests.get(dataset)
        if hit is None or hit[0] != ident:
            m = Manifest.load(dataset_path(dataset, self.ws))
            if not m.has_images:
                return None
            hit = (ident, Path(m.root).resolve(),
                   {i: (p, str(h)) for i, p, h in zip(m.table["id"], m.table["path"], m.table["sha256"])})
            self._manifests[dataset] = hit
        return hit

    def _locate(self, dataset: str, image_id: str) -> tuple[Path, str] | None:
        idx = self._index(dataset)
        if idx is None:
            return None
        _, root, rows = idx
        row = rows.get(image_id)
        if row is None:
            return None
        try:
            p = (root / row[0]).resolve()
            # a manifest (hand-edited or hostile) may point outside its root, or through a symlink out of it;
            # only a regular file is read (a FIFO or a device would block or never end)
            if not p.is_relative_to(root) or not p.is_file():
                return None
        except (OSError, ValueError):  # a name too long for the file system, a NUL byte
            return None
        return p, row[1]

    def path(self, dataset: str, image_id: str) -> Path | None:
        """The file of image ``image_id`` of the registered ``dataset``, resolved; None when the dataset, the id or the
        file is missing, the manifest has no images, the path leads outside the dataset's root, or is not a
        regular file.
        """
        found = self._locate(dataset, image_id)
        return found[0] if found else None

    def size(self, dataset: str, image_id: str) -> tuple[int, int] | None:
        """(width, height) of the image as shown (EXIF rotation applied), from its header; None if unreadable."""
        from PIL import Image

        p = self.path(dataset, image_id)
        if p is None:
            return None
        try:
            with Image.open(p) as im:
                w, h = im.size
                turned = _orientation(im) in (5, 6, 7, 8)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            return None
        return (h, w) if turned else (w, h)

    def _disk_key(self, key: tuple) -> Path:
        h = hashlib.sha1("\0".join(map(str, key)).encode()).hexdigest()
        return self.disk / h[:2] / h[2:]

    def in_memory(self, dataset: str, image_id: str, size: int | None) -> tuple[bytes, str] | None:
        """The answer when it is already in memory (no file is read), else None."""
        size = snap_size(size)
        with self._lock:
            key = self._keys.get((dataset, image_id, size))
        if key is None:
            return None
        # two stats, no read: a re-registered manifest or an edited file goes the slow way again
        idx = self._manifests.get(dataset)
        if idx is None or idx[0] != self._manifest_identity(dataset) or image_id not in idx[2]:
            return None
        try:
            if _identity(Path(key[1]).stat()) != key[2]:
                return None
        except OSError:
            return None
        with self._lock:
            if key not in self._cache:
                return None
            self._cache.move_to_end(key)
            return self._cache[key]

    def image(self, dataset: str, image_id: str, size: int | None) -> tuple[bytes, str] | None:
        """(bytes, media type) of the image, shrunk to fit ``size`` px (snapped up to ``SIZE_STEPS``); None when
        absent, undecodable or over the app's pixel limit."""
        size = snap_size(size)
        found = self._locate(dataset, image_id)
        if found is None:
            return None
        p, sha = found
        try:
            key = (sha, str(p), _identity(p.stat()), size)  # content, place and version of the file, size
        except OSError:
            return None
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        base = self._disk_key(key)
        out = None
        for media, ext in _EXT.items():
            f = base.with_suffix(ext)
            if f.is_file():
                out = (f.read_bytes(), media)
                break
        if out is None and base.with_suffix(AS_IS).is_file():
            # shown as it is: the marker holds the media type, so a warm cache never decodes the file again
            out = (p.read_bytes(), base.with_suffix(AS_IS).read_text())
        if out is None:
            # a burst of requests queues here instead of decoding 40 images at once
            rendered = self._decoder.submit(_render, p, size, self.max_pixels).result()
            if rendered is None:
                return None
            out, as_is = rendered[:2], rendered[2]
            base.parent.mkdir(parents=True, exist_ok=True)
            if as_is:  # a file shown as it is needs no second copy: a marker with its media type
                atomic_write_bytes(base.with_suffix(AS_IS), out[1].encode())
            else:
                atomic_write_bytes(base.with_suffix(_EXT[out[1]]), out[0])
        self._remember(dataset, image_id, size, key, out)
        return out

    def _remember(self, dataset: str, image_id: str, size: int | None, key: tuple, out: tuple[bytes, str]) -> None:
        n = len(out[0])
        if n > self.max_bytes // 8:  # one large original would push out hundreds of thumbnails: disk only
            return
        with self._lock:
            if key in self._cache:
                return
            self._cache[key] = out
            self._bytes += n
            self._keys[(dataset, image_id, size)] = key
            while self._bytes > self.max_bytes:
                _, (data, _) = self._cache.popitem(last=False)
                self._bytes -= len(data)
            if len(self._keys) > 4 * max(len(self._cache), 1024):
                self._keys = {k: v for k, v in self._keys.items() if v in self._cache}


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
    server = ImageServer(ws, max_bytes=0)
    want = task_thumbnails(task, ws)
    # the same thumbnails of the same manifests were warmed before: nothing to render (the app still checks each
    # file's version when it serves it, so an edited image is redrawn then)
    datasets = sorted({ds for ds, _, _ in want})
    key = hashlib.sha1(json.dumps([want, [server._manifest_identity(d) for d in datasets]]).encode()).hexdigest()
    marker = server.disk / "warm" / f"{key}.json"
    if marker.is_file():
        done = json.loads(marker.read_text())
        return done["shown"], done["wanted"]
    ok = 0
    with bar("thumbnails", len(want), disable=not progress) as b:
        for ds, i, size in want:
            ok += server.image(ds, i, size) is not None
            b.advance(1)
    marker.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(marker, json.dumps({"shown": ok, "wanted": len(want)}).encode())
    return ok, len(want)
