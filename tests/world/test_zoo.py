"""The embedded model zoo: configs, architectures, training, caching and the ``world:`` spec.

The unit tests train one-epoch models on a tiny stand-in for the digits world; one slow test trains the
real default zoo on a full stand-in (scikit-learn's digits rendered as 32×32 RGB, dark ink on light
paper, like the world) and checks what the zoo promises: accuracy spread, robustness of the adversarially
trained and worst-of-k models, training time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from sklearn.datasets import load_digits
from torch import nn

from shiftlab.data.classes import digits
from shiftlab.data.layouts import read_imagefolder
from shiftlab.data.transforms import GROUPS, all_versions
from shiftlab.errors import InputError, ShiftlabError, UnknownNameError
from shiftlab.models import RECIPES, TorchClassifier, load_model
from shiftlab.models.attacks import pgd_l2
from shiftlab.models.nets import n_params
from shiftlab.predict.cache import DecodedCache
from shiftlab.registry import register_dataset
from shiftlab.world import zoo as Z


# --- a stand-in for the digits world ------------------------------------------------------------------------
def render(d8: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One 8×8 scan as a 32×32 RGB uint8 image: dark blue-black ink on off-white paper."""
    h = int(rng.integers(22, 27))
    m = np.clip(ndimage.zoom(d8 / 16.0, h / 8.0, order=3, grid_mode=True, mode="grid-constant"), 0, 1)
    m = np.clip(ndimage.rotate(m, rng.uniform(-5, 5), reshape=False, order=1), 0, 1)
    canvas = np.zeros((32 + 2 * h, 32 + 2 * h))
    dy, dx = rng.integers(-1, 2, 2)
    top, left = h + (32 - h) // 2 + dy, h + (32 - h) // 2 + dx
    canvas[top:top + h, left:left + h] = m
    ink = ndimage.gaussian_filter(canvas[h:h + 32, h:h + 32], rng.uniform(0.3, 0.6))
    a = np.clip(ink * rng.uniform(0.88, 1.0), 0, 1)[:, :, None]
    paper = np.array([0.95, 0.94, 0.90]) + rng.uniform(-0.02, 0.02, 3)
    img = paper * (1 - a) + np.array([0.08, 0.09, 0.20]) * a + rng.normal(0, 0.015, (32, 32, 3))
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def write_standin(root: Path, splits: dict[str, int], seed: int = 0) -> dict[str, Path]:
    """ImageFolders ``root/<split>/<digit>/<index>.png`` from disjoint random subsets of the 1,797 digits."""
    d = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(d.target))
    out, lo = {}, 0
    for split, n in splits.items():
        for i in order[lo:lo + n]:
            p = root / split / str(d.target[i]) / f"{i:04d}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(render(d.images[i], rng)).save(p)
        out[split], lo = root / split, lo + n
    return out


def manifest(folder: Path, name: str):
    return read_imagefolder(folder, vocabulary=digits(), name=name, progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 150-image training set and a 60-image held-out set."""
    f = write_standin(tmp_path_factory.mktemp("tiny"), {"train": 150, "test": 60}, seed=1)
    return manifest(f["train"], "tiny-train"), manifest(f["test"], "tiny-test")


QUICK = {"epochs": 1}


def pixels01(m, workspace) -> torch.Tensor:
    cache = DecodedCache(m, RECIPES["world"], workspace, progress=False).build()
    return torch.from_numpy(np.array(cache.pixels())).float().div(255)


def fail_training(*a, **k):
    raise AssertionError("a cached model was trained again")


# --- configs and architectures ------------------------------------------------------------------------------
def test_the_default_zoo():
    assert len(Z.ZOO) >= 8
    assert {"linear", "linear-coarse", "mlp", "cnn-small", "cnn-medium-s0", "cnn-medium-s1", "cnn-wide",
            "cnn-adv-l2", "cnn-worst-of-k"} <= set(Z.ZOO)
    assert {c.family for c in Z.ZOO.values()} == {"linear", "mlp", "cnn"}
    assert len({c.width for c in Z.ZOO.values() if c.family == "cnn"}) >= 3, "CNNs of several widths"
    assert Z.ZOO["cnn-medium-s0"].seed != Z.ZOO["cnn-medium-s1"].seed
    adv = Z.ZOO["cnn-adv-l2"]
    assert adv.training == "pgd-l2" and adv.eps > 0 and adv.pgd_steps >= 1
    assert adv.pgd_step == pytest.approx(2.5 * adv.eps / adv.pgd_steps)
    assert adv.width == Z.ZOO["cnn-medium-s0"].width
    wok = Z.ZOO["cnn-worst-of-k"]
    assert wok.training == "worst-of-k" and wok.perturb_seed is not None and wok.width == adv.width
    assert all(c.recipe == "world" and c.doc for c in Z.ZOO.values())


@pytest.mark.parametrize("name", list(Z.ZOO))
def test_every_architecture_ends_in_fc_with_features(name, check_classifier):
    cfg = Z.ZOO[name]
    module = Z.build_module(cfg, (3, 32, 32), 10)
    assert isinstance(module.fc, nn.Linear) and module.fc.out_features == 10
    clf = TorchClassifier(module, RECIPES["world"], name=name)
    assert clf.layer_name == "fc"
    _, feats = check_classifier(clf, module.eval(), RECIPES["world"].mean, RECIPES["world"].std,
                                     shape=(3, 3, 32, 32))
    assert feats.shape[1] == module.fc.in_features


def test_capacities_differ_and_init_is_seeded():
    size = {n: n_params(Z.build_module(c, (3, 32, 32), 10)) for n, c in Z.ZOO.items()}
    assert size["linear-coarse"] < size["cnn-small"] < size["cnn-medium-s0"] < size["cnn-wide"] < size["linear"]
    a = Z.build_module(Z.ZOO["cnn-medium-s0"], (3, 32, 32), 10)
    b = Z.build_module(Z.ZOO["cnn-medium-s0"], (3, 32, 32), 10)
    c = Z.build_module(Z.ZOO["cnn-medium-s1"], (3, 32, 32), 10)
    assert torch.equal(a.fc.weight, b.fc.weight) and not torch.equal(a.fc.weight, c.fc.weight)
    state = torch.random.get_rng_state()
    Z.build_module(Z.ZOO["mlp"], (3, 32, 32), 10)
    assert torch.equal(state, torch.random.get_rng_state()), "the global RNG is left alone"


@pytest.mark.parametrize("kw, match", [
    ({"family": "resnet"}, "family"),
    ({"family": "cnn", "width": 0}, "width"),
    ({"family": "linear", "training": "pgd-l2"}, "eps"),
    ({"family": "linear", "training": "worst-of-k"}, "perturb_seed"),
    ({"family": "linear", "epochs": 0}, "epochs"),
])
def test_bad_configs(kw, match):
    with pytest.raises(ShiftlabError, match=match):
        Z.ZooConfig("x", **kw)


# --- training and caching -------------------------------------------------------------------------------------
def test_train_caches_and_a_second_call_loads(tiny, workspace, monkeypatch):
    train, _ = tiny
    entries = Z.train_zoo(train, workspace, ["linear", "cnn-small"], progress=False, overrides=QUICK)
    assert list(entries) == ["linear", "cnn-small"]
    for name, e in entries.items():
        assert e.trained and e.config.epochs == 1
        assert e.path == workspace.root / "models" / "zoo" / f"{name}-{e.hash}.pt" and e.path.is_file()
        assert len(e.hash) == 16 and e.key == f"world:{name}@{e.hash}"
        r = e.record
        assert r["epochs"] == 1 and r["seconds"] > 0 and r["n_train"] == 150 and r["n_excluded"] == 0
        assert np.isfinite(r["final_loss"]) and 0 <= r["final_acc"] <= 1 and r["manifest_hash"] == train.content_hash
        saved = torch.load(e.path, weights_only=True)
        assert saved["config"] == e.config.to_json() and saved["record"] == r
        assert saved["code_version"] == Z.CODE_VERSION and set(saved["state_dict"]) == set(e.module.state_dict())
    assert not list(e.path.parent.glob("*.tmp")), "written atomically"
    first = {n: {k: v.clone() for k, v in e.module.state_dict().items()} for n, e in entries.items()}

    monkeypatch.setattr(Z, "train_model", fail_training)
    again = Z.train_zoo(train, workspace, ["linear", "cnn-small"], progress=False, overrides=QUICK)
    for name, e in again.items():
        assert not e.trained and e.hash == entries[name].hash and e.record == entries[name].record
        for k, v in e.module.state_dict().items():
            assert torch.equal(v, first[name][k])
    clf = Z.load_zoo_model("cnn-small", train, workspace, progress=False, overrides=QUICK)
    assert clf.key == entries["cnn-small"].key and clf.recipe == RECIPES["world"] and clf.name == "cnn-small"
    with pytest.raises(AssertionError, match="trained again"):  # a config it has not seen is trained
        Z.train_zoo(train, workspace, ["linear"], progress=False, overrides={"epochs": 2})


def test_cache_key(tiny, monkeypatch):
    train, test = tiny
    cfg = Z.ZOO["cnn-small"]
    h = Z.zoo_hash(cfg, train)
    assert Z.zoo_hash(cfg, train) == h
    from dataclasses import replace

    assert Z.zoo_hash(replace(cfg, doc="other words"), train) == h, "the doc is not part of the key"
    assert Z.zoo_hash(replace(cfg, epochs=2), train) != h
    assert Z.zoo_hash(cfg, train.subset(np.arange(100))) != h, "training data content"
    assert Z.zoo_hash(cfg, test) != h
    monkeypatch.setattr(Z, "CODE_VERSION", "zoo-next")
    assert Z.zoo_hash(cfg, train) != h


def test_training_is_deterministic_given_the_seed(tiny, tmp_path):
    train, _ = tiny
    cfg = {"cnn": Z.ZooConfig("cnn", "cnn", width=4, epochs=2, shift=2)}
    a = Z.train_zoo(train, tmp_path / "a", progress=False, zoo=cfg)["cnn"]
    b = Z.train_zoo(train, tmp_path / "b", progress=False, zoo=cfg)["cnn"]
    c = Z.train_zoo(train, tmp_path / "c", progress=False, zoo=cfg, overrides={"seed": 1})["cnn"]
    for k, v in a.module.state_dict().items():
        assert torch.equal(v, b.module.state_dict()[k])
    assert not torch.equal(a.module.fc.weight, c.module.fc.weight)
    assert a.record["final_loss"] == b.record["final_loss"]


@pytest.mark.parametrize("name", ["cnn-adv-l2", "cnn-worst-of-k"])
def test_robust_trainings_run(name, tiny, workspace):
    train, _ = tiny
    e = Z.train_zoo(train, workspace, name, progress=False, overrides=QUICK)[name]
    assert e.trained and np.isfinite(e.record["final_loss"])
    saved = torch.load(e.path, weights_only=True)["config"]
    if name == "cnn-adv-l2":  # the attack's parameters are recorded with the weights
        assert (saved["eps"], saved["pgd_steps"], saved["pgd_step"]) == (e.config.eps, e.config.pgd_steps,
                                                                          e.config.pgd_step)
    else:
        assert saved["perturb_seed"] == e.config.perturb_seed


def test_undecodable_training_images_are_left_out(tiny, tmp_path, workspace):
    import shutil

    train, _ = tiny
    folder = shutil.copytree(Path(train.root), tmp_path / "train")
    (folder / "3" / "broken.png").write_bytes(b"not a png")
    m = manifest(folder, "broken-train")
    e = Z.train_zoo(m, workspace, "linear", progress=False, overrides=QUICK)["linear"]
    assert e.record["n_train"] == 150 and e.record["n_excluded"] == 1


def test_two_trainers_train_once(tiny, workspace, monkeypatch):
    train, _ = tiny
    calls = []
    real = Z.train_model

    def slow_train(*a, **k):
        calls.append(1)
        time.sleep(0.3)  # long enough for the other trainer to find the lock taken
        return real(*a, **k)

    monkeypatch.setattr(Z, "train_model", slow_train)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        Z.train_zoo(train, workspace, "linear", progress=False, overrides=QUICK)["linear"])) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 2
    assert sorted(r.trained for r in results) == [False, True]
    assert results[0].hash == results[1].hash


def test_unknown_zoo_name(tiny, workspace):
    with pytest.raises(UnknownNameError, match="cnn-medium-s0"):
        Z.train_zoo(tiny[0], workspace, ["cnn-huge"], progress=False)


def test_zoo_models_predict_through_the_engine(tiny, workspace):
    from shiftlab.predict.engine import predict

    train, test = tiny
    clf = Z.load_zoo_model("mlp", train, workspace, progress=False)
    preds = predict(test, [clf], workspace=workspace, features=True, progress=False)[0]
    x = pixels01(test, workspace)
    with torch.no_grad():
        w, b = clf.last_layer()
        np.testing.assert_allclose(preds.features @ w.numpy().T + b.numpy(), preds.values, atol=1e-2)
        np.testing.assert_allclose(preds.values, clf.logits(x).numpy(), atol=1e-2)  # float16 store
    assert (preds.values.argmax(1) == test.labels).mean() > 0.5, "15 epochs of an MLP learn something"
    cells = [p.name for p in workspace.predictions.iterdir()]
    assert len(cells) == 1


def test_summary_table(tiny, workspace):
    entries = Z.train_zoo(tiny[0], workspace, ["linear", "mlp"], progress=False, overrides=QUICK)
    df = Z.summary(entries)
    assert list(df["name"]) == ["linear", "mlp"] and (df["params"] > 0).all() and not df["cached"].any()
    assert {"seconds", "final_acc", "final_loss", "epochs", "training"} <= set(df.columns)


# --- the world: spec ------------------------------------------------------------------------------------------------
def test_world_spec_without_a_world(workspace):
    with pytest.raises(ShiftlabError) as e:
        load_model("world:cnn-medium-s0", workspace=workspace)
    assert str(e.value) == f"the digits world is not built in {workspace.root}: run 'shiftlab world build'"


def test_world_spec_unknown_name_lists_the_zoo(workspace):
    with pytest.raises(UnknownNameError) as e:
        load_model("world:resnet50", workspace=workspace)
    msg = str(e.value)
    assert all(n in msg for n in Z.ZOO) and "\n" not in msg


def test_world_spec_trains_on_world_train_once(tiny, workspace, monkeypatch):
    train, _ = tiny
    register_dataset(train, "world-train", workspace=workspace)
    clf = load_model("world:linear", workspace=workspace)
    assert isinstance(clf, TorchClassifier) and clf.recipe == RECIPES["world"] and clf.num_classes == 10
    registered = Z.train_zoo(train.__class__.load(workspace.manifests / "world-train.parquet"), workspace,
                             "linear", progress=False)["linear"]
    assert clf.key == registered.key
    monkeypatch.setattr(Z, "train_model", fail_training)
    assert load_model("world:linear", workspace=workspace).key == clf.key


# --- the real default zoo -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_default_zoo_on_the_standin_world(tmp_path_factory, monkeypatch):
    """Trains all models (one to four minutes on 2 cores, by how loaded they are) and checks what the zoo promises."""
    from shiftlab.workspace import Workspace

    ws = Workspace.resolve(tmp_path_factory.mktemp("zoo-ws"))
    f = write_standin(tmp_path_factory.mktemp("standin"), {"train": 1000, "test": 797})
    train, test = manifest(f["train"], "world-train"), manifest(f["test"], "world-test")
    t0 = time.perf_counter()
    entries = Z.train_zoo(train, ws, progress=False)
    wall = time.perf_counter() - t0
    assert list(entries) == list(Z.ZOO) and len(entries) >= 8
    seconds = {n: e.record["seconds"] for n, e in entries.items()}
    total = sum(seconds.values())
    # the recorded per-model times add up to no more than the wall time (each model timed once); how fast the
    # zoo trains is a speed target, measured in bench/, not asserted here (a loaded machine took 212 s)
    assert total <= wall and all(s > 0 for s in seconds.values()), seconds

    x, y = pixels01(test, ws), torch.tensor(test.labels)

    def accuracy(clf, images):
        with torch.no_grad():
            return float((clf.logits(images).argmax(1) == y).float().mean())

    clfs = {n: e.classifier() for n, e in entries.items()}
    acc = {n: accuracy(c, x) for n, c in clfs.items()}
    assert max(acc.values()) - min(acc.values()) >= 0.15, acc
    assert all(acc[n] > 0.9 for n, e in entries.items() if e.config.family == "cnn"), acc

    with torch.no_grad():  # every model exposes logits, penultimate features and its last layer
        for clf in clfs.values():
            logits, feats = clf.forward(x[:32], features=True)
            w, b = clf.last_layer()
            torch.testing.assert_close(logits, feats @ w.T + b, atol=1e-4, rtol=1e-4)

    # the adversarially trained CNN is more robust than a standard CNN of the same width, at its ε
    adv = entries["cnn-adv-l2"].config
    std = "cnn-medium-s0"
    assert Z.ZOO[std].width == adv.width

    def robust(clf):
        xa = pgd_l2(clf.logits, x, y, eps=adv.eps, steps=20, step_size=2.5 * adv.eps / 20)
        return accuracy(clf, xa)

    rob_adv, rob_std = robust(clfs["cnn-adv-l2"]), robust(clfs[std])
    assert rob_adv > rob_std + 0.1, (rob_adv, rob_std)

    # the worst-of-k CNN beats the standard CNN on its worst perturbation group of the test set
    versions = all_versions(x, seed=1234, dark_ink=True)
    groups = {n: [accuracy(clfs[n], v) for v in versions] for n in ("cnn-worst-of-k", std)}
    assert len(groups[std]) == len(GROUPS)
    assert min(groups["cnn-worst-of-k"]) > min(groups[std]), groups

    # the world: spec finds world-train and loads the cached weights without training
    register_dataset(train, "world-train", workspace=ws)
    monkeypatch.setattr(Z, "train_model", fail_training)
    clf = load_model("world:cnn-adv-l2", workspace=ws)
    assert clf.key == entries["cnn-adv-l2"].key
    assert accuracy(clf, x) == acc["cnn-adv-l2"]
    print("\n" + "\n".join(f"{n:16s} {n_params(e.module):7d} params {seconds[n]:6.2f}s  held-out "
                           f"{100 * acc[n]:5.1f}%" for n, e in entries.items()) + f"\ntotal {total:.1f}s; "
          f"robust@{adv.eps}: adv {rob_adv:.3f} std {rob_std:.3f}; worst group: wok "
          f"{min(groups['cnn-worst-of-k']):.3f} std {min(groups[std]):.3f}")


def test_bad_training_manifest(tmp_path, workspace):
    import pandas as pd

    from shiftlab.data.manifest import Manifest

    m = Manifest(pd.DataFrame({"id": ["a"], "path": ["a.png"], "sha256": [None], "label": [-1]}), name="x",
                 vocabulary=digits(), root=str(tmp_path))
    (tmp_path / "a.png").write_bytes(b"junk")
    with pytest.raises(InputError, match="no decodable, labelled images"):
        Z.train_zoo(m, workspace, "linear", progress=False)


def test_a_damaged_checkpoint_is_reported_not_used(tiny, workspace):
    e = Z.train_zoo(tiny[0], workspace, "linear", progress=False, overrides=QUICK)["linear"]
    e.path.write_bytes(b"not a checkpoint")
    with pytest.raises(ShiftlabError, match="unreadable zoo checkpoint.*delete it") as err:
        Z.train_zoo(tiny[0], workspace, "linear", progress=False, overrides=QUICK)
    assert "\n" not in str(err.value)
