"""SpuFix (SPECS S3): on the source model it removes exactly the positive part of the labelled α; other classes'
logits are untouched bit for bit; several directions by least squares; degenerate directions are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from shiftlab.analyze.spurious.pca import fit_class
from shiftlab.analyze.spurious.spufix import SpuFixClassifier, class_fix, correction
from shiftlab.data.recipes import Recipe
from shiftlab.errors import InputError
from shiftlab.models.classifier import TorchClassifier


def relu_net(seed: int, d_in=12, d=16, k=4) -> TorchClassifier:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(d_in, d), nn.ReLU(), nn.Linear(d, k))
    recipe = Recipe(resize=None, crop=2, mode="RGB", mean=(0.0,) * 3, std=(1.0,) * 3)
    return TorchClassifier(net, recipe, name=f"net{seed}")


def feats_of(clf, x):
    with torch.no_grad():
        return clf.forward(x, features=True)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    return torch.rand(120, 3, 2, 2, generator=g), torch.rand(30, 3, 2, 2, generator=g)


@pytest.mark.parametrize("components", [[0], [1, 3], [0, 2, 5, 7]])
def test_on_the_source_it_removes_the_positive_alpha(data, components):
    fit_x, test_x = data
    src = relu_net(0)
    k = 2
    _, fit_f = feats_of(src, fit_x)
    w, b = src.last_layer()
    pca = fit_class(fit_f.numpy(), w[k].numpy(), float(b[k]), cls=k)
    fix = class_fix(pca.alpha(fit_f.numpy(), components), fit_f.numpy(), w[k].numpy(), k, components)
    fixed = SpuFixClassifier(src, [fix], source="net0")
    before, test_f = feats_of(src, test_x)
    after, _ = feats_of(fixed, test_x)
    positive_alpha = np.maximum(pca.alpha(test_f.numpy(), components).astype(np.float64), 0).sum(1)
    expected = before[:, k].double().numpy() - positive_alpha
    np.testing.assert_allclose(after[:, k].double().numpy(), expected, rtol=1e-5, atol=1e-5)
    others = [c for c in range(4) if c != k]
    assert torch.equal(after[:, others], before[:, others])  # bit-identical
    assert torch.all(after[:, k] <= before[:, k] + 1e-6)  # β ≥ 0: the logit only goes down
    assert fixed.key != src.key and fixed.key.startswith("spufix:")


def test_transfer_to_a_target_model(data):
    fit_x, test_x = data
    src, tgt = relu_net(0), relu_net(1, d=24)
    k, comps = 1, [0, 1]
    _, fs = feats_of(src, fit_x)
    _, ft = feats_of(tgt, fit_x)
    ws, bs = src.last_layer()
    wt, _ = tgt.last_layer()
    pca = fit_class(fs.numpy(), ws[k].numpy(), float(bs[k]), cls=k)
    fix = class_fix(pca.alpha(fs.numpy(), comps), ft.numpy(), wt[k].numpy(), k, comps)
    assert fix.directions.shape == (24, 2)
    np.testing.assert_allclose(np.linalg.norm(fix.directions, axis=0), 1.0, rtol=1e-12)
    # least squares by hand: λ minimises ‖D λ − (z − m)‖ for each image
    _, tf = feats_of(tgt, test_x)
    z = tf.numpy().astype(np.float64) * wt[k].numpy().astype(np.float64)
    lam = np.linalg.lstsq(fix.directions, (z - fix.mean).T, rcond=None)[0].T
    expected = np.maximum(lam * fix.directions.sum(0), 0).sum(1)
    np.testing.assert_allclose(correction(fix, z), expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(correction(fix, torch.from_numpy(z)).numpy(), expected, rtol=1e-9, atol=1e-9)


def test_degenerate_directions_are_one_line_errors(data):
    fit_x, _ = data
    src = relu_net(0)
    _, f = feats_of(src, fit_x)
    w, b = src.last_layer()
    pca = fit_class(f.numpy(), w[0].numpy(), float(b[0]), cls=0)
    a = pca.alpha(f.numpy(), [0])
    with pytest.raises(InputError, match="DᵀD is singular") as e:
        class_fix(np.concatenate([a, a], axis=1), f.numpy(), w[0].numpy(), 0, [0, 0])
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="no components to fix"):
        class_fix(a[:, :0], f.numpy(), w[0].numpy(), 0, [])
    with pytest.raises(InputError, match="row for row"):
        class_fix(a[:-1], f.numpy(), w[0].numpy(), 0, [0])


def test_components_file(tmp_path, reference):
    from shiftlab.analyze.spurious.spufix import read_components

    comps = read_components(reference / "spurious-imagenet" / "spurious_components.json")
    # what the published file holds (the paper's text says 230 classes / 319 components)
    assert len(comps) == 233 and sum(len(v) for v in comps.values()) == 322
    assert {89, 445, 793} <= set(comps) and max(max(v) for v in comps.values()) <= 49
    for bad in ('[1, 2]', '{"a": [1]}', '{"3": [1, 1]}', '{"3": [-1]}', '{"3": [1.5]}', '{"3": "1"}'):
        (tmp_path / "c.json").write_text(bad)
        with pytest.raises(InputError) as e:
            read_components(tmp_path / "c.json")
        assert "\n" not in str(e.value)


def test_spufix_scheme_on_the_world(zoo_world, tmp_path):
    """``spufix:`` loads through the plug-in, reads features through the prediction store and fixes only the
    labelled classes: on the world's spurious set the cue class's probability falls, other logits stay."""
    from shiftlab.models.specs import load_model
    from shiftlab.predict.engine import predict

    ws = zoo_world.workspace
    (tmp_path / "comps.json").write_text('{"2": [0, 1, 2, 3, 4]}')
    spec = f"spufix:world:cnn-medium-s0?components={tmp_path / 'comps.json'}&fit=world-train"
    fixed = load_model(spec, workspace=ws)
    assert [f.cls for f in fixed.fixes] == [2] and fixed.fixes[0].components == (0, 1, 2, 3, 4)
    spurious = zoo_world.manifest("spurious")
    base_p, fixed_p = predict(spurious, ["world:cnn-medium-s0", fixed], workspace=ws, progress=False)
    others = [c for c in range(10) if c != 2]
    np.testing.assert_array_equal(fixed_p.values[:, others], base_p.values[:, others])
    assert np.all(fixed_p.values[:, 2] <= base_p.values[:, 2] + 1e-3)  # float16 storage
    cue2 = np.asarray(zoo_world.truth("spurious")["cue_class"]) == 2

    def p2(v):
        return torch.softmax(torch.from_numpy(v.astype(np.float32)), 1)[:, 2].numpy()

    assert p2(fixed_p.values)[cue2].mean() < p2(base_p.values)[cue2].mean()
