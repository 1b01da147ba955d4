"""Components a person can judge (SPECS S3), on the digits world: the planted cues are found, the CLI draws,
ranks and opens them for review, and ``export`` folds the verdicts into the published shape."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shiftlab.analyze.spurious.components import class_components, visualisation_eps
from shiftlab.analyze.spurious.pca import fit_class, top_images
from shiftlab.cli import main
from shiftlab.models.specs import load_model
from shiftlab.predict.engine import predict

CUE_CLASSES = (2, 6, 9)


@pytest.fixture(scope="module")
def train_features(zoo_world):
    clf = load_model("world:cnn-medium-s0", workspace=zoo_world.workspace)
    train = zoo_world.manifest("train")
    p = predict(train, [clf], workspace=zoo_world.workspace, features=True, progress=False)[0]
    return clf, train, p.features, np.asarray(zoo_world.truth("train")["cue"])


def test_the_world_recovers_its_plants(train_features):
    """Per cue class, a component among its top 5 whose top-20 images carry that class's cue in ≥ 90 %; per
    cue-free class, how many of its top 5 components reach 90 % of images with any cue (false discoveries)."""
    clf, train, feats, cue = train_features
    w, b = (t.numpy() for t in clf.last_layer())
    labels = np.asarray(train.labels)
    found, false_discoveries = {}, {}
    for k in range(10):
        rows = np.flatnonzero(labels == k)
        pca = fit_class(feats[rows], w[k], float(b[k]), k)
        top = top_images(pca.alpha(feats[rows], slice(0, 5)), 20)
        if k in CUE_CLASSES:
            share = [(cue[rows][t] == k).mean() for t in top]
            found[k] = max(share)
            # the base rate is 80 %, so also ask that the best component beats it on its top images
            assert max(share) >= 0.9, (k, share)
        else:
            share = [(cue[rows][t] >= 0).mean() for t in top]
            false_discoveries[k] = sum(s >= 0.9 for s in share)
    assert sum(false_discoveries.values()) == 0, false_discoveries


def test_visualisations_stay_in_the_ball_and_rank_by_probability(train_features):
    clf, train, feats, _ = train_features
    cc = class_components(clf, feats, np.asarray(train.labels), 2, n_visualise=6, top=4, images=3, steps=15, seed=5)
    eps = visualisation_eps(32)
    assert cc.settings["eps"] == pytest.approx(30 * 32 / 224) and cc.settings["seed"] == 5
    probs = [c.probability for c in cc.components]
    assert probs == sorted(probs, reverse=True) and [c.rank for c in cc.components] == [1, 2, 3, 4]
    for c in cc.components:
        v = c.visualisation
        assert v.min() >= 0 and v.max() <= 1 and np.linalg.norm(v - 0.5) <= eps + 1e-4
        assert len(c.rows) == 3 and c.alpha == sorted(c.alpha, reverse=True)
    again = class_components(clf, feats, np.asarray(train.labels), 2, n_visualise=6, top=4, images=3, steps=15, seed=5)
    for c, d in zip(cc.components, again.components):
        assert c.index == d.index and np.array_equal(c.visualisation, d.visualisation)


def test_components_cli_review_task_and_export(zoo_world, tmp_path, capsys):
    from shiftlab.review.log import ReviewLog
    from shiftlab.review.tasks import load_task, log_path

    ws = str(zoo_world.workspace.root)
    code = main(["--quiet", "--workspace", ws, "spurious", "components", "-m", "world:cnn-medium-s0", "-d",
                 "world-train", "--classes", "2,9", "--top", "3", "--images", "4", "--visualise", "6", "--steps", "10",
                 "--out", str(tmp_path / "comps"), "--task", "spurious-test"])
    outp = capsys.readouterr().out
    assert code == 0, outp
    doc = json.loads((tmp_path / "comps" / "components.json").read_text())
    assert sorted(doc["classes"]) == ["2", "9"] and all(len(v) == 3 for v in doc["classes"].values())
    assert all((tmp_path / "comps" / "figures" / e["figure"]).is_file() for v in doc["classes"].values() for e in v)
    task = load_task("spurious-test", zoo_world.workspace)
    assert task["kind"] == "images" and len(task["items"]) == 6
    assert [d["name"] for d in task["config"]["decisions"]] == ["spurious", "not spurious", "inconsistent"]
    ids = [it["id"] for it in task["items"]]
    with ReviewLog(log_path(zoo_world.workspace)) as log:
        log.append(reviewer="ann", task="spurious-test", target=ids[0], decision="spurious")
        log.append(reviewer="ann", task="spurious-test", target=ids[1], decision="not spurious")
        log.append(reviewer="ann", task="spurious-test", target=ids[3], decision="spurious")
        log.append(reviewer="ann", task="spurious-test", target=ids[4], decision="inconsistent")
    out_file = tmp_path / "spurious_components.json"
    assert main(["--quiet", "--workspace", ws, "spurious", "export", "--task", "spurious-test", "--out",
                 str(out_file)]) == 0
    got = json.loads(out_file.read_text())
    expected = {"2": [doc["classes"]["2"][0]["component"]], "9": [doc["classes"]["9"][0]["component"]]}
    assert got == expected
    assert main(["--quiet", "--workspace", ws, "spurious", "export", "--task", "no-such-task"]) == 2


def test_decomposition_identity_on_a_world_model(train_features, zoo_world):
    """S3's identity on the real features of a zoo CNN: every fit image and unseen test images, every class."""
    clf, train, feats, _ = train_features
    test = zoo_world.manifest("test")
    test_feats = predict(test, [clf], workspace=zoo_world.workspace, features=True, progress=False)[0].features
    w, b = (t.numpy() for t in clf.last_layer())
    labels = np.asarray(train.labels)
    for k in range(10):
        rows = np.flatnonzero(labels == k)
        pca = fit_class(feats[rows], w[k], float(b[k]), k)
        for f in (feats[rows], test_feats):
            total = pca.alpha(f).astype(np.float64).sum(1) + pca.mean.astype(np.float64).sum() + pca.bias
            err = np.abs(total - pca.logit(f)) / np.maximum(1.0, np.abs(pca.z(f)).sum(1))
            assert err.max() <= 1e-4, (k, err.max())
        assert pca.n_fit == len(rows) and pca.dim == feats.shape[1] > pca.n_fit  # N_k < D here
