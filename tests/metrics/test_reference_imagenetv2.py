"""Regression on the published ImageNetV2 data: the paper's accuracies from its released top-5 predictions."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from shiftlab.data.layouts import read_revision_json
from shiftlab.metrics import accuracy_summary
from shiftlab.models import load_model

SETS = ("imagenet-validation-original", "imagenetv2-a-44", "imagenetv2-b-33", "imagenetv2-c-12")
RESNET50_TOP1 = dict(zip(SETS, (76.13, 72.70, 63.33, 78.09)))


@functools.cache
def _manifest(path):
    return read_revision_json(path, progress=False)


@pytest.fixture
def manifests(reference):
    """Labels-only manifests of the four sets (read once per session: the original has 50,000 rows)."""
    return {n: _manifest(reference / "imagenetv2" / f"{n}.json") for n in SETS}


def accuracy(reference, manifests, name: str, model: str) -> dict:
    p = load_model(f"predictions:{reference}/imagenetv2/predictions/{name}.npz#{model}")
    aligned = p.align(manifests[name])
    return accuracy_summary(aligned.values, manifests[name].labels, kind=aligned.kind)


@pytest.mark.parametrize("name", SETS)
def test_resnet50_top1(reference, manifests, name):
    assert len(manifests[name]) == (50000 if name.startswith("imagenet-") else 10000)
    s = accuracy(reference, manifests, name, "resnet50")
    assert round(100 * s["top1"], 2) == RESNET50_TOP1[name]
    assert s["top1_low"] < s["top1"] < s["top1_high"]


def test_resnet50_top5_b33(reference, manifests):
    assert round(100 * accuracy(reference, manifests, "imagenetv2-b-33", "resnet50")["top5"], 2) == 84.65


def test_b33_drop_and_linear_fit_over_64_models(reference, manifests):
    # the files have no ids: rows are in the revision files' order, as align() checks for resnet50 above
    preds = {n: np.load(reference / "imagenetv2" / "predictions" / f"{n}.npz") for n in
             ("imagenet-validation-original", "imagenetv2-b-33")}
    orig_m, new_m = manifests["imagenet-validation-original"], manifests["imagenetv2-b-33"]
    models = sorted(m for m in preds["imagenetv2-b-33"].files if not m.startswith("fv_"))
    assert len(models) == 64
    orig = np.array([accuracy_summary(preds["imagenet-validation-original"][m], orig_m.labels, kind="topk")["top1"]
                     for m in models])
    new = np.array([accuracy_summary(preds["imagenetv2-b-33"][m], new_m.labels, kind="topk")["top1"]
                    for m in models])
    drop = 100 * (orig - new)
    assert round(drop.min(), 1) == 10.3 and round(drop.max(), 1) == 13.6  # the published range, to 0.1
    assert drop.mean() == pytest.approx(12.0, abs=0.05)
    a, b = np.polyfit(orig, new, 1)  # least squares, accuracies as fractions
    assert a == pytest.approx(1.110, abs=0.002) and b == pytest.approx(-0.203, abs=0.002)
