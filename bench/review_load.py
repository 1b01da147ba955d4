"""Review app under load: decisions per second and p99 latency of posting a decision from 20 concurrent
clients, and the time a browser takes to show the class browser's grid of 200 thumbnails.

Setup: a fresh workspace holding one registered dataset of 200 photo-like 320×240 JPEGs (one class, with
selection frequencies) and two tasks over it — a class browser (its grid shows all 200) and a near-duplicate-style
image queue for the decisions. The server is ``shiftlab review serve --port 0`` in a subprocess, as a user
starts it; clients use the standard library's http.client (one keep-alive connection each).

Figures:
- decisions/s and post p99 (ms): 20 clients post ``--decisions`` decisions in total (default 5,000), each
  waiting for the reply (the decision is on disk when it comes) before the next. Baseline, measured in the
  same run: the raw store — ``ReviewLog.append`` from 20 threads straight into SQLite, one transaction
  (and one disk flush) per decision, no HTTP. The ratio says what the app's group commit buys over it.
- grid page (s): chromium (Playwright) opens the class browser and waits until all 200 thumbnails have
  loaded: the first view in a fresh browser and a freshly started server (thumbnails come from the disk
  cache that task creation fills, as 'shiftlab review task' does) and the median of 5 reloads (warm:
  browser cache). Also, for information, the first view when the thumbnails must be rendered on demand.
Targets: ≥ 200 decisions/s, post p99 < 100 ms, grid page < 1 s.

Usage: ``python bench/review_load.py [--decisions 5000] [--clients 20]``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run"]


def make_workspace(root: Path):
    import pandas as pd

    from shiftlab.data.layouts import read_dataset
    from shiftlab.registry import register_dataset
    from shiftlab.review import tasks as tk
    from shiftlab.workspace import Workspace

    rng = np.random.default_rng(0)
    folder = root / "images" / "n01440764"
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[:240, :320]
    for i in range(200):
        # photo-like 320×240 JPEGs (smooth blobs over texture): the grid must shrink them, as with ImageNet
        blob = 255 * np.exp(-((xx - rng.uniform(60, 260)) ** 2 + (yy - rng.uniform(50, 190)) ** 2) / 3000)
        arr = np.clip(blob[..., None] * rng.uniform(0.3, 1, 3) + rng.normal(40, 12, (240, 320, 3)), 0, 255)
        Image.fromarray(arr.astype(np.uint8)).save(folder / f"img_{i:04d}.jpg", quality=90)
    ws = Workspace.resolve(root / "ws")
    m = read_dataset(root / "images", progress=False)
    t = m.table.copy()
    t["selection_frequency"] = rng.uniform(0, 1, len(t)).round(2)
    t["n_annotations"] = rng.integers(5, 11, len(t))
    from dataclasses import replace

    register_dataset(replace(m, table=pd.DataFrame(t)), "bench", ws)
    import shutil

    shutil.copytree(root / "images", root / "images-cold")  # other paths: no cached thumbnail applies
    register_dataset(replace(m, table=pd.DataFrame(t), root=str(root / "images-cold")), "bench-cold", ws)
    tk.classes_task("bench-cold", name="grid-cold", workspace=ws)
    from shiftlab.review.images import warm_thumbnails

    # what 'shiftlab review task classes' does: thumbnails rendered when the task is made
    warm_thumbnails(tk.classes_task("bench", name="grid", workspace=ws), ws, progress=False)
    task = tk.images_task("bench", "watermarks", name="decide", workspace=ws)
    return ws, [it["id"] for it in task["items"]]


def start_server(ws):
    proc = subprocess.Popen([sys.executable, "-m", "shiftlab", "-w", str(ws.root), "review", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    m = re.match(r"http://127\.0\.0\.1:(\d+)/\?token=(\S+)", proc.stdout.readline())
    if not m:
        raise SystemExit(f"server did not start: {proc.stderr.read()}")
    port, token = int(m.group(1)), m.group(2)
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/api/tasks", headers={"X-Shiftlab-Token": token})
            if c.getresponse().status == 200:
                return proc, port, token
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not answer")


def timed_threads(fn, n: int) -> float:
    """Seconds from starting ``fn(0) … fn(n-1)``, one thread each, until the last has finished."""
    threads = [threading.Thread(target=fn, args=(c,)) for c in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def post_load(port, token, targets, n_total, n_clients):
    lat: list[list[float]] = [[] for _ in range(n_clients)]
    per = n_total // n_clients
    headers = {"X-Shiftlab-Token": token, "Content-Type": "application/json"}

    def client(c):
        con = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(per):
            body = json.dumps({"target": targets[(c * per + i) % len(targets)], "decision": ("clean", "unsure")[i % 2],
                               "reviewer": f"bench-{c}", "key": uuid.uuid4().hex})
            t = time.perf_counter()
            con.request("POST", "/api/tasks/decide/decisions", body, headers)
            r = con.getresponse()
            r.read()
            lat[c].append(time.perf_counter() - t)
            assert r.status == 200, r.status
        con.close()

    took = timed_threads(client, n_clients)
    flat = np.concatenate([np.array(x) for x in lat])
    return per * n_clients / took, float(np.percentile(flat, 99) * 1000), float(np.median(flat) * 1000)


def raw_store_rate(path, n_total, n_clients):
    from shiftlab.review.log import ReviewLog

    per = n_total // n_clients

    def work(c):
        with ReviewLog(path) as lg:
            for i in range(per):
                lg.append(reviewer=f"raw-{c}", task="raw", target=str(i), decision="clean")

    return per * n_clients / timed_threads(work, n_clients)


def grid_page(port, token, task="grid"):
    from playwright.sync_api import sync_playwright

    def load(page):
        """Navigation start → every thumbnail of the grid decoded, by the page's own clock."""
        page.goto(f"http://127.0.0.1:{port}/task/{task}", wait_until="commit")
        ms, n = page.evaluate("""async () => {
            while (document.querySelectorAll('#grid img').length < 200) await new Promise(r => setTimeout(r, 2));
            const imgs = Array.from(document.querySelectorAll('#grid img'));
            await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = r; i.onerror = r; })));
            return [performance.now(), imgs.filter(i => i.naturalWidth > 0).length]; }""")
        assert n == 200, n
        return ms / 1000

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        ctx = b.new_context(viewport={"width": 1400, "height": 5000})  # every thumbnail on screen: none lazy
        page = ctx.new_page()
        page.goto(f"http://127.0.0.1:{port}/?token={token}")
        page.evaluate("localStorage.setItem('shiftlab:reviewer', 'bench')")
        cold = load(page)
        warm = statistics.median(load(page) for _ in range(5))
        b.close()
    return cold, warm


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--decisions", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        ws, targets = make_workspace(root)
        raw = raw_store_rate(root / "raw.sqlite", min(a.decisions, 2000), a.clients)
        proc, port, token = start_server(ws)
        try:
            rate, p99, p50 = post_load(port, token, targets, a.decisions, a.clients)
            cold, warm = grid_page(port, token)
            on_demand, _ = grid_page(port, token, "grid-cold")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"machine: {platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}")
    print(f"baseline raw store (ReviewLog.append, 20 threads, one flush per decision): {raw:.0f} decisions/s")
    print(f"app: {rate:.0f} decisions/s ({rate / raw:.2f}× the raw store), post latency p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms  (targets ≥ 200/s, p99 < 100 ms)")
    print(f"grid page, 200 thumbnails: first view {cold:.2f} s, warm median {warm:.2f} s  (target < 1 s); "
          f"first view rendering every thumbnail on demand {on_demand:.2f} s")
    print(json.dumps({"decisions_per_s": round(rate, 1), "post_p99_ms": round(p99, 1), "grid_page_s": round(cold, 3),
                      "grid_page_warm_s": round(warm, 3), "grid_page_on_demand_s": round(on_demand, 3),
                      "raw_store_decisions_per_s": round(raw, 1), "speedup_vs_raw_store": round(rate / raw, 2)}))


if __name__ == "__main__":
    main()
