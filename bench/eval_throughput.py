"""Evaluation throughput: the decode-once engine against the usual per-model loop, and end-to-end
against forward-only.

Images are of the size real users have: world digits upscaled to 500×375 px JPEG (quality 90) with paper
texture and sensor noise, so that they do not compress trivially.

(a) 8 zoo models on 2,000 files: shiftlab's engine (decode each file once into the cache, then every model
    reads it) vs a loop in the style of ImageNetV2's eval.py — for every model, a PIL-decoding Dataset and
    a DataLoader re-created, so every model decodes every file again. Target ≥ 3× (≈ 8× is the limit
    where decoding dominates).
(b) the ResNet-50 architecture (plain torch, random weights, 224 px) on 500 files: the engine end to end
    (decoding overlapped with compute) vs forward-only on tensors decoded beforehand. Target ≥ 0.85.
(c) JPEG decoding alone, the step the decoded cache pays once per file: PIL (``Image.open`` + ``load``) vs
    torchvision's ``decode_jpeg`` (what ``shiftlab.data.jpeg`` uses where it imports), at 500×375 and at
    1600×1200, on 1 thread and on the engine's decoding threads; pixels must be equal. The faster one is the
    default decoder; the ratio printed is PIL time / torchvision time.

Usage: ``python bench/eval_throughput.py [--files 2000] [--heavy-files 500] [--out bench/out] [--only-decode]``.
The last line printed is one JSON object of the figures.
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
import torch
from PIL import Image
from scipy import ndimage
from torch.utils.data import DataLoader, Dataset

HERE = Path(__file__).resolve().parent
W, H = 500, 375


def make_jpegs(world_manifest, n: int, folder: Path, seed: int = 0) -> list[Path]:
    """n JPEG files of W×H made from world images: upscaled, textured, noisy (so they don't compress to nothing)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    src = world_manifest.abspaths()
    labels = world_manifest.labels
    out = []
    for i in range(n):
        j = i % len(src)
        cls = folder / str(labels[j])
        cls.mkdir(exist_ok=True)
        p = cls / f"img{i:05d}.jpg"
        out.append(p)
        if p.exists():
            continue
        base = np.asarray(Image.open(src[j]).convert("RGB").resize((W, H), Image.BICUBIC), dtype=np.float32)
        tex = ndimage.gaussian_filter(rng.normal(0, 1, (H, W)), 6) * 60
        noise = rng.normal(0, 7, (H, W, 3))
        img = np.clip(base + tex[:, :, None] + noise, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(p, quality=90)
    return out


class PILDataset(Dataset):
    """What ImageNetV2's eval.py did: open with PIL, convert to RGB, transform, per item."""

    def __init__(self, files, recipe):
        self.files, self.recipe = files, recipe

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        with Image.open(self.files[i]) as im:
            a = self.recipe.apply(im.convert("RGB"))
        return torch.from_numpy(a).float().div_(255.0)


def per_model_loop(files, classifiers, batch_size: int, workers: int) -> float:
    t = time.perf_counter()
    for clf in classifiers:
        loader = DataLoader(PILDataset(files, clf.recipe), batch_size=batch_size, shuffle=False, num_workers=workers)
        with torch.inference_mode():
            for x in loader:
                clf.logits(x)
    return time.perf_counter() - t


def decode_race(files, threads: int, rounds: int = 3) -> dict:
    """Seconds per file for PIL and torchvision decoding of ``files`` on ``threads`` threads (best of ``rounds``),
    and whether every file gives the same pixels."""
    from concurrent.futures import ThreadPoolExecutor

    from shiftlab.data.jpeg import _torchvision_decode

    tv = _torchvision_decode()

    def by_pil(p):
        with Image.open(p) as im:
            im.load()
            return np.asarray(im.convert("RGB"))

    def by_torchvision(p):
        with open(p, "rb") as f:
            return tv(f.read(), False)

    out = {}
    for name, fn in (("pil", by_pil), ("torchvision", by_torchvision)):
        best = float("inf")
        for _ in range(rounds):
            t = time.perf_counter()
            with ThreadPoolExecutor(threads) as ex:
                list(ex.map(fn, files))
            best = min(best, time.perf_counter() - t)
        out[name] = best / len(files)
    out["identical"] = all(np.array_equal(by_pil(p), by_torchvision(p)) for p in files)
    return out


def decode_part(folder: Path, files: list[Path], threads: int, figures: dict) -> None:
    big = []
    rng = np.random.default_rng(1)
    (folder / "big").mkdir(parents=True, exist_ok=True)
    for i in range(40):  # camera-sized files: textured, so that they do not compress trivially
        p = folder / "big" / f"big{i:03d}.jpg"
        if not p.exists():
            a = ndimage.gaussian_filter(rng.normal(0, 1, (1200, 1600, 3)), (4, 4, 0)) * 80 + 128
            Image.fromarray(np.clip(a + rng.normal(0, 7, a.shape), 0, 255).astype(np.uint8)).save(p, quality=90)
        big.append(p)
    torch.set_num_threads(1)
    for label, sample in (("500x375", files[:400]), ("1600x1200", big)):
        for n in sorted({1, threads}):
            r = decode_race(sample, n)
            key = f"decode_{label}_{n}t"
            figures[f"{key}_pil_ms"] = round(1000 * r["pil"], 2)
            figures[f"{key}_torchvision_ms"] = round(1000 * r["torchvision"], 2)
            figures[f"{key}_pil_over_torchvision"] = round(r["pil"] / r["torchvision"], 2)
            figures["decode_identical"] = figures.get("decode_identical", True) and r["identical"]
            print(f"(c) decode {label} on {n} thread(s): PIL {1000 * r['pil']:.2f} ms/file, torchvision "
                  f"{1000 * r['torchvision']:.2f} ms/file → {r['pil'] / r['torchvision']:.2f}×; "
                  f"pixels identical: {r['identical']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--heavy-files", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--skip-heavy", action="store_true")
    ap.add_argument("--only-decode", action="store_true", help="part (c) alone")
    args = ap.parse_args()

    from shiftlab.data.layouts import read_imagefolder
    from shiftlab.models.specs import load_model
    from shiftlab.predict.engine import predict
    from shiftlab.progress import set_quiet
    from shiftlab.workspace import Workspace
    from shiftlab.world import build_world
    from shiftlab.world.zoo import ZOO, train_zoo

    set_quiet(True)
    cores = os.cpu_count() or 1
    workers = min(8, cores)
    base_ws = Workspace.resolve(args.out / "ws-base")
    world = build_world(base_ws, progress=False)
    train_zoo(world.manifest("train"), base_ws, progress=False)
    names = list(ZOO)[:8]
    files = make_jpegs(world.manifest("test"), args.files, args.out / "jpeg")
    folder = args.out / "jpeg"
    manifest = read_imagefolder(folder, progress=False)
    figures = {"machine": f"{platform.machine()}, {cores} cores, torch {torch.__version__}",
               "image_size": f"{W}x{H} JPEG q90", "files": len(files), "models": names}
    if args.only_decode:
        decode_part(args.out, files, workers, figures)
        print(json.dumps(figures))
        return

    # (a) decode-once engine vs per-model loop -------------------------------------------------------
    specs = [f"world:{n}" for n in names]
    classifiers = [load_model(s, workspace=base_ws) for s in specs]
    t_loop = per_model_loop(manifest.abspaths(), classifiers, args.batch_size, workers)
    ws = Workspace.resolve(args.out / "ws-a")
    shutil.rmtree(ws.root, ignore_errors=True)
    for sub in ("manifests", "models"):  # the engine reads the zoo from its own workspace, trained already
        shutil.copytree(base_ws.root / sub, ws.root / sub)
    t = time.perf_counter()
    predict(manifest, specs, workspace=ws, batch_size=args.batch_size, workers=workers, progress=False)
    t_engine = time.perf_counter() - t
    figures.update(loop_s=round(t_loop, 2), engine_s=round(t_engine, 2),
                   decode_once_speedup=round(t_loop / t_engine, 2))
    print(f"(a) {len(names)} models × {len(files)} files: per-model loop {t_loop:.1f}s, "
          f"decode-once engine {t_engine:.1f}s → {t_loop / t_engine:.2f}× (target ≥ 3)")

    # (b) compute-heavy model: end to end vs forward-only ------------------------------------------
    if not args.skip_heavy:
        heavy = f"python:{HERE / 'resnet50.py'}:resnet50"
        sub = manifest.subset(np.arange(min(args.heavy_files, len(manifest))), name="heavy")
        clf = load_model(heavy)
        pre = torch.from_numpy(np.stack([clf.recipe.apply(Image.open(p).convert("RGB")) for p in sub.abspaths()]))

        def forward_only() -> float:
            t = time.perf_counter()
            with torch.inference_mode():
                for s in range(0, len(pre), args.batch_size):
                    clf.logits(pre[s:s + args.batch_size].float().div_(255.0))
            return time.perf_counter() - t

        with torch.inference_mode():  # one-time kernel set-up is neither side's cost
            clf.logits(pre[:args.batch_size].float().div_(255.0))
        t_fwd_before = forward_only()
        ws_b = Workspace.resolve(args.out / "ws-b")
        shutil.rmtree(ws_b.root, ignore_errors=True)
        t = time.perf_counter()
        predict(sub, [heavy], workspace=ws_b, batch_size=args.batch_size, workers=workers, progress=False)
        t_e2e = time.perf_counter() - t
        # the faster of two forward-only runs (before and after), so that drift cannot flatter the ratio
        t_fwd = min(t_fwd_before, forward_only())
        figures.update(forward_only_s=round(t_fwd, 2), end_to_end_s=round(t_e2e, 2),
                       heavy_files=len(sub), end_to_end_over_forward=round(t_fwd / t_e2e, 3))
        print(f"(b) ResNet-50 × {len(sub)} files: forward-only {t_fwd:.1f}s, end to end {t_e2e:.1f}s → "
              f"throughput ratio {t_fwd / t_e2e:.3f} (target ≥ 0.85)")
    decode_part(args.out, files, workers, figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
