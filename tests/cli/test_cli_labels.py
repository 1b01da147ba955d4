"""The CLI of issue 6: ``eval --labels``, ``mistakes``, ``confusions`` and ``label-issues``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import ZOO_WORLD_MODELS
from shiftlab.analyze.mistakes import NOT_A_MISTAKE, read_mistakes
from shiftlab.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _flat(s: str) -> str:
    return " ".join(s.split())


def test_eval_reports_real_accuracy_of_the_65_reference_models(capsys, reference, tmp_path):
    npz = reference / "imagenetv2" / "predictions" / "imagenet-validation-original.npz"
    with np.load(npz) as z:
        names = list(z.files)
    specs = ",".join(f"predictions:{npz}#{n}" for n in names)
    code, stdout, err = run(capsys, "eval", "-d", str(reference / "imagenetv2" / "imagenet-validation-original.json"),
                            "-m", specs, "--labels", f"real:{reference / 'real' / 'real.json'}",
                            "--out", str(tmp_path / "r.csv"))
    assert code == 0, err
    text = _flat(stdout)
    assert "ReaL: 46,837 images kept, 3,163 with an empty label set dropped" in text
    assert "│ resnet50 │ 76.13 │ 82.96 │ 95.47 │" in text
    df = pd.read_csv(tmp_path / "r-labels.csv").set_index("model")
    assert len(df) == 65 and (df.real_kept == 46_837).all() and (df.real_top1 > df.top1).all()
    assert df.loc["resnet50", "real_top1"] == pytest.approx(0.8296, abs=2e-4)


def test_eval_with_tfds_labels_on_the_world(capsys, zoo_world, tmp_path):
    ws = str(zoo_world.workspace.root)
    ml = zoo_world.root / "multilabel"
    code, stdout, err = run(capsys, "-w", ws, "eval", "-d", "world-multilabel", "-m", "world:mlp",
                            "--labels", f"tfds:{ml / 'validation.jsonl'}", "--labels",
                            f"imagenet-m:{ml / 'imagenet_m.jsonl'}", "--out", str(tmp_path / "e.csv"))
    assert code == 0, err
    text = _flat(stdout)
    assert "multi-label %" in text and "ImageNet-M" in text
    assert "multi-label: 280 images scored over all 10 classes; 20 problematic dropped" in text
    # the label files give the same figures as the columns the world's manifest carries
    from shiftlab.analyze.multilabel import multilabel_summary
    from shiftlab.predict.engine import predict

    m = zoo_world.manifest("multilabel")
    want = multilabel_summary(m, predict(m, ["world:mlp"], workspace=zoo_world.workspace, progress=False)).iloc[0]
    got = pd.read_csv(tmp_path / "e-labels.csv").iloc[0]
    assert got.ml_accuracy == pytest.approx(want.ml_accuracy) and got.imagenet_m_correct == want.imagenet_m_correct
    assert got.imagenet_m_size == 30 and got.ml_accuracy > got.top1
    assert f"{got.imagenet_m_correct}/30" in text


def test_a_missing_class_needs_allow_missing_classes(capsys, zoo_world, tmp_path):
    ws = str(zoo_world.workspace.root)
    records = [json.loads(s) for s in (zoo_world.root / "multilabel" / "validation.jsonl").read_text().splitlines()]
    f = tmp_path / "no-nines.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in records if r["original_label"] != 9))
    code, _, err = run(capsys, "-w", ws, "eval", "-d", "world-multilabel", "-m", "world:mlp", "--labels", f"tfds:{f}")
    assert code == 2 and err.count("\n") == 1
    assert "1 of 10 classes have no scored" in err and "--allow-missing-classes" in err
    code, stdout, err = run(capsys, "-w", ws, "eval", "-d", "world-multilabel", "-m", "world:mlp", "--labels",
                            f"tfds:{f}", "--allow-missing-classes")
    assert code == 0, err
    assert "over 9 of 10 classes" in _flat(stdout)


@pytest.mark.parametrize("labels, message", [
    ("gold:x.json", "give real:PATH"),
    ("real:/nonexistent/real.json", "no such file"),
])
def test_bad_label_sources_are_one_line_errors(capsys, zoo_world, labels, message):
    code, _, err = run(capsys, "-w", str(zoo_world.workspace.root), "eval", "-d", "world-multilabel", "-m",
                       "world:mlp", "--labels", labels)
    assert code == 2 and message in err and err.count("\n") == 1


def test_real_labels_do_not_fit_the_world(capsys, zoo_world, reference):
    code, _, err = run(capsys, "-w", str(zoo_world.workspace.root), "eval", "-d", "world-multilabel", "-m",
                       "world:mlp", "--labels", f"real:{reference / 'real' / 'real.json'}")
    assert code == 2 and err.count("\n") == 1
    assert "outside 0..9" in err  # real.json's classes run to 999; the world has 10


def test_mistakes_command_on_the_world(capsys, zoo_world, tmp_path):
    ws = str(zoo_world.workspace.root)
    out, queue = tmp_path / "cnn_mistakes.json", tmp_path / "queue.json"
    code, stdout, err = run(capsys, "-w", ws, "mistakes", "-m", f"world:{ZOO_WORLD_MODELS[-1]}", "-d",
                            "world-multilabel", "--out", str(out), "--queue", str(queue))
    assert code == 0, err
    text = _flat(stdout)
    assert "of 280 scored images" in text and "Not a mistake" in text and "Fine-grained error" in text
    assert "checks skipped" not in text  # the world provides multi-labels, hierarchy, neighbours and cues
    table = pd.read_csv(out.with_suffix(".csv"))
    records = read_mistakes(out)
    assert len(records) == (table.category != NOT_A_MISTAKE).sum() > 0
    assert set(records.file_name) == set(table.id[table.category != NOT_A_MISTAKE])
    items = json.loads(queue.read_text())["items"]
    assert len(items) == len(table) and {"id", "suggested_category", "severity", "evidence"} <= set(items[0])


def test_mistakes_without_a_training_set_or_cues_says_what_it_skipped(capsys, zoo_world, tmp_path):
    ws = str(zoo_world.workspace.root)
    bad = tmp_path / "cues.json"
    bad.write_text("[1, 2]")
    code, _, err = run(capsys, "-w", ws, "mistakes", "-m", "world:mlp", "-d", "world-multilabel", "--cues", str(bad))
    assert code == 2 and "expected a JSON object" in err and err.count("\n") == 1
    # a set outside the world: a folder of two classes read with the digits vocabulary
    m = zoo_world.manifest("test")
    csv = tmp_path / "few.csv"
    pd.DataFrame({"path": [str(p) for p in m.abspaths()[:40]], "label": m.labels[:40]}).to_csv(csv, index=False)
    code, stdout, err = run(capsys, "-w", ws, "mistakes", "-m", "world:mlp", "-d", str(csv))
    assert code == 0, err
    assert "checks skipped for lack of input: multilabels, neighbours, cues" in _flat(stdout)


def test_confusions_command(capsys, zoo_world, tmp_path):
    models = ",".join(f"world:{n}" for n in ZOO_WORLD_MODELS)
    code, stdout, err = run(capsys, "-w", str(zoo_world.workspace.root), "confusions", "-m", models, "-d",
                            "world-test", "--top", "5", "--out", str(tmp_path / "c"))
    assert code == 0, err
    df = pd.read_csv(tmp_path / "c" / "confusions.csv")
    assert (df.a < df.b).all() and (tmp_path / "c" / "confusions.png").stat().st_size > 5_000
    assert f"{df.a_name[0]} ({df.a[0]})" in stdout and f"of {len(ZOO_WORLD_MODELS)} model(s)" in _flat(stdout)


def test_label_issues_command(capsys, zoo_world, tmp_path):
    models = ",".join(f"world:{n}" for n in ZOO_WORLD_MODELS)
    code, stdout, err = run(capsys, "-w", str(zoo_world.workspace.root), "label-issues", "-d", "world-test", "-m",
                            models, "--top", "5", "--out", str(tmp_path / "issues.csv"))
    assert code == 0, err
    df = pd.read_csv(tmp_path / "issues.csv")
    planted = {e["id"] for e in zoo_world.truth()["label_errors"]}
    assert len(df) == 350 and df.id.head(5).isin(planted).all()
    assert all(i in stdout for i in df.id.head(5))


def test_mistakes_confirmed_in_the_review_app_export_as_vit3b_records(capsys, zoo_world, tmp_path):
    """Suggestions → a review-app queue → a person changes two of them → the final *_mistakes.json."""
    from fastapi.testclient import TestClient

    from shiftlab.analyze.mistakes import MAJOR
    from shiftlab.review.app import TOKEN_HEADER, create_app

    ws = zoo_world.workspace
    model = f"world:{ZOO_WORLD_MODELS[-1]}"
    code, stdout, err = run(capsys, "-w", str(ws.root), "mistakes", "-m", model, "-d", "world-multilabel",
                            "--review-task", "confirm-mistakes", "--out", str(tmp_path / "auto_mistakes.json"))
    assert code == 0, err
    assert "review task 'confirm-mistakes'" in _flat(stdout)
    auto = read_mistakes(tmp_path / "auto_mistakes.json").set_index("file_name")
    with TestClient(create_app(ws, token="t", reviewer="curator")) as c:
        items = c.get("/api/tasks/confirm-mistakes/items", headers={TOKEN_HEADER: "t"}).json()["items"]
        assert len(items) == len(auto) and all(it["suggestion"] for it in items)
        changed = {items[0]["id"]: (MAJOR, "Major"), items[1]["id"]: ("Fine-grained error", "Minor")}
        for target, (category, severity) in changed.items():
            r = c.post("/api/tasks/confirm-mistakes/decisions", headers={TOKEN_HEADER: "t"},
                       json={"target": target, "decision": category, "reason": severity})
            assert r.status_code == 200, r.text
    final_path = tmp_path / "final_mistakes.json"
    code, stdout, err = run(capsys, "-w", str(ws.root), "mistakes", "-m", model, "-d", "world-multilabel",
                            "--reviewed", "confirm-mistakes", "--out", str(final_path))
    assert code == 0, err
    assert "2 decided in review task 'confirm-mistakes'" in _flat(stdout)
    final = read_mistakes(final_path).set_index("file_name")
    for target, (category, severity) in changed.items():
        key = next(f for f in final.index if f.startswith(target))
        assert (final.loc[key, "category"], final.loc[key, "severity"]) == (category, severity)
    untouched = [f for f in final.index if not any(f.startswith(t) for t in changed)]
    assert len(untouched) == len(final) - 2
    assert (final.loc[untouched, "category"] == auto.loc[untouched, "category"]).all()
    code, _, err = run(capsys, "-w", str(ws.root), "mistakes", "-m", model, "-d", "world-multilabel",
                       "--reviewed", "confirm-mistakes")
    assert code == 2 and "--out" in err
