"""A small review workspace: two registered image datasets, a near-duplicate queue with planted copies, a
HIT batch, and one task of each kind."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from helpers import chromium_browser, make_folder


@dataclass
class ReviewWorkspace:
    ws: object
    pool: object
    train: object
    copies: dict  # pool id → the train id it copies (planted)
    tasks: dict  # kind → task dict
    batch: Path


def build_review_workspace(root: Path) -> ReviewWorkspace:
    from PIL import Image

    from shiftlab.curate import dedup as dd
    from shiftlab.curate.annotate import make_hits, write_hit_batch
    from shiftlab.data.layouts import read_dataset
    from shiftlab.registry import register_dataset
    from shiftlab.review import tasks as tk
    from shiftlab.workspace import Workspace

    ws = Workspace.resolve(root / "ws")
    make_folder(root / "train", per_class=6)
    make_folder(root / "poolsrc", per_class=10, classes=("n01440764", "n01443537"))
    # the pool's images differ from train's (other seeds) except three planted copies of train images
    for k, c in enumerate(("n01440764", "n01443537")):
        for i, p in enumerate(sorted((root / "poolsrc" / c).iterdir())):
            im = np.asarray(Image.open(p)).astype(int)
            Image.fromarray(np.clip(255 - im + 7 * k + i, 0, 255).astype(np.uint8)).save(p)
    copies_src = sorted((root / "train" / "n01440764").iterdir())[:3]
    copies = {}
    for j, src in enumerate(copies_src):
        dst = root / "poolsrc" / "n01440764" / f"copy_{j}.png"
        im = np.asarray(Image.open(src)).astype(int)
        Image.fromarray(np.clip(im + 3, 0, 255).astype(np.uint8)).save(dst)  # a brightness-shifted copy
        copies[f"copy_{j}.png"] = src.name  # ImageFolder ids are file names
    train = read_dataset(root / "train", progress=False)
    pool = read_dataset(root / "poolsrc", progress=False)
    rng = np.random.default_rng(0)
    t = pool.table.copy()
    t["selection_frequency"] = np.round(rng.uniform(0, 1, len(t)), 2)
    t["n_annotations"] = rng.integers(5, 11, len(t))
    t["date"] = [f"2026-11-{1 + i % 28:02d}" for i in range(len(t))]
    pool = replace(pool, table=t)
    register_dataset(pool, "pool", ws)
    register_dataset(train, "train", ws)
    pool, train = read_dataset("pool", workspace=ws), read_dataset("train", workspace=ws)
    # a real l2 search; every neighbour within rank 2 is queued (the app is under test, not the thresholds)
    table = dd.find_near_duplicates(pool, {"train": train, "pool": pool}, ["l2"], 3, review_k=3, size=32,
                                    workspace=ws)
    queue = dd.review_queue(table, {"l2": 1e300}, review_k=2)
    dedup_dir = ws.root / "dedup" / "pool"
    dedup_dir.mkdir(parents=True)
    table.to_parquet(dedup_dir / "neighbours.parquet", index=False)
    queue.to_csv(dedup_dir / "queue.csv", index=False)
    by_class = {k: list(pool.ids[pool.labels == k]) for k in (0, 1)}
    tr = {k: list(train.ids[train.labels == k]) for k in (0, 1)}
    hits = make_hits(by_class, tr, {0: tr[1], 1: tr[0]}, seed=0, hit_size=16, n_positive=2, n_negative=2)
    batch, _ = write_hit_batch(hits, root / "batch", [c.name for c in pool.vocabulary.classes], seed=0)
    tasks = {
        "duplicates": tk.duplicates_task(dedup_dir, workspace=ws),
        "classes": tk.classes_task("pool", reference="train", workspace=ws),
        "labelling": tk.labelling_task(batch, ["pool", "train"], workspace=ws),
        "images": tk.images_task("pool", "watermarks", workspace=ws),
    }
    (root / "planted.json").write_text(json.dumps(copies))  # the copies below read it back, never re-derive it
    return ReviewWorkspace(ws, pool, train, copies, tasks, batch)


@pytest.fixture(scope="module")
def review_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("review")
    build_review_workspace(root)
    return root


@pytest.fixture
def rws(review_template, tmp_path) -> ReviewWorkspace:
    """A fresh copy per test (the log starts empty), rebuilt cheaply from the module's template."""
    shutil.copytree(review_template, tmp_path / "r", symlinks=True)
    root = tmp_path / "r"
    from shiftlab.data.layouts import read_dataset
    from shiftlab.data.manifest import Manifest
    from shiftlab.registry import register_dataset
    from shiftlab.review import tasks as tk
    from shiftlab.workspace import Workspace

    ws = Workspace.resolve(root / "ws")
    # manifests hold absolute roots: point the copies at the copied image folders (tasks name datasets only)
    for name, folder in (("pool", "poolsrc"), ("train", "train")):
        m = Manifest.load(ws.root / "manifests" / f"{name}.parquet")
        register_dataset(m.with_root(root / folder), name, ws)
    pool, train = read_dataset("pool", workspace=ws), read_dataset("train", workspace=ws)
    copies = json.loads((root / "planted.json").read_text())
    return ReviewWorkspace(ws, pool, train, copies, {t["kind"]: t for t in tk.list_tasks(ws)}, root / "batch")


@dataclass
class LiveApp:
    url: str
    token: str
    app: object
    server: object
    thread: object

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_live_app(workspace, *, reviewer: str | None = None) -> LiveApp:
    """The app on a free loopback port in a background thread (the same uvicorn the CLI runs)."""
    import threading
    import time

    import uvicorn

    from shiftlab.review.app import create_app
    from shiftlab.review.server import bind

    app = create_app(workspace, reviewer=reviewer)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return LiveApp(f"http://127.0.0.1:{sock.getsockname()[1]}", app.state.token, app, server, thread)


@pytest.fixture
def live(rws):
    la = start_live_app(rws.ws)
    yield la
    la.stop()


@pytest.fixture
def page(live):
    """A chromium page on the live app, signed in by its token; any page error or console error fails the test."""
    errors: list[str] = []
    with chromium_browser() as browser:
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        pg = ctx.new_page()
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
        pg.goto(f"{live.url}/?token={live.token}")
        pg.errors = errors
        yield pg
        ctx.close()
    assert not errors, errors
