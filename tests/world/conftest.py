"""The zoo's models are checked against the same Classifier contract as the adapters (tests/models); the demo's
workspace is built once per session and shared by the demo, report-page and README tests."""

import pytest

from models.conftest import check_classifier  # noqa: F401  (a fixture, used by name)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """``run_demo`` on a fresh workspace: (workspace root, DemoResult). Tests may rerun the demo there (it rewrites
    the same report) but change nothing else; one that runs other commands works on a copy (``test_readme``)."""
    from shiftlab.world.demo import run_demo

    ws = tmp_path_factory.mktemp("demo") / "ws"
    return ws, run_demo(ws, progress=False)
