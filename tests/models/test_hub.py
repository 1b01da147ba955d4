"""The zoo adapters' own logic (weights lookup, zoo config → Recipe, error wrapping), run against stand-ins.

torchvision / timm / robustbench do not import on the CPU build used here; these tests put minimal
stand-ins with the same API into ``sys.modules`` so that ``hub.py`` runs for real. The real libraries are
exercised in test_specs.py where they import.
"""

from __future__ import annotations

import enum
import sys
import types

import pytest
import torch
from torch import nn

from shiftlab.errors import InputError, ShiftlabError
from shiftlab.models import TorchClassifier, load_model


class InterpolationMode(enum.Enum):  # as torchvision.transforms.InterpolationMode
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


class _Transforms:
    resize_size = (232,)
    crop_size = (224,)
    interpolation = InterpolationMode.BICUBIC
    mean = (0.1, 0.2, 0.3)
    std = (0.4, 0.5, 0.6)


class Weights(enum.Enum):  # as torchvision's weight enums: DEFAULT is an alias of the best member
    IMAGENET1K_V1 = "v1"
    IMAGENET1K_V2 = "v2"
    DEFAULT = "v2"

    def transforms(self):
        return _Transforms()


def tiny_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


@pytest.fixture
def fake_torchvision(monkeypatch):
    calls = []

    def get_model_weights(name):
        if name not in ("tinynet", "offline_net"):
            raise ValueError(f"Unknown model {name}")
        return Weights

    def get_model(name, weights=None):
        calls.append((name, weights))
        if name == "offline_net":
            raise RuntimeError("<urlopen error [Errno -3] Temporary failure in name resolution>")
        return tiny_net()

    tv = types.ModuleType("torchvision")
    tv.models = types.SimpleNamespace(get_model_weights=get_model_weights, get_model=get_model)
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    return calls


def test_torchvision_weights_and_recipe(fake_torchvision):
    clf = load_model("torchvision:tinynet")
    assert isinstance(clf, TorchClassifier)
    assert fake_torchvision == [("tinynet", Weights.IMAGENET1K_V2)]  # DEFAULT resolved to the enum member
    r = clf.recipe
    assert (r.resize, r.crop, r.interpolation, r.mean, r.std) == (232, 224, "bicubic", (0.1, 0.2, 0.3),
                                                                  (0.4, 0.5, 0.6))
    assert clf.key == "torchvision:tinynet@IMAGENET1K_V2"
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        expected = tiny_net()((x - torch.tensor(r.mean).view(1, 3, 1, 1)) / torch.tensor(r.std).view(1, 3, 1, 1))
        torch.testing.assert_close(clf.logits(x), expected)


def test_torchvision_named_weights(fake_torchvision):
    assert load_model("torchvision:tinynet@IMAGENET1K_V1").key.endswith("@IMAGENET1K_V1")
    assert fake_torchvision[-1][1] is Weights.IMAGENET1K_V1


@pytest.mark.parametrize("spec", ["torchvision:nonet", "torchvision:tinynet@IMAGENET9K"])
def test_torchvision_unknown_model_or_weights(fake_torchvision, spec):
    with pytest.raises(InputError, match="torchvision has no model/weights"):
        load_model(spec)


def test_torchvision_weights_unavailable(fake_torchvision):
    with pytest.raises(ShiftlabError, match="could not load pretrained weights.*offline") as e:
        load_model("torchvision:offline_net")
    assert "\n" not in str(e.value)


@pytest.fixture
def fake_timm(monkeypatch):
    timm = types.ModuleType("timm")
    timm.is_model = lambda name: name in ("tinynet", "offline_net")

    def create_model(name, pretrained=False):
        assert pretrained
        if name == "offline_net":
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return tiny_net(seed=1)

    timm.create_model = create_model
    data = types.ModuleType("timm.data")
    data.resolve_data_config = lambda args, model=None: {
        "input_size": (3, 192, 192), "crop_pct": 0.9, "interpolation": "bicubic",
        "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    timm.data = data
    monkeypatch.setitem(sys.modules, "timm", timm)
    monkeypatch.setitem(sys.modules, "timm.data", data)


def test_timm_recipe_from_data_config(fake_timm):
    clf = load_model("timm:tinynet")
    r = clf.recipe
    assert (r.resize, r.crop, r.interpolation, r.mean, r.std) == (213, 192, "bicubic", (0.5,) * 3, (0.25,) * 3)
    with pytest.raises(InputError, match="timm has no model 'nonet'"):
        load_model("timm:nonet")
    with pytest.raises(ShiftlabError, match="could not load pretrained weights"):
        load_model("timm:offline_net")


def test_robustbench_recipe(monkeypatch):
    got = {}

    def rb_load(model_name, dataset, threat_model):
        got.update(model_name=model_name, dataset=dataset, threat_model=threat_model)
        return tiny_net()

    rb = types.ModuleType("robustbench")
    utils = types.ModuleType("robustbench.utils")
    utils.load_model = rb_load
    rb.utils = utils
    monkeypatch.setitem(sys.modules, "robustbench", rb)
    monkeypatch.setitem(sys.modules, "robustbench.utils", utils)
    clf = load_model("robustbench:Salman2020Do_R50@imagenet/L2")
    assert got == {"model_name": "Salman2020Do_R50", "dataset": "imagenet", "threat_model": "L2"}
    assert (clf.recipe.resize, clf.recipe.crop, clf.recipe.mean, clf.recipe.std) == (256, 224, (0.0,) * 3, (1.0,) * 3)
    clf = load_model("robustbench:Standard@cifar10")
    assert got["threat_model"] == "Linf" and (clf.recipe.resize, clf.recipe.crop) == (None, 32)
