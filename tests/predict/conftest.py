from __future__ import annotations

import pytest

from helpers import make_folder


@pytest.fixture
def folder(tmp_path):
    """40 good images in two ImageNet classes plus two undecodable files."""
    return make_folder(tmp_path / "imgs", per_class=20,
                       bad={"broken.jpg": b"not an image at all", "empty.png": b""})
