"""JPEG decoding through torchvision's libjpeg-turbo binding where it imports, else PIL.

Both libraries decode with libjpeg-turbo's default (islow DCT, fancy upsampling), so the pixels are the same:
``tests/data/test_jpeg.py`` checks byte equality on RGB, grey, progressive, 4:4:4 and EXIF-rotated files. The
torchvision path skips PIL's per-call overhead and is the faster one in ``bench/eval_throughput.py`` (part c;
figures in bench/RESULTS.md). ``SHIFTLAB_JPEG_DECODER=pil`` forces PIL. Anything the fast path is unsure of
(CMYK files, whose Adobe inversion PIL handles, or a decoding error, whose reason PIL words) goes to PIL.
"""

from __future__ import annotations

import os
import warnings
from functools import cache

from PIL import Image

DECODERS = ("torchvision", "pil")


@cache
def _torchvision_decode():
    try:
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg
    except Exception:  # not installed, or built against another torch
        return None
    # torchvision 0.29 marks its image codecs deprecated (in favour of TorchCodec) on every call
    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision")

    def decode(data: bytes, grey: bool):
        t = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                        mode=ImageReadMode.GRAY if grey else ImageReadMode.RGB, apply_exif_orientation=True)
        return t[0].numpy() if grey else t.permute(1, 2, 0).numpy()

    return decode


def jpeg_decoder() -> str:
    """The JPEG decoder in use: ``SHIFTLAB_JPEG_DECODER`` if set, else torchvision where it imports, else PIL."""
    want = os.environ.get("SHIFTLAB_JPEG_DECODER", "").strip().lower()
    if want == "pil" or _torchvision_decode() is None:
        return "pil"
    return "torchvision"


def decode_jpeg_fast(path, header: Image.Image) -> Image.Image | None:
    """The EXIF-oriented pixels of the JPEG at ``path`` (``header``: its PIL image, opened, not loaded) as a PIL
    image, or None when the PIL path should decode it (decoder set to PIL, not a JPEG, CMYK, any error)."""
    if header.format != "JPEG" or header.mode not in ("RGB", "L") or jpeg_decoder() != "torchvision":
        return None
    try:
        with open(path, "rb") as f:
            pixels = _torchvision_decode()(f.read(), header.mode == "L")
    except (RuntimeError, OSError, ValueError):
        return None
    return Image.fromarray(pixels)  # (H, W) → L, (H, W, 3) → RGB
