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


@pytest.fixture
def reference() -> Path:
    """``../shared/reference`` (the published data of the reproduced works); skips cleanly without it."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE} (clone with shared/ beside the repo)")
    return REFERENCE
