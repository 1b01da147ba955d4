"""The shiftlab command line: tables, result files, and one-line errors with exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import TINY_NETS, make_folder
from shiftlab.cli import main

TINY = f"python:{TINY_NETS}:tiny"


def _logit(a):
    a = np.asarray(a, float) if not isinstance(a, pd.Series) else a.astype(float)
    return np.log(a / (1 - a))


def _expit(t):
    return 1 / (1 + np.exp(-t))


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_eval_reference_predictions_prints_and_writes_results(capsys, reference, tmp_path):
    preds = reference / "imagenetv2" / "predictions" / "imagenetv2-b-33.npz"
    out = tmp_path / "res" / "results.csv"
    code, stdout, _ = run(capsys, "eval", "--dataset", str(reference / "imagenetv2" / "imagenetv2-b-33.json"),
                          "--models", f"predictions:{preds}#resnet50,predictions:{preds}#alexnet", "--out", str(out))
    assert code == 0
    assert "63.33" in stdout and "84.65" in stdout and "imagenetv2-b-33" in stdout
    df = pd.read_csv(out)
    assert list(df.columns) == ["model", "dataset", "n_images", "n_bad", "top1", "top1_low", "top1_high", "top5"]
    r = df.set_index("model").loc["resnet50"]
    assert r.top1 == pytest.approx(0.6333) and r.top5 == pytest.approx(0.8465)
    assert (r.n_images, r.n_bad) == (10000, 0)
    assert r.top1_low < r.top1 < r.top1_high and r.top1_high - r.top1_low == pytest.approx(0.019, abs=0.001)
    pd.testing.assert_frame_equal(pd.read_parquet(out.with_suffix(".parquet")), df, check_dtype=False)


def test_register_a_folder_then_eval_it_by_name(capsys, tmp_path):
    folder = make_folder(tmp_path / "pets", per_class=5, bad={"x.jpg": b"oops"})
    code, stdout, _ = run(capsys, "datasets", "add", "pets-v1", str(folder))
    assert code == 0 and "11 images" in stdout
    code, stdout, _ = run(capsys, "datasets")
    assert "pets-v1" in stdout and "imagenet-1k" in stdout
    code, stdout, _ = run(capsys, "eval", "-d", "pets-v1", "-m", TINY, "--out", str(tmp_path / "r.csv"))
    assert code == 0
    assert "1 image(s) could not be decoded and were excluded: 1 not an image" in " ".join(stdout.split())
    r = pd.read_csv(tmp_path / "r.csv").iloc[0]
    assert (r.n_images, r.n_bad) == (11, 1)


def test_recipe_options_reach_the_model(capsys, tmp_path):
    folder = make_folder(tmp_path / "f", per_class=3)
    code, _, _ = run(capsys, "eval", "-d", str(folder), "-m", TINY, "--crop", "20", "--mean", "0.5,0.5,0.5")
    assert code == 0
    cells = [p.name for p in (tmp_path / "ws" / "predictions").glob("*/*")]
    from shiftlab.data.recipes import Recipe

    want = Recipe(resize=36, crop=20, mean=(0.5,) * 3).key()
    assert any(c.endswith(want) for c in cells), cells


def test_models_lists_schemes_and_what_to_install(capsys):
    code, stdout, _ = run(capsys, "models")
    assert code == 0
    text = " ".join(stdout.split())
    for scheme in ("torchscript:", "onnx:", "python:", "predictions:", "torchvision:", "timm:", "robustbench:"):
        assert scheme in text
    try:
        import torchvision  # noqa: F401
    except Exception:
        assert "pip install torchvision" in text


def test_models_add_registers_an_alias(capsys, tmp_path):
    folder = make_folder(tmp_path / "f", per_class=2)
    assert run(capsys, "models", "add", "tiny", TINY)[0] == 0
    code, stdout, _ = run(capsys, "eval", "-d", str(folder), "-m", "tiny")
    assert code == 0 and "tiny" in stdout


@pytest.mark.parametrize("argv, needle", [
    (["eval", "--dataset", "no-such-set", "--models", "x"], "neither a registered name nor a path"),
    (["eval", "--dataset", "{ref}/imagenetv2/imagenetv2-c-12.json", "--models", "resnet"], "unknown model"),
    (["eval", "--dataset", "{ref}/imagenetv2/imagenetv2-c-12.json", "--models", "torchvision:resnet50"], "pip install"),
    (["eval", "--dataset", "{ref}/imagenetv2/imagenetv2-c-12.json", "--models",
      "predictions:{ref}/imagenetv2/predictions/imagenet-validation-original.npz#resnet50"], "50000 rows"),
    (["eval", "--dataset", "{ref}/imagenetv2/imagenetv2-c-12.json", "--models",
      "predictions:{ref}/imagenetv2/predictions/imagenetv2-c-12.npz"], "address one as"),
    (["eval", "--dataset", "{ref}/imagenetv2/imagenetv2-c-12.json", "--layout", "pictures", "--models", "x:y"],
     "unknown layout"),
    (["eval", "--dataset", "x", "--models", "y", "--batch-size", "0"], "batch-size"),
    (["eval", "--dataset", "x"], "--models"),
    (["eval", "--no-such-option"], "No such option"),
    (["eval", "-d", "{ref}/imagenetv2/imagenetv2-c-12.json", "-m", "x", "--mean", "a,b"],
     "mean must be comma-separated"),
])
def test_bad_input_is_one_line_and_exit_2(argv, needle, reference, capsys):
    if "torchvision" in " ".join(argv):
        try:
            import torchvision  # noqa: F401
            pytest.skip("torchvision imports here; the missing-dependency message cannot appear")
        except Exception:
            pass
    code, stdout, stderr = run(capsys, *[a.replace("{ref}", str(reference)) for a in argv])
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert needle in lines[0]
    assert "Traceback" not in stderr + stdout


def test_console_script_exit_status_and_no_traceback(tmp_path):
    exe = Path(sys.executable).with_name("shiftlab")
    env = {**os.environ, "SHIFTLAB_HOME": str(tmp_path)}
    p = subprocess.run([str(exe), "eval", "--dataset", str(tmp_path / "missing"), "--models", "onnx:m.onnx"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    p = subprocess.run([str(exe), "--debug", "eval", "--dataset", str(tmp_path / "missing"), "--models", "x"],
                       capture_output=True, text=True, env=env)
    assert p.returncode != 0 and "Traceback" in p.stderr  # --debug shows where it came from


def test_world_build_and_zoo_train_commands(capsys, tmp_path):
    from shiftlab.world.zoo import ZOO

    assert run(capsys, "zoo", "train")[0] == 2  # no world yet: one line, exit 2
    code, stdout, _ = run(capsys, "world", "build")
    assert code == 0 and "world-pool" in stdout and "66 near-duplicates" in " ".join(stdout.split())
    code, stdout, _ = run(capsys, "zoo", "train", "--names", "linear,cnn-small")
    assert code == 0 and "world:cnn-small" in stdout and "trained now" in stdout
    code, stdout, _ = run(capsys, "zoo", "train", "--names", "linear")
    assert code == 0 and "yes" in stdout and "trained now" not in stdout
    code, stdout, _ = run(capsys, "eval", "-d", "world-test", "-m", "world:linear,world:cnn-small")
    rows = {line.split("│")[1].strip(): line for line in stdout.splitlines() if line.count("│") > 3}
    assert {"linear", "cnn-small"} <= set(rows) and "350" in rows["cnn-small"]
    assert len(ZOO) >= 8


def test_vocabulary_option_maps_folder_names(capsys, tmp_path):
    import json

    from helpers import write_image

    for c in ("cat", "dog"):
        for i in range(2):
            write_image(tmp_path / "pets" / c / f"{c}{i}.png", seed=i)
    vocab = tmp_path / "classes.json"
    vocab.write_text(json.dumps(["bird", "cat", "dog"]))
    code, stdout, _ = run(capsys, "datasets", "add", "pets", str(tmp_path / "pets"), "--vocabulary", str(vocab))
    assert code == 0 and "(classes)" in stdout
    from shiftlab.data.layouts import read_dataset

    m = read_dataset("pets", workspace=tmp_path / "ws")
    assert m.vocabulary.names == ["bird", "cat", "dog"] and sorted(set(m.labels)) == [1, 2]
    code, _, stderr = run(capsys, "datasets", "add", "x", str(tmp_path / "pets"), "--vocabulary", "klingon")
    assert code == 2 and "unknown vocabulary" in stderr


def test_robustness_from_the_testbed_results(capsys, reference, tmp_path):
    tb = reference / "testbed"
    v2 = "imagenetv2-matched-frequency-format-val"
    code, stdout, _ = run(capsys, "robustness", "--results", str(tb / "top1s.csv"), "--types",
                          str(tb / "model_types.csv"), "--id", "val", "--ood", v2,
                          "--n-boot", "100", "--out", str(tmp_path / "rb"))
    assert code == 0
    assert "slope 0.923, intercept -0.498 over 87 models" in stdout
    df = pd.read_csv(tmp_path / "rb" / "robustness.csv")
    assert df.in_reference.sum() == 87 and (tmp_path / "rb" / "robustness.png").is_file()
    std = df[df.in_reference]
    assert abs(std.effective_robustness.mean()) < 0.01  # the reference group sits on its own line
    # the line, fitted here by numpy in logit space over the testbed's own STANDARD rows (percent → fractions)
    top1s = pd.read_csv(tb / "top1s.csv").merge(pd.read_csv(tb / "model_types.csv"), on="model", how="left")
    acc = top1s.set_index("model")[["val", v2]].dropna() / 100
    ref = top1s.set_index("model").loc[acc.index, "type"] == "STANDARD"
    assert ref.sum() == 87 and sorted(std.model) == sorted(ref.index[ref])
    slope, intercept = np.polyfit(_logit(acc.val[ref]), _logit(acc[v2][ref]), 1)
    assert f"slope {slope:.3f}, intercept {intercept:.3f} over 87 models" in stdout
    predicted = _expit(slope * _logit(acc.val) + intercept)
    got = df.set_index("model")
    assert sorted(got.index) == sorted(acc.index)  # every model with both accuracies, whatever its type
    np.testing.assert_allclose(got.predicted_ood, predicted[got.index], rtol=1e-9)
    np.testing.assert_allclose(got.effective_robustness, (acc[v2] - predicted)[got.index], rtol=0, atol=1e-9)
    # e.g. the models trained on more data sit above the line of the standard ones (Taori et al. 2020)
    assert got.loc["efficientnet-l2-noisystudent", "effective_robustness"] == pytest.approx(
        acc.loc["efficientnet-l2-noisystudent", v2] - predicted["efficientnet-l2-noisystudent"], abs=1e-9)
    assert got.loc["efficientnet-l2-noisystudent", "effective_robustness"] > 0.01


def test_robustness_of_models_evaluated_here(capsys, tmp_path):
    assert run(capsys, "world", "build")[0] == 0
    specs = "world:linear,world:cnn-small,world:mlp"
    code, stdout, _ = run(capsys, "robustness", "--id", "world-test", "--ood", "world-pool", "--models", specs,
                          "--baseline", "linear", "--n-boot", "50", "--out", str(tmp_path / "rb"))
    assert code == 0
    got = pd.read_csv(tmp_path / "rb" / "robustness.csv").set_index("model")
    # the accuracies, measured on their own by `shiftlab eval` on each set
    acc = {}
    for name in ("world-test", "world-pool"):
        assert run(capsys, "eval", "-d", name, "-m", specs, "--out", str(tmp_path / f"{name}.csv"))[0] == 0
        acc[name] = pd.read_csv(tmp_path / f"{name}.csv").set_index("model").top1
    ida, ood = acc["world-test"], acc["world-pool"]
    assert sorted(got.index) == ["cnn-small", "linear", "mlp"] and got.in_reference.all()  # no types: all fitted
    np.testing.assert_allclose(got.id_acc, ida[got.index], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.ood_acc, ood[got.index], rtol=0, atol=1e-12)
    # relative robustness: shifted accuracy minus the baseline's (linear)
    relative = ood - ood["linear"]
    assert abs(relative["cnn-small"]) > 0.01 and abs(relative["mlp"]) > 0.001  # not 0 by construction
    np.testing.assert_allclose(got.relative_robustness, relative[got.index], rtol=0, atol=1e-12)
    # effective robustness: against the least-squares line in logit space over the three models
    slope, intercept = np.polyfit(_logit(ida), _logit(ood), 1)
    predicted = _expit(slope * _logit(ida) + intercept)
    effective = ood - predicted
    np.testing.assert_allclose(got.predicted_ood, predicted[got.index], rtol=1e-9)
    np.testing.assert_allclose(got.effective_robustness, effective[got.index], rtol=0, atol=1e-9)
    assert f"fit in logit space: slope {slope:.3f}, intercept {intercept:.3f} over 3 models" in stdout
    # the printed table shows the same numbers in points, sorted by effective robustness
    rows = {cells[0]: cells for line in stdout.splitlines() if line.count("│") > 5
            for cells in [[c.strip() for c in line.split("│")[1:-1]]]}
    assert list(rows) == list(effective.sort_values(ascending=False).index)
    for m, c in rows.items():
        assert c[2:5] == [f"{100 * ida[m]:.2f}", f"{100 * ood[m]:.2f}", f"{100 * predicted[m]:.2f}"], c
        assert c[5].startswith(f"{100 * effective[m]:+.2f} ["), c
        assert c[6] == f"{100 * relative[m]:+.2f}", c
    code, _, stderr = run(capsys, "robustness", "--id", "world-test", "--ood", "world-pool")
    assert code == 2 and "either --models" in stderr


def test_hits_make_reproduces_the_worlds_batch_and_import_reads_its_votes(capsys, tmp_path):
    import json

    assert run(capsys, "world", "build")[0] == 0
    world = tmp_path / "ws" / "world"
    code, stdout, _ = run(capsys, "hits", "make", "--pool", "world-pool", "--reference-val", "world-test",
                          "--seed", "1", "--annotate-val", "--out", str(tmp_path / "h"))
    assert code == 0 and "25 HITs for 10 classes" in stdout
    made = json.loads((tmp_path / "h" / "batch.json").read_text())["hits"]
    assert made == json.loads((world / "hits" / "batch.json").read_text())["hits"]
    header = (tmp_path / "h" / "input.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["hit_id", "class_index", "class_name", "gloss"] and header[-1] == "image_48"
    code, stdout, _ = run(capsys, "hits", "import", str(world / "hits" / "results.csv"), "--batch",
                          str(tmp_path / "h" / "batch.json"), "--pool", "world-pool")
    assert code == 0 and "≥ 10 valid annotations each" in stdout
    freq = pd.read_parquet(tmp_path / "h" / "frequencies.parquet")
    assert {"image_id", "class_index", "n_valid", "frequency"} <= set(freq.columns)
    from shiftlab.data.layouts import read_dataset

    pool = read_dataset("world-pool", workspace=tmp_path / "ws").table
    assert pool.selection_frequency.between(0, 1).all() and (pool.n_annotations >= 10).all()
    # a results file from another batch names HITs this batch does not have: one line, exit 2
    bad = tmp_path / "bad.csv"
    pd.read_csv(world / "hits" / "results.csv").assign(**{"Input.hit_id": "hit-9999-000", "HITId": "hit-9999-000"}
                                                       ).to_csv(bad, index=False)
    code, _, stderr = run(capsys, "hits", "import", str(bad), "--batch", str(tmp_path / "h" / "batch.json"))
    assert code == 2 and len(stderr.strip().splitlines()) == 1


def test_candidates_import_registers_a_pool(capsys, tmp_path):
    from helpers import write_image

    for c in ("three", "seven"):
        for i in range(3):
            write_image(tmp_path / "cands" / c / f"{c}-{i}.jpg", size=(60, 45), seed=i + (10 if c == "seven" else 0))
    (tmp_path / "cands" / "seven" / "broken.jpg").write_bytes(b"nope")
    code, stdout, _ = run(capsys, "candidates", "import", str(tmp_path / "cands"), "--name", "digits-cands",
                          "--vocabulary", "digits")
    assert code == 0 and "6 candidates in 2 classes" in stdout and "1 blacklisted" in stdout
    (tmp_path / "cands" / "eleven").mkdir()
    write_image(tmp_path / "cands" / "eleven" / "x.jpg")
    code, _, stderr = run(capsys, "candidates", "import", str(tmp_path / "cands"), "--name", "again",
                          "--vocabulary", "digits")
    assert code == 2 and "eleven" in stderr
    assert not (tmp_path / "ws" / "candidates" / "again").exists()  # nothing written


def test_dedup_queue_reviews_and_resolution_on_the_world(capsys, tmp_path):
    from shiftlab.world import load_world

    assert run(capsys, "world", "build")[0] == 0
    out = tmp_path / "dd"
    args = ["dedup", "--query", "world-pool", "--reference", "world-train,world-test,world-pool", "--metrics",
            "l2,phash", "-k", "10", "--size", "64", "--review-k", "2", "--threshold", "l2=9.2e6", "--out", str(out)]
    code, stdout, _ = run(capsys, *args)
    assert code == 0 and "queue rows" in stdout
    queue = pd.read_csv(out / "queue.csv")
    assert list(queue.columns)[:5] == ["query_id", "reference_id", "reference_split", "metric", "distance"]
    # a reviewer marks exactly the planted pairs in the queue as duplicates
    planted = {(d["id"], d["source_id"]) for d in load_world(tmp_path / "ws").truth()["duplicates"]}
    pairs = queue[["query_id", "reference_id"]].drop_duplicates()
    pairs["is_duplicate"] = [(q, r) in planted or (r, q) in planted for q, r in zip(pairs.query_id, pairs.reference_id)]
    assert pairs.is_duplicate.sum() >= 40
    pairs.rename(columns={"query_id": "query", "reference_id": "reference"}).assign(reviewer="ann").to_csv(
        tmp_path / "reviews.csv", index=False)
    code, stdout, _ = run(capsys, *args, "--reviews", str(tmp_path / "reviews.csv"))
    assert code == 0 and "excluded as near-duplicates" in stdout
    res = pd.read_parquet(out / "resolution.parquet").set_index("id")
    found = pairs[pairs.is_duplicate]
    copies_of_originals = {q for q, r in zip(found.query_id, found.reference_id) if r.startswith(("tr-", "te-"))}
    assert copies_of_originals and not res.loc[sorted(copies_of_originals), "keep"].any()
    code, _, stderr = run(capsys, *args[:-2], "--threshold", "l3=5")
    assert code == 2 and "metric must be one of" in stderr



def test_dedup_reads_review_thresholds_off_the_data(capsys, tmp_path):
    import json

    import numpy as np

    assert run(capsys, "world", "build")[0] == 0
    out = tmp_path / "dq"
    args = ["dedup", "--query", "world-pool", "--reference", "world-train,world-test,world-pool", "--metrics",
            "l2,phash,aligned", "-k", "10", "--review-k", "5", "--size", "64", "--out", str(out)]
    code, stdout, _ = run(capsys, *args, "--quantile", "0.02", "--threshold", "phash=3")
    assert code == 0 and "threshold" in stdout
    used = json.loads((out / "queue_thresholds.json").read_text())
    table = pd.read_parquet(out / "neighbours.parquet")
    looked_at = table[~table.is_self & ~table.same_source & (table["rank"] < 5)]
    l2 = looked_at[looked_at.metric == "l2"]
    # the 2 % quantile of what the reviewer would look at; aligned keeps its correlation threshold and an
    # explicit --threshold wins over the quantile
    assert used == {"l2": pytest.approx(np.quantile(l2.distance, 0.02)), "aligned": 0.02, "phash": 3.0}
    rows = {line.split()[1]: line.split()[3] for line in stdout.splitlines() if line.split()[1:2] in
            (["l2"], ["phash"], ["aligned"])}
    assert rows == {"l2": f"{used['l2']:.4g}", "phash": "3", "aligned": "0.02"}  # the table prints them
    queue = pd.read_csv(out / "queue.csv")
    assert (queue.metric == "l2").sum() == (l2.distance <= used["l2"]).sum() > 0
    assert queue.loc[queue.metric == "phash", "distance"].max() <= 3
    # a quantile outside (0, 1) is a one-line error, and nothing is written
    code, _, stderr = run(capsys, *args[:-1], str(tmp_path / "dq0"), "--quantile", "1.5")
    assert code == 2 and "quantile 1.5" in stderr and not (tmp_path / "dq0").exists()

def test_sample_revisions_from_the_worlds_votes(capsys, tmp_path):
    assert run(capsys, "world", "build")[0] == 0
    world = tmp_path / "ws" / "world"
    code, _, stderr = run(capsys, "sample", "--strategy", "top", "--pool", "world-pool", "--seed", "3", "--no-dedup")
    assert code == 2 and "hits import" in stderr  # no frequencies yet
    assert run(capsys, "hits", "import", str(world / "hits" / "results.csv"), "--batch",
               str(world / "hits" / "batch.json"), "--pool", "world-pool")[0] == 0
    fixed = ["--time-string", "2026-01-01_00:00:00_UTC", "--username", "ci"]
    revs = tmp_path / "ws" / "revisions"
    code, stdout, _ = run(capsys, "sample", "--strategy", "threshold", "--pool", "world-pool", "--seed", "3",
                          "--no-dedup", *fixed)
    assert code == 0 and "world-a-0: 100 images in 10 classes (valid)" in " ".join(stdout.split())
    first = (revs / "world-a-0.json").read_bytes()
    assert run(capsys, "sample", "--strategy", "threshold", "--pool", "world-pool", "--seed", "3", "--no-dedup",
               *fixed)[0] == 0
    assert (revs / "world-a-0.json").read_bytes() == first  # same inputs and seed: byte-identical
    import json

    doc = json.loads(first)
    from shiftlab.data.layouts import read_dataset

    pool = read_dataset("world-pool", workspace=tmp_path / "ws").table.set_index("id")
    chosen = [i for i, _ in doc["image_filenames"]]
    assert (pool.loc[chosen, "selection_frequency"] >= 0.7).all()
    m = read_dataset("world-a-0", workspace=tmp_path / "ws")
    assert list(m.ids) == chosen and m.has_images
    # a child revision keeps its parent's still-eligible images
    code, stdout, _ = run(capsys, "sample", "--strategy", "threshold", "--pool", "world-pool", "--seed", "4",
                          "--no-dedup", "--from", str(revs / "world-a-0.json"))
    assert code == 0 and "100 carried over" in stdout
    assert json.loads((revs / "world-a-1.json").read_text())["starting_from"] == "world-a-0.json"
    # a parent of another dataset or variant: one line, exit 2, nothing written
    assert run(capsys, "sample", "--strategy", "top", "--pool", "world-pool", "--seed", "3", "--no-dedup")[0] == 0
    code, _, stderr = run(capsys, "sample", "--strategy", "threshold", "--pool", "world-pool", "--seed", "3",
                          "--no-dedup", "--from", str(revs / "world-c-0.json"))
    assert code == 2 and "not of world-a" in stderr
    assert sorted(p.name for p in revs.iterdir()) == ["world-a-0.json", "world-a-1.json", "world-c-0.json"]
