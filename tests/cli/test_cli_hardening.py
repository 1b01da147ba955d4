"""Issue 18.6 (every CLI input error is one line and exit 2, nothing half-written; the readers fuzzed) and
issue 19.2 (no silent overwrites: votes merged by assignment, tasks and dedup results replaced only on request,
replaced files kept as dated backups)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import make_folder
from shiftlab.cli import main

DEEP = "[" * 100_000 + "]" * 100_000


def run(capsys, *argv) -> tuple[int, str, str]:
    if "-w" in argv:  # a workspace that does not exist is an error of its own: these tests are about the readers
        Path(argv[argv.index("-w") + 1]).mkdir(parents=True, exist_ok=True)
    code = main(["--quiet", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def refused(capsys, *argv, needle: str = "") -> str:
    """The command exits 2 with exactly one line on stderr (containing ``needle``), and no traceback."""
    code, _, err = run(capsys, *argv)
    assert code == 2, (argv, code, err[-500:])
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert needle in err, err
    return err


# --- a tiny HIT batch and results, written by the library the commands use ---------------------------------
def _batch(folder: Path) -> tuple[Path, list]:
    from shiftlab.curate.annotate import make_hits, write_hit_batch

    hits = make_hits({0: [f"c{i}" for i in range(6)], 1: [f"d{i}" for i in range(6)]},
                     {0: ["p0", "p1"], 1: ["p2", "p3"]}, {0: ["p2"], 1: ["p0"]}, seed=0, hit_size=8,
                     n_positive=1, n_negative=1)
    batch, _ = write_hit_batch(hits, folder, ["fish", "shark"], seed=0)
    return batch, hits


def _results(hits, assignments: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    """(assignment id, worker, status, seed) → one results row per assignment, over the HITs in turn."""
    import random

    rows = []
    for n, (aid, worker, status, seed) in enumerate(assignments):
        h = hits[n % len(hits)]
        rnd = random.Random(seed)
        row = {"HITId": h.hit_id, "AssignmentId": aid, "WorkerId": worker, "AssignmentStatus": status}
        for i, im in enumerate(h.images):
            row[f"Input.image_{i + 1}"] = im.url
            row[f"Answer.image_{i + 1}"] = "true" if rnd.random() < 0.5 else "false"
        rows.append(row)
    return pd.DataFrame(rows)


# --- 18.6: the readers, fuzzed ---------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12)
# documents near each reader's shape, so the fuzzing reaches past the first check
revision_docs = st.fixed_dictionaries({"image_filenames": st.lists(st.lists(json_values, max_size=3), max_size=3)})
batch_docs = st.fixed_dictionaries({"seed": json_values, "hits": st.lists(st.fixed_dictionaries(
    {"hit_id": json_values, "class_index": json_values,
     "images": st.lists(st.dictionaries(st.sampled_from(["url", "image_id", "role"]), json_values), max_size=2)}),
    max_size=2)})
config_docs = st.fixed_dictionaries({"decisions": st.lists(st.dictionaries(
    st.sampled_from(["name", "reasons", "crop", "help"]), json_values), max_size=3)})


def _as_text(doc) -> str:
    return json.dumps(doc, allow_nan=True)  # NaN and Infinity included: Python writes them, strict JSON has none


def _texts(docs):
    return (docs | json_values).map(_as_text) | st.text(max_size=40) | st.sampled_from(
        [DEEP, "NaN", "[Infinity]", '{"image_filenames": [["a", NaN]]}', "\ufeff{}", "{" * 5000])


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(text=_texts(revision_docs))
def test_fuzz_revision_files_are_one_line_and_exit_2_or_read(text, tmp_path_factory, capsys):
    d = tmp_path_factory.mktemp("rev")
    (d / "x-a-1.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    code, _, err = run(capsys, "-w", str(d / "ws"), "datasets", "add", "x", str(d / "x-a-1.json"))
    assert code in (0, 2) and "Traceback" not in err
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("error: "), err


@FUZZ
@given(text=_texts(batch_docs))
def test_fuzz_hit_batches_are_one_line_and_exit_2(text, tmp_path_factory, capsys):
    d = tmp_path_factory.mktemp("batch")
    (d / "batch.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    (d / "results.csv").write_text("HITId,AssignmentId,WorkerId,AssignmentStatus,Input.image_1,Answer.image_1\n"
                                   "h,a,w,Submitted,u,true\n")
    refused(capsys, "-w", str(d / "ws"), "hits", "import", str(d / "results.csv"), "--batch", str(d / "batch.json"))
    assert not (d / "frequencies.parquet").exists()


@FUZZ
@given(text=_texts(config_docs))
def test_fuzz_review_configs_are_one_line_and_exit_2(text, tmp_path_factory, capsys):
    d = tmp_path_factory.mktemp("cfg")
    (d / "c.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    # the dataset is not registered: a good config still ends in one line, a bad one before it
    refused(capsys, "-w", str(d / "ws"), "review", "task", "images", "--dataset", "nothing", "--config",
            str(d / "c.json"))


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")) | st.sampled_from(
    ["HITId,AssignmentId,WorkerId,AssignmentStatus,Input.image_1,Answer.image_1\nh,a,w,Submitted,u,maybe\n",
     "HITId,AssignmentId\n" + "x," * 10_000 + "\n", '"' * 1000]))
def test_fuzz_results_csvs_are_one_line_and_exit_2(text, tmp_path_factory, capsys):
    d = tmp_path_factory.mktemp("res")
    batch, _ = _batch(d)
    (d / "results.csv").write_text(text, encoding="utf-8", errors="surrogatepass")
    refused(capsys, "-w", str(d / "ws"), "hits", "import", str(d / "results.csv"), "--batch", str(batch))
    assert not (d / "frequencies.parquet").exists()


@FUZZ
@given(text=st.text(max_size=200) | st.sampled_from(["path,label\n" + "a.png,1e999\n", "path,label\nx,NaN\n",
                                                     "path,label\n\0,0\n", "path,label\n" + "p" * 5000 + ",0\n"]))
def test_fuzz_dataset_csvs_are_one_line_and_exit_2(text, tmp_path_factory, capsys):
    d = tmp_path_factory.mktemp("csv")
    (d / "set.csv").write_text(text, encoding="utf-8", errors="surrogatepass")
    code, _, err = run(capsys, "-w", str(d / "ws"), "datasets", "add", "x", str(d / "set.csv"))
    assert code in (0, 2) and "Traceback" not in err  # 0 only for a CSV that lists set.csv itself
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("error: "), err


# --- 18.6: the examples of the issue, each a class of its own ------------------------------------------------
def test_json_nested_too_deep_nan_and_infinity_are_one_line_everywhere(capsys, tmp_path):
    ws = str(tmp_path / "ws")
    for name, text in {"deep": DEEP, "nan": '{"image_filenames": [["a", NaN]]}',
                       "inf": '{"image_filenames": [["a", Infinity]]}'}.items():
        (tmp_path / f"{name}-a-1.json").write_text(text)
        refused(capsys, "-w", ws, "datasets", "add", name, str(tmp_path / f"{name}-a-1.json"))
        (tmp_path / f"{name}.json").write_text(text)
        refused(capsys, "-w", ws, "hits", "import", str(tmp_path / "r.csv"), "--batch", str(tmp_path / f"{name}.json"))
        refused(capsys, "-w", ws, "review", "task", "images", "--dataset", "d", "--config",
                str(tmp_path / f"{name}.json"))
        refused(capsys, "-w", ws, "datasets", "add", "v", str(tmp_path), "--vocabulary", str(tmp_path / f"{name}.json"))
    assert "nested too deeply" in refused(capsys, "-w", ws, "datasets", "add", "d", str(tmp_path / "deep-a-1.json"))


@pytest.mark.parametrize("hit", [
    {"hit_id": ["a", "list"], "class_index": 0, "images": []},
    {"hit_id": "h", "class_index": "Infinity", "images": []},
    {"hit_id": "h", "class_index": 2.5, "images": []},
    {"hit_id": "h", "class_index": -1, "images": []},
    {"hit_id": "h", "class_index": True, "images": []},
    {"hit_id": "h", "class_index": 0, "images": [{"url": ["u"], "image_id": "i", "role": "candidate"}]},
    {"hit_id": "h", "class_index": 0, "images": "none"},
])
def test_malformed_hits_are_one_line(hit, capsys, tmp_path):
    (tmp_path / "batch.json").write_text(json.dumps({"seed": 0, "hits": [hit]}))
    (tmp_path / "r.csv").write_text("x\n")
    refused(capsys, "-w", str(tmp_path / "ws"), "hits", "import", str(tmp_path / "r.csv"), "--batch",
            str(tmp_path / "batch.json"), needle="malformed HIT batch")


@pytest.mark.parametrize("cls", ["NaN", "Infinity", "-Infinity", "2.5", "1e400", "[]", "true", "1001", "-3"])
def test_parent_revision_classes_must_be_classes(cls, tmp_path):
    from shiftlab.curate.revisions import previous_by_class
    from shiftlab.errors import InputError

    p = tmp_path / "x-a-0.json"
    p.write_text('{"image_filenames": [["a", "n01440764"], ["b", ' + cls + "]]}")
    with pytest.raises(InputError) as e:
        previous_by_class(p)
    assert "\n" not in str(e.value)
    ok = tmp_path / "y-a-0.json"
    ok.write_text('{"image_filenames": [["a", "n01440764"], ["b", 3], ["c", "7"]]}')
    assert previous_by_class(ok) == {0: ["a"], 3: ["b"], 7: ["c"]}


def test_eval_outputs_are_checked_before_the_work(capsys, tmp_path):
    folder = make_folder(tmp_path / "pets", per_class=2)
    (tmp_path / "res.csv").mkdir()
    (tmp_path / "twin.parquet").mkdir()
    (tmp_path / "file").write_text("x")
    cases = [(tmp_path / "res.csv", "is a folder"), (tmp_path / "twin.csv", "twin.parquet is a folder"),
             (tmp_path / "file" / "r.csv", "is a file, not a folder")]
    for out, needle in cases:
        # the model does not exist: the --out error shows that nothing was evaluated first
        refused(capsys, "eval", "-d", str(folder), "-m", "nosuch:model", "--out", str(out), needle=needle)
    assert not (tmp_path / "twin.csv").exists() and sorted(p.name for p in tmp_path.iterdir()) == \
        ["file", "pets", "res.csv", "twin.parquet"]
    (tmp_path / "lab-labels.csv").mkdir()
    refused(capsys, "eval", "-d", str(folder), "-m", "nosuch:model", "--out", str(tmp_path / "lab.csv"),
            "--labels", "real:x.json", needle="lab-labels.csv")


def test_long_names_and_files_in_the_way_are_one_line(capsys, tmp_path):
    folder = make_folder(tmp_path / "pets", per_class=1)
    long = "d" * 300
    refused(capsys, "-w", str(tmp_path / "ws"), "datasets", "add", long, str(folder), needle="300 characters")
    refused(capsys, "-w", str(tmp_path / "ws"), "eval", "-d", long, "-m", "world:mlp", needle="neither")
    refused(capsys, "-w", str(tmp_path / "ws"), "datasets", "add", "evil\n", str(folder), needle="not a valid name")
    batch, _ = _batch(tmp_path / "b")
    (tmp_path / "taken").write_text("a file")
    (tmp_path / "r.csv").write_text("x\n")
    refused(capsys, "hits", "import", str(tmp_path / "r.csv"), "--batch", str(batch), "--out",
            str(tmp_path / "taken"), needle="is a file, not a folder")
    assert (tmp_path / "taken").read_text() == "a file"


# --- 19.2: no silent overwrites ----------------------------------------------------------------------------------
def test_hits_import_merges_votes_by_assignment(capsys, tmp_path):
    from shiftlab.curate.votes import import_votes

    batch, hits = _batch(tmp_path / "b")
    page1 = _results(hits, [(f"A{i}", f"w{i % 3}", "Submitted", i) for i in range(8)])
    page2 = _results(hits, [(f"A{i}", f"w{i % 3}", "Submitted", i) for i in range(8, 12)])
    # a later export of assignment A3, now rejected: it replaces the earlier row, it does not add one
    again = page1[page1.AssignmentId == "A3"].assign(AssignmentStatus="Rejected")
    page2 = pd.concat([page2, again], ignore_index=True)
    page1.to_csv(tmp_path / "p1.csv", index=False)
    page2.to_csv(tmp_path / "p2.csv", index=False)
    out = tmp_path / "votes"
    assert run(capsys, "hits", "import", str(tmp_path / "p1.csv"), "--batch", str(batch), "--out", str(out))[0] == 0
    code, stdout, _ = run(capsys, "hits", "import", str(tmp_path / "p2.csv"), "--batch", str(batch), "--out", str(out))
    assert code == 0 and "merged with 8 assignment(s) imported before" in " ".join(stdout.split())
    assert "(1 replaced" in stdout
    union = pd.concat([page1[page1.AssignmentId != "A3"], page2], ignore_index=True)
    expected = import_votes(union.astype(str), batch).frequencies
    got = pd.read_parquet(out / "frequencies.parquet")
    pd.testing.assert_frame_equal(got, expected)
    assert got["n_valid"].sum() == expected["n_valid"].sum() and int(got["n_answers"].sum()) == 12 * 8
    assert sorted(pd.read_csv(out / "assignments.csv", dtype=str).AssignmentId) == sorted(f"A{i}" for i in range(12))
    # importing the same page again changes nothing
    run(capsys, "hits", "import", str(tmp_path / "p2.csv"), "--batch", str(batch), "--out", str(out))
    pd.testing.assert_frame_equal(pd.read_parquet(out / "frequencies.parquet"), expected)
    # --replace starts over, and keeps what it replaced
    assert run(capsys, "hits", "import", str(tmp_path / "p2.csv"), "--batch", str(batch), "--out", str(out),
               "--replace")[0] == 0
    only2 = import_votes(page2.astype(str), batch).frequencies
    pd.testing.assert_frame_equal(pd.read_parquet(out / "frequencies.parquet"), only2)
    backups = sorted(p.name.split(".")[0] for p in out.glob("*.bak"))
    assert {"frequencies", "assignments", "workers"} <= set(backups)


def test_votes_without_assignments_are_not_replaced_silently(capsys, tmp_path):
    batch, hits = _batch(tmp_path / "b")
    _results(hits, [("A1", "w", "Submitted", 1)]).to_csv(tmp_path / "p.csv", index=False)
    out = tmp_path / "votes"
    out.mkdir()
    (out / "frequencies.parquet").write_bytes(b"made by an older shiftlab")
    refused(capsys, "hits", "import", str(tmp_path / "p.csv"), "--batch", str(batch), "--out", str(out),
            needle="--replace")
    assert (out / "frequencies.parquet").read_bytes() == b"made by an older shiftlab"


def test_a_task_of_the_same_name_is_replaced_only_on_request(rws, capsys, tmp_path):
    ws = str(rws.ws.root)
    src = rws.ws.root / "dedup" / "pool"
    small = tmp_path / "small" / "pool"
    small.mkdir(parents=True)
    (small / "neighbours.parquet").write_bytes((src / "neighbours.parquet").read_bytes())
    q = pd.read_csv(src / "queue.csv", dtype=str)
    q.head(2).to_csv(small / "queue.csv", index=False)
    task_file = rws.ws.root / "review" / "tasks" / "duplicates-pool.json"
    tasks = task_file.parent
    # the fixture's copy names the template's folder: made again here, it differs, so it takes --replace
    assert main(["--quiet", "-w", ws, "review", "task", "duplicates", "--dedup", str(src), "--replace"]) == 0
    for b in tasks.glob("*.bak"):
        b.unlink()
    before = task_file.read_bytes()
    n = len(json.loads(before)["items"])
    # the same task again is no change, hence no refusal and no backup
    assert main(["--quiet", "-w", ws, "review", "task", "duplicates", "--dedup", str(src)]) == 0
    assert task_file.read_bytes() == before and not list(tasks.glob("*.bak"))
    err = refused(capsys, "-w", ws, "review", "task", "duplicates", "--dedup", str(small), needle="already exists")
    assert f"({n} items)" in err and task_file.read_bytes() == before
    code = main(["--quiet", "-w", ws, "review", "task", "duplicates", "--dedup", str(small), "--replace"])
    assert code == 0 and len(json.loads(task_file.read_text())["items"]) < n
    (backup,) = tasks.glob("duplicates-pool.json.*.bak")
    assert backup.read_bytes() == before
    capsys.readouterr()
    # the same HIT pages from the batch's folder or its batch.json: only the recorded source differs, no refusal
    lab = rws.tasks["labelling"]
    for source in (rws.batch, rws.batch / "batch.json"):
        assert main(["--quiet", "-w", ws, "review", "task", "labelling", "--batch", str(source), "--datasets",
                     "pool,train", "--name", lab["name"]]) == 0
    assert json.loads((tasks / f"{lab['name']}.json").read_text())["items"] == lab["items"]
    # and the other kinds likewise
    refused(capsys, "-w", ws, "review", "task", "images", "--dataset", "train", "--name", "images-pool",
            needle="already exists")


def test_dedup_into_the_default_folder_needs_force(rws, capsys):
    ws = str(rws.ws.root)
    folder = rws.ws.root / "dedup" / "pool"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    argv = ["-w", ws, "dedup", "--query", "pool", "--reference", "train", "--metrics", "l2", "-k", "2",
            "--review-k", "2", "--size", "32", "--threshold", "l2=1e300"]
    refused(capsys, *argv, needle="--force")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert run(capsys, *argv, "--force")[0] == 0
    names = {p.name for p in folder.iterdir()}
    assert {"neighbours.parquet", "queue.csv", "queue_thresholds.json"} <= names
    changed = [n for n in before if (folder / n).read_bytes() != before[n]]
    assert changed  # a different search (one reference set): its files replaced the fixture's …
    for n in changed:  # … and each replaced file is kept, byte for byte
        (bak,) = folder.glob(f"{n}.*.bak")
        assert bak.read_bytes() == before[n]


@pytest.mark.parametrize("argv", [
    ["eval", "-m", "world:linear", "-m", "world:mlp", "-d", "world-test"],
    ["eval", "--models", "world:linear", "--models=world:mlp", "-d", "world-test"],
    ["robust", "eval", "-mworld:linear", "-m", "world:mlp", "-d", "world-test"],
])
def test_a_model_option_given_twice_is_one_line_not_a_silent_replacement(argv, capsys, tmp_path):
    """click keeps only the last value of a repeated option: `eval -m a -m b` would have evaluated b alone."""
    assert main(["--workspace", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "given 2 times" in err and "comma-separated" in err
    # one list is fine, and a "-m" after "--" is an argument, not an option
    from shiftlab.cli import _repeated_model_option
    assert _repeated_model_option(["eval", "-m", "a,b", "-d", "x"]) is None
    assert _repeated_model_option(["eval", "-m", "a", "--", "-m"]) is None
