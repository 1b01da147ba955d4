"""The decode-once engine and the prediction store, in one process."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import shiftlab.predict.cache as cache_mod
from helpers import TINY_NETS
from shiftlab.analyze.evaluate import evaluate
from shiftlab.data.layouts import read_dataset
from shiftlab.errors import IncompleteError, InputError
from shiftlab.models.specs import load_model
from shiftlab.predict.engine import Engine, predict

TINY = f"python:{TINY_NETS}:tiny"


@pytest.fixture
def counted_decodes(monkeypatch):
    calls = []
    real = cache_mod.decode_image

    def counting(path, **kw):
        calls.append(str(path))
        return real(path, **kw)

    monkeypatch.setattr(cache_mod, "decode_image", counting)
    return calls


def test_each_image_is_decoded_once_per_geometry(folder, workspace, counted_decodes):
    m = read_dataset(folder, progress=False)
    assert len(m) == 42
    preds = predict(m, [TINY, f"{TINY}?seed=1", f"{TINY}?width=8"], workspace=workspace, progress=False)
    assert len(counted_decodes) == 42  # three models, one decode of each file
    assert sorted(set(counted_decodes)) == sorted(map(str, m.abspaths()))
    assert not np.allclose(preds[0].values[preds[0].valid], preds[1].values[preds[1].valid])

    # another normalisation shares the decoded tensors; another crop needs its own decode
    predict(m, [TINY], workspace=workspace, recipe_overrides={"mean": (0.5, 0.5, 0.5)}, progress=False)
    assert len(counted_decodes) == 42
    predict(m, [TINY], workspace=workspace, recipe_overrides={"crop": 24}, progress=False)
    assert len(counted_decodes) == 84


def test_predictions_match_the_model_applied_directly(folder, workspace):
    m = read_dataset(folder, progress=False)
    (p,) = predict(m, [TINY], workspace=workspace, progress=False, features=True)
    clf = load_model(TINY)
    ds = m.torch_dataset(clf.recipe, normalize=False)
    good = np.flatnonzero(p.valid)
    x = torch.stack([ds[int(i)][0] for i in good])
    with torch.no_grad():
        direct = clf.logits(x).numpy()
    # stored as float16
    np.testing.assert_allclose(p.values[good], direct, rtol=2e-3, atol=2e-3)
    w, b = clf.last_layer()
    np.testing.assert_allclose(p.features[good] @ w.numpy().T + b.numpy(), direct, atol=1e-4)


def test_undecodable_images_are_excluded_and_counted(folder, workspace):
    res = evaluate(str(folder), [TINY], workspace=workspace, progress=False)
    row = res.table.iloc[0]
    assert (row.n_images, row.n_bad, row.n_scored) == (42, 2, 40)
    bad = res.bad_images().set_index("id")["reason"].to_dict()
    assert bad == {"broken.jpg": "not an image", "empty.png": "empty file"}
    p = res.predictions[0]
    ids = list(res.manifest.ids)
    assert np.isnan(p.values[ids.index("broken.jpg")]).all()
    # the accuracy is over the 40 decodable images only
    labels = res.manifest.labels
    top1 = (p.values[p.valid].argmax(1) == labels[p.valid]).mean()
    assert row.top1 == pytest.approx(top1)


def test_stored_predictions_are_reused_not_recomputed(folder, workspace, monkeypatch):
    m = read_dataset(folder, progress=False)
    (first,) = predict(m, [TINY], workspace=workspace, progress=False)

    def boom(*a, **k):
        raise AssertionError("recomputed a stored cell")

    monkeypatch.setattr(Engine, "_run_chunk", boom)
    (again,) = predict(m, [TINY], workspace=workspace, progress=False)
    np.testing.assert_array_equal(first.values, again.values)
    assert again.bad == first.bad
    # asking for features too is new work, so it must compute
    with pytest.raises(AssertionError, match="recomputed"):
        predict(m, [TINY], workspace=workspace, progress=False, features=True)


def test_first_model_computes_while_later_images_decode(tmp_path, workspace, monkeypatch):
    from helpers import make_folder

    folder = make_folder(tmp_path / "many", per_class=300)
    m = read_dataset(folder, progress=False)
    events: list[str] = []
    lock = threading.Lock()
    real_decode = cache_mod.decode_image

    def decode(path, **kw):
        with lock:
            events.append("decode")
        return real_decode(path, **kw)

    monkeypatch.setattr(cache_mod, "decode_image", decode)
    from shiftlab.models.classifier import Classifier

    real_forward = Classifier.forward

    def forward(self, *a, **k):
        with lock:
            events.append("forward")
        return real_forward(self, *a, **k)

    monkeypatch.setattr(Classifier, "forward", forward)
    # one stored chunk for the whole set: batches must still start before the set is decoded
    predict(m, [TINY], workspace=workspace, progress=False, chunk_size=1000, batch_size=32, workers=1)
    assert events.count("decode") == 600
    first_forward = events.index("forward")
    last_decode = len(events) - 1 - events[::-1].index("decode")
    assert first_forward < last_decode, "the model waited for the whole set to decode"


def test_an_incomplete_cell_is_never_read(folder, workspace):
    m = read_dataset(folder, progress=False)
    clf = load_model(TINY)
    cell = Engine(workspace, progress=False).store.cell(clf.key, m, clf.recipe, chunk_size=16)
    with cell.writing():
        cell.write_chunk(0, np.zeros((16, 10), np.float32), {})
    assert not cell.is_complete()
    with pytest.raises(IncompleteError):
        cell.load()


def test_labels_only_manifest_needs_images_for_a_tensor_model(reference, workspace):
    m = read_dataset(reference / "imagenetv2" / "imagenetv2-c-12.json", progress=False)
    with pytest.raises(InputError, match="labels only"):
        predict(m, [TINY], workspace=workspace, progress=False)


def test_device_must_exist():
    from shiftlab.predict.engine import resolve_device

    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(InputError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_a_model_with_fewer_classes_than_the_labels_is_refused(tmp_path, workspace):
    from helpers import make_folder

    folder = make_folder(tmp_path / "f", per_class=2, classes=("n01440764", "n04592741"))  # label 999
    with pytest.raises(InputError, match="predicts 10 classes"):
        evaluate(str(folder), [TINY], workspace=workspace, progress=False)
