"""Model schemes register: the world plugs in through its entry point, a user's scheme through
``register_scheme``, and the built-in ones cannot be replaced."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from shiftlab.data.recipes import Recipe
from shiftlab.errors import InputError, UnknownNameError
from shiftlab.models import specs
from shiftlab.models.classifier import TorchClassifier
from shiftlab.models.nets import LinearNet


def test_the_world_scheme_arrives_through_the_entry_point_without_importing_the_world():
    code = ("import sys; from shiftlab.models.specs import SCHEMES, schemes; "
            "print('world' in SCHEMES, 'shiftlab.world' in sys.modules, 'world' in schemes(), "
            "'shiftlab.world' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    # before the first look-up nothing of the world is loaded; the look-up runs the shiftlab.plugins entry point
    assert out == ["False", "False", "True", "True"]


def test_a_registered_scheme_loads_its_models_and_built_ins_stay(monkeypatch):
    monkeypatch.setattr(specs, "SCHEMES", dict(specs.SCHEMES))
    made = []

    def loader(rest, *, spec, workspace=None):
        made.append((rest, spec))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return TorchClassifier(LinearNet((1, 4, 4), 3), Recipe(resize=4, crop=4, mode="L", mean=(0.0,), std=(1.0,)),
                                   name=rest, key=spec)

    s = specs.register_scheme(specs.Scheme("mine", "mine:a", loader, doc="a user's models"))
    assert specs.register_scheme(s) is s  # the same scheme twice: a no-op
    clf = specs.load_model("mine:tiny")
    assert made == [("tiny", "mine:tiny")] and clf.logits(torch.zeros(2, 1, 4, 4)).shape == (2, 3)
    with pytest.raises(InputError, match="already registered"):
        specs.register_scheme(specs.Scheme("mine", "mine:b", loader))
    assert specs.register_scheme(specs.Scheme("mine", "mine:b", loader), replace=True).example == "mine:b"
    with pytest.raises(InputError, match="already registered"):
        specs.register_scheme(specs.Scheme("onnx", "onnx:x", loader), replace=True)
    with pytest.raises(InputError, match="letters, digits"):
        specs.register_scheme(specs.Scheme("my scheme", "x", loader))
    with pytest.raises(UnknownNameError, match="mine:"):
        specs.split_spec("nope:x")  # the message lists the registered schemes too


def test_a_plug_in_that_fails_says_which(monkeypatch):
    from importlib import metadata

    from shiftlab import registry

    class Broken:
        name, value = "broken", "nowhere.module:register"

        def load(self):
            raise ModuleNotFoundError("No module named 'nowhere'")

    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(metadata, "entry_points", lambda group: [Broken()])
    with pytest.raises(InputError, match="plug-in 'broken' .*nowhere"):
        registry.load_plugins()
    assert registry._plugins_loaded is False  # a later call tries again
