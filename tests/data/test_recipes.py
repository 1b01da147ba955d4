"""Recipe geometry = torchvision's Resize(int) + CenterCrop on PIL images; normalisation = (x - mean) / std."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from shiftlab.data.recipes import IMAGENET_MEAN, IMAGENET_STD, Recipe, get_recipe
from shiftlab.errors import InputError, UnknownNameError


def _grid(w: int, h: int) -> Image.Image:
    """Pixel (x, y) has value 10*y + x in every channel: positions can be read off the values."""
    a = (10 * np.arange(h)[:, None] + np.arange(w)[None, :]).astype(np.uint8)
    return Image.fromarray(np.repeat(a[:, :, None], 3, axis=2))


def _random(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_hand_worked_centre_crop():
    # 6 wide × 4 high, crop 2: top = round((4-2)/2) = 1, left = round((6-2)/2) = 2
    out = Recipe(resize=None, crop=2).apply(_grid(6, 4))
    assert out.shape == (3, 2, 2) and out.dtype == np.uint8
    assert out[0].tolist() == [[12, 13], [22, 23]]
    assert (out[0] == out[1]).all() and (out[1] == out[2]).all()
    # 5 × 3, crop 2: top = int(round(0.5)) = 0 and left = int(round(1.5)) = 2 (Python rounds half to even)
    assert Recipe(resize=None, crop=2).apply(_grid(5, 3))[0].tolist() == [[2, 3], [12, 13]]


def test_hand_worked_zero_padding():
    # 3 wide × 1 high, crop 4: padded top 1, bottom 2, left 0, right 1 (torchvision's split), then no crop
    out = Recipe(resize=None, crop=4).apply(_grid(3, 1))
    assert out[0].tolist() == [[0, 0, 0, 0], [0, 1, 2, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    # 2 × 2 image, crop 5: pad (3 → 1 before, 2 after) in both directions
    out = Recipe(resize=None, crop=5).apply(Image.new("RGB", (2, 2), (9, 9, 9)))
    assert out.shape == (3, 5, 5)
    assert (out[:, 1:3, 1:3] == 9).all() and out.sum() == 9 * 4 * 3


@pytest.mark.parametrize("w, h", [(500, 333), (333, 500), (640, 480), (300, 300), (1000, 257), (100, 60)])
def test_resize_256_crop_224_matches_torchvision_semantics(w, h):
    im = _random(w, h, seed=w + h)
    short, long = min(w, h), max(w, h)
    new_long = int(256 * long / short)  # truncated, as torchvision does
    size = (256, new_long) if w <= h else (new_long, 256)
    resized = np.asarray(im.resize(size, resample=Image.BILINEAR))
    rh, rw = resized.shape[:2]
    top, left = round((rh - 224) / 2), round((rw - 224) / 2)  # torchvision: int(round(…))
    want = resized[top:top + 224, left:left + 224].transpose(2, 0, 1)

    out = Recipe().apply(im)
    assert out.shape == (3, 224, 224) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, want)


def test_resize_long_side_is_truncated_not_rounded():
    # 500 × 333 → 256 × 500/333 = 384.38…; 3 × 2 → 384 exactly; 7 × 3 → 597.33…; 9 × 5 → 460.8 → 460
    rec = Recipe(resize=256, crop=2000)  # a crop larger than the image: the zero padding shows the extent
    for w, h, want in [(500, 333, 384), (3, 2, 384), (7, 3, 597), (3, 7, 597), (9, 5, 460)]:
        out = rec.apply(Image.new("RGB", (w, h), (200, 100, 50)))
        extent = (int(out.any(axis=(0, 1)).sum()), int(out.any(axis=(0, 2)).sum()))  # (width, height)
        assert extent == ((want, 256) if w > h else (256, want)), (w, h, extent)


def test_square_resize_and_grey_mode():
    out = Recipe(resize=32, crop=None, square=True).apply(_random(50, 20))
    assert out.shape == (3, 32, 32)
    grey = Recipe(resize=10, crop=8, mode="L", mean=(0.5,), std=(0.5,))
    out = grey.apply(_random(30, 20))
    assert out.shape == (1, 8, 8) == grey.input_shape and out.dtype == np.uint8
    assert Recipe().input_shape == (3, 224, 224)


def test_normalize_applies_mean_and_std():
    r = Recipe(resize=None, crop=2, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    x = torch.tensor([[1.0, 0.5, 0.0]]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    y = r.normalize(x)
    assert y.shape == (2, 3, 2, 2)
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([1.0, 1.0, 0.0]))
    default = Recipe().normalize(torch.zeros(1, 3, 1, 1)).flatten()
    assert torch.allclose(default, -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD))


def test_keys_json_and_validation():
    r = Recipe()
    assert Recipe.from_json(r.to_json()) == r and Recipe.from_json(r.to_json()).key() == r.key()
    other_norm = r.with_overrides(mean=[0.5] * 3, std=[0.5] * 3)
    assert other_norm.geometry_key() == r.geometry_key() and other_norm.key() != r.key()
    assert r.with_overrides(crop=192).geometry_key() != r.geometry_key()
    assert get_recipe("imagenet") == r
    with pytest.raises(UnknownNameError):
        get_recipe("nope")
    for bad in ({"interpolation": "cubic"}, {"mode": "CMYK"}, {"mode": "L"}, {"crop": None},
                {"std": (1.0, 0.0, 1.0)}):
        with pytest.raises(InputError):
            Recipe(**bad)
