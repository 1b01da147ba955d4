"""The torchvision JPEG path gives PIL's pixels exactly, and hands PIL whatever it is unsure of."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from shiftlab.data import jpeg
from shiftlab.data.decode import decode_image

pytest.importorskip("torchvision")


def _photo(h=211, w=317, seed=0):
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    a = ndimage.gaussian_filter(rng.normal(0, 1, (h, w, 3)), (3, 3, 0)) * 90 + 128 + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _files(tmp_path):
    im = _photo()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    kinds = {"rgb": (im, {"quality": 90}), "progressive": (im, {"quality": 85, "progressive": True}),
             "grey": (im.convert("L"), {"quality": 90}), "444": (im, {"quality": 95, "subsampling": 0}),
             "exif6": (im, {"quality": 90, "exif": exif.tobytes()}), "cmyk": (im.convert("CMYK"), {"quality": 90})}
    out = {}
    for k, (img, kw) in kinds.items():
        out[k] = tmp_path / f"{k}.jpg"
        img.save(out[k], format="JPEG", **kw)
    return out


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_same_pixels_as_pil(tmp_path, monkeypatch, mode):
    files = _files(tmp_path)
    for name, path in files.items():
        monkeypatch.setenv("SHIFTLAB_JPEG_DECODER", "pil")
        ref = decode_image(path, mode=mode).image
        monkeypatch.delenv("SHIFTLAB_JPEG_DECODER")
        assert jpeg.jpeg_decoder() == "torchvision"
        got = decode_image(path, mode=mode).image
        assert got.mode == ref.mode == mode and got.size == ref.size, name
        assert np.array_equal(np.asarray(got), np.asarray(ref)), name
    assert decode_image(files["exif6"]).image.size == (211, 317)  # rotated


def test_fast_path_taken_only_where_sure(tmp_path):
    files = _files(tmp_path)
    for name, path in files.items():
        with Image.open(path) as header:
            fast = jpeg.decode_jpeg_fast(path, header)
        assert (fast is None) == (name == "cmyk"), name


def test_errors_keep_pils_reasons(tmp_path):
    data = io.BytesIO()
    _photo().save(data, format="JPEG", quality=90)
    raw = data.getvalue()
    (tmp_path / "cut.jpg").write_bytes(raw[: len(raw) // 2])
    bad = bytearray(raw)
    bad[600:700] = b"\0" * 100
    (tmp_path / "bad.jpg").write_bytes(bytes(bad))
    assert decode_image(tmp_path / "cut.jpg").reason == "truncated"
    r = decode_image(tmp_path / "bad.jpg")
    assert not r.ok and r.reason.startswith(("corrupt", "truncated"))
