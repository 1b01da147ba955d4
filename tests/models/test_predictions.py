"""``predictions:<path>[#array]``: precomputed logits / probabilities / top-k, aligned to a manifest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shiftlab.data.classes import Vocabulary
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError, PredictionMismatchError
from shiftlab.models import load_model
from shiftlab.models.adapters.predictions import PrecomputedPredictions, infer_kind

K = 6
IDS = [f"img_{i:03d}" for i in range(8)]


def manifest(ids=IDS, n_classes=K, labels=None) -> Manifest:
    labels = list(range(len(ids))) if labels is None else labels
    df = pd.DataFrame({"id": ids, "path": None, "sha256": None, "label": [lab % n_classes for lab in labels]})
    return Manifest(df, name="toy", vocabulary=Vocabulary.from_names([f"c{i}" for i in range(n_classes)]))


def logits(n=8, k=K, seed=0):
    return np.random.default_rng(seed).normal(size=(n, k)).astype(np.float32)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def topk_of(scores, k=5):
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def shuffled(n=8, seed=1):
    return np.random.default_rng(seed).permutation(n)


# --- kinds and formats ---------------------------------------------------------------------------------
def test_infer_kind():
    z = logits()
    assert infer_kind(z) == "logits"
    assert infer_kind(softmax(z)) == "probabilities"
    assert infer_kind(topk_of(z).astype(np.int16)) == "topk"
    assert infer_kind(np.abs(z) / 100) == "logits"  # non-negative but rows do not sum to 1
    with pytest.raises(InputError, match="NaN"):
        infer_kind(np.full((2, 3), np.nan))


def test_npy_without_ids_aligned_by_position(tmp_path):
    z = logits()
    np.save(tmp_path / "z.npy", z)
    p = load_model(f"predictions:{tmp_path / 'z.npy'}")
    assert isinstance(p, PrecomputedPredictions) and p.kind == "logits" and p.ids is None and p.name == "z"
    a = p.align(manifest())
    assert a.kind == "logits"
    np.testing.assert_array_equal(a.values, z)


def test_npy_probabilities_and_topk(tmp_path):
    z = logits()
    np.save(tmp_path / "p.npy", softmax(z))
    np.save(tmp_path / "t.npy", topk_of(z).astype(np.int16))
    assert load_model(f"predictions:{tmp_path / 'p.npy'}").kind == "probabilities"
    t = load_model(f"predictions:{tmp_path / 't.npy'}")
    assert t.kind == "topk" and t.values.dtype == np.int64
    np.testing.assert_array_equal(t.align(manifest()).values, topk_of(z))


def test_without_ids_row_count_is_checked(tmp_path):
    np.save(tmp_path / "z.npy", logits(n=7))
    with pytest.raises(PredictionMismatchError, match="7 rows but the manifest has 8"):
        load_model(f"predictions:{tmp_path / 'z.npy'}").align(manifest())


def test_npz_with_ids_in_another_order(tmp_path):
    z, perm = logits(), shuffled()
    np.savez(tmp_path / "m.npz", ids=np.array(IDS)[perm], logits=z[perm], top5=topk_of(z)[perm])
    p = load_model(f"predictions:{tmp_path / 'm.npz'}#logits")
    assert p.name == "logits" and p.kind == "logits"
    np.testing.assert_array_equal(p.align(manifest()).values, z)
    t = load_model(f"predictions:{tmp_path / 'm.npz'}#top5").align(manifest())
    assert t.kind == "topk"
    np.testing.assert_array_equal(t.values, topk_of(z))


def test_npz_single_array_needs_no_name(tmp_path):
    np.savez(tmp_path / "one.npz", ids=np.array(IDS), scores=logits())
    assert load_model(f"predictions:{tmp_path / 'one.npz'}").kind == "logits"


def test_npz_several_arrays_need_a_name(tmp_path):
    np.savez(tmp_path / "m.npz", resnet50=topk_of(logits()), alexnet=topk_of(logits(seed=2)))
    with pytest.raises(InputError) as e:
        load_model(f"predictions:{tmp_path / 'm.npz'}")
    assert "resnet50" in str(e.value) and "alexnet" in str(e.value) and "#" in str(e.value)
    with pytest.raises(InputError, match="no array 'vgg'"):
        load_model(f"predictions:{tmp_path / 'm.npz'}#vgg")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_of_scores_keyed_by_id(tmp_path, fmt):
    z, perm = logits(), shuffled()
    df = pd.DataFrame(z[perm], columns=[str(c) for c in range(K)])
    df.insert(0, "id", np.array(IDS)[perm])
    path = tmp_path / f"s.{fmt}"
    df.to_csv(path, index=False) if fmt == "csv" else df.to_parquet(path)
    a = load_model(f"predictions:{path}").align(manifest())
    assert a.kind == "logits"
    np.testing.assert_allclose(a.values, z, rtol=1e-6)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_of_topk_columns(tmp_path, fmt):
    z, perm = logits(), shuffled()
    t = topk_of(z)[perm]
    # columns in a scrambled order: top1..top5 are ordered by their number, not by position
    df = pd.DataFrame({"top3": t[:, 2], "id": np.array(IDS)[perm], "top1": t[:, 0], "top5": t[:, 4],
                       "top2": t[:, 1], "top4": t[:, 3]})
    path = tmp_path / f"t.{fmt}"
    df.to_csv(path, index=False) if fmt == "csv" else df.to_parquet(path)
    p = load_model(f"predictions:{path}")
    assert p.kind == "topk" and p.values.shape == (8, 5)
    np.testing.assert_array_equal(p.align(manifest()).values, topk_of(z))


def test_csv_ids_that_look_like_numbers(tmp_path):
    ids = ["0007", "0012", "1e3"]  # must stay strings, not become 7, 12 and 1000.0
    pd.DataFrame({"id": ids[::-1], "top1": [2, 1, 0]}).to_csv(tmp_path / "n.csv", index=False)
    a = load_model(f"predictions:{tmp_path / 'n.csv'}").align(manifest(ids, n_classes=3))
    np.testing.assert_array_equal(a.values[:, 0], [0, 1, 2])


@pytest.mark.parametrize("file_ext, manifest_ext", [(".JPEG", ""), ("", ".JPEG")])
def test_ids_with_and_without_extension_match(tmp_path, file_ext, manifest_ext):
    z, perm = logits(), shuffled()
    np.savez(tmp_path / "e.npz", ids=np.array([i + file_ext for i in IDS])[perm], logits=z[perm])
    m = manifest([i + manifest_ext for i in IDS])
    np.testing.assert_array_equal(load_model(f"predictions:{tmp_path / 'e.npz'}").align(m).values, z)


# --- mismatches ----------------------------------------------------------------------------------------
def save_keyed(tmp_path, ids, values) -> PrecomputedPredictions:
    np.savez(tmp_path / "k.npz", ids=np.array(ids), values=values)
    return load_model(f"predictions:{tmp_path / 'k.npz'}")


def mismatch(p: PrecomputedPredictions, m: Manifest | None = None) -> str:
    """The message of the PredictionMismatchError, after its "<spec> vs <manifest>: " prefix (which holds
    the tmp path, and so the test's own name: matching it there would prove nothing)."""
    with pytest.raises(PredictionMismatchError) as e:
        p.align(m or manifest())
    msg = str(e.value)
    assert msg.startswith(f"{p.spec} vs toy: ") and "\n" not in msg
    return msg[len(f"{p.spec} vs toy: "):]


def test_missing_ids(tmp_path):
    p = save_keyed(tmp_path, IDS[:5] + IDS[6:], logits(n=7))
    assert mismatch(p) == "1 manifest image(s) have no prediction (first: 'img_005')"


def test_duplicate_ids(tmp_path):
    p = save_keyed(tmp_path, IDS + ["img_003"], logits(n=9))
    assert mismatch(p) == "1 duplicate id(s) in the predictions, e.g. 'img_003'"


def test_unknown_ids(tmp_path):
    p = save_keyed(tmp_path, IDS + ["stranger"], logits(n=9))
    assert mismatch(p) == "1 id(s) in the predictions are not in the manifest (first: 'stranger')"


@pytest.mark.parametrize("file_ids", [["a", "b"], ["a"]])
def test_two_manifest_ids_never_share_one_prediction(tmp_path, file_ids):
    # "a.jpg" and "a.png" both match "a" by stem: one prediction must not serve two images
    p = save_keyed(tmp_path, file_ids, logits(n=len(file_ids)))
    assert mismatch(p, manifest(["a.jpg", "a.png"])).startswith("several manifest images match the prediction 'a'")


def test_wrong_class_count(tmp_path):
    np.save(tmp_path / "z.npy", logits(k=K + 1))
    msg = mismatch(load_model(f"predictions:{tmp_path / 'z.npy'}"))
    assert msg.startswith(f"{K + 1} class scores per row but the manifest has {K} classes")


def test_row_count_without_ids(tmp_path):
    np.save(tmp_path / "z.npy", logits(n=9))
    assert mismatch(load_model(f"predictions:{tmp_path / 'z.npy'}")).startswith(
        "9 rows but the manifest has 8 images")


@pytest.mark.parametrize("bad", [K, -1])
def test_topk_index_out_of_range(tmp_path, bad):
    t = topk_of(logits())
    t[3, 2] = bad
    np.save(tmp_path / "t.npy", t)
    assert mismatch(load_model(f"predictions:{tmp_path / 't.npy'}")) == f"class index {bad} is outside 0..{K - 1}"


def test_unreadable_inputs(tmp_path):
    (tmp_path / "x.txt").write_text("1,2")
    np.save(tmp_path / "z.npy", logits())
    pd.DataFrame({"id": IDS, "label": ["cat"] * 8}).to_csv(tmp_path / "s.csv", index=False)
    for spec, needle in [("x.txt", "unsupported file type"), ("none.npy", "no such file"),
                         ("z.npy#a", "one array"), ("s.csv", "non-numeric column")]:
        with pytest.raises(InputError, match=needle):
            load_model(f"predictions:{tmp_path / spec}")


def test_reference_imagenetv2_topk(reference):
    p = load_model(f"predictions:{reference}/imagenetv2/predictions/imagenetv2-b-33.npz#resnet50")
    assert p.kind == "topk" and p.values.shape == (10000, 5) and p.name == "resnet50"
    assert p.values.min() >= 0 and p.values.max() <= 999


# --- hostile prediction files (issue 18.6): one line, exit 2, never a traceback or a huge allocation -------
def _magic_and_header(shape, dtype):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue()  # write_array_header_1_0 writes the magic string too


@pytest.mark.parametrize("case", ["huge-npy", "empty-columns", "truncated-npz", "not-a-zip", "huge-topk",
                                  "empty-topk", "negative-topk", "fraction-topk"])
def test_hostile_prediction_files_are_one_line_input_errors(tmp_path, case):
    from shiftlab.errors import InputError
    from shiftlab.models.specs import load_model

    if case == "huge-npy":
        p = tmp_path / "p.npy"
        p.write_bytes(_magic_and_header((10**12, 2), "<f4") + b"\0" * 64)
        match = "claims shape"
    elif case == "empty-columns":
        p = tmp_path / "p.npy"
        np.save(p, np.zeros((6, 0), np.float32))
        match = "got shape"
    elif case in ("truncated-npz", "not-a-zip"):
        p = tmp_path / "p.npz"
        full = tmp_path / "full.npz"
        np.savez(full, logits=np.random.default_rng(0).normal(size=(50, 10)).astype(np.float32))
        data = full.read_bytes()
        p.write_bytes(data[: len(data) // 2] if case == "truncated-npz" else b"PK\x03\x04 not really a zip")
        match = "cannot read"
    else:
        cell = {"huge-topk": "99999999999999999999999", "empty-topk": "", "negative-topk": "-3",
                "fraction-topk": "2.5"}[case]
        p = tmp_path / "p.csv"
        p.write_text(f"image_id,top1,top2\na.png,3,4\nb.png,{cell},1\n")
        match = "is not a class index"
    with pytest.raises(InputError, match=match) as e:
        load_model(f"predictions:{p}")
    assert "\n" not in str(e.value)


def test_prediction_reader_fuzz(tmp_path):
    """Arbitrary bytes under each suffix: the reader loads them or says why in one line, nothing else."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from shiftlab.errors import InputError
    from shiftlab.models.specs import load_model

    valid = {".npy": (tmp_path / "v.npy"), ".npz": (tmp_path / "v.npz")}
    np.save(valid[".npy"], np.ones((4, 3), np.float32))
    np.savez(valid[".npz"], logits=np.ones((4, 3), np.float32))

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(suffix=st.sampled_from([".npy", ".npz", ".csv"]), cut=st.integers(0, 400), noise=st.binary(max_size=64))
    def check(suffix, cut, noise):
        base = valid[suffix].read_bytes() if suffix in valid else b"image_id,top1\na,1\nb,2\n"
        p = tmp_path / f"f{suffix}"
        p.write_bytes(base[:cut] + noise)
        try:
            load_model(f"predictions:{p}")
        except InputError as e:
            assert "\n" not in str(e)

    check()
