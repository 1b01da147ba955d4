"""The spurious score (SPECS S3, issue 14.4): AP (the published "Spurious AUC") and ROC-AUC of p_k, per class, mean
and joint; the published spurious_score.txt; the CLI; and on the world, a cue-free model against the zoo."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from shiftlab.analyze.spurious.score import (
    TABLE_COLUMNS,
    SpuriousScoreWarning,
    format_score_txt,
    negative_classes,
    score_classes,
    softmax32,
)
from shiftlab.errors import InputError


def probs_with(k: int, pk: np.ndarray, n_out: int = 4) -> np.ndarray:
    """Rows of probabilities over ``n_out`` classes whose column k is ``pk`` (the rest spread evenly)."""
    pk = np.asarray(pk, np.float64)
    p = np.repeat(((1 - pk) / (n_out - 1))[:, None], n_out, axis=1)
    p[:, k] = pk
    return p.astype(np.float32)


# --- the arithmetic -------------------------------------------------------------------------------------------
def test_perfect_separation_scores_one():
    pos = probs_with(1, [0.9, 0.8, 0.7])
    neg = probs_with(1, [0.1, 0.2, 0.3, 0.05])
    r = score_classes(pos, [1, 1, 1], neg, [1, 1, 1, 1])
    row = r.table.iloc[0]
    assert row["ap"] == 1.0 and row["roc_auc"] == 1.0
    assert r.mean_ap == r.joint_ap == r.mean_roc_auc == r.joint_roc_auc == 1.0
    assert r.n_classes == 1 and not r.excluded and not r.warnings


@pytest.mark.parametrize("n_pos,n_neg", [(3, 5), (7, 2), (1, 1)])
def test_constant_scores_give_roc_half_and_ap_the_positive_share(n_pos, n_neg):
    pos = probs_with(2, np.full(n_pos, 0.4))
    neg = probs_with(2, np.full(n_neg, 0.4))
    r = score_classes(pos, [2] * n_pos, neg, [2] * n_neg)
    row = r.table.iloc[0]
    assert row["roc_auc"] == 0.5
    assert row["ap"] == pytest.approx(n_pos / (n_pos + n_neg), abs=1e-15)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.integers(1, 30), st.booleans())
def test_agrees_with_sklearn_on_random_cases(seed, n_pos, n_neg, coarse):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n_pos + n_neg, 5)).astype(np.float32)
    if coarse:  # many exact ties
        logits = np.round(logits)
    p = softmax32(logits)
    r = score_classes(p[:n_pos], np.full(n_pos, 3), p[n_pos:], np.full(n_neg, 3))
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    s = p[:, 3]
    row = r.table.iloc[0]
    assert abs(row["ap"] - average_precision_score(y, s)) <= 1e-12
    assert abs(row["roc_auc"] - roc_auc_score(y, s)) <= 1e-12
    assert row["positives_mean_prob"] == pytest.approx(float(s[:n_pos].astype(np.float64).mean()), abs=1e-12)


def test_softmax_is_float32_over_all_outputs():
    logits = np.array([[0.0, 1.0, 2.0], [5.0, 5.0, 5.0]], np.float32)
    p = softmax32(logits)
    assert p.dtype == np.float32
    e = np.exp(np.array([0.0, 1.0, 2.0]))
    np.testing.assert_allclose(p[0], e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(p[1], [1 / 3] * 3, rtol=1e-6)


def test_class_without_negatives_is_left_out_with_a_warning():
    pos = probs_with(0, [0.9, 0.2]), probs_with(1, [0.6, 0.7])
    neg = probs_with(0, [0.1, 0.5])
    with pytest.warns(SpuriousScoreWarning) as rec:
        r = score_classes(np.r_[pos[0], pos[1]], [0, 0, 1, 1], neg, [0, 0], classes=[0, 1],
                          class_names=["zero", "one", "two", "three"])
    assert [str(w.message) for w in rec] == ["class 1 (one) left out of the spurious score: no negatives",
                                             "spurious score over 1 of 2 classes (1 left out)"] == r.warnings
    assert r.n_classes == 1 and r.excluded == {1: "no negatives"}
    assert list(r.table["class"]) == [0]
    # class 0: positives 0.9, 0.2 against negatives 0.1, 0.5 → ranking 0.9+ 0.5- 0.2+ 0.1-
    assert r.mean_ap == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert r.mean_roc_auc == pytest.approx(3 / 4)
    assert not np.isnan([r.mean_ap, r.joint_ap, r.mean_roc_auc, r.joint_roc_auc]).any()


def test_class_without_positives_is_left_out_and_no_class_at_all_is_an_error():
    # negatives of classes 2 and 3 (the default classes), positives of class 2 only
    neg = np.r_[probs_with(2, [0.1]), probs_with(3, [0.2, 0.3])]
    pos = probs_with(2, [0.9, 0.05])
    with pytest.warns(SpuriousScoreWarning) as rec:
        r = score_classes(pos, [2, 2], neg, [2, 3, 3])
    assert "class 3 (3) left out of the spurious score: no positives" in [str(w.message) for w in rec]
    assert r.n_classes == 1 and r.excluded == {3: "no positives"} and list(r.table["class"]) == [2]
    assert r.mean_roc_auc == pytest.approx(0.5) and r.joint_roc_auc == pytest.approx(0.5)  # 0.9+ 0.1- 0.05+
    assert r.mean_ap == pytest.approx((1 + 2 / 3) / 2)
    with pytest.raises(InputError, match="no class has both positives and negatives .*3 no positives"):
        score_classes(pos, [2, 2], neg[1:], [3, 3])


def test_joint_pools_every_class_with_its_own_p_k():
    # class 0: positive p_0 = 0.6, negative p_0 = 0.5; class 1: positive p_1 = 0.4, negative p_1 = 0.3.
    # Each class alone separates perfectly (AP 1, ROC 1) but pooled, the class-0 negative (0.5) outranks the
    # class-1 positive (0.4): ranking 0.6+ 0.5- 0.4+ 0.3- → AP = (1/1 + 2/3)/2, ROC = 3/4.
    pos = np.r_[probs_with(0, [0.6]), probs_with(1, [0.4])]
    neg = np.r_[probs_with(0, [0.5]), probs_with(1, [0.3])]
    r = score_classes(pos, [0, 1], neg, [0, 1])
    assert list(r.table["ap"]) == [1.0, 1.0] and r.mean_ap == 1.0 and r.mean_roc_auc == 1.0
    assert r.joint_ap == pytest.approx(5 / 6)
    assert r.joint_roc_auc == pytest.approx(3 / 4)


def test_frac_predicted_is_argmax_over_all_outputs():
    pos = np.array([[0.1, 0.7, 0.2], [0.5, 0.4, 0.1], [0.2, 0.6, 0.2]], np.float32)  # argmax 1, 0, 1
    neg = np.array([[0.3, 0.35, 0.35], [0.2, 0.5, 0.3]], np.float32)  # argmax 1 (tie 1/2: first), 1
    r = score_classes(pos, [1, 1, 1], neg, [1, 1])
    row = r.table.iloc[0]
    assert row["positives_frac_predicted"] == pytest.approx(2 / 3)
    assert row["negatives_frac_predicted"] == 1.0
    assert row["positives_mean_prob"] == pytest.approx((0.7 + 0.4 + 0.6) / 3, abs=1e-7)
    assert row["negatives_mean_prob"] == pytest.approx((0.35 + 0.5) / 2, abs=1e-7)
    assert list(r.table.columns) == TABLE_COLUMNS


def test_class_beyond_the_outputs_is_an_error():
    with pytest.raises(InputError, match="beyond the model's 4 outputs"):
        score_classes(probs_with(0, [0.5]), [0], probs_with(0, [0.5]), [7])


# --- the published text file ----------------------------------------------------------------------------------
TXT_EXPECTED = """\
Mean SpuriousScore: 0.917 - Joint SpuriousScore: 0.867
+-----+-------+--------------+----------------------+--------------------+----------------------------+--------------------------+
| Idx | Class | Spurious AUC | Validation Mean Prob | Spurious Mean Prob | Frac Validation labeled as | Frac Spurious labeled as |
+-----+-------+--------------+----------------------+--------------------+----------------------------+--------------------------+
|  0  |  zero |    0.8333    |        0.5500        |       0.3000       |           0.5000           |          0.5000          |
|  2  |  two  |    1.0000    |        0.6000        |       0.2000       |           1.0000           |          0.0000          |
+-----+-------+--------------+----------------------+--------------------+----------------------------+--------------------------+"""  # noqa: E501


def test_spurious_score_txt_has_the_published_shape(tmp_path):
    # class 0: positives 0.9 (argmax 0) and 0.2 (argmax elsewhere: 0.8/3 > 0.2); negatives 0.5 (argmax 0) and 0.1
    #   ranking 0.9+ 0.5- 0.2+ 0.1- → AP = (1 + 2/3)/2 = 0.8333; ROC 3/4
    # class 2: positive 0.6 against negative 0.2 → AP 1, ROC 1; mean AP = 0.9167
    # joint: 0.9+ 0.6+ 0.5- {0.2+ 0.2-} 0.1- (the tie at 0.2 is one threshold):
    #   AP = 1/3·1 + 1/3·1 + 1/3·3/5 = 0.8667
    pos = np.r_[probs_with(0, [0.9, 0.2]), probs_with(2, [0.6])]
    neg = np.r_[probs_with(0, [0.5, 0.1]), probs_with(2, [0.2])]
    r = score_classes(pos, [0, 0, 2], neg, [0, 0, 2], class_names=["zero", "one", "two", "three"])
    y = [1, 1, 1, 0, 0, 0]
    s = np.r_[pos[[0, 1], 0], pos[2, 2], neg[[0, 1], 0], neg[2, 2]]
    assert r.joint_ap == pytest.approx(average_precision_score(y, s))
    assert r.mean_ap == pytest.approx((5 / 6 + 1) / 2) and r.joint_ap == pytest.approx(2 / 3 + 1 / 5)
    assert format_score_txt(r) == TXT_EXPECTED
    paths = r.write(tmp_path / "m")
    assert [p.name for p in paths] == ["spurious_score.txt", "spurious_score.csv", "spurious_score.parquet"]
    assert (tmp_path / "m" / "spurious_score.txt").read_text() == TXT_EXPECTED
    csv = pd.read_csv(tmp_path / "m" / "spurious_score.csv")
    assert list(csv.columns) == TABLE_COLUMNS and list(csv["class"]) == [0, 2]
    assert csv["roc_auc"].tolist() == pytest.approx([0.75, 1.0])
    pq = pd.read_parquet(tmp_path / "m" / "spurious_score.parquet")
    pd.testing.assert_frame_equal(pq, r.table[TABLE_COLUMNS])


# --- which class each negative belongs to ---------------------------------------------------------------------
def _manifest(**cols):
    from shiftlab.data.classes import digits
    from shiftlab.data.manifest import Manifest

    n = len(next(iter(cols.values())))
    df = pd.DataFrame({"id": [f"i{i}" for i in range(n)], "path": [None] * n, "sha256": [None] * n,
                       "label": cols.pop("label", [-1] * n), **cols})
    return Manifest(df, name="negs", vocabulary=digits())


def test_negative_classes_from_class_column_or_option():
    m = _manifest(label=[3, -1, 4], cue_class=[2, 2, 9])
    assert negative_classes(m).tolist() == [2, 2, 9]  # the world's cue_class by default
    m2 = _manifest(label=[3, 3], spurious_class=[5, 5], cue_class=[1, 1])
    assert negative_classes(m2).tolist() == [5, 5]  # spurious_class first
    assert negative_classes(m2, by="cue_class").tolist() == [1, 1]
    assert negative_classes(m2, klass=7).tolist() == [7, 7]
    with pytest.raises(InputError, match="--class K"):
        negative_classes(_manifest(label=[1, 2]))
    with pytest.raises(InputError, match="not both"):
        negative_classes(m2, by="cue_class", klass=1)
    with pytest.raises(InputError, match="outside the 10 classes"):
        negative_classes(m2, klass=10)
    with pytest.raises(InputError, match="no column 'nope'"):
        negative_classes(m2, by="nope")


# --- on the world ---------------------------------------------------------------------------------------------
def _cue_free_classifier(world):
    """The zoo's ``mlp`` (same architecture, settings and seed) trained on cue-free data: world-train with every
    image that carries a cue removed, and the few cue-free images left of the cue classes (2, 6, 9: about 20 each
    against about 100 of the other digits) repeated to the other classes' count, so that the model is not merely
    shy of predicting those classes."""
    import hashlib

    from shiftlab.data.recipes import RECIPES
    from shiftlab.models.classifier import TorchClassifier
    from shiftlab.models.train import train_classifier
    from shiftlab.world.zoo import ZOO, build_module, training_data

    train = world.manifest("train")
    cue = world.truth("train").set_index("id").loc[train.ids, "cue"].to_numpy()
    cue_free = train.subset(cue < 0, name="world-train-cue-free")
    data = training_data(cue_free, RECIPES["world"], world.workspace, progress=False)
    labels = data.labels.numpy()
    counts = np.bincount(labels, minlength=10)
    rows = np.sort(np.concatenate([np.tile(np.flatnonzero(labels == k), round(counts.max() / counts[k]))
                                   for k in range(10)]))
    config = ZOO["mlp"]
    module = build_module(config, tuple(data.pixels.shape[1:]), data.n_classes)
    module, _ = train_classifier(module, data.pixels[rows], data.labels[rows], config.settings(),
                                 normalize=RECIPES["world"].normalize, progress=False)
    digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in module.state_dict().values())).hexdigest()[:16]
    return TorchClassifier(module, RECIPES["world"], name="cue-free-mlp", key=f"test:cue-free-mlp@{digest}"), cue


def test_on_the_world_a_cue_free_model_scores_higher_than_the_cue_trained_zoo(zoo_world):
    from conftest import ZOO_WORLD_MODELS
    from shiftlab.analyze.spurious.score import spurious_score

    clf, cue = _cue_free_classifier(zoo_world)
    assert (cue >= 0).sum() > 200  # the zoo's training set does carry the cues
    models = [f"world:{m}" for m in ZOO_WORLD_MODELS] + [clf]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpuriousScoreWarning)  # every cue class has positives and negatives
        res = spurious_score(models, "world-test", "world-spurious", workspace=zoo_world.workspace, progress=False)
    for r in res:  # shown with -s: the figures behind the assertions
        print(f"\n{r.model}: mean AP {r.mean_ap:.4f} joint AP {r.joint_ap:.4f} mean ROC-AUC {r.mean_roc_auc:.4f} "
              f"joint ROC-AUC {r.joint_roc_auc:.4f}")
        print(r.table.drop(columns="class_name").round(4).to_string(index=False))
    by = {r.model: r for r in res}
    free, zoo = by["cue-free-mlp"], [by[m] for m in ZOO_WORLD_MODELS]
    test = zoo_world.manifest("test")
    for r in res:
        assert r.n_classes == 3 and list(r.table["class"]) == [2, 6, 9]
        assert r.table["n_negatives"].tolist() == [30, 30, 30]  # the world's cue images per spurious class
        assert r.table["n_positives"].tolist() == [int((test.labels == k).sum()) for k in (2, 6, 9)]
    # same architecture, settings and seed, cue-trained against cue-free: the cue-free one scores higher
    mlp = by["mlp"]
    assert free.mean_ap > mlp.mean_ap and free.joint_ap > mlp.joint_ap
    assert free.mean_roc_auc > mlp.mean_roc_auc and free.joint_roc_auc > mlp.joint_roc_auc
    # against every cue-trained zoo model: images of a cue without its class get a lower p_k, and fewer of them
    # are called that class
    for r in zoo:
        assert (free.table["negatives_mean_prob"].to_numpy() < r.table["negatives_mean_prob"].to_numpy()).all(), r.model
        assert free.table["negatives_frac_predicted"].mean() < r.table["negatives_frac_predicted"].mean(), r.model


def test_cli_score_on_the_world_writes_the_published_files(zoo_world, tmp_path, capsys):
    from helpers import write_image
    from shiftlab.cli import main

    def run(*argv):
        code = main(["--quiet", "--workspace", str(zoo_world.workspace.root), "spurious", "score", *argv])
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    out = tmp_path / "scores"
    code, stdout, _ = run("-m", "world:mlp,world:cnn-medium-s0", "--positives", "world-test",
                          "--negatives", "world-spurious", "--out", str(out))
    assert code == 0, stdout
    assert "Joint ROC-AUC:" in stdout
    for m in ("mlp", "cnn-medium-s0"):
        txt = (out / m / "spurious_score.txt").read_text()
        lines = txt.split("\n")
        assert lines[0].startswith("Mean SpuriousScore: ") and len(lines) == 8 and lines[-1].startswith("+-")
        assert lines[2].split("|")[1:-1] == [f" {h} " for h in (
            "Idx", "Class", "Spurious AUC", "Validation Mean Prob", "Spurious Mean Prob",
            "Frac Validation labeled as", "Frac Spurious labeled as")]
        assert [ln.split("|")[1].strip() for ln in lines[4:7]] == ["2", "6", "9"]
        assert [ln.split("|")[2].strip() for ln in lines[4:7]] == ["two", "six", "nine"]
        csv = pd.read_csv(out / m / "spurious_score.csv")
        assert list(csv["class"]) == [2, 6, 9] and csv["roc_auc"].between(0, 1).all()
        # the file's AP column is the CSV's, to four decimals, and line 1 its mean
        assert [float(ln.split("|")[3]) for ln in lines[4:7]] == [round(x, 4) for x in csv["ap"]]
        assert lines[0].split(" - ")[0] == f"Mean SpuriousScore: {csv['ap'].mean():.3f}"
        assert lines[0] in stdout
    summary = pd.read_csv(out / "spurious_scores.csv")
    assert summary["model"].tolist() == ["mlp", "cnn-medium-s0"] and (summary["n_classes"] == 3).all()

    # a user's own folder of one class's spurious feature: --negatives FOLDER --class K
    folder = tmp_path / "my-cues"
    for i in range(4):
        write_image(folder / f"c{i}.png", size=(32, 32), seed=i)
    code, stdout, _ = run("-m", "world:mlp", "--positives", "world-test", "--negatives", str(folder),
                          "--class", "5", "--out", str(tmp_path / "own"))
    assert code == 0, stdout
    csv = pd.read_csv(tmp_path / "own" / "mlp" / "spurious_score.csv")
    assert csv["class"].tolist() == [5] and csv["n_negatives"].tolist() == [4]
    assert csv["n_positives"].tolist() == [int((zoo_world.manifest("test").labels == 5).sum())]

    # bad input: one line, exit 2
    code, stdout, err = run("-m", "world:mlp", "--positives", "world-test", "--negatives", "world-test")
    assert code == 2 and "--class K" in err and len(err.strip().splitlines()) == 1
    code, _, err = run("-m", "world:mlp", "--positives", "world-test", "--negatives", "world-spurious",
                       "--classes", "2,x")
    assert code == 2 and "--classes" in err
