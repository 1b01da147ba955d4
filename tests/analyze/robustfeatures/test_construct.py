"""D_NR / D_det / D_rand built as files on a few world images: the inversion cuts the feature distance ≥ 10× from
another image, the targeted sets stay in their ε-ball, fixed seeds repeat, a killed build resumes identically, and
the loaders read them back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shiftlab.analyze.robustfeatures import construct
from shiftlab.analyze.robustfeatures.construct import (
    InversionSettings,
    TargetedSettings,
    build_set,
    start_indices,
    target_labels,
)
from shiftlab.analyze.robustfeatures.invert import invert, straight_through_last_relu
from shiftlab.analyze.robustfeatures.loaders import load_nonrobust_dataset
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError, ShiftlabError

INV = InversionSettings(steps=80, step_size=0.3)  # the world section's settings


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "chunks" not in p.parts and p.name != "manifest.parquet"}


def as_float(px) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(px)).float().div_(255)


def test_starts_are_other_images_and_targets_other_classes():
    s = start_indices(500, 0)
    assert (s != np.arange(500)).all() and s.min() >= 0 and s.max() < 500
    assert np.array_equal(s, start_indices(500, 0)) and not np.array_equal(s, start_indices(500, 1))
    y = np.arange(300) % 10
    assert np.array_equal(target_labels(y, 10, "det", 0), (y + 1) % 10)
    r = target_labels(y, 10, "rand", 0)
    assert (r != y).all() and len(np.unique(r)) == 10


def test_inversion_of_the_standard_cnn_cuts_the_feature_distance_tenfold(world_pixels):
    clf, _, px, _, _ = world_pixels
    x, start = as_float(px[:48]), as_float(px[start_indices(len(px), 0)[:48]])
    with straight_through_last_relu(clf.module):
        with torch.no_grad():
            target = clf.features(x)
        r = invert(clf.features, target, start, steps=INV.steps, step_size=INV.step_size)
    ratio = (r.final_distance / r.start_distance).median().item()
    assert ratio <= 0.1, ratio
    assert r.z.min() >= 0 and r.z.max() <= 1 and (r.steps == INV.steps).all()
    # the representation matched, not the pixels: the result is still far from x in pixel space
    assert (r.z - x).flatten(1).norm(dim=1).median() > 1.0


def test_early_stop_takes_one_more_step_after_the_change_is_small():
    # a represent() whose distance from the target stops changing: (z ↦ 0) after the first step
    calls = []

    def represent(z):
        calls.append(1)
        return z.flatten(1)[:, :1] * 0 + (1.0 if len(calls) == 1 else 0.5)

    r = invert(represent, torch.zeros(2, 1), torch.full((2, 1, 2, 2), 0.5), steps=50, step_size=0.1, tol=1e-3,
               grad_eps=0.0)
    # losses 1.0 (t=0), 0.5 (t=1), 0.5 (t=2): the test at t=3 sees |0.5 − 0.5| < tol; steps 0, 1, 2 were taken
    assert r.steps.tolist() == [3, 3]


def test_built_sets_are_reproducible_resumable_and_readable(world_pixels, tmp_path, monkeypatch):
    clf, train, px, _, _ = world_pixels
    src, pixels = train.subset(np.arange(40)), px[:40]
    kw = dict(seed=0, inversion=InversionSettings(steps=8, step_size=0.3), chunk=16, progress=False)
    a = build_set("nonrobust", clf, src, pixels, tmp_path / "a", "world-train-nonrobust", **kw)
    # a second build elsewhere is killed after its first chunk, then resumed
    real, n = construct.atomic_save_npz, []

    def dying(path, **arrays):
        if "chunks" in str(path) and len(n) == 1:
            raise KeyboardInterrupt
        n.append(path)
        real(path, **arrays)

    monkeypatch.setattr(construct, "atomic_save_npz", dying)
    with pytest.raises(KeyboardInterrupt):
        build_set("nonrobust", clf, src, pixels, tmp_path / "b", "world-train-nonrobust", **kw)
    assert not (tmp_path / "b" / "complete.json").exists()
    monkeypatch.setattr(construct, "atomic_save_npz", real)
    with pytest.raises(InputError, match="other parameters"):  # a half-built set is never mixed with another
        build_set("nonrobust", clf, src, pixels, tmp_path / "b", "world-train-nonrobust",
                  **{**kw, "inversion": InversionSettings(steps=9, step_size=0.3)})
    b = build_set("nonrobust", clf, src, pixels, tmp_path / "b", "world-train-nonrobust", **kw)
    assert _files(tmp_path / "a") == _files(tmp_path / "b") and a.content_hash == b.content_hash
    t = a.table
    assert (t["start_id"] != t["source_id"]).all() and (t["label"] == t["source_label"]).all()
    assert (t["final_distance"] < t["start_distance"]).all()
    assert Manifest.load(tmp_path / "a" / "manifest.parquet").content_hash == a.content_hash


def test_det_and_rand_stay_in_the_ball_and_are_relabelled(world_pixels, tmp_path):
    clf, train, px, _, _ = world_pixels
    src, pixels = train.subset(np.arange(32)), px[:32]
    s = TargetedSettings(eps=5.0, step_size=0.5, steps=30)  # the world section's settings
    y = np.asarray(src.labels)
    for kind in ("det", "rand"):
        m = build_set(kind, clf, src, pixels, tmp_path / kind, f"world-train-{kind}", targeted=s, progress=False)
        with np.load(tmp_path / kind / "data.npz") as z:
            x = torch.from_numpy(z["x"])
        d = (x - as_float(pixels)).flatten(1).norm(dim=1)
        assert (d <= s.eps + 1e-6).all() and x.min() >= 0 and x.max() <= 1
        t = m.table
        assert (t["label"] == t["target"]).all() and (t["target"] != y).all()
        with torch.no_grad():
            hit = (clf.logits(x).argmax(1).numpy() == t["target"].to_numpy())
        assert np.array_equal(hit, t["success"].to_numpy())
        assert hit.mean() >= 0.95, (kind, hit.mean())
    assert (m.table["target"] != (y + 1) % 10).any()  # rand is not det


def test_loaders_read_a_built_set_from_the_workspace(world_pixels, tmp_path):
    from shiftlab.workspace import Workspace

    clf, train, px, _, _ = world_pixels
    ws = Workspace.resolve(tmp_path / "ws")
    with pytest.raises(ShiftlabError, match="robust mnist"):
        load_nonrobust_dataset(workspace=ws)
    src = train.subset(np.arange(8))
    build_set("nonrobust", clf, src, px[:8], ws.root / "robustfeatures" / "world-train-nonrobust",
              "world-train-nonrobust", inversion=InversionSettings(steps=2), progress=False)
    x, y = load_nonrobust_dataset("world-train", workspace=ws)
    assert x.dtype == np.float32 and x.shape == (8, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert y.dtype == np.int64 and np.array_equal(y, np.asarray(src.labels))
