"""Feature visualisations of neural-PCA components: batched over components vs one component at a time.

On a trained zoo CNN of the digits world (32 px, 512 features), class 2's first B components are visualised
with APGD-L2 (S3 settings, ε scaled to 32 px) in one batch, and the same components one by one in a plain
loop, in the same run. Each component has its own seed, so both give the same images (max difference printed).

Usage: ``python bench/spurious_visualise.py [--components 20] [--steps 100] [--out bench/out]``. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--components", type=int, default=20)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    args = ap.parse_args()

    from shiftlab.analyze.spurious.components import visualise
    from shiftlab.analyze.spurious.pca import fit_class
    from shiftlab.models.specs import load_model
    from shiftlab.predict.engine import predict
    from shiftlab.progress import set_quiet
    from shiftlab.workspace import Workspace
    from shiftlab.world import build_world
    from shiftlab.world.zoo import train_zoo

    set_quiet(True)
    ws = Workspace.resolve(args.out / "ws-base")
    world = build_world(ws, progress=False)
    train = world.manifest("train")
    train_zoo(train, ws, names=["cnn-medium-s0"], progress=False)
    clf = load_model("world:cnn-medium-s0", workspace=ws)
    feats = predict(train, [clf], workspace=ws, features=True, progress=False)[0].features
    w, b = (t.numpy() for t in clf.last_layer())
    rows = np.flatnonzero(np.asarray(train.labels) == 2)
    pca = fit_class(feats[rows], w[2], float(b[2]), 2)
    comps = list(range(args.components))

    visualise(clf, pca, comps[:2], steps=2)  # one-time set-up is neither side's cost
    t = time.perf_counter()
    batched, _, _ = visualise(clf, pca, comps, steps=args.steps)
    t_batched = time.perf_counter() - t
    t = time.perf_counter()
    looped = np.concatenate([visualise(clf, pca, [c], steps=args.steps, seed=c)[0] for c in comps])
    t_loop = time.perf_counter() - t
    diff = float(np.abs(batched - looped).max())
    figures = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
               "components": len(comps), "steps": args.steps,
               "batched_ms_per_component_step": round(1000 * t_batched / len(comps) / args.steps, 3),
               "loop_ms_per_component_step": round(1000 * t_loop / len(comps) / args.steps, 3),
               "speedup": round(t_loop / t_batched, 2), "max_abs_diff": diff}
    print(f"{len(comps)} components × {args.steps} APGD steps: batched {t_batched:.1f} s "
          f"({figures['batched_ms_per_component_step']} ms per component-step), one at a time {t_loop:.1f} s "
          f"({figures['loop_ms_per_component_step']} ms) → {t_loop / t_batched:.1f}×; max |diff| {diff:.1e}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
