"""Six places where shiftlab now does what ImageNetV2's own code does (issue "ImageNetV2 fidelity"), each a
hand-worked case whose expected value was computed by following ImageNetV2's code by hand
(``dataset_sampling.py``: round_histogram, sample_wnid_histogram; ``near_duplicate_data.py``:
compute_review_thresholds, reload_near_duplicate_data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shiftlab.curate.dedup import NO_THRESHOLD, TABLE_COLUMNS, in_review_window, resolve_duplicates, review_thresholds
from shiftlab.curate.sample import round_histogram, sample_matched_frequency
from shiftlab.errors import InputError


# 1. largest remainder in float64 --------------------------------------------------------------------------
@pytest.mark.parametrize(("hist", "want"), [
    # 10·[2,5,2,2,4]/15: remainders 0.33333333333333326 (bins 0, 2, 3), 0.3333333333333335 (bin 1),
    # 0.6666666666666667 (bin 4): two units left → bins 4 and 1 (exact fractions would tie 0-3 and give bin 3)
    ([2, 5, 2, 2, 4], [1, 4, 1, 1, 3]),
    # 10·[12,2,0,11,5]/30: remainders 0.6666666666666666 (1), 0.6666666666666665 (3), 0.6666666666666667 (4)
    ([12, 2, 0, 11, 5], [4, 1, 0, 3, 2]),
    ([1, 1, 1, 1, 1], [2, 2, 2, 2, 2]),
    ([0, 0, 0, 1, 1], [0, 0, 0, 5, 5]),
])
def test_round_histogram_is_imagenetv2s_float_largest_remainder(hist, want):
    got = round_histogram(hist, 10)
    assert got == want and sum(got) == 10


def _table(rows) -> pd.DataFrame:
    """Neighbour rows (query, split, reference, metric, rank, distance) with is_self / same_source False."""
    df = pd.DataFrame(rows, columns=["query_id", "reference_split", "reference_id", "metric", "rank", "distance"])
    df["is_self"] = df["same_source"] = False
    return df[TABLE_COLUMNS]


# 2. the review threshold looks only at the reviewed window --------------------------------------------------
def test_review_threshold_is_taken_over_the_first_review_k_neighbours_only():
    # q's neighbours p0 … p39 at 1e6·(r + 1), one split; a reviewer saw (and decided) the first 30
    rows = [("q", "train", f"p{r}", "l2", r, 1e6 * (r + 1)) for r in range(40)]
    t = _table(rows)
    reviewed = [("q", f"p{r}") for r in range(30)]
    thr = review_thresholds(t, reviewed, review_k=30)
    assert thr.loc["q", "l2"] == NO_THRESHOLD  # ImageNetV2: 1e100, eligible; over all ranks it was 3.1e7
    assert review_thresholds(t, reviewed[:5], review_k=30).loc["q", "l2"] == 6e6  # first unreviewed: p5
    assert review_thresholds(t, reviewed, review_k=35).loc["q", "l2"] == 31e6  # a deeper window sees p30


# 3. no neighbour rows means not reviewed ----------------------------------------------------------------------
def test_a_metric_without_neighbour_rows_is_not_reviewed():
    t = _table([("q1", "train", "x", "l2", 0, 5.0), ("q1", "train", "y", "dssim", 0, 0.3),
                ("q2", "train", "x", "l2", 0, 7.0)])  # q2 has no dssim row at all
    thr = review_thresholds(t, [("q2", "x")])
    assert thr.loc["q2", "dssim"] == 0.0  # ImageNetV2: no entry → 0.0 (unreviewed); it was 1e100
    assert thr.loc["q2", "l2"] == NO_THRESHOLD  # rows present, all reviewed → 1e100
    assert thr.loc["q1", "l2"] == 5.0 and thr.loc["q1", "dssim"] == 0.3


def test_the_pooled_window_counts_review_k_over_all_reference_splits():
    # per split each of q's two sets shows its own first 2; pooled (ImageNetV2) shows the 2 closest overall
    t = _table([("q", "train", "a", "l2", 0, 1.0), ("q", "train", "b", "l2", 1, 4.0),
                ("q", "test", "c", "l2", 0, 2.0), ("q", "test", "d", "l2", 1, 3.0)])
    assert in_review_window(t, 2, "split").tolist() == [True, True, True, True]
    assert in_review_window(t, 2, "pooled").tolist() == [True, False, True, False]
    assert review_thresholds(t, [("q", "a"), ("q", "c")], review_k=2, window="pooled").loc["q", "l2"] == NO_THRESHOLD
    assert review_thresholds(t, [("q", "a"), ("q", "c")], review_k=2, window="split").loc["q", "l2"] == 3.0
    with pytest.raises(InputError, match="review window"):
        in_review_window(t, 2, "both")


# 4 and 5. resolution ------------------------------------------------------------------------------------------
def _cands(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "class", "frequency"])


def test_resolution_counts_a_classs_good_candidates_over_the_whole_pool():
    # a (n01, 0.9) ~ b (n02, 0.9); n01 has two more good candidates elsewhere, n02 none → n02 is rarer: keep b
    c = _cands([("a", "n01", 0.9), ("b", "n02", 0.9), ("e1", "n01", 0.8), ("e2", "n01", 0.75)])
    r = resolve_duplicates(c, [("a", "b")]).set_index("id")
    assert r.loc["b", "keep"] and not r.loc["a", "keep"]
    assert r.loc["e1", "keep"] and r.loc["e2", "keep"]  # unlinked candidates stay


def test_fallback_tie_at_the_maximum_frequency_keeps_the_larger_class():
    # no class reaches 0.6: ImageNetV2 takes the one class at the top, the larger wnid on a tie
    r = resolve_duplicates(_cands([("a", "n01", 0.3), ("b", "n02", 0.3)]), [("a", "b")]).set_index("id")
    assert r.loc["b", "keep"] and not r.loc["a", "keep"]
    # class indices compare as numbers (9 < 10), not as text ("10" < "9")
    r = resolve_duplicates(_cands([("a", 9, 0.3), ("b", 10, 0.3)]), [("a", "b")]).set_index("id")
    assert r.loc["b", "keep"] and not r.loc["a", "keep"]


# 6. parent order in MatchedFrequency -----------------------------------------------------------------------------
def test_matched_frequency_draws_a_too_full_bins_subset_in_the_parent_files_order():
    # one class, 2 per class; validation: 10 images at 0.7 (bin 3) and 10 at 0.9 (bin 4) → targets [0,0,0,1,1]
    val = pd.DataFrame({"id": [f"v{i}" for i in range(20)], "class": 0,
                        "frequency": [0.7] * 10 + [0.9] * 10, "n_annotations": 10})
    cands = pd.DataFrame({"id": ["p1", "p2", "c3"], "class": 0, "frequency": [0.9, 0.9, 0.7], "n_annotations": 10,
                          "blacklisted": False, "near_duplicate": False, "reviewed": True})
    res = sample_matched_frequency(cands, val, seed=0, per_class=2, previous=[("p2", 0), ("p1", 0)])
    assert res.targets[0] == [0, 0, 0, 1, 1]
    # Random(0).sample(["p2", "p1"], 1) == ["p1"] (the parent file's order); sorted, it would draw "p2"
    assert {i for i, _ in res.images} == {"c3", "p1"}
    assert res.carried_over[0] == ["p1"]
    np.testing.assert_array_equal(sorted(i for i, _ in res.images), ["c3", "p1"])
