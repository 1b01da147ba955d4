"""A Manifest as a torch Dataset: recipe-shaped, normalised tensors; bad files become label -1."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from helpers import write_image
from shiftlab.data.layouts import read_imagefolder
from shiftlab.data.recipes import Recipe

RECIPE = Recipe(resize=20, crop=16, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))


def _manifest(tmp_path):
    root = tmp_path / "set"
    write_image(root / "tench" / "a.png", size=(40, 30), seed=1, fmt="PNG")
    write_image(root / "tench" / "b.jpg", size=(30, 50), seed=2, fmt="JPEG")
    write_image(root / "goldfish" / "c.png", size=(17, 17), seed=3, fmt="PNG")
    (root / "goldfish" / "d.jpg").write_text("I am text with an image's name")
    return read_imagefolder(root, progress=False)


def test_items_are_recipe_shaped_normalised_tensors(tmp_path):
    m = _manifest(tmp_path)
    ds = m.torch_dataset(RECIPE)
    assert isinstance(ds, Dataset) and len(ds) == 4
    by_id = {i: k for k, i in enumerate(m.ids)}
    x, y = ds[by_id["a.png"]]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y == 0
    raw = RECIPE.apply(Image.open(m.abspaths()[by_id["a.png"]]).convert("RGB")).astype(np.float32) / 255
    want = (raw - np.array(RECIPE.mean, np.float32)[:, None, None]) / np.array(RECIPE.std, np.float32)[:, None, None]
    np.testing.assert_allclose(x.numpy(), want, atol=1e-6)
    assert x.min() < 0 < x.max()  # normalised, not in [0, 1]
    plain, _ = m.torch_dataset(RECIPE, normalize=False)[by_id["a.png"]]
    np.testing.assert_allclose(plain.numpy(), raw, atol=1e-6)
    assert ds.bad == {}


def test_undecodable_file_gives_label_minus_one_and_is_recorded(tmp_path):
    m = _manifest(tmp_path)
    ds = m.torch_dataset(RECIPE)
    i = list(m.ids).index("d.jpg")
    x, y = ds[i]
    assert y == -1 and x.shape == (3, 16, 16) and not x.any()
    assert ds.bad == {"d.jpg": "not an image"}


def test_usable_in_a_dataloader(tmp_path):
    m = _manifest(tmp_path)
    batches = list(DataLoader(m.torch_dataset(RECIPE), batch_size=3, shuffle=False))
    assert [b[0].shape for b in batches] == [(3, 3, 16, 16), (1, 3, 16, 16)]
    labels = torch.cat([b[1] for b in batches]).tolist()
    want = [int(v) for v in m.labels]
    want[list(m.ids).index("d.jpg")] = -1
    assert labels == want
    # worker processes get a picklable dataset and the same tensors
    again = list(DataLoader(m.torch_dataset(RECIPE), batch_size=3, num_workers=2))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))


def test_grey_recipe_gives_one_channel(tmp_path):
    m = _manifest(tmp_path)
    x, _ = m.torch_dataset(Recipe(resize=None, crop=8, mode="L", mean=(0.5,), std=(0.5,)))[0]
    assert x.shape == (1, 8, 8) and x.min() >= -1 and x.max() <= 1
