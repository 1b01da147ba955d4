"""Shared fixtures. Tests run with progress bars off and each in its own workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import write_image  # noqa: F401 - re-exported for tests
from shiftlab.progress import set_quiet

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path):
    set_quiet(True)
    monkeypatch.setenv("SHIFTLAB_HOME", str(tmp_path / "ws"))
    yield


@pytest.fixture
def workspace(tmp_path):
    from shiftlab.workspace import Workspace

    return Workspace.resolve(tmp_path / "ws")


#: the zoo models ``zoo_world`` trains: two families, quick to train, strong enough to find label errors
ZOO_WORLD_MODELS = ("mlp", "cnn-medium-s0")


@pytest.fixture(scope="session")
def zoo_world(tmp_path_factory):
    """The digits world (seed 0) with two zoo models trained, built once per session and shared.

    Tests must not change it: they read its manifests and ground truth and add predictions to its cache.
    """
    from shiftlab.world import build_world
    from shiftlab.world.zoo import train_zoo

    world = build_world(tmp_path_factory.mktemp("zoo-world") / "ws", progress=False)
    train_zoo(world.manifest("train"), world.workspace, names=list(ZOO_WORLD_MODELS), progress=False)
    return world


@pytest.fixture
def reference() -> Path:
    """``../shared/reference`` (the published data of the reproduced works); skips cleanly without it."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE} (clone with shared/ beside the repo)")
    return REFERENCE
