"""decode_image: every kind of file becomes an RGB/grey image or a reason; it never raises."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from shiftlab.data.decode import decode_image

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _px(im: Image.Image, xy) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=int)[xy[1], xy[0]]


def _close(a, b, tol=40) -> bool:
    return bool(np.all(np.abs(np.asarray(a, int) - np.asarray(b, int)) <= tol))


def _asymmetric(w=64, h=32) -> Image.Image:
    """Blue, with a red 16×16 block in the stored top-left corner."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:] = BLUE
    a[:16, :16] = RED
    return Image.fromarray(a)


@pytest.mark.parametrize("orientation, red_corner", [
    (1, "top-left"),
    (6, "top-right"),    # stored row 0 is the visual right side: rotate 90° clockwise
    (8, "bottom-left"),  # stored row 0 is the visual left side: rotate 90° counter-clockwise
    (3, "bottom-right"),
])
def test_exif_orientation_is_applied(tmp_path, orientation, red_corner):
    exif = Image.Exif()
    exif[0x0112] = orientation
    f = tmp_path / "rot.jpg"
    _asymmetric().save(f, exif=exif, quality=95)
    r = decode_image(f)
    assert r.ok and r.image.mode == "RGB"
    w, h = r.image.size
    assert (w, h) == ((32, 64) if orientation in (6, 8) else (64, 32))
    corners = {"top-left": (4, 4), "top-right": (w - 5, 4), "bottom-left": (4, h - 5),
               "bottom-right": (w - 5, h - 5)}
    for name, xy in corners.items():
        assert _close(_px(r.image, xy), RED if name == red_corner else BLUE), (name, _px(r.image, xy))


def test_grey_palette_alpha_and_cmyk_become_rgb(tmp_path):
    colour = (204, 51, 102)  # in the web palette, so that convert("P") keeps it exactly
    base = Image.new("RGB", (8, 6), colour)
    cases = {
        "grey.png": (Image.new("L", (8, 6), 77), (77, 77, 77)),
        "palette.png": (base.convert("P"), colour),
        "palette.gif": (base.convert("P"), colour),
        "rgba.png": (Image.new("RGBA", (8, 6), colour + (0,)), colour),  # alpha dropped, not composited
        "la.png": (Image.new("LA", (8, 6), (120, 10)), (120, 120, 120)),
        "cmyk.jpg": (Image.new("CMYK", (8, 6), (0, 255, 255, 0)), (255, 0, 0)),
        "cmyk.tif": (Image.new("CMYK", (8, 6), (0, 0, 255, 0)), (255, 255, 0)),
        "bilevel.png": (Image.new("1", (8, 6), 1), (255, 255, 255)),
    }
    for name, (im, want) in cases.items():
        im.save(tmp_path / name)
        r = decode_image(tmp_path / name)
        assert r.ok, (name, r.reason)
        assert r.image.mode == "RGB" and r.image.size == (8, 6), name
        assert _close(_px(r.image, (3, 3)), want, tol=6), (name, _px(r.image, (3, 3)))


def test_palette_with_transparency_becomes_rgb(tmp_path):
    im = Image.new("P", (4, 4), 0)
    im.putpalette([10, 20, 30, 250, 100, 0] + [0] * 762)
    im.putpixel((1, 1), 1)
    im.info["transparency"] = 0
    im.save(tmp_path / "pt.png", transparency=0)
    assert "transparency" in Image.open(tmp_path / "pt.png").info
    r = decode_image(tmp_path / "pt.png")
    assert r.ok and r.image.mode == "RGB"
    assert tuple(_px(r.image, (0, 0))) == (10, 20, 30)  # the transparent colour, alpha dropped
    assert tuple(_px(r.image, (1, 1))) == (250, 100, 0)


def test_16bit_grey_is_rescaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    r = decode_image(tmp_path / "g16.png")
    assert r.ok and r.image.mode == "RGB"
    got = np.asarray(r.image)[0]
    assert (got[:, 0] == got[:, 1]).all() and (got[:, 1] == got[:, 2]).all()
    assert got[:, 0].tolist() == [0, 1, 4, 128, 255]  # v * 255 / 65535, rounded
    grey = decode_image(tmp_path / "g16.png", mode="L")
    assert grey.image.mode == "L" and np.asarray(grey.image)[0].tolist() == [0, 1, 4, 128, 255]


def test_rgb_to_grey_mode(tmp_path):
    Image.new("RGB", (5, 5), (255, 255, 255)).save(tmp_path / "w.png")
    r = decode_image(tmp_path / "w.png", mode="L")
    assert r.image.mode == "L" and np.asarray(r.image).min() == 255


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("keep", [0.9, 0.5, 200])
def test_truncated_files(tmp_path, keep):
    data = _jpeg_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    (tmp_path / "t.jpg").write_bytes(data[:n])
    assert decode_image(tmp_path / "t.jpg").reason == "truncated"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # never grey-padded silently


def test_truncated_png(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    (tmp_path / "t.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert decode_image(tmp_path / "t.png").reason == "truncated"


def test_empty_text_and_missing_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("these are not the pixels you are looking for\n")
    assert decode_image(tmp_path / "empty.jpg").reason == "empty file"
    assert decode_image(tmp_path / "text.jpg").reason == "not an image"
    r = decode_image(tmp_path / "absent.jpg")
    assert r.reason == "missing" and r.image is None and not r.ok
    assert decode_image(tmp_path).reason is not None  # a folder is not an image either


def test_decompression_bomb_is_refused_without_decoding(tmp_path, monkeypatch):
    f = tmp_path / "bomb.png"
    Image.new("1", (3000, 3000), 0).save(f)  # 9 Mpx in a file of a few KB
    assert f.stat().st_size < 50_000
    loads = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(1) or real_load(self))
    r = decode_image(f, max_pixels=1_000_000)
    assert r.reason.startswith("decompression bomb") and "3000x3000" in r.reason
    assert loads == []
    assert decode_image(f, max_pixels=10_000_000).ok and loads  # under the limit it does decode


def test_own_limit_overrides_pil_limit_and_restores_it(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # PIL would call a 20×20 image a bomb
    Image.new("RGB", (20, 20)).save(tmp_path / "s.png")
    assert decode_image(tmp_path / "s.png").ok
    assert Image.MAX_IMAGE_PIXELS == 10


def test_pil_limit_survives_concurrent_decoding(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "s.png")
    before = Image.MAX_IMAGE_PIXELS
    with ThreadPoolExecutor(8) as pool:
        assert all(r.ok for r in pool.map(lambda _: decode_image(tmp_path / "s.png"), range(3000)))
    assert Image.MAX_IMAGE_PIXELS == before


_HEADERS = [b"", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"II*\x00",
            b"RIFF\x00\x00\x00\x00WEBPVP8 "]


@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL warns about corrupt EXIF; the reason is what counts
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.sampled_from(_HEADERS), body=st.binary(max_size=600))
def test_random_bytes_never_raise(tmp_path, header, body):
    f = tmp_path / "fuzz.jpg"
    f.write_bytes(header + body)
    r = decode_image(f)
    assert (r.image is None) != (r.reason is None)
    if r.ok:
        assert r.image.mode == "RGB"
    else:
        assert isinstance(r.reason, str) and "\n" not in r.reason


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=1, max_value=2000), flip=st.integers(min_value=0, max_value=2000))
def test_damaged_jpeg_never_raises(tmp_path, cut, flip):
    data = bytearray(_jpeg_bytes()[:-cut])
    data[flip % len(data)] ^= 0xFF
    f = tmp_path / "damaged.jpg"
    f.write_bytes(bytes(data))
    r = decode_image(f)
    assert r.ok or r.reason
