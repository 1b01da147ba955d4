"""Sampling the three ImageNetV2 variants (SPECS S1.5) on hand-made pools."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest

from shiftlab.curate.sample import (
    STANDARD_BINS,
    build_histogram,
    candidate_table,
    check_candidates,
    class_targets,
    eligible_mask,
    histogram_bin,
    review_targets,
    reviewed_mask,
    round_histogram,
    sample,
    sample_matched_frequency,
    sample_threshold,
    sample_top,
)
from shiftlab.errors import InputError


def cand(i, k, f, n=10, bl=False, nd=False, rev=True):
    return {"id": i, "class": k, "frequency": f, "n_annotations": n, "blacklisted": bl, "near_duplicate": nd,
            "reviewed": rev}


def pool(rows) -> pd.DataFrame:
    return pd.DataFrame(rows)


def val_table(per_class: dict[int, list[float]], n=10) -> pd.DataFrame:
    return pd.DataFrame([{"id": f"v{k}_{j}", "class": k, "frequency": f, "n_annotations": n}
                         for k, fs in per_class.items() for j, f in enumerate(fs)])


def ids_of(res, k=None):
    return sorted(i for i, c in res.images if k is None or c == k)


# --- histograms -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("f,b", [(0.0, 0), (0.1999, 0), (0.2, 1), (0.5, 2), (0.7999, 3), (0.8, 4), (1.0, 4)])
def test_histogram_bins_are_half_open_and_last_closed(f, b):
    assert histogram_bin(f, STANDARD_BINS) == b


def test_build_histogram():
    assert build_histogram([0.0, 0.25, 0.3, 0.9, 1.0, 0.8]) == [1, 2, 0, 0, 3]


def test_round_histogram_ties_go_to_the_higher_bin():
    # 20 images scaled to 10: 1.5, 2.5, 0, 0, 6 -> floor 1, 2, 0, 0, 6; one left, a tie at .5 -> higher bin
    assert round_histogram([3, 5, 0, 0, 12], 10) == [1, 3, 0, 0, 6]
    assert round_histogram([1, 1, 0, 0, 2], 10) == [2, 3, 0, 0, 5]
    # three equal thirds: the one left over goes to the highest of the tied bins
    assert round_histogram([1, 1, 1, 0, 0], 10) == [3, 3, 4, 0, 0]


def test_round_histogram_largest_fraction_beats_bin_order():
    # 3.5, 2.1, 1.4 -> floor 3, 2, 1; the .5 is the largest fractional part, so the lowest bin gets it
    assert round_histogram([5, 3, 2], 7) == [4, 2, 1]
    assert sum(round_histogram([7, 11, 13, 17, 19], 10)) == 10


def test_round_histogram_empty_is_an_input_error():
    with pytest.raises(InputError):
        round_histogram([0, 0, 0, 0, 0], 10)


def test_class_targets_need_enough_annotated_validation_images():
    v = val_table({0: [0.9] * 19 + [0.1], 1: [0.9] * 19})
    v = pd.concat([v, val_table({1: [0.1]}, n=9)])  # a 20th image of class 1 with too few annotations
    t = class_targets(v, [0, 1, 2])
    assert t[0] == [0, 0, 0, 0, 10]  # 0.5, 9.5 -> floor 0, 9; the tie goes to the higher bin
    assert t[1] is None and t[2] is None


# --- eligibility ------------------------------------------------------------------------------------------
def test_eligibility():
    c = check_candidates(pool([cand("ok", 0, 0.9), cand("bl", 0, 0.9, bl=True), cand("few", 0, 0.9, n=9),
                               cand("nd", 0, 0.9, nd=True), cand("unrev", 0, 0.9, rev=False)]))
    assert c[eligible_mask(c)]["id"].tolist() == ["ok"]


def test_missing_columns_are_an_input_error():
    with pytest.raises(InputError, match="reviewed"):
        sample_top(pd.DataFrame({"id": ["x"], "class": [0], "frequency": [1.0], "n_annotations": [10],
                                 "blacklisted": [False], "near_duplicate": [False]}), seed=0)


# --- a: Threshold0.7 --------------------------------------------------------------------------------------
def threshold_pool():
    rows = [cand(f"a{j:02d}", 0, 0.7 + 0.01 * j) for j in range(15)]          # 15 above 0.7
    rows += [cand(f"b{j:02d}", 0, 0.69) for j in range(5)]                     # just below
    rows += [cand(f"c{j:02d}", 1, 0.55) for j in range(6)]                     # only pass with override 0.5
    rows += [cand(f"d{j:02d}", 1, 0.95) for j in range(4)]
    rows += [cand(f"e{j:02d}", 1, 0.95, nd=True) for j in range(3)]
    return pool(rows)


def test_threshold_samples_above_threshold_and_marks_short_classes():
    res = sample_threshold(threshold_pool(), seed=1)
    assert len(ids_of(res, 0)) == 10 and all(i.startswith("a") for i in ids_of(res, 0))
    assert ids_of(res, 1) == [f"d{j:02d}" for j in range(4)]  # all it has
    assert res.short_classes == [1] and res.is_valid is False
    assert res.target_size == 20 and len(res.images) == 14


def test_threshold_per_class_override():
    res = sample_threshold(threshold_pool(), seed=1, class_thresholds={1: 0.5})
    assert res.is_valid and len(ids_of(res, 1)) == 10
    assert set(ids_of(res, 1)) == {f"c{j:02d}" for j in range(6)} | {f"d{j:02d}" for j in range(4)}
    assert not any(i.startswith("b") for i in ids_of(res, 0))


def test_threshold_keeps_unchanged_parent_images_and_replaces_changed_ones():
    first = sample_threshold(threshold_pool(), seed=3, class_thresholds={1: 0.5})
    parent = first.images
    old0 = ids_of(first, 0)
    changed = old0[:2]
    p = threshold_pool()
    p.loc[p["id"] == changed[0], "near_duplicate"] = True
    p.loc[p["id"] == changed[1], "blacklisted"] = True
    res = sample_threshold(p, seed=99, class_thresholds={1: 0.5}, previous=parent)
    new0 = ids_of(res, 0)
    assert set(old0) - set(changed) <= set(new0)
    assert not set(changed) & set(new0) and len(new0) == 10
    assert ids_of(res, 1) == ids_of(first, 1)  # nothing changed there: identical despite another seed
    # in the parent file's order, as ImageNetV2 carries them over (not sorted)
    assert res.carried_over[0] == [i for i, k in parent if k == 0 and i not in changed]


def test_threshold_fill_is_rng_sample_of_sorted_rest():
    import random

    res = sample_threshold(pool([cand(f"x{j}", 0, 0.9) for j in range(20)]), seed=7, per_class=5)
    rng = random.Random(7)
    expect = rng.sample(sorted(f"x{j}" for j in range(20)), 5)
    rows = [(i, 0) for i in expect]
    rng.shuffle(rows)
    assert res.images == rows


def test_input_row_order_does_not_matter():
    p = threshold_pool()
    q = p.sample(frac=1.0, random_state=5)
    assert sample_threshold(p, seed=4).images == sample_threshold(q, seed=4).images


# --- final shuffle ----------------------------------------------------------------------------------------
def exact_pool():
    return pool([cand(f"k{k}_{j}", k, 0.9) for k in range(4) for j in range(10)])


@pytest.mark.parametrize("variant", ["a", "c"])
def test_final_shuffle_is_seeded(variant):
    p = exact_pool()
    r1, r2, r3 = (sample(variant, p, seed=s) for s in (11, 11, 12))
    assert r1.images == r2.images
    assert r1.images != r3.images
    assert Counter(r1.images) == Counter(r3.images)
    # the whole list is shuffled, not each class in place
    assert [k for _, k in r1.images] != sorted(k for _, k in r1.images)


def test_every_variant_is_deterministic():
    p = exact_pool()
    v = val_table({k: [0.9] * 20 for k in range(4)})
    for variant in "abc":
        a = sample(variant, p, seed=5, validation=v)
        b = sample(variant, p.iloc[::-1], seed=5, validation=v)
        assert a.images == b.images and a.is_valid


# --- b: MatchedFrequency ----------------------------------------------------------------------------------
def mf_pool():
    rows = []
    for j in range(6):
        rows.append(cand(f"lo{j}", 0, 0.1))       # bin 0
        rows.append(cand(f"mid{j}", 0, 0.5))      # bin 2
        rows.append(cand(f"top{j}", 0, 0.9))      # bin 4
    rows.append(cand("hi0", 0, 0.7))               # bin 3: only one
    rows.append(cand("hi_bad", 0, 0.7, rev=False))
    return pool(rows)


def mf_val():
    # class 0: 4 in bin 0, 4 in bin 2, 6 in bin 3, 6 in bin 4 -> 2, 2, 3, 3
    return val_table({0: [0.1] * 4 + [0.5] * 4 + [0.7] * 6 + [0.9] * 6})


def test_matched_frequency_follows_the_validation_histogram():
    p = mf_pool()
    p = p[p["id"] != "hi0"]
    p = pd.concat([p, pool([cand(f"hi{j}", 0, 0.7) for j in range(4)])])
    res = sample_matched_frequency(p, mf_val(), seed=0)
    assert res.targets[0] == [2, 0, 2, 3, 3]
    chosen = ids_of(res, 0)
    assert Counter(i.rstrip("0123456789") for i in chosen) == {"lo": 2, "mid": 2, "hi": 3, "top": 3}
    assert res.is_valid


def test_matched_frequency_short_bin_without_upward_sampling_is_invalid():
    res = sample_matched_frequency(mf_pool(), mf_val(), seed=0)
    assert res.short_classes == [0] and not res.is_valid
    assert len(res.images) == 8 and "hi0" in ids_of(res)  # takes all it has, saved anyway


def test_upward_sampling_fills_a_short_bin_from_the_next_higher_bin():
    res = sample_matched_frequency(mf_pool(), mf_val(), seed=0, allow_upward_sampling=True)
    assert res.is_valid and len(res.images) == 10
    ups = res.upward_sampled[0]
    assert len(ups) == 2 and all(src == 4 and dst == 3 for _, src, dst in ups)
    assert sum(i.startswith("top") for i in ids_of(res)) == 5


def test_upward_sampling_skips_empty_bins_and_fails_when_nothing_is_above():
    p = pool([cand(f"lo{j}", 0, 0.1) for j in range(3)] + [cand("top0", 0, 0.95)])
    v = val_table({0: [0.1] * 10 + [0.3] * 10})  # 5 in bin 0, 5 in bin 1
    res = sample_matched_frequency(p, v, seed=0, allow_upward_sampling=True)
    assert res.upward_sampled[0] == [("top0", 4, 0)]  # bins 1-3 have nothing; bin 0 is filled first
    assert not res.is_valid and sorted(ids_of(res)) == ["lo0", "lo1", "lo2", "top0"]


def test_upward_sampling_prefers_previous_revision_images():
    p = mf_pool()
    parent = [("top3", 0)]
    v = val_table({0: [0.1] * 4 + [0.5] * 4 + [0.7] * 12})  # bin 3 wants 6, bin 4 wants 0
    for seed in range(5):
        res = sample_matched_frequency(p, v, seed=seed, allow_upward_sampling=True, previous=parent)
        first_up = res.upward_sampled[0][0]
        assert first_up == ("top3", 4, 3)


def test_matched_frequency_carries_over_and_replaces_only_changed_images():
    p = mf_pool()
    p = pd.concat([p, pool([cand(f"hi{j}", 0, 0.7) for j in range(1, 5)])])
    v = mf_val()
    first = sample_matched_frequency(p, v, seed=21)
    old = ids_of(first)
    gone = next(i for i in old if i.startswith("mid"))
    q = p.copy()
    q.loc[q["id"] == gone, "blacklisted"] = True
    res = sample_matched_frequency(q, v, seed=22, previous=first.images)
    new = ids_of(res)
    assert set(new) == set(old) - {gone} | (set(new) - set(old))
    assert len(set(new) - set(old)) == 1 and (set(new) - set(old)).pop().startswith("mid")
    assert res.is_valid


def test_parent_with_too_many_images_in_a_bin_keeps_a_random_subset():
    p = mf_pool()
    v = val_table({0: [0.1] * 18 + [0.9] * 2})  # bin 0: 9, bin 4: 1
    parent = [(f"top{j}", 0) for j in range(6)]
    res = sample_matched_frequency(p, v, seed=1, previous=parent)
    assert len(res.carried_over[0]) == 1 and res.carried_over[0][0].startswith("top")
    assert res.targets[0] == [9, 0, 0, 0, 1] and not res.is_valid  # only 6 "lo" candidates


def test_matched_frequency_class_without_validation_histogram_is_invalid():
    p = pool([cand(f"k{k}_{j}", k, 0.9) for k in range(2) for j in range(10)])
    v = val_table({0: [0.9] * 20, 1: [0.9] * 5})
    res = sample_matched_frequency(p, v, seed=0)
    assert res.targets[1] is None and res.short_classes == [1] and not res.is_valid
    assert len(ids_of(res, 0)) == 10


def test_b_needs_validation():
    with pytest.raises(InputError, match="validation"):
        sample("b", exact_pool(), seed=0)


# --- c: TopImages -----------------------------------------------------------------------------------------
def test_top_images_sort_key():
    rows = [cand("f9", 0, 0.9), cand("f8_n12", 0, 0.8, n=12), cand("f8_n11_prev", 0, 0.8, n=11),
            cand("f8_n11_z", 0, 0.8, n=11), cand("f8_n11_a", 0, 0.8, n=11), cand("f1", 0, 0.1),
            cand("f99_bad", 0, 0.99, nd=True)]
    res = sample_top(pool(rows), seed=0, per_class=5, previous={0: ["f8_n11_prev"]})
    assert set(ids_of(res)) == {"f9", "f8_n12", "f8_n11_prev", "f8_n11_z", "f8_n11_a"}
    res = sample_top(pool(rows), seed=0, per_class=4, previous={0: ["f8_n11_prev"]})
    assert set(ids_of(res)) == {"f9", "f8_n12", "f8_n11_prev", "f8_n11_z"}  # prev first, then larger id
    res = sample_top(pool(rows), seed=0, per_class=4)
    assert set(ids_of(res)) == {"f9", "f8_n12", "f8_n11_z", "f8_n11_prev"}


def test_top_images_short_class():
    res = sample_top(pool([cand("x", 0, 0.9), cand("y", 1, 0.9)]), seed=0, per_class=2, classes=[0, 1, 2])
    assert res.short_classes == [0, 1, 2] and not res.is_valid and len(res.images) == 2
    assert res.target_size == 6


def test_bad_arguments():
    with pytest.raises(InputError):
        sample("d", exact_pool(), seed=0)
    with pytest.raises(InputError):
        sample_top(exact_pool(), seed=None)
    with pytest.raises(InputError):
        sample_top(exact_pool(), seed=0, per_class=0)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_read_table(tmp_path, suffix):
    from shiftlab.curate.sample import read_table

    p = pool([cand("0123", 0, 0.9), cand("x", 1, float("nan"), n=3)])
    path = tmp_path / f"c{suffix}"
    {".csv": lambda: p.to_csv(path, index=False), ".parquet": lambda: p.to_parquet(path),
     ".json": lambda: p.to_json(path, orient="records")}[suffix]()
    t = read_table(path)
    assert t["id"].tolist() == ["0123", "x"] and t["frequency"].tolist() == [0.9, 0.0]
    with pytest.raises(InputError):
        read_table(path, "validation_typo")
    with pytest.raises(InputError):
        read_table(tmp_path / "missing.csv")


# --- the candidates table from a pool and its near-duplicate review -------------------------------------
def test_review_targets_cover_every_metric():
    t = review_targets(["l2", "dssim", "embedding", "fc7", "phash", "aligned"])
    assert t == {"l2": 1.2e8, "dssim": 0.2205, "embedding": 1.32e4, "fc7": 1.32e4, "phash": 10.0, "aligned": 0.02}
    assert review_targets(["embedding", "l2"], {"fc7": 5.0, "l2": 1.0}) == {"embedding": 5.0, "l2": 1.0}
    with pytest.raises(InputError, match="no near-duplicate review target"):
        review_targets(["l3"])


def test_reviewed_mask_needs_every_metric_above_its_target():
    thr = pd.DataFrame({"l2": [2e8, 2e8, 1e100], "phash": [12.0, 9.0, 1e100]}, index=pd.Index(["a", "b", "c"]))
    # phash's own target (10 bits), not fc7's 1.32e4, which no Hamming distance of 64 bits can exceed
    assert reviewed_mask(thr).to_dict() == {"a": True, "b": False, "c": True}
    assert reviewed_mask(thr, {"phash": 8.0}).to_dict() == {"a": True, "b": True, "c": True}


def test_candidate_table_from_a_pool():
    from shiftlab.data.classes import Vocabulary
    from shiftlab.data.manifest import Manifest

    vocab = Vocabulary.from_names(["zero", "one"], name="toy")

    t = pd.DataFrame({"id": ["p0", "p1", "p2"], "path": ["x.png"] * 3, "sha256": ["0" * 64] * 3, "label": [0, 1, 1],
                      "selection_frequency": [0.9, 0.5, 0.8], "n_annotations": [10, 12, 10]})
    m = Manifest(t, name="toy-pool", vocabulary=vocab)
    plain = candidate_table(m, dedup=False)
    assert plain[["near_duplicate", "reviewed", "blacklisted"]].values.tolist() == [[False, True, False]] * 3
    res = pd.DataFrame({"id": ["p0", "p1"], "keep": [True, False]})  # p2 missing: not marked a duplicate
    thr = pd.DataFrame({"l2": [2e8, 2e8]}, index=pd.Index(["p0", "p1"]))  # p2 missing: unreviewed
    c = candidate_table(m, resolution=res, review_thresholds=thr)
    assert c.near_duplicate.tolist() == [False, True, False] and c.reviewed.tolist() == [True, True, False]
    assert eligible_mask(c).tolist() == [True, False, False]  # p2: never searched, so never eligible
    assert c.frequency.tolist() == [0.9, 0.5, 0.8] and c["class"].tolist() == [0, 1, 1]
    check_candidates(c)
    with pytest.raises(InputError, match="hits import"):
        candidate_table(Manifest(t.drop(columns=["selection_frequency"]), name="bare", vocabulary=vocab))
    with pytest.raises(InputError, match="dedup=False"):
        candidate_table(m)
