"""``shiftlab easyset``: the published notes audited from the command line (the figures printed beside the
published ones), the released ranking shown, and bad input refused with one line and exit 2."""

from __future__ import annotations

from shiftlab.cli import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["--quiet", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_import_notes_prints_the_audit(capsys, reference, tmp_path):
    f = reference / "s-r50-n"
    code, out, _ = run(capsys, "easyset", "import-notes", str(f / "notes.txt"), "--ranking", str(f / "safebets.json"),
                       "--removed-list", str(f / "removed_or_modified.txt"), "--out", str(tmp_path / "audit"))
    assert code == 0
    assert "553 class notes → 1067 records (remove 849, crop 108, add 109, exclude 1)" in out
    assert "16 statement(s) the rules could not map" in out
    assert "assumed: 3 removal(s) in classes 501, 618" in out
    assert "conflict: class 503 names ILSVRC2012_val_00038514.JPEG as crop and remove" in out
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]]
            for line in out.splitlines() if line.startswith("│") and line.count("│") >= 6}
    assert rows["classes clean as ranked"] == ["447", "447", "452"]
    assert rows["classes needing additions"] == ["73", "73", "73"]
    assert rows["still short"] == ["17", "17", "17"] and rows["images added in them"] == ["109", "109", "109"]
    assert rows["classes with the reason watermark"] == ["203", "203", "235"]
    assert "in the notes, not in the file: ILSVRC2012_val_00001336.JPEG, ILSVRC2012_val_00003721.JPEG" in out
    for name in ("records.csv", "unmapped.csv", "comparison.csv", "reasons.png"):
        assert (tmp_path / "audit" / name).stat().st_size > 0


def test_show_names_the_absent_classes(capsys, reference):
    code, out, _ = run(capsys, "easyset", "show", str(reference / "s-r50-n" / "safebets.json"))
    assert code == 0 and out.count("681, 782, 836, 837") == 3


def test_bad_input_is_one_line_exit_2(capsys, tmp_path):
    (tmp_path / "r.json").write_text('{"m": {"x": []}}')
    (tmp_path / "notes.txt").write_text("class 1: ILSVRC2012_val_00000001 removed due to noise.\n")
    code, _, err = run(capsys, "easyset", "import-notes", str(tmp_path / "notes.txt"), "--ranking",
                       str(tmp_path / "r.json"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "class 'x'" in err
    code, _, err = run(capsys, "easyset", "build", "--from", str(tmp_path), "--task", "t", "--out",
                       str(tmp_path / "set"))
    assert code == 2 and "easyset rank --out" in err and not (tmp_path / "set").exists()


def test_rank_review_build_end_to_end(capsys, tmp_path, monkeypatch):
    """rank → per-class review tasks → decisions in the log → build with the post-edit check (its refusal is tested
    in test_build)."""
    from pathlib import Path

    from curate.easyset.test_build import COLOURNET, write_folder
    from shiftlab.data.layouts import read_dataset
    from shiftlab.registry import register_dataset
    from shiftlab.review.log import ReviewLog
    from shiftlab.review.tasks import log_path
    from shiftlab.workspace import Workspace

    ws = Workspace.resolve(tmp_path / "ws")
    register_dataset(read_dataset(str(write_folder(tmp_path / "src", blue="n01440764_0003"))), "toy", ws)
    w = ["-w", str(ws.root)]
    code, out, err = run(capsys, *w, "easyset", "rank", "-d", "toy", "--ensemble", COLOURNET, "--target", COLOURNET,
                         "--top", "5", "--min-class-images", "2", "--out", str(tmp_path / "rank"))
    assert code == 0, err
    assert "40 of 40 images pass the filter" in out
    code, out, err = run(capsys, *w, "easyset", "review-task", "--from", str(tmp_path / "rank"), "--name", "es",
                         "--per-class")
    assert code == 0 and "2 review tasks es-c<class>" in out, err
    import pandas as pd
    q = pd.read_parquet(tmp_path / "rank" / "queue.parquet")
    ranked0 = list(q[(q["class"] == 0) & (q["stage"] != "extra")].sort_values("rank")["id"])
    assert "n01440764_0003.png" not in set(q["id"])  # ColourNet calls the blue image class 2: never ranked
    with ReviewLog(log_path(ws)) as log:
        log.append(reviewer="ann", task="es-c0", target=ranked0[0], decision="crop", reason="watermark",
                   crop=(0, 0, 30, 20))
        log.append(reviewer="ann", task="es-c0", target=ranked0[1], decision="remove", reason="noise")
    code, out, err = run(capsys, *w, "easyset", "build", "--from", str(tmp_path / "rank"), "--task", "es", "--out",
                         str(tmp_path / "set"))
    assert code == 0, err
    assert "post-edit check: colournet classifies all 6 final images correctly" in out
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines()
            if line.startswith("│") and line.count("│") == 3}
    assert (rows["classes with top-5 substitutions"], rows["images cropped in the set"], rows["images removed"]) == \
        ("1", "1", "1")
    assert (Path(tmp_path / "set") / "reasons.png").is_file()
