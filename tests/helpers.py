"""Helpers for tests: small image files and folders (``tests/`` is on sys.path)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

TINY_NETS = str(Path(__file__).resolve().parent / "predict" / "tinynets.py")


def write_image(path: Path, size=(40, 30), color=None, seed: int = 0, mode: str = "RGB", fmt: str | None = None):
    """A small textured image (not flat, so that it survives JPEG and resizing recognisably)."""
    rng = np.random.default_rng(seed)
    w, h = size
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if color is not None:
        arr[:] = color
    im = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        im = im.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt)
    return path


def make_folder(root: Path, per_class: int = 20, bad: dict[str, bytes] | None = None,
                classes=("n01440764", "n01443537")) -> Path:
    """An ImageFolder of textured PNGs (wnid folders), plus optional bad files in the first class."""
    for k, c in enumerate(classes):
        for i in range(per_class):
            write_image(root / c / f"{c}_{i:04d}.png", size=(48, 40), seed=1000 * k + i)
    for name, data in (bad or {}).items():
        (root / classes[0] / name).write_bytes(data)
    return root


CHROMIUM = "/usr/bin/chromium"
#: Debian's chromium as root on a machine with no network beyond the package registries
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"]


@contextmanager
def chromium_browser():
    """A Playwright browser on Debian's chromium (``make test`` installs it; its absence is a failure)."""
    import pytest
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: 'make test' installs Debian's chromium with apt-get (as root)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def write_breeds(folder: Path, edges, names: dict, classes) -> Path:
    """A class hierarchy in the BREEDS file format (edges ``parent child``, node names, class info)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "class_hierarchy.txt").write_text("".join(f"{a} {b}\n" for a, b in edges))
    (folder / "node_names.txt").write_text("".join(f"{k}\t{v}\n" for k, v in names.items()))
    (folder / "dataset_class_info.json").write_text(json.dumps(classes))
    return folder


def drag_box(page, box: dict, corners: tuple[float, float, float, float], via: float = 0.5) -> None:
    """Draw a box with the mouse over the element whose bounding ``box`` is given: press at the fractions
    (x0, y0) of its size, pass through (via, via), release at (x1, y1), moving in steps as a hand does."""
    x0, y0, x1, y1 = corners
    page.mouse.move(box["x"] + x0 * box["width"], box["y"] + y0 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + via * box["width"], box["y"] + via * box["height"], steps=4)
    page.mouse.move(box["x"] + x1 * box["width"], box["y"] + y1 * box["height"], steps=4)
    page.mouse.up()
