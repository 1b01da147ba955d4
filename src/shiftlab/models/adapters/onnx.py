"""``onnx:<path>``: an ONNX graph run by onnxruntime (optional extra ``shiftlab[onnx]``).

The classification layer is found from the graph: the node producing the first output must be a ``Gemm``
or an ``Add`` of a ``MatMul`` with a constant bias; its data input is exposed as an extra graph output,
which gives the penultimate features, and its initializers give the weight and bias. The recipe may be
stored in the model's metadata under ``shiftlab_recipe`` (JSON).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from shiftlab.data.recipes import Recipe
from shiftlab.errors import InputError
from shiftlab.models.classifier import Classifier, file_key


class OnnxClassifier(Classifier):
    """A Classifier that runs an ONNX graph with onnxruntime on the CPU; features are the input of its final
    linear layer (see the module docstring). ``InputError`` when the graph has no such layer.
    """

    def __init__(self, model, recipe: Recipe, name: str, key: str):
        import onnxruntime as ort
        from onnx import numpy_helper

        super().__init__(name, recipe, key)
        graph = model.graph
        inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        producers = {o: n for n in graph.node for o in n.output}
        out_name = graph.output[0].name
        self._feat_name, w, b = _classifier_layer(producers, inits, out_name)
        # copies: initializer arrays may be read-only views of the protobuf
        self._weight = torch.tensor(np.asarray(w, dtype=np.float32))
        self._bias = torch.tensor(np.asarray(b, dtype=np.float32))
        if self._feat_name not in {o.name for o in graph.output}:
            vi = graph.output.add()
            vi.name = self._feat_name
        self._outputs = [out_name, self._feat_name]
        self._input = graph.input[0].name
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(model.SerializeToString(), opts,
                                            providers=["CPUExecutionProvider"])

    def _forward(self, x, features):
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        logits, feats = self.session.run(self._outputs, {self._input: arr})
        logits = torch.from_numpy(logits).to(self.device)
        return logits, (torch.from_numpy(feats).flatten(1).to(self.device) if features else None)

    def last_layer(self):
        """(weight (K, D), bias (K,)) float32 of the final layer, read from the graph's constants."""
        return self._weight.to(self.device), self._bias.to(self.device)


def _classifier_layer(producers, inits, out_name):
    node = producers.get(out_name)
    while node is not None and node.op_type in ("Identity", "Flatten", "Reshape", "Squeeze", "Cast"):
        node = producers.get(node.input[0])
    if node is not None and node.op_type == "Gemm":
        attrs = {a.name: a for a in node.attribute}
        if node.input[1] in inits:
            w = inits[node.input[1]]
            if not (attrs.get("transB") and attrs["transB"].i):
                w = w.T
            b = inits[node.input[2]] if len(node.input) > 2 and node.input[2] in inits else np.zeros(w.shape[0])
            alpha = attrs["alpha"].f if "alpha" in attrs else 1.0
            beta = attrs["beta"].f if "beta" in attrs else 1.0
            return node.input[0], alpha * w, beta * b
    if node is not None and node.op_type == "Add":
        a, c = node.input
        mm, bias = (producers.get(a), c) if c in inits else (producers.get(c), a)
        if mm is not None and mm.op_type == "MatMul" and bias in inits and mm.input[1] in inits:
            return mm.input[0], inits[mm.input[1]].T, inits[bias]
    raise InputError("the ONNX graph does not end in a Gemm or MatMul+Add with constant weights; "
                     "shiftlab needs the final linear layer for features and weights")


def load(rest: str, *, spec: str, workspace=None) -> OnnxClassifier:
    """``onnx:<path>`` → OnnxClassifier named after the file's stem, keyed by the file's hash.

    The recipe is the model metadata's ``shiftlab_recipe`` (JSON), else the default ``Recipe()``. Raises
    ``InputError`` when the file is missing or not an ONNX model, or its graph has no final linear layer.
    """
    import onnx

    path = Path(rest).expanduser()
    if not path.is_file():
        raise InputError(f"{spec}: no such file")
    try:
        model = onnx.load(str(path))
    except Exception as e:
        raise InputError(f"{spec}: not an ONNX model ({type(e).__name__})") from None
    meta = {p.key: p.value for p in model.metadata_props}
    recipe = Recipe.from_fields(meta["shiftlab_recipe"], f"{spec} (shiftlab_recipe)") if "shiftlab_recipe" in meta \
        else Recipe()
    try:
        return OnnxClassifier(model, recipe, name=path.stem, key=file_key(spec, path))
    except InputError as e:
        raise InputError(f"{spec}: {e}") from None
