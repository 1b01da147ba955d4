"""Spec strings: schemes, aliases, recipe overrides, and the zoo adapters (tested only where they import)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from shiftlab.errors import InputError, MissingDependencyError, UnknownNameError
from shiftlab.models import Recipe, TorchClassifier, load_model, specs
from shiftlab.registry import register_model

FACTORY = """
import torch
from torch import nn
def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
"""


@pytest.mark.parametrize("spec", ["nosuch:thing", "resnet50", "", "Torchvision:resnet50"])
def test_unknown_scheme_or_name(spec, workspace):
    with pytest.raises(UnknownNameError) as e:
        load_model(spec, workspace=workspace)
    msg = str(e.value)
    assert "torchvision:" in msg and "shiftlab models add" in msg and "\n" not in msg


@pytest.mark.parametrize("scheme", sorted(specs.SCHEMES))
def test_empty_after_scheme(scheme):
    with pytest.raises(UnknownNameError, match="empty after the scheme") as e:
        load_model(f"{scheme}:")
    assert specs.SCHEMES[scheme].example in str(e.value)


@pytest.mark.parametrize("spec, lib", [("torchvision:resnet50", "torchvision"),
                                       ("timm:vit_base_patch16_224", "timm"),
                                       ("madry:resnet50:x.pt", "torchvision"),
                                       ("robustbench:Salman2020Do_R50@imagenet/Linf", "robustbench")])
def test_missing_zoo_library(spec, lib, monkeypatch):
    monkeypatch.setitem(sys.modules, lib, None)  # installed or not, it cannot import now
    with pytest.raises(MissingDependencyError) as e:
        load_model(spec)
    msg = str(e.value)
    assert f"{lib} is not importable here" in msg and "pip install" in msg and "\n" not in msg


def test_broken_install_counts_as_missing(tmp_path, monkeypatch):
    (tmp_path / "shiftlab_broken_lib.py").write_text("raise RuntimeError('built against another torch')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    scheme = specs.Scheme("broken", "broken:x", "pyfactory:load", ("shiftlab_broken_lib",), "pip install fixed")
    monkeypatch.setitem(specs.SCHEMES, "broken", scheme)
    with pytest.raises(MissingDependencyError, match="shiftlab_broken_lib is not importable.*pip install fixed"):
        load_model("broken:x")


def test_alias_resolves_through_the_workspace(tmp_path, workspace):
    f = tmp_path / "factory.py"
    f.write_text(FACTORY)
    register_model("tiny-net", f"python:{f}:build", workspace=workspace)
    clf = load_model("tiny-net", workspace=workspace)
    assert isinstance(clf, TorchClassifier) and clf.num_classes == 3
    np.save(tmp_path / "z.npy", np.eye(3, dtype=np.float32))
    register_model("tiny-net", f"predictions:{tmp_path / 'z.npy'}", workspace=workspace)  # re-pointing wins
    assert load_model("tiny-net", workspace=workspace).kind == "probabilities"
    with pytest.raises(UnknownNameError):
        load_model("other-net", workspace=workspace)


def test_register_model_rejects_bad_names(workspace):
    with pytest.raises(InputError):
        register_model("bad name/x", "python:m:f", workspace=workspace)


def test_recipe_overrides(tmp_path):
    f = tmp_path / "factory.py"
    f.write_text(FACTORY)
    base = load_model(f"python:{f}:build")
    clf = load_model(f"python:{f}:build", recipe_overrides={"crop": 112})
    assert base.recipe.crop == 224 and clf.recipe.crop == 112
    assert clf.recipe.resize == base.recipe.resize and clf.recipe.mean == base.recipe.mean
    assert clf.recipe.key() != base.recipe.key()
    clf = load_model(f"python:{f}:build", recipe=Recipe(resize=299, crop=299), recipe_overrides={"mode": "L",
                     "mean": [0.5], "std": [0.5]})
    assert (clf.recipe.resize, clf.recipe.mode, clf.recipe.mean) == (299, "L", (0.5,))


# --- zoo adapters: run only where the library imports ----------------------------------------------------
