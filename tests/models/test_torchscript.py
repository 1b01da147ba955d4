"""``torchscript:<path>``: features from an exported method or a Sequential; recipe from the archive."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from shiftlab.errors import InputError
from shiftlab.models import Recipe, load_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated in torch 2.x
ODD = Recipe(resize=14, crop=12, mean=(0.2, 0.5, 0.7), std=(0.3, 0.1, 0.6))


def save_script(module, path, recipe: Recipe | None = None, raw_recipe: str | None = None):
    extra = {}
    if recipe is not None:
        extra["shiftlab_recipe.json"] = json.dumps(recipe.to_json())
    if raw_recipe is not None:
        extra["shiftlab_recipe.json"] = raw_recipe
    torch.jit.save(torch.jit.script(module.eval()), str(path), _extra_files=extra)
    return path


def test_exported_features_method_and_stored_recipe(tmp_path, small_cnn, check_classifier):
    m = small_cnn(n_classes=4, width=7, seed=1).eval()
    clf = load_model(f"torchscript:{save_script(m, tmp_path / 'cnn.pt', ODD)}")
    assert clf.recipe == ODD and clf.name == "cnn"
    _, feats = check_classifier(clf, m, ODD.mean, ODD.std)
    assert feats.shape[1] == 7
    torch.testing.assert_close(clf.last_layer()[0], m.fc.weight.detach())
    torch.testing.assert_close(clf.last_layer()[1], m.fc.bias.detach())


def test_scripted_sequential_ending_in_linear(tmp_path, check_classifier):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    clf = load_model(f"torchscript:{save_script(m, tmp_path / 'seq.pt')}")
    assert clf.recipe == Recipe()  # nothing stored: the ImageNet default
    check_classifier(clf, m, Recipe().mean, Recipe().std)
    with torch.no_grad():
        x = torch.rand(2, 3, 12, 12)
        torch.testing.assert_close(clf.features(x), m[:-1](Recipe().normalize(x)))


def test_scripted_sequential_not_ending_in_linear_has_no_features(tmp_path):
    # the softmax's input is the logits, not the penultimate features: shiftlab must not pass them off as such
    m = nn.Sequential(nn.Flatten(), nn.Linear(12, 3), nn.Softmax(dim=1))
    clf = load_model(f"torchscript:{save_script(m, tmp_path / 'sm.pt')}")
    x = torch.rand(2, 3, 2, 2)
    with torch.no_grad():
        torch.testing.assert_close(clf.logits(x), m(Recipe().normalize(x)))
        with pytest.raises(InputError, match="features"):
            clf.features(x)


def test_plain_script_gives_logits_but_no_features(tmp_path):
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 2, 1)
            self.out = nn.Linear(2, 3)

        def forward(self, x):
            return self.out(self.conv(x).mean(dim=(2, 3)))

    m = Plain().eval()
    clf = load_model(f"torchscript:{save_script(m, tmp_path / 'plain.pt')}")
    x = torch.rand(2, 3, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(clf.logits(x), m(Recipe().normalize(x)))
        with pytest.raises(InputError, match=r"@torch.jit.export") as e:
            clf.features(x)
    assert "\n" not in str(e.value)
    torch.testing.assert_close(clf.last_layer()[0], m.out.weight.detach())


def test_linear_without_bias(tmp_path):
    m = nn.Sequential(nn.Flatten(), nn.Linear(12, 3, bias=False))
    clf = load_model(f"torchscript:{save_script(m, tmp_path / 'nb.pt')}")
    w, b = clf.last_layer()
    assert torch.equal(b, torch.zeros(3))
    with torch.no_grad():
        logits, f = clf.forward(torch.rand(2, 3, 2, 2), features=True)
    torch.testing.assert_close(logits, f @ w.T)


def test_key_follows_the_file(tmp_path, small_cnn):
    a = load_model(f"torchscript:{save_script(small_cnn(seed=0), tmp_path / 'm.pt')}").key
    b = load_model(f"torchscript:{save_script(small_cnn(seed=1), tmp_path / 'm.pt')}").key
    assert a != b


def test_bad_files(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a zip archive" * 20)
    torch.save({"weight": torch.zeros(2)}, tmp_path / "state_dict.pt")
    for name, why in [("garbage.pt", "not a TorchScript archive"), ("state_dict.pt", "not a TorchScript archive"),
                      ("missing.pt", "no such file")]:
        with pytest.raises(InputError) as e:
            load_model(f"torchscript:{tmp_path / name}")
        assert name in str(e.value) and why in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("raw", ["{not json", '{"crop": 12, "colour": "blue"}', '{"crop": -1, "mode": "CMYK"}'])
def test_malformed_stored_recipe_is_input_error(tmp_path, raw):
    m = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(InputError, match="recipe"):
        load_model(f"torchscript:{save_script(m, tmp_path / 'r.pt', raw_recipe=raw)}")
