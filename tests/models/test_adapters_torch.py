"""``python:<module>:<factory>`` and the TorchClassifier underneath it (find_last_linear, hooks, keys)."""

from __future__ import annotations

import runpy
import textwrap

import pytest
import torch
from torch import nn

from shiftlab.errors import InputError, ShiftlabError
from shiftlab.models import Recipe, TorchClassifier, load_model
from shiftlab.models.classifier import find_last_linear, weights_key

USER_MODULE = textwrap.dedent('''
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Linear(width, 4)

        def forward(self, x):
            return self.head(self.body(x))

    def build(width=5, seed=0):
        torch.manual_seed(seed)
        return Net(width)

    def build_with_recipe():
        torch.manual_seed(1)
        return Net(3), {"resize": 20, "crop": 16, "mean": [0.2, 0.5, 0.7], "std": [0.3, 0.1, 0.6]}

    def not_a_model():
        return 42

    NOT_CALLABLE = 3
''')


@pytest.fixture
def user_file(tmp_path):
    p = tmp_path / "user_models.py"
    p.write_text(USER_MODULE)
    return p


def reference(path, factory, **kw):
    """The same factory run independently of shiftlab (it seeds itself, so the weights are identical)."""
    out = runpy.run_path(str(path))[factory](**kw)
    return (out[0] if isinstance(out, tuple) else out).eval()


# --- python: adapter -----------------------------------------------------------------------------------
def test_python_file_factory_matches_module(user_file, check_classifier):
    clf = load_model(f"python:{user_file}:build")
    assert isinstance(clf, TorchClassifier) and clf.recipe == Recipe()
    assert clf.layer_name == "head"
    check_classifier(clf, reference(user_file, "build"), Recipe().mean, Recipe().std)


def test_python_dotted_module(tmp_path, monkeypatch, check_classifier):
    pkg = tmp_path / "shiftlab_test_userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    clf = load_model("python:shiftlab_test_userpkg.nets:build")
    check_classifier(clf, reference(pkg / "nets.py", "build"), Recipe().mean, Recipe().std)


def test_python_keyword_arguments(user_file, check_classifier):
    clf = load_model(f"python:{user_file}:build?width=7&seed=3")
    _, feats = check_classifier(clf, reference(user_file, "build", width=7, seed=3), Recipe().mean, Recipe().std)
    assert feats.shape[1] == 7
    default = load_model(f"python:{user_file}:build")
    assert clf.key != default.key


def test_python_factory_with_recipe_dict(user_file, check_classifier):
    clf = load_model(f"python:{user_file}:build_with_recipe")
    assert (clf.recipe.resize, clf.recipe.crop) == (20, 16)
    assert clf.recipe.mean == (0.2, 0.5, 0.7) and clf.recipe.interpolation == "bilinear"  # unspecified: default
    check_classifier(clf, reference(user_file, "build_with_recipe"), (0.2, 0.5, 0.7), (0.3, 0.1, 0.6))


def test_python_factory_returning_classifier_is_used_as_is(tmp_path):
    p = tmp_path / "ready.py"
    p.write_text(textwrap.dedent('''
        from torch import nn
        from shiftlab.models import Recipe, TorchClassifier
        def build():
            return TorchClassifier(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), Recipe(crop=2), name="mine")
    '''))
    clf = load_model(f"python:{p}:build")
    assert clf.name == "mine" and clf.recipe.crop == 2


@pytest.mark.parametrize("rest, needle", [
    ("{dir}/nope.py:build", "no such file"),
    ("{file}:missing_factory", "has no callable 'missing_factory'"),
    ("{file}:NOT_CALLABLE", "has no callable 'NOT_CALLABLE'"),
    ("{file}:not_a_model", "returned int, not an nn.Module"),
    ("shiftlab_no_such_module_xyz:build", "cannot import 'shiftlab_no_such_module_xyz'"),
    ("{file}", "expected python:<module"),
])
def test_python_errors(user_file, rest, needle):
    spec = "python:" + rest.format(dir=user_file.parent, file=user_file)
    with pytest.raises(InputError) as e:
        load_model(spec)
    msg = str(e.value)
    assert msg.startswith(spec) and needle in msg.replace(spec, "", 1) and "\n" not in msg
    assert isinstance(e.value, ShiftlabError)


def test_recipe_overrides_and_replacement(user_file):
    clf = load_model(f"python:{user_file}:build_with_recipe", recipe_overrides={"crop": 112})
    assert clf.recipe.crop == 112 and clf.recipe.resize == 20 and clf.recipe.mean == (0.2, 0.5, 0.7)
    clf = load_model(f"python:{user_file}:build", recipe=Recipe(resize=None, crop=8, square=False))
    assert clf.recipe.crop == 8 and clf.recipe.resize is None


# --- find_last_linear ----------------------------------------------------------------------------------
class WithAttr(nn.Module):
    """The classification layer is registered first; an auxiliary Linear comes later."""

    def __init__(self, attr: str, layer: nn.Module):
        super().__init__()
        setattr(self, attr, layer)
        self.aux = nn.Linear(3, 3)


@pytest.mark.parametrize("attr", ["fc", "head", "classifier"])
def test_find_last_linear_prefers_named_attribute(attr):
    layer = nn.Linear(4, 2)
    name, found = find_last_linear(WithAttr(attr, layer))
    assert found is layer and name == attr


def test_find_last_linear_sequential_classifier():
    seq = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Dropout(), nn.Linear(6, 2))
    name, found = find_last_linear(WithAttr("classifier", seq))
    assert found is seq[3] and name == "classifier.3"


def test_find_last_linear_timm_get_classifier():
    class Timmish(nn.Module):
        def __init__(self):
            super().__init__()
            self.cls = nn.Linear(4, 2)
            self.later = nn.Linear(2, 2)

        def get_classifier(self):
            return self.cls

    m = Timmish()
    assert find_last_linear(m) == ("cls", m.cls)


def test_find_last_linear_falls_back_to_last_registered():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2)), nn.Softmax(1))
    assert find_last_linear(m) == ("2.1", m[2][1])


def test_find_last_linear_without_linear_is_input_error():
    with pytest.raises(InputError, match="no nn.Linear"):
        find_last_linear(nn.Sequential(nn.Conv2d(3, 2, 1), nn.Flatten()))


# --- TorchClassifier -----------------------------------------------------------------------------------
def test_torch_classifier_features_are_the_input_of_the_last_layer(small_cnn, check_classifier):
    m = small_cnn(n_classes=4, width=5, seed=2).eval()
    seen = []
    m.fc.register_forward_pre_hook(lambda _mod, inp: seen.append(inp[0].detach().clone()))
    clf = TorchClassifier(m, Recipe(crop=12, mean=(0.2, 0.5, 0.7), std=(0.3, 0.1, 0.6)), name="cnn")
    _, feats = check_classifier(clf, m, (0.2, 0.5, 0.7), (0.3, 0.1, 0.6))
    torch.testing.assert_close(feats, seen[0])
    torch.testing.assert_close(clf.last_layer()[0], m.fc.weight.detach())


def test_torch_classifier_layer_not_called_is_input_error():
    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            return x.mean(dim=(2, 3))

    clf = TorchClassifier(Skips(), Recipe(), name="skips")
    assert clf.logits(torch.rand(2, 3, 4, 4)).shape == (2, 3)
    with pytest.raises(InputError, match="'fc' was not called"):
        clf.features(torch.rand(2, 3, 4, 4))


def test_torch_classifier_without_bias_gives_zero_bias():
    clf = TorchClassifier(nn.Sequential(nn.Flatten(), nn.Linear(12, 3, bias=False)), Recipe(), name="nb")
    w, b = clf.last_layer()
    assert torch.equal(b, torch.zeros(3))
    x = torch.rand(2, 3, 2, 2)
    with torch.no_grad():
        logits, f = clf.forward(x, features=True)
    torch.testing.assert_close(logits, f @ w.T)


def test_weights_key_follows_the_weights(small_cnn):
    m = small_cnn()
    k0 = weights_key("m", m)
    assert weights_key("m", small_cnn()) == k0  # same weights, same key
    assert weights_key("other", m) != k0
    with torch.no_grad():
        m.fc.weight[0, 0] += 1e-3
    assert weights_key("m", m) != k0


def test_weights_key_bfloat16_module():
    m = nn.Linear(3, 2).to(torch.bfloat16)
    k = weights_key("bf", m)
    with torch.no_grad():
        m.weight[0, 0] += 1
    assert weights_key("bf", m) != k


def test_errors_inside_the_users_code_are_one_line_input_errors(tmp_path):
    bad_syntax = tmp_path / "broken.py"
    bad_syntax.write_text("def build(:\n")
    with pytest.raises(InputError, match="broken.py failed to import .SyntaxError"):
        load_model(f"python:{bad_syntax}:build")
    raising = tmp_path / "raising.py"
    raising.write_text("def build(width=1):\n    raise ValueError(f'width {width} is too small')\n")
    with pytest.raises(InputError, match="the factory raised ValueError: width 3 is too small"):
        load_model(f"python:{raising}:build?width=3")
