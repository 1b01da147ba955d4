"""Multi-label accuracy, ImageNet-M and ReaL (SPECS S2): hand-worked cases, properties, and the published ReaL
labels with the ImageNetV2 release's predictions of 65 models (the label files' readers: tests/data)."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shiftlab.analyze.multilabel import multilabel_summary
from shiftlab.data import labelfiles as LF
from shiftlab.data.layouts import read_revision_json
from shiftlab.errors import LabelFileError, ShiftlabError
from shiftlab.metrics import multilabel as ML
from shiftlab.predict.engine import predict

# --- a hand-worked multi-label case: 3 classes, 8 images ---------------------------------------------------
#        label  correct  unclear  problematic  top-1   verdict
CASE = [(0, [0], [], False, 0),        # right
        (0, [0, 1], [], False, 1),     # wrong for top-1, right under the multi-labels
        (0, [0], [2], False, 2),       # an unclear label counts as right
        (0, [0], [], False, 1),        # wrong
        (1, [1], [], False, 0),        # wrong
        (1, [], [], False, 1),         # empty correct ∪ unclear: counted wrong even though top-1 = label
        (1, [1], [], True, 1),         # problematic: dropped
        (2, [2], [], False, 2)]        # right


def _cols(case):
    y, c, u, p, t = zip(*case)
    return np.array(y), list(c), list(u), list(p), np.array(t)


def test_multilabel_accuracy_by_hand():
    y, c, u, p, t = _cols(CASE)
    r = ML.multilabel_accuracy(t, y, c, u, p, n_classes=3)
    # per class: 0 → 3/4, 1 → 0/2, 2 → 1/1; the mean over classes, not over images (4/7)
    assert r.accuracy == pytest.approx((0.75 + 0 + 1) / 3)
    assert (r.n_scored, r.n_problematic, r.n_empty, r.n_classes_used, r.n_classes) == (7, 1, 1, 3, 3)
    assert r.per_class[["class", "n", "correct"]].values.tolist() == [[0, 4, 3], [1, 2, 0], [2, 1, 1]]


def test_a_class_with_only_problematic_images_is_missing():
    case = [*CASE[:7], (2, [2], [], True, 2)]  # class 2's only image becomes problematic
    y, c, u, p, t = _cols(case)
    with pytest.raises(ML.MissingClassesError, match="1 of 3 classes .* --allow-missing-classes") as e:
        ML.multilabel_accuracy(t, y, c, u, p, n_classes=3)
    assert "\n" not in str(e.value)
    r = ML.multilabel_accuracy(t, y, c, u, p, n_classes=3, allow_missing_classes=True)
    assert r.n_classes_used == 2 and r.accuracy == pytest.approx((0.75 + 0) / 2)
    # a class of the vocabulary without any image is missing just the same
    y, c, u, p, t = _cols(CASE)
    with pytest.raises(ML.MissingClassesError, match="1 of 4 classes"):
        ML.multilabel_accuracy(t, y, c, u, p, n_classes=4)


def test_argmax_ties_go_to_the_lowest_index():
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [3.0, 3.0, 3.0]], np.float16)
    np.testing.assert_array_equal(ML.top1_of(scores), [0, 1, 0])
    # image 1 (label 2, multi-labels {2}): the tie between 1 and 2 goes to 1, so it is wrong
    r = ML.multilabel_accuracy(ML.top1_of(scores), [0, 2, 1], [[0], [2], [0]], [[], [], []], [False] * 3,
                               n_classes=3)
    assert r.per_class.accuracy.tolist() == [1.0, 1.0, 0.0]


def test_imagenet_m_counts_problematic_images_too():
    _, c, u, _, t = _cols(CASE)
    in_m = np.array([0, 1, 0, 1, 0, 1, 1, 0], bool)  # images 1, 3, 5, 6; 6 is problematic but counted
    m = ML.imagenet_m_accuracy(t, c, u, in_m, n_classes=3)
    assert (m.correct, m.size, str(m)) == (2, 4, "2/4")  # 1 (multi-label) and 6 (problematic, top-1 ∈ {1})
    with pytest.raises(LabelFileError, match="no multi-labels"):
        ML.imagenet_m_accuracy(t, [None, *c[1:]], [None, *u[1:]], np.eye(8, dtype=bool)[0], n_classes=3)


def test_real_accuracy_by_hand():
    sets = [[], [3], [1, 2], [5]]
    topk = np.array([[0, 1], [3, 0], [0, 2], [1, 5]])
    r = ML.real_accuracy(topk, sets, k=2, n_classes=6)
    assert (r.n_kept, r.n_dropped) == (3, 1)
    assert r.top1 == pytest.approx(1 / 3) and r.topk == 1.0
    assert np.isnan(ML.real_accuracy(topk, sets, k=5, n_classes=6).topk)  # only 2 predictions per image
    with pytest.raises(LabelFileError, match="class 7, outside 0..5"):
        ML.real_accuracy(topk, [[7], [], [], []], n_classes=6)


# --- properties ------------------------------------------------------------------------------------------
def _naive(top1, y, correct, unclear, prob, n_classes):
    per = {}
    for t, a, c, u, p in zip(top1, y, correct, unclear, prob):
        if p:
            continue
        per.setdefault(a, []).append(t in set(c) | set(u))
    return np.mean([np.mean(v) for v in per.values()]) if per else float("nan"), len(per)


@st.composite
def multilabel_sets(draw, max_n=40):
    k = draw(st.integers(2, 6))
    n = draw(st.integers(1, max_n))
    cls = st.integers(0, k - 1)
    y = draw(st.lists(cls, min_size=n, max_size=n))
    correct = draw(st.lists(st.lists(cls, max_size=3), min_size=n, max_size=n))
    unclear = draw(st.lists(st.lists(cls, max_size=2), min_size=n, max_size=n))
    prob = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    top1 = draw(st.lists(cls, min_size=n, max_size=n))
    return k, np.array(y), correct, unclear, prob, np.array(top1)


@given(multilabel_sets())
@settings(max_examples=150, deadline=None)
def test_multilabel_accuracy_matches_a_plain_loop(data):
    k, y, c, u, p, t = data
    want, used = _naive(t, y, c, u, p, k)
    if used == 0:
        with pytest.raises(ML.MissingClassesError):
            ML.multilabel_accuracy(t, y, c, u, p, n_classes=k)
        return
    r = ML.multilabel_accuracy(t, y, c, u, p, n_classes=k, allow_missing_classes=True)
    assert r.accuracy == pytest.approx(want) and r.n_classes_used == used
    assert r.n_empty == sum(1 for a, b, q in zip(c, u, p) if not q and not (a or b))
    # the order of the images does not matter
    perm = np.random.default_rng(len(y)).permutation(len(y))
    again = ML.multilabel_accuracy(t[perm], y[perm], [c[i] for i in perm], [u[i] for i in perm],
                                   [p[i] for i in perm], n_classes=k, allow_missing_classes=True)
    assert again.accuracy == pytest.approx(r.accuracy)


@given(multilabel_sets())
@settings(max_examples=100, deadline=None)
def test_multilabels_that_contain_the_label_never_lower_accuracy(data):
    k, y, c, u, _, t = data
    c = [sorted(set(s) | {a}) for s, a in zip(c, y)]  # the original label is always among the correct ones
    no = [False] * len(y)
    ml = ML.multilabel_accuracy(t, y, c, u, no, n_classes=k, allow_missing_classes=True)
    single = ML.multilabel_accuracy(t, y, [[a] for a in y], [[]] * len(y), no, n_classes=k,
                                    allow_missing_classes=True)
    assert ml.accuracy >= single.accuracy - 1e-12
    assert single.accuracy == pytest.approx(np.mean([np.mean(t[y == a] == a) for a in np.unique(y)]))


@given(st.integers(4, 9), st.lists(st.lists(st.integers(0, 8), max_size=3), min_size=1, max_size=30), st.data())
@settings(max_examples=100, deadline=None)
def test_real_topk_grows_with_k_and_drops_only_empty_sets(k_cls, sets, data):
    sets = [[x % k_cls for x in s] for s in sets]
    scores = data.draw(st.lists(st.lists(st.integers(0, 3), min_size=k_cls, max_size=k_cls),
                                min_size=len(sets), max_size=len(sets)))
    top = np.argsort(-np.array(scores, float), axis=1, kind="stable")
    prev = -1.0
    for k in range(1, min(k_cls, 4) + 1):
        r = ML.real_accuracy(top, sets, k=k, n_classes=k_cls)
        assert r.n_dropped == sum(1 for s in sets if not s) and r.n_kept + r.n_dropped == len(sets)
        if r.n_kept:
            assert r.topk >= prev - 1e-12 and r.top1 <= r.topk + 1e-12
            want = np.mean([any(x in s for x in row[:k]) for row, s in zip(top, sets) if s])
            assert r.topk == pytest.approx(want)
            prev = r.topk


# --- the published ReaL labels ------------------------------------------------------------------------------
#: ReaL accuracies (percent) of torchvision's weights in timm's results-imagenet-real.csv (resnet50.tv_in1k,
#: resnet18.tv_in1k, vgg16.tv_in1k); the ImageNetV2 release's predictions of these models reproduce them
TIMM_REAL = {"resnet50": (82.960, 95.472), "resnet18": (77.287, 92.747), "vgg16": (79.038, 93.644)}


@functools.cache
def _real_val(ref):
    m = read_revision_json(ref / "imagenetv2" / "imagenet-validation-original.json", progress=False)
    return LF.attach_real(m, ref / "real" / "real.json")


def test_real_accuracy_of_the_65_reference_models(reference):
    m = _real_val(reference)
    sets = ML.LabelSets.from_lists(m.table.real_labels.tolist(), 1000)
    with np.load(reference / "imagenetv2" / "predictions" / "imagenet-validation-original.npz") as z:
        preds = {k: z[k] for k in z.files}
    assert len(preds) == 65
    rows = []
    for name, top5 in preds.items():
        r = ML.real_accuracy(top5, sets)
        assert (r.n_kept, r.n_dropped) == (46_837, 3_163)
        rows.append((name, float((top5[:, 0] == m.labels).mean()), r.top1, r.topk))
    df = pd.DataFrame(rows, columns=["model", "top1", "real_top1", "real_top5"]).set_index("model")
    assert df.loc["resnet50", "top1"] == pytest.approx(0.7613)  # the README's original figure
    for name, (top1, top5) in TIMM_REAL.items():
        assert 100 * df.loc[name, "real_top1"] == pytest.approx(top1, abs=0.02)
        assert 100 * df.loc[name, "real_top5"] == pytest.approx(top5, abs=0.02)
    # ReaL repairs wrong and too-narrow labels: every model gains, by 3.3 (fv_4k) to 8.0 points
    gain = df.real_top1 - df.top1
    assert (gain > 0.03).all() and (gain < 0.085).all()
    # the ranking holds, and the gains shrink as models get better (Beyer et al. 2020), over the 64 CNNs
    cnn = df[~df.index.str.startswith("fv_")]
    assert cnn.top1.corr(cnn.real_top1, method="spearman") > 0.98
    assert cnn.top1.corr(cnn.real_top1 - cnn.top1, method="spearman") < -0.85


def test_the_same_through_predict_and_multilabel_summary(reference):
    m = _real_val(reference)
    npz = reference / "imagenetv2" / "predictions" / "imagenet-validation-original.npz"
    p = predict(m, [f"predictions:{npz}#resnet50"], progress=False)
    s = multilabel_summary(m, p).iloc[0]
    assert s.top1 == pytest.approx(0.7613) and 100 * s.real_top1 == pytest.approx(82.96, abs=0.02)
    assert (s.real_kept, s.real_dropped) == (46_837, 3_163) and pd.isna(s.ml_accuracy)


def test_errors_are_shiftlab_errors():
    assert issubclass(LabelFileError, ShiftlabError) and issubclass(ML.MissingClassesError, ShiftlabError)
