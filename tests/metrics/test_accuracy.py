"""Top-1 / top-5 accuracy, Clopper–Pearson intervals and per-class accuracy: hand-worked cases and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import binomtest

from shiftlab.errors import InputError
from shiftlab.metrics import accuracy_summary, clopper_pearson, per_class_accuracy, topk_correct, topk_indices

# 4 images, 6 classes; labels 2, 0, 5, 1
SCORES = np.array([
    [0.1, 0.2, 0.9, 0.0, 0.3, 0.4],   # top-1 = 2 (right)
    [0.5, 0.9, 0.1, 0.8, 0.7, 0.6],   # order 1, 3, 4, 5, 0: label 0 is 5th
    [0.9, 0.8, 0.7, 0.6, 0.5, 0.1],   # label 5 is last: wrong even at top-5
    [0.2, 0.3, 0.1, 0.9, 0.0, 0.0],   # order 3, 1, 0, 2, 4: label 1 is 2nd
])
LABELS = np.array([2, 0, 5, 1])


def test_topk_from_scores_by_hand():
    np.testing.assert_array_equal(topk_indices(SCORES, 1)[:, 0], [2, 1, 0, 3])
    np.testing.assert_array_equal(topk_indices(SCORES, 5)[1], [1, 3, 4, 5, 0])
    np.testing.assert_array_equal(topk_correct(SCORES, LABELS, 1), [True, False, False, False])
    np.testing.assert_array_equal(topk_correct(SCORES, LABELS, 5), [True, True, False, True])
    s = accuracy_summary(SCORES, LABELS)
    assert (s["n_images"], s["n_bad"], s["n_scored"]) == (4, 0, 4)
    assert s["top1"] == 0.25 and s["top5"] == 0.75


def test_topk_from_indices_by_hand():
    top5 = np.array([[2, 5, 4, 1, 0], [1, 3, 4, 5, 0], [0, 1, 2, 3, 4], [3, 1, 0, 2, 4]])
    s = accuracy_summary(top5, LABELS, kind="topk")
    assert s["top1"] == 0.25 and s["top5"] == 0.75
    np.testing.assert_array_equal(topk_indices(top5, 3, kind="topk"), top5[:, :3])


def test_ties_go_to_the_lowest_class_index():
    scores = np.array([[1.0, 3.0, 3.0, 3.0, 0.0, 3.0],
                       [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]], dtype=np.float16)
    np.testing.assert_array_equal(topk_indices(scores, 1)[:, 0], [1, 0])
    np.testing.assert_array_equal(topk_indices(scores, 5), [[1, 2, 3, 5, 0], [0, 1, 2, 3, 4]])
    # label 5 ties with the top-1 but loses to the lower indices 1, 2, 3
    assert accuracy_summary(scores, np.array([5, 0]))["top1"] == 0.5
    assert not topk_correct(scores, np.array([4, 5]), 5).any()


def test_valid_mask_and_unlabelled_rows():
    valid = np.array([True, False, True, True])
    labels = np.array([2, 0, -1, 1])
    s = accuracy_summary(SCORES, labels, valid=valid)
    assert (s["n_images"], s["n_bad"], s["n_scored"]) == (4, 1, 2)  # row 1 undecodable, row 2 unlabelled
    assert s["top1"] == 0.5 and s["top5"] == 1.0
    lo, hi = clopper_pearson(1, 2)
    assert (s["top1_low"], s["top1_high"]) == (lo, hi)


def test_nothing_to_score():
    s = accuracy_summary(SCORES, np.full(4, -1))
    assert s["n_scored"] == 0 and all(math.isnan(s[k]) for k in ("top1", "top1_low", "top5", "top5_high"))


def test_top5_needs_five_predictions():
    top1_only = np.array([[2], [0], [0], [1]])
    s = accuracy_summary(top1_only, LABELS, kind="topk")
    assert s["top1"] == 0.75
    assert math.isnan(s["top5"]) and math.isnan(s["top5_low"]) and math.isnan(s["top5_high"])
    with pytest.raises(InputError, match="top-5 needs 5 predictions per image"):
        topk_indices(top1_only, 5, kind="topk")


@pytest.mark.parametrize("k, n, expected", [(0, 10, (0.0, 0.3085)), (5, 10, (0.1871, 0.8129)),
                                            (10, 10, (0.6915, 1.0)), (7613, 10000, (0.7528, 0.7696))])
def test_clopper_pearson_known_values(k, n, expected):
    lo, hi = clopper_pearson(k, n)
    assert lo == pytest.approx(expected[0], abs=1e-4) and hi == pytest.approx(expected[1], abs=1e-4)
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)


def test_clopper_pearson_edges():
    assert clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in clopper_pearson(0, 0))
    narrow, wide = clopper_pearson(5, 10, alpha=0.5), clopper_pearson(5, 10, alpha=0.01)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]


def test_per_class_accuracy_table():
    labels = np.array([2, 0, 5, 1, 2, 2])
    scores = np.vstack([SCORES, SCORES[0], SCORES[2]])  # two more class-2 images: one right, one wrong
    df = per_class_accuracy(scores, labels, class_names=[f"c{i}" for i in range(6)])
    assert list(df.columns) == ["class", "name", "n", "correct", "top1", "top1_low", "top1_high"]
    assert df["class"].tolist() == [0, 1, 2, 5]  # only classes that have images
    assert df["name"].tolist() == ["c0", "c1", "c2", "c5"]
    assert df["n"].tolist() == [1, 1, 3, 1] and df["correct"].tolist() == [0, 0, 2, 0]
    row = df.set_index("class").loc[2]
    assert row["top1"] == pytest.approx(2 / 3)
    assert (row["top1_low"], row["top1_high"]) == pytest.approx(clopper_pearson(2, 3))
    masked = per_class_accuracy(scores, labels, valid=np.array([True] * 4 + [False, True]))
    assert masked.set_index("class").loc[2, "n"] == 2 and "name" not in masked.columns


# --- properties ----------------------------------------------------------------------------------------
@st.composite
def scored(draw, max_n=30):
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(5, 12))
    # few distinct values, so that ties are common
    scores = draw(arrays(np.float32, (n, k), elements=st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0])))
    labels = draw(arrays(np.int64, n, elements=st.integers(-1, k - 1)))
    valid = draw(arrays(np.bool_, n))
    return scores, labels, valid


@settings(max_examples=150, deadline=None)
@given(scored())
def test_property_top1_at_most_top5_and_topk_form_agrees(case):
    scores, labels, valid = case
    s = accuracy_summary(scores, labels, valid=valid)
    # top-5 written out independently: best score first, ties to the lower class index
    idx = np.array([sorted(range(scores.shape[1]), key=lambda c: (-row[c], c))[:5] for row in scores])
    np.testing.assert_array_equal(topk_indices(scores, 5), idx)
    np.testing.assert_array_equal(topk_indices(scores, 1)[:, 0], idx[:, 0])
    t = accuracy_summary(idx, labels, kind="topk", valid=valid)
    for key in ("n_scored", "top1", "top5", "top1_low", "top5_high"):
        assert s[key] == t[key] or (math.isnan(s[key]) and math.isnan(t[key]))
    use = valid & (labels >= 0)
    assert s["n_scored"] == use.sum() and s["n_bad"] == (~valid).sum()
    if use.any():
        assert s["top1"] <= s["top5"]
        assert s["top1"] == pytest.approx(np.mean(idx[use, 0] == labels[use]))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.sampled_from([0.01, 0.05, 0.32]))
def test_property_interval_contains_the_estimate(kn, alpha):
    k, n = kn
    lo, hi = clopper_pearson(k, n, alpha)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert (lo == 0.0) == (k == 0) and (hi == 1.0) == (k == n)
