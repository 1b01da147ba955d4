"""Turn an image file into an RGB (or grey) PIL image, or a reason why not.

Decoding never raises for a bad file: the caller gets ``DecodeResult(image=None, reason=...)`` and records
the reason. EXIF orientation is applied; grey, palette, RGBA, CMYK and 16-bit images become RGB.
"""

from __future__ import annotations

import os
import stat
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from shiftlab.data.jpeg import decode_jpeg_fast

# A file cut short must be reported, not padded with grey by PIL.
ImageFile.LOAD_TRUNCATED_IMAGES = False

#: default pixel limit (width × height); above it a file counts as a decompression bomb. 2× PIL's
#: default, so that any real photo passes while a 50k × 50k "image" of a few KB does not.
DEFAULT_MAX_PIXELS = 2 * 89_478_485

_PIL_LIMIT_LOCK = threading.Lock()


@dataclass(frozen=True)
class DecodeResult:
    """A decoded image, or None and the ``reason`` it could not be decoded."""

    image: Image.Image | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the file was decoded (``image`` is not None)."""
        return self.image is not None


def _to_mode(im: Image.Image, mode: str) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit / 32-bit grey: PIL's convert("RGB") clips at 255, so rescale to 8 bits first
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        if im.mode == "F" and a.max() <= 1.0:
            hi = 1.0
        a = np.clip(np.round(a * (255.0 / hi)), 0, 255).astype(np.uint8)
        im = Image.fromarray(a, mode="L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # alpha is dropped (composited on white would invent content; ImageNetV2 simply dropped it)
        im = im.convert("RGBA").convert("RGB")
    if im.mode == "CMYK":
        im = im.convert("RGB")
    if im.mode != mode:
        im = im.convert(mode)
    return im


def decode_image(path: str | os.PathLike, *, mode: str = "RGB",
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodeResult:
    """Decode one file. ``mode`` is ``"RGB"`` or ``"L"``.

    Reasons: ``missing``, ``not a regular file``, ``empty file``, ``not an image``,
    ``decompression bomb (W×H px > limit)``, ``truncated``, ``corrupt: <detail>``.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return DecodeResult(None, "missing")
    if not stat.S_ISREG(st.st_mode):  # a FIFO blocks the reader for ever; a device never ends
        return DecodeResult(None, "not a regular file")
    size = st.st_size
    if size == 0:
        return DecodeResult(None, "empty file")
    try:
        # PIL's limit is a process-wide global: swapping it unlocked from several decoding threads
        # could "restore" None for good; opening reads only the header, so the lock costs little
        with _PIL_LIMIT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # our own limit below
            try:
                im = Image.open(p)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        w, h = im.size
        if w * h > max_pixels:
            return DecodeResult(None, f"decompression bomb ({w}x{h} px > {max_pixels})")
        fast = decode_jpeg_fast(p, im)  # the same pixels, faster (shiftlab.data.jpeg); None: PIL decodes
        if fast is not None:
            im.close()
            return DecodeResult(_to_mode(fast, mode))
        im.load()
        im = ImageOps.exif_transpose(im)
        return DecodeResult(_to_mode(im, mode))
    except UnidentifiedImageError:
        return DecodeResult(None, "not an image")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        msg = str(e)
        low = msg.lower()  # PIL says both "image file is truncated" and "Truncated File Read"
        if "truncated" in low or "broken data stream" in low or "premature end" in low:
            return DecodeResult(None, "truncated")
        return DecodeResult(None, f"corrupt: {' '.join(msg.split())[:120]}")
    except Exception as e:
        return DecodeResult(None, f"corrupt: {type(e).__name__}: {' '.join(str(e).split())[:100]}")
