"""Representation inversion and PGD, batched vs a per-image loop, in the same run.

On a digits-world-sized CNN (the zoo CNN at width 16, 32 px RGB, seeded random init: the cost does not depend on the
weights), B images are reconstructed (the world section's inversion: 80 steps of 0.3) and attacked (L2 PGD, 20
steps) in one batch, and the same images one at a time in a plain loop. Samples never interact, so both give the
same images (max difference printed).

Usage: ``python bench/robust_features.py [--images 64] [--steps 80] [--pgd-steps 20]``. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--pgd-steps", type=int, default=20)
    args = ap.parse_args()

    from shiftlab.analyze.robustfeatures.invert import invert, straight_through_last_relu
    from shiftlab.data.recipes import RECIPES
    from shiftlab.models.attacks import pgd_l2
    from shiftlab.models.classifier import TorchClassifier
    from shiftlab.models.nets import SmallCNN

    torch.manual_seed(0)
    clf = TorchClassifier(SmallCNN((3, 32, 32), 10, width=16).eval(), RECIPES["world"], name="bench")
    g = torch.Generator().manual_seed(1)
    x, start = torch.rand(args.images, 3, 32, 32, generator=g), torch.rand(args.images, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.images,), generator=g)
    n, s = args.images, args.steps

    def recon(xb, sb):
        with straight_through_last_relu(clf.module):
            with torch.no_grad():
                target = clf.features(xb)
            return invert(clf.features, target, sb, steps=s, step_size=0.3).z

    def pgd(xb, yb):
        return pgd_l2(clf.logits, xb, yb, eps=2.0, steps=args.pgd_steps, step_size=0.25)

    times, diffs = {}, {}
    for name, fn, args_ in (("recon", recon, (x, start)), ("pgd", pgd, (x, y))):
        fn(*(a[:2] for a in args_))  # warm-up
        t = time.perf_counter()
        batched = fn(*args_)
        times[f"{name}_batched"] = time.perf_counter() - t
        t = time.perf_counter()
        loop = torch.cat([fn(*(a[i:i + 1] for a in args_)) for i in range(n)])
        times[f"{name}_loop"] = time.perf_counter() - t
        diffs[name] = float((batched - loop).abs().max())
    res = {
        "images": n, "recon_steps": s, "pgd_steps": args.pgd_steps, "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(), "machine": platform.machine(),
        "ms_per_image_recon_batched": round(1000 * times["recon_batched"] / n, 2),
        "ms_per_image_recon_loop": round(1000 * times["recon_loop"] / n, 2),
        "ms_per_pgd_step_per_image_batched": round(1000 * times["pgd_batched"] / n / args.pgd_steps, 4),
        "ms_per_pgd_step_per_image_loop": round(1000 * times["pgd_loop"] / n / args.pgd_steps, 4),
        "recon_speedup": round(times["recon_loop"] / times["recon_batched"], 2),
        "pgd_speedup": round(times["pgd_loop"] / times["pgd_batched"], 2),
        "max_abs_diff_recon": diffs["recon"], "max_abs_diff_pgd": diffs["pgd"],
    }
    print(f"reconstruction: {res['ms_per_image_recon_batched']} ms/image batched vs {res['ms_per_image_recon_loop']} "
          f"ms/image in a loop ({res['recon_speedup']}×); PGD step: {res['ms_per_pgd_step_per_image_batched']} vs "
          f"{res['ms_per_pgd_step_per_image_loop']} ms/image ({res['pgd_speedup']}×)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
