"""The Ray executor on a local two-CPU Ray cluster started here: the same bytes as the local executor.

Three world zoo models on two world sets through ``shiftlab eval`` (logits, chunk files and CSV identical,
cells reused across executors), the near-duplicate neighbour tables, and a worker killed mid-run. The cluster
starts once for the module (it takes seconds) and is shut down at its end.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'shiftlab[ray]'): the ray executor "
                                        "cannot run here")

from shiftlab.cli import main  # noqa: E402
from shiftlab.predict.engine import predict  # noqa: E402
from shiftlab.predict.executors import make_executor, use_executor  # noqa: E402

MODELS = "world:linear,world:mlp,world:cnn-medium-s0"
SETS = ("world-test", "world-pool")


@pytest.fixture(scope="module")
def cluster():
    # address="local": a new cluster of our own, even where one is already running on this machine
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def world_ws(zoo_world, tmp_path_factory) -> Path:
    """A copy of the session's trained world (manifests, images, weights; no predictions or caches), so that
    these tests may delete predictions freely; ``world:linear`` is trained here on first use."""
    src = zoo_world.workspace.root
    dst = tmp_path_factory.mktemp("ray-world") / "ws"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("predictions", "cache", "reports", "dedup"))
    return dst


def _cells(ws: Path) -> dict[str, dict[str, bytes]]:
    """Every file of every stored cell, by cell folder → relative file name → bytes (lock files left out)."""
    out = {}
    for cell in sorted((ws / "predictions").glob("*/*")):
        out[str(cell.relative_to(ws / "predictions"))] = {
            str(f.relative_to(cell)): f.read_bytes() for f in sorted(cell.rglob("*"))
            if f.is_file() and f.name != "lock"}
    return out


def _eval(capsys, ws: Path, dataset: str, out: Path, *extra: str, quiet: bool = True) -> str:
    """``shiftlab eval`` of ``MODELS`` on ``dataset`` → ``out``; its stderr."""
    code = main(["--quiet"] * quiet + ["--workspace", str(ws), "eval", "--dataset", dataset, "--models", MODELS,
                                       "--device", "cpu", "--out", str(out), *extra])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    return cap.err


def test_eval_on_ray_is_bit_identical_to_local_and_cells_are_shared(cluster, world_ws, tmp_path, capsys):
    for d in SETS:
        _eval(capsys, world_ws, d, tmp_path / f"local-{d}.csv")
    local = _cells(world_ws)
    assert len(local) == 3 * len(SETS)
    shutil.rmtree(world_ws / "predictions")

    for d in SETS:
        err = _eval(capsys, world_ws, d, tmp_path / f"ray-{d}.csv", "--executor", "ray", "--ray-address", "auto",
                    quiet=False)
        # where the time went, on the driver, after the bars: every image of the 3 cells, in 512-row shards
        n, err = int(pd.read_csv(tmp_path / f"local-{d}.csv").n_images[0]), " ".join(err.split())  # unwrapped
        assert f"{3 * n:,} images in {3 * -(-n // 512)} shards" in err
        assert all(f"{what} " in err for what in ("decode", "forward", "transfer", "store"))
    on_ray = _cells(world_ws)
    assert on_ray.keys() == local.keys()
    for cell, files in local.items():
        assert on_ray[cell].keys() == files.keys(), cell  # same chunk files, same consolidated files
        for name, data in files.items():
            if name.endswith(".npz") or name.endswith(".npy"):
                assert on_ray[cell][name] == data, f"{cell}/{name}"
    for d in SETS:
        assert (tmp_path / f"ray-{d}.csv").read_bytes() == (tmp_path / f"local-{d}.csv").read_bytes()
        assert pd.read_csv(tmp_path / f"ray-{d}.csv").top1.between(0.5, 1).all()  # real models, real accuracy

    # a cell finished on Ray is read locally as it is: nothing recomputed, no file rewritten
    mtimes = {f: f.stat().st_mtime_ns for f in (world_ws / "predictions").rglob("*.np[yz]")}
    _eval(capsys, world_ws, SETS[0], tmp_path / "again.csv")
    assert {f: f.stat().st_mtime_ns for f in (world_ws / "predictions").rglob("*.np[yz]")} == mtimes
    assert (tmp_path / "again.csv").read_bytes() == (tmp_path / f"local-{SETS[0]}.csv").read_bytes()


def test_features_and_near_duplicate_tables_on_ray_equal_local(cluster, world_ws, tmp_path):
    from shiftlab.curate.dedup import find_near_duplicates
    from shiftlab.data.layouts import read_dataset
    from shiftlab.workspace import Workspace

    ws = Workspace.resolve(world_ws)
    pool, refs = read_dataset("world-pool", workspace=ws), {
        n: read_dataset(f"world-{n}", workspace=ws) for n in ("train", "test")}
    kw = dict(metrics=("l2", "phash", "embedding"), k=10, feature_model="world:mlp", size=32, chunk=100,
              workspace=ws, device="cpu", progress=False)
    shutil.rmtree(world_ws / "predictions", ignore_errors=True)
    local = find_near_duplicates(pool, refs, cache_dir=tmp_path / "knn-local", **kw)
    shutil.rmtree(world_ws / "predictions")  # the features too are computed again, on Ray
    ex = make_executor("ray")
    with use_executor(ex):
        on_ray = find_near_duplicates(pool, refs, cache_dir=tmp_path / "knn-ray", **kw)
    pd.testing.assert_frame_equal(on_ray, local, check_exact=True)
    assert on_ray.attrs == local.attrs
    n_query = len(pool) - local.attrs["excluded"]["__query__"]
    assert len(local) == n_query * 2 * 3 * 10  # k = 10 neighbours per decodable query, set and metric
    # the features of the 3 sets were computed on the cluster, and the query chunks (≥ 5 of 100 pool rows per
    # reference set and metric) stored the same cache files
    assert ex.timings["images"] == len(pool) + sum(len(r) for r in refs.values())
    files = sorted(p.name for p in (tmp_path / "knn-ray").glob("knn-*.npz"))
    assert files == sorted(p.name for p in (tmp_path / "knn-local").glob("knn-*.npz")) and len(files) >= 2 * 3 * 5


def _local_run(world_ws: Path, dataset: str):
    """(manifest, specs, predict keywords, local predictions) of ``MODELS`` on ``dataset`` in 32-row chunks,
    the store left empty afterwards for a Ray run to fill."""
    from shiftlab.data.layouts import read_dataset
    from shiftlab.workspace import Workspace

    ws = Workspace.resolve(world_ws)
    manifest, specs = read_dataset(dataset, workspace=ws), MODELS.split(",")
    kw = dict(workspace=ws, device="cpu", chunk_size=32, batch_size=8, progress=False)
    shutil.rmtree(world_ws / "predictions", ignore_errors=True)
    local = predict(manifest, specs, **kw)
    shutil.rmtree(world_ws / "predictions")
    return manifest, specs, kw, local


def _children(pid: int) -> list[int]:
    """Every descendant process of ``pid`` (/proc, Linux)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids + [g for c in kids for g in _children(c)]


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def test_a_worker_killed_mid_run_is_retried_with_identical_results(cluster, world_ws, tmp_path):
    pool, specs, kw, local = _local_run(world_ws, "world-pool")

    ex = make_executor("ray", max_in_flight=4)
    result, killed = {}, []

    def run():
        with use_executor(ex):
            result["preds"] = predict(pool, specs, **kw)

    t = threading.Thread(target=run)
    t.start()
    chunks = lambda: len(list((world_ws / "predictions").glob("*/*/chunks/*.npz")))  # noqa: E731
    total = 3 * -(-len(pool) // 32)
    while t.is_alive() and not killed:
        if chunks():  # the run is under way: kill the first worker caught running a shard
            for pid in _children(os.getpid()):
                if _title(pid).startswith("ray::forward_shard"):
                    done = chunks()
                    os.kill(pid, signal.SIGKILL)
                    killed.append((pid, done))
                    break
        time.sleep(0.001)
    t.join(300)
    assert killed, "no worker was caught running a shard"
    assert killed[0][1] < total  # killed mid-run
    for a, b in zip(local, result["preds"]):
        assert np.array_equal(a.values, b.values, equal_nan=True) and a.bad == b.bad
    assert ex.timings["shards"] == total  # every shard stored once


DRIVER = """
import sys
import ray
from shiftlab.data.layouts import read_dataset
from shiftlab.predict.engine import predict
from shiftlab.predict.executors import make_executor, use_executor
ray.init(address=sys.argv[2], logging_level="ERROR", log_to_driver=False)
m = read_dataset("world-test", workspace=sys.argv[1])
with use_executor(make_executor("ray")):
    predict(m, sys.argv[3].split(","), workspace=sys.argv[1], device="cpu", chunk_size=32, batch_size=8,
            progress=False)
"""


def test_a_killed_driver_leaves_whole_chunks_and_a_rerun_finishes(cluster, world_ws):
    import subprocess
    import sys

    test, specs, kw, local = _local_run(world_ws, "world-test")

    p = subprocess.Popen([sys.executable, "-c", DRIVER, str(world_ws), ray.get_runtime_context().gcs_address,
                          MODELS], env={**os.environ, "SHIFTLAB_QUIET": "1"},
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    chunks = lambda: sorted((world_ws / "predictions").glob("*/*/chunks/*.npz"))  # noqa: E731
    while p.poll() is None and not chunks():
        time.sleep(0.005)
    p.send_signal(signal.SIGKILL)
    p.wait(60)
    assert p.returncode == -signal.SIGKILL, p.stderr.read().decode()
    left = chunks()
    total = 3 * -(-len(test) // 32)
    assert 0 < len(left) < total
    assert not list((world_ws / "predictions").glob("*/*/complete.json"))
    for f in left:  # every chunk file there is whole
        with np.load(f) as z:
            assert len(z["logits"]) == 32 or f.name == f"{total // 3 - 1:06d}.npz"

    ex = make_executor("ray")
    with use_executor(ex):
        rerun = predict(test, specs, **kw)
    assert ex.timings["shards"] == total - len(left)  # only the rest was computed
    for a, b in zip(local, rerun):
        assert np.array_equal(a.values, b.values, equal_nan=True)
