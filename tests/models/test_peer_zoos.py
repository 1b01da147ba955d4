"""shiftlab's ``madry:`` and ``robustbench:`` adapters against the real libraries, which stay out of the venv.

robustness 1.2.1 (MadryLab, last release) and robustbench 1.1.1 (PyPI) cannot live in shiftlab's environment:
robustbench pins timm 1.0.9, imports ``pkg_resources`` and the git-only ``autoattack``; robustness imports a
torchvision module removed in 0.13. So this test installs them, without their dependencies, into a throwaway
folder, and runs ``peers/make_reference.py`` in a subprocess with that folder on its path. Two shims, both
said where they are: ``peers/sitecustomize.py`` (torchvision.models.utils for robustness) and an ``autoattack``
name for PyPI's ``pyautoattack`` package (the same code, published under another name).

The subprocess saves checkpoints the way each library does and records the libraries' own outputs; the
``madry:`` check then runs here, without the robustness library, and the ``robustbench:`` check runs in the
subprocess (the adapter needs robustbench to import).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from shiftlab.models import load_model

pytest.importorskip("torchvision")

PEERS = Path(__file__).parent / "peers"
# what the two libraries import at module level, beyond what shiftlab's venv has
PACKAGES = ["robustness==1.2.1.post2", "cox", "dill", "tensorboardX", "gitpython", "gitdb", "smmap", "py3nvml",
            "GPUtil", "robustbench==1.1.1", "torchdiffeq", "geotorch", "gdown==5.1.0", "beautifulsoup4",
            "soupsieve", "pyautoattack==0.2.0", "setuptools<81"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def peer_outputs(tmp_path_factory):
    target = tmp_path_factory.mktemp("peer-libs")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                          *PACKAGES], capture_output=True, text=True, timeout=600)
    if pip.returncode != 0:
        pytest.skip("the peer libraries robustness/robustbench could not be installed here: "
                    + pip.stderr.strip().splitlines()[-1][:200])
    (target / "autoattack").symlink_to(target / "pyautoattack", target_is_directory=True)
    out = tmp_path_factory.mktemp("peer-out")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PEERS), str(target)]), "PYTHONWARNINGS": "ignore"}
    run = subprocess.run([sys.executable, str(PEERS / "make_reference.py"), str(out)], env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


@pytest.mark.parametrize("name, arch", [("madry_cifar_resnet18", "resnet18"), ("madry_cifar_resnet50", "resnet50"),
                                        ("madry_imagenet_resnet18", "resnet18")])
def test_madry_matches_the_robustness_library(peer_outputs, name, arch):
    ref = np.load(peer_outputs / "madry_reference.npz")
    clf = load_model(f"madry:{arch}:{peer_outputs / (name + '.pt')}")
    x = torch.from_numpy(ref[f"{name}/x"])
    assert clf.recipe.input_shape[1:] == tuple(x.shape[2:])
    with torch.no_grad():
        logits = clf.logits(x).numpy()
    theirs = ref[f"{name}/logits"]
    assert np.abs(theirs).max() > 0.01
    np.testing.assert_allclose(logits, theirs, rtol=1e-4, atol=1e-5)
    # the library's normaliser: CIFAR's and ImageNet's mean
    expected = (0.4914, 0.4822, 0.4465) if "cifar" in name else (0.485, 0.456, 0.406)
    assert clf.recipe.mean == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("name, recipe", [
    ("Salman2020Do_R18", {"resize": 256, "crop": 224, "interpolation": "bilinear"}),
    ("Engstrom2019Robustness", {"resize": None, "crop": 32})])
def test_robustbench_matches_robustbench(peer_outputs, name, recipe):
    r = json.loads((peer_outputs / "robustbench.json").read_text())[name]
    assert r["input_max_diff"] is not None and r["input_max_diff"] < 1e-6  # the benchmark's own preprocessing
    assert r["logits_scale"] > 0.01
    assert r["logits_max_diff"] <= 1e-4 * max(1.0, r["logits_scale"])
    assert r["head_max_diff"] <= 1e-4 * max(1.0, r["logits_scale"])
    # normalisation inside the model: the recipe leaves values in [0, 1]
    assert r["recipe"]["mean"] == [0.0] * 3 and r["recipe"]["std"] == [1.0] * 3
    for k, v in recipe.items():
        assert r["recipe"][k] == v


def test_robustbench_absent_gives_the_install_hint(monkeypatch):
    from shiftlab.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "robustbench", None)  # whatever is installed, it cannot import now
    with pytest.raises(MissingDependencyError, match=r"robustbench is not importable here; install it with: pip"):
        load_model("robustbench:Salman2020Do_R50@imagenet/Linf")
