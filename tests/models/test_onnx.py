"""``onnx:<path>``: the last Gemm or MatMul+Add gives features (an extra output), weight and bias."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from shiftlab.errors import InputError  # noqa: E402
from shiftlab.models import Recipe, load_model  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter says it is legacy
ODD = Recipe(resize=14, crop=12, mean=(0.2, 0.5, 0.7), std=(0.3, 0.1, 0.6))


def export(module, path, shape=(1, 3, 12, 12)):
    torch.onnx.export(module.eval(), torch.rand(*shape), str(path), dynamo=False, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    return path


def ops(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def with_recipe(path, recipe: Recipe | str):
    model = onnx.load(str(path))
    text = recipe if isinstance(recipe, str) else json.dumps(recipe.to_json())
    helper.set_model_props(model, {"shiftlab_recipe": text})
    onnx.save(model, str(path))
    return path


def test_exported_cnn_ending_in_gemm(tmp_path, small_cnn, check_classifier):
    m = small_cnn(n_classes=4, width=6, seed=3).eval()
    path = export(m, tmp_path / "cnn.onnx")
    assert ops(path)[-1] == "Gemm"
    clf = load_model(f"onnx:{path}")
    assert clf.recipe == Recipe() and clf.name == "cnn"
    check_classifier(clf, m, Recipe().mean, Recipe().std, shape=(3, 3, 12, 12), atol=1e-4)
    w, b = clf.last_layer()
    torch.testing.assert_close(w, m.fc.weight.detach())
    torch.testing.assert_close(b, m.fc.bias.detach())
    with torch.no_grad():
        x = torch.rand(5, 3, 12, 12)
        torch.testing.assert_close(clf.features(x), m.features(Recipe().normalize(x)), atol=1e-5, rtol=1e-5)


def test_recipe_from_metadata(tmp_path, small_cnn, check_classifier):
    m = small_cnn(seed=4).eval()
    clf = load_model(f"onnx:{with_recipe(export(m, tmp_path / 'r.onnx'), ODD)}")
    assert clf.recipe == ODD
    check_classifier(clf, m, ODD.mean, ODD.std, atol=1e-4)


def test_exported_matmul_add(tmp_path, check_classifier):
    class Seq3d(nn.Module):  # a Linear on a 3-d input exports as MatMul + Add(bias, ·), not Gemm
        def __init__(self):
            super().__init__()
            torch.manual_seed(5)
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(self.conv(x).mean(dim=(2, 3)).unsqueeze(1)).squeeze(1)

    m = Seq3d().eval()
    path = export(m, tmp_path / "mm.onnx")
    assert "MatMul" in ops(path) and "Gemm" not in ops(path)
    clf = load_model(f"onnx:{path}")
    check_classifier(clf, m, Recipe().mean, Recipe().std, atol=1e-4)
    torch.testing.assert_close(clf.last_layer()[0], m.fc.weight.detach())
    torch.testing.assert_close(clf.last_layer()[1], m.fc.bias.detach())


def handmade_graph(path, last: str = "matmul_add", n_classes: int = 4):
    """x (N, 3, 2, 2) → Flatten → MatMul(W: 12×K) → Add(b), built with the onnx helper API; or the same as
    one Gemm without transB and with alpha = 0.5, beta = 2 (logits = 0.5·x W + 2 b)."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(12, n_classes)).astype(np.float32)
    b = rng.normal(size=n_classes).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["flat"], axis=1)]
    if last == "matmul_add":
        nodes += [helper.make_node("MatMul", ["flat", "W"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["y"])]
    elif last == "gemm":
        nodes += [helper.make_node("Gemm", ["flat", "W", "b"], ["y"], alpha=0.5, beta=2.0, transB=0)]
    elif last == "relu":
        nodes += [helper.make_node("MatMul", ["flat", "W"], ["mm"]), helper.make_node("Add", ["mm", "b"], ["z"]),
                  helper.make_node("Relu", ["z"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", n_classes])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return W, b


def test_handmade_matmul_add(tmp_path):
    W, b = handmade_graph(tmp_path / "h.onnx")
    clf = load_model(f"onnx:{with_recipe(tmp_path / 'h.onnx', Recipe(resize=None, crop=2, square=False))}")
    w, bias = clf.last_layer()
    np.testing.assert_array_equal(w.numpy(), W.T)
    np.testing.assert_array_equal(bias.numpy(), b)
    x = torch.rand(6, 3, 2, 2)
    logits, feats = clf.forward(x, features=True)
    mean, std = torch.tensor(Recipe().mean).view(1, 3, 1, 1), torch.tensor(Recipe().std).view(1, 3, 1, 1)
    flat = ((x - mean) / std).reshape(6, 12)
    np.testing.assert_allclose(feats.numpy(), flat.numpy(), atol=1e-6)
    np.testing.assert_allclose(logits.numpy(), flat.numpy() @ W + b, atol=1e-5)
    assert clf.num_classes == 4


def test_handmade_gemm_without_transb(tmp_path):
    W, b = handmade_graph(tmp_path / "g.onnx", last="gemm")
    clf = load_model(f"onnx:{with_recipe(tmp_path / 'g.onnx', Recipe(resize=None, crop=2))}")
    w, bias = clf.last_layer()
    np.testing.assert_allclose(w.numpy(), 0.5 * W.T)
    np.testing.assert_allclose(bias.numpy(), 2.0 * b)
    x = torch.rand(3, 3, 2, 2)
    logits, feats = clf.forward(x, features=True)
    flat = Recipe().normalize(x).reshape(3, 12).numpy()
    np.testing.assert_allclose(logits.numpy(), 0.5 * flat @ W + 2.0 * b, atol=1e-5)
    np.testing.assert_allclose(logits.numpy(), feats.numpy() @ w.numpy().T + bias.numpy(), atol=1e-5)


def test_graph_not_ending_in_a_linear_layer(tmp_path):
    handmade_graph(tmp_path / "relu.onnx", last="relu")
    with pytest.raises(InputError, match="Gemm or MatMul"):
        load_model(f"onnx:{tmp_path / 'relu.onnx'}")


def test_bad_files(tmp_path, small_cnn):
    (tmp_path / "garbage.onnx").write_bytes(b"\x08\x07garbage" * 50)
    for name, why in [("garbage.onnx", "not an ONNX model"), ("missing.onnx", "no such file")]:
        with pytest.raises(InputError) as e:
            load_model(f"onnx:{tmp_path / name}")
        assert name in str(e.value) and why in str(e.value) and "\n" not in str(e.value)
    path = with_recipe(export(small_cnn(), tmp_path / "bad_recipe.onnx"), '{"crop": "big"}')
    with pytest.raises(InputError, match="recipe"):
        load_model(f"onnx:{path}")
