"""The review commands' errors: one line, exit 2, nothing written."""

from __future__ import annotations

from shiftlab.cli import main


def test_review_commands_say_what_is_wrong_in_one_line(rws, capsys, tmp_path):
    ws = str(rws.ws.root)
    tmp_path = tmp_path / "out"  # the fixture's workspace copy lives beside it
    tmp_path.mkdir()
    cases = [
        (["review", "export", "--out", str(tmp_path / "no" / "such" / "x.jsonl")], "no folder"),
        (["review", "export", "--format", "mturk", "--out", str(tmp_path / "r.csv")], "labelling task"),
        (["review", "export", "--task", "nope", "--out", str(tmp_path / "r.csv")], "no review task 'nope'"),
        (["review", "serve", "--port", "70000"], "--port"),
        (["review", "task", "images", "--dataset", "unregistered"], "not a registered dataset"),
        (["review", "task", "duplicates", "--dedup", str(tmp_path)], "no queue.csv"),
    ]
    for argv, message in cases:
        assert main(["-w", ws, *argv]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)
    assert not list(tmp_path.iterdir())


def test_export_writes_the_log_and_the_review_csv(rws, capsys, tmp_path):
    from shiftlab.review.log import ReviewLog
    from shiftlab.review.tasks import log_path

    d = rws.tasks["duplicates"]
    with ReviewLog(log_path(rws.ws)) as log:
        log.append(reviewer="ann", task=d["name"], target=d["items"][0]["target"], decision="duplicate")
        log.append(reviewer="ann", task=d["name"], target=d["items"][1]["target"], decision="distinct")
    ws = str(rws.ws.root)
    assert main(["-w", ws, "review", "export", "--out", str(tmp_path / "all.jsonl")]) == 0
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 2
    assert main(["-w", ws, "review", "export", "--task", d["name"], "--format", "reviews",
                 "--out", str(tmp_path / "r.csv")]) == 0
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "query,reference,is_duplicate,reviewer" and lines[1].endswith(",True,ann")
    assert "wrote 2 rows" in capsys.readouterr().out
