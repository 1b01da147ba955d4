"""The Ray executor against the local one: the same grid of models × test sets, on this machine.

The grid: 3 zoo models (``linear``, ``mlp``, ``cnn-medium-s0``) × 2 test sets of 500×375 JPEG files
(``eval_throughput.make_jpegs``: upscaled, textured, noisy world digits), every cell computed from scratch
(no stored predictions, no decoded cache) by
(1) the local executor (decode once per set into the memory-mapped cache, torch on every core), (2) a local Ray
cluster with 1 worker CPU, (3) one with 2 worker CPUs. Each figure is the best of 3 rounds. Each Ray cluster
first runs the grid once on a few images so that its workers have imported torch and shiftlab (a cold start is a
one-off per worker, printed apart). All runs must give the same logits, bit for bit.

On 2 cores expect little speed-up: the figure that matters is Ray's overhead per image against local,
(t_ray1 − t_local) / (images × models), and where a Ray run's time went (decode, forward, transfer, store).

Usage: ``python bench/ray_scaling.py [--files 600] [--out bench/out]``. The last line printed is one JSON
object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
SPECS = ["world:linear", "world:mlp", "world:cnn-medium-s0"]
ROUNDS = 3


def grid(sets, ws, executor=None, rounds: int = 1) -> tuple[float, list[np.ndarray]]:
    """Seconds for every (model, set) cell of ``SPECS`` × ``sets`` from scratch (best of ``rounds``: the machine
    is shared, and the best round is the one least disturbed), and the logits."""
    from shiftlab.predict.engine import predict

    best = float("inf")
    for _ in range(rounds):
        for d in ("predictions", "cache"):
            shutil.rmtree(ws.root / d, ignore_errors=True)
        t = time.perf_counter()
        out = [p.values for m in sets for p in predict(m, SPECS, workspace=ws, device="cpu", progress=False,
                                                        executor=executor)]
        best = min(best, time.perf_counter() - t)
    return best, out


def on_ray(cpus: int, sets, warm, ws) -> dict:
    import ray

    from shiftlab.predict.executors import make_executor

    t = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    start = time.perf_counter() - t
    try:
        ex = make_executor("ray", progress=False)
        cold, _ = grid(warm, ws, ex)  # workers import torch and shiftlab, load the models
        seconds, logits = grid(sets, ws, ex, ROUNDS - 1)
        ex.timings = dict.fromkeys(ex.timings, 0)  # the time split of the last round alone
        last, logits = grid(sets, ws, ex)
        seconds = min(seconds, last)
        return {"init_s": start, "cold_s": cold, "seconds": seconds, "logits": logits, "timings": dict(ex.timings)}
    finally:
        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=600, help="JPEG files, split into 2 test sets")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    args = ap.parse_args()

    import torch
    from eval_throughput import make_jpegs

    from shiftlab.data.layouts import read_imagefolder
    from shiftlab.progress import set_quiet
    from shiftlab.workspace import Workspace
    from shiftlab.world import build_world
    from shiftlab.world.zoo import train_zoo

    set_quiet(True)
    ws = Workspace.resolve(args.out / "ws-ray")
    world = build_world(ws, progress=False)
    train_zoo(world.manifest("train"), ws, [s.split(":")[1] for s in SPECS], progress=False)
    files = make_jpegs(world.manifest("test"), args.files, args.out / "jpeg-ray")
    half = args.files // 2
    sets = []
    for j, part in enumerate((files[:half], files[half:])):
        folder = args.out / f"ray-set{j}"
        for f in part:  # the two sets as folders of links to the files (same bytes, own manifests)
            (folder / f.parent.name).mkdir(parents=True, exist_ok=True)
            link = folder / f.parent.name / f.name
            if not link.exists():
                link.symlink_to(f)
        sets.append(read_imagefolder(folder, progress=False))
    warm = [sets[0].subset(np.arange(16), name="ray-warm-up")]

    local_s, local = grid(sets, ws, rounds=ROUNDS)
    runs = {cpus: on_ray(cpus, sets, warm, ws) for cpus in (1, 2)}
    n = sum(len(m) for m in sets) * len(SPECS)  # image × model predictions
    identical = all(np.array_equal(a, b, equal_nan=True) for r in runs.values() for a, b in zip(local, r["logits"]))
    figures = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                   f"torch threads {torch.get_num_threads()}",
        "load_average": round(os.getloadavg()[0], 1),
        "grid": f"{len(SPECS)} models x {len(sets)} sets x {half} JPEG 500x375, best of {ROUNDS}", "predictions": n,
        "local_s": round(local_s, 2),
        **{f"ray{c}_{k}": round(r[k], 2) for c, r in runs.items() for k in ("seconds", "init_s", "cold_s")},
        "local_over_ray1": round(local_s / runs[1]["seconds"], 3),
        "local_over_ray2": round(local_s / runs[2]["seconds"], 3),
        "ray1_over_ray2": round(runs[1]["seconds"] / runs[2]["seconds"], 3),
        "ray_overhead_ms_per_image": round(1000 * (runs[1]["seconds"] - local_s) / n, 3),
        "ray2_time_split_s": {k: round(v, 2) for k, v in runs[2]["timings"].items() if k not in ("images", "shards")},
        "identical": identical,
    }
    print(f"grid: {figures['grid']} = {n:,} predictions; local {local_s:.1f} s; Ray 1 worker "
          f"{runs[1]['seconds']:.1f} s, 2 workers {runs[2]['seconds']:.1f} s (cold start {runs[2]['cold_s']:.1f} s, "
          f"init {runs[2]['init_s']:.1f} s, apart)")
    print(f"local / ray1 {figures['local_over_ray1']}x, local / ray2 {figures['local_over_ray2']}x, ray1 / ray2 "
          f"{figures['ray1_over_ray2']}x; Ray overhead {figures['ray_overhead_ms_per_image']} ms per image x model; "
          f"logits identical: {identical}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
