"""S2 label files (SPECS S2): TFDS multi-label exports, ImageNet-M lists and ReaL's real.json, read and attached to
a manifest by file name (``shiftlab.data.labelfiles``)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pandas as pd
import pytest

from shiftlab.analyze.multilabel import multilabel_summary
from shiftlab.data import labelfiles as LF
from shiftlab.data.classes import Vocabulary
from shiftlab.data.layouts import read_revision_json
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError, LabelFileError, PredictionMismatchError
from shiftlab.metrics import multilabel as ML
from shiftlab.predict.engine import predict

# --- label files ----------------------------------------------------------------------------------------
RECORDS = [
    {"file_name": "b.png", "original_label": 1, "correct_multi_labels": [1, 0], "wrong_multi_labels": [2],
     "unclear_multi_labels": [], "is_problematic": False},
    {"file_name": "a.png", "original_label": 0, "correct_multi_labels": [], "wrong_multi_labels": [],
     "unclear_multi_labels": [0, 2], "is_problematic": False},
    {"file_name": "c.png", "original_label": 2, "correct_multi_labels": [], "wrong_multi_labels": [],
     "unclear_multi_labels": [], "is_problematic": True},
]


def _write(tmp_path, fmt, records=RECORDS):
    p = tmp_path / f"labels.{fmt}"
    if fmt == "json":
        p.write_text(json.dumps(records))
    elif fmt == "jsonl":
        p.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        df = pd.DataFrame(records)
        for col in LF.LIST_FIELDS:  # CSV exports write lists as text
            df[col] = [" ".join(map(str, v)) for v in df[col]]
        df.to_csv(p, index=False)
    return p


def _manifest(ids=("a", "b", "c", "d"), labels=(0, 1, 2, 0)):
    voc = Vocabulary.from_names(["x", "y", "z"], name="xyz")
    return Manifest(pd.DataFrame({"id": list(ids), "path": None, "sha256": None, "label": list(labels)}),
                    name="toy", vocabulary=voc)


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_tfds_exports_read_the_same(tmp_path, fmt):
    df = LF.read_tfds_multilabel(_write(tmp_path, fmt), n_classes=3)
    assert list(df.columns) == list(LF.TFDS_FIELDS)
    assert df.file_name.tolist() == ["b.png", "a.png", "c.png"]
    assert df.correct_multi_labels.tolist() == [[0, 1], [], []]
    assert df.unclear_multi_labels.tolist() == [[], [0, 2], []]
    assert df.is_problematic.tolist() == [False, False, True]


@pytest.mark.parametrize("records, message", [
    ([RECORDS[0], RECORDS[0]], "1 duplicate file name.*b.png"),
    ([{**RECORDS[0], "correct_multi_labels": [3]}], "correct_multi_labels of b.png names class 3, outside 0..2"),
    ([{k: v for k, v in RECORDS[0].items() if k != "is_problematic"}], "lack is_problematic"),
    ([{**RECORDS[0], "original_label": "cat"}], "original_label 'cat' is not a class index"),
])
def test_bad_tfds_files_are_one_line_errors(tmp_path, records, message):
    with pytest.raises(LabelFileError, match=message) as e:
        LF.read_tfds_multilabel(_write(tmp_path, "jsonl", records), n_classes=3)
    assert "\n" not in str(e.value)


def test_labels_attach_by_file_name_not_by_order(tmp_path):
    m = LF.attach_multilabels(_manifest(), _write(tmp_path, "json"), imagenet_m=["a.png", "c"])
    t = m.table.set_index("id")
    assert t.loc["a", "unclear_multi_labels"] == [0, 2] and t.loc["b", "correct_multi_labels"] == [0, 1]
    assert t.loc["d", "correct_multi_labels"] is None  # unlabelled rows stay None and are not scored
    assert t.in_imagenet_m.tolist() == [True, False, True, False]
    # the manifest survives a round trip through Parquet with its list columns
    back = Manifest.load(m.save(tmp_path / "m.parquet"))
    preds = [_preds(back, [0, 0, 2, 1])]
    s = multilabel_summary(back, preds, allow_missing_classes=True).iloc[0]
    # a: 0 ∈ {0, 2} right; b: 0 ∈ {0, 1} right; c problematic; d unlabelled → classes 0 and 1 each 1/1
    assert s.ml_accuracy == 1.0 and (s.ml_scored, s.ml_problematic, s.ml_classes_used) == (2, 1, 2)
    assert (s.imagenet_m_correct, s.imagenet_m_size) == (1, 2)  # c is problematic: its top-1 2 ∉ ∅
    assert s.top1 == 0.5


def _preds(manifest, top1):
    from shiftlab.predict.engine import ModelPredictions

    v = np.eye(len(manifest.vocabulary), dtype=np.float32)[top1]
    return ModelPredictions("toy-model", "logits", v, np.ones(len(manifest), bool), {})


def test_labels_that_do_not_fit_the_set_are_rejected(tmp_path):
    f = _write(tmp_path, "json")
    with pytest.raises(LabelFileError, match="1 labelled file.*not images of toy .*'c.png'"):
        LF.attach_multilabels(_manifest(ids=("a", "b", "d", "e")), f)
    with pytest.raises(LabelFileError, match="another original_label .*b.png: 1 vs 2"):
        LF.attach_multilabels(_manifest(labels=(0, 2, 2, 0)), f)
    with pytest.raises(LabelFileError, match="ImageNet-M .*not images of toy.*'zz.png'"):
        LF.attach_multilabels(_manifest(), f, imagenet_m=["a.png", "zz.png"])
    with pytest.raises(LabelFileError, match="no multi-labels.*first: d"):
        LF.attach_multilabels(_manifest(), f, imagenet_m=["d"])
    # two label entries that reach the same image (with and without the extension)
    twice = [RECORDS[1], {**RECORDS[1], "file_name": "a"}]
    with pytest.raises(LabelFileError, match="several label entries"):
        LF.attach_multilabels(_manifest(), _write(tmp_path, "jsonl", twice))


def test_real_json_entries_are_validation_file_names(tmp_path):
    f = tmp_path / "real.json"
    f.write_text(json.dumps([[1], [], [0, 2]]))
    r = LF.read_real(f, n_classes=3)
    assert r.file_name.tolist() == ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG",
                                    "ILSVRC2012_val_00000003.JPEG"]
    m = _manifest(ids=("ILSVRC2012_val_00000003.JPEG", "ILSVRC2012_val_00000001"), labels=(2, 0))
    got = LF.attach_real(m, r).table.real_labels.tolist()
    assert got == [[0, 2], [1]]
    with pytest.raises(LabelFileError, match="1 of 4 images are not ImageNet validation files.*'a'"):
        LF.attach_real(_manifest(ids=("a", *r.file_name)), r)
    f.write_text(json.dumps([[1], [3]]))
    with pytest.raises(LabelFileError, match=r"entry 1 \(ILSVRC2012_val_00000002.JPEG\) names class 3"):
        LF.read_real(f, n_classes=3)
    f.write_text(json.dumps([[]] * (LF.REAL_SIZE + 1)))
    with pytest.raises(LabelFileError, match="50,001 entries .* out of range"):
        LF.read_real(f)


def test_label_source_specs(tmp_path):
    f = _write(tmp_path, "csv")
    m = LF.apply_label_sources(_manifest(), [f"tfds:{f}"])
    assert LF.has_multilabels(m)
    for bad, msg in [("nope:x", "give real:PATH"), (f"tfds:{tmp_path}/absent.json", "no such file"),
                     (f"imagenet-m:{f}", "needs the multi-labels")]:
        with pytest.raises(InputError, match=msg):
            LF.apply_label_sources(_manifest(), [bad])
    with pytest.raises(InputError, match="given 2 times"):
        LF.apply_label_sources(_manifest(), [f"tfds:{f}", f"tfds:{f}"])


def test_predictions_are_matched_by_file_name(tmp_path):
    """A prediction file in another order than the manifest scores the right images; gaps are errors."""
    m = LF.attach_multilabels(_manifest(ids=("a", "b", "c"), labels=(0, 1, 2)), _write(tmp_path, "json"))
    # c → 0 (wrong), a → 0 (right), b → 1 (right); read by position it would score 1/3
    scores = pd.DataFrame({"id": ["c", "a", "b"], "0": [1.0, 1.0, 0.0], "1": [0.0, 0.0, 1.0], "2": [0.0, 0.0, 0.0]})
    scores.to_csv(tmp_path / "p.csv", index=False)
    p = predict(m, [f"predictions:{tmp_path}/p.csv"], progress=False)
    s = multilabel_summary(m, p, allow_missing_classes=True).iloc[0]
    assert s.top1 == pytest.approx(2 / 3) and s.ml_accuracy == 1.0  # a → 0 and b → 1 are right, c problematic
    scores.iloc[:2].to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(PredictionMismatchError, match="1 manifest image.*no prediction.*'b'"):
        predict(m, [f"predictions:{tmp_path}/p.csv"], progress=False)


# --- the published ReaL labels ------------------------------------------------------------------------------
@functools.cache
def _real_val(ref):
    m = read_revision_json(ref / "imagenetv2" / "imagenet-validation-original.json", progress=False)
    return LF.attach_real(m, ref / "real" / "real.json")


def test_real_json_keeps_46837_images(reference):
    r = LF.read_real(reference / "real" / "real.json")
    assert len(r) == 50_000 and sum(1 for s in r.real_labels if not s) == 3_163
    m = _real_val(reference)
    # the validation manifest lists the images by class, real.json by file number: matched by name
    assert m.ids[0] == "ILSVRC2012_val_00000293.JPEG" and m.table.real_labels.iloc[0] == r.real_labels.iloc[292]
    sets = ML.LabelSets.from_lists(m.table.real_labels.tolist(), 1000)
    assert int((sets.sizes > 0).sum()) == 46_837
