"""``torchscript:<path>``: a TorchScript archive.

TorchScript modules take no Python hooks, so penultimate features come from, in order: an exported
``features(x)`` method (``@torch.jit.export``), or — for a scripted ``nn.Sequential`` ending in a Linear —
running all but the last child. The recipe may be stored in the archive as the extra file
``shiftlab_recipe.json`` (``torch.jit.save(m, f, _extra_files={...})``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from shiftlab.data.recipes import Recipe
from shiftlab.errors import InputError
from shiftlab.models.classifier import Classifier, file_key

RECIPE_FILE = "shiftlab_recipe.json"


class TorchScriptClassifier(Classifier):
    """A Classifier over a TorchScript module; penultimate features as the module docstring says (``InputError``
    when they are asked for and the module offers none).
    """

    def __init__(self, module, recipe: Recipe, name: str, key: str):
        super().__init__(name, recipe, key)
        self.module = module.eval()
        self._layer = _last_linear(module)
        self._has_features = _has_method(module, "features")
        # only a Sequential whose last child is the Linear has the features as that child's input
        children = list(module.children())
        self._sequential = (module.original_name == "Sequential" and bool(children)
                            and getattr(children[-1], "original_name", "") == "Linear")

    def to(self, device, channels_last: bool = False):
        """Move the module to ``device``; returns ``self`` (``channels_last`` is ignored)."""
        super().to(device)
        self.module.to(self.device)
        return self

    def _forward(self, x, features):
        if not features:
            return self.module(x), None
        if self._has_features:
            f = self.module.features(x)
            return self._head(f), f
        if self._sequential:
            children = list(self.module.children())
            h = x
            for c in children[:-1]:
                h = c(h)
            f = h.flatten(1)
            return children[-1](f), f
        raise InputError(f"{self.name}: this TorchScript model exposes no penultimate features; export a "
                         "`features(x)` method with @torch.jit.export (logits alone work without it)")

    def _head(self, f):
        w, b = self.last_layer()
        return f @ w.T + b

    def last_layer(self):
        """(weight (K, D), bias (K,)) of the last ``Linear`` sub-module, detached (a zero bias when it has none);
        ``InputError`` when there is no Linear.
        """
        if self._layer is None:
            raise InputError(f"{self.name}: no Linear sub-module found in this TorchScript model")
        w = self._layer.weight.detach()
        b = self._layer.bias  # None for Linear(bias=False)
        return w, (b.detach() if b is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device))


def _has_method(module, name: str) -> bool:
    try:  # ScriptModule itself has no _get_method; its C++ module answers
        return bool(module._c._has_method(name))
    except (RuntimeError, AttributeError):
        return False


def _last_linear(module):
    last = None
    for _n, m in module.named_modules():
        if getattr(m, "original_name", "") == "Linear":
            last = m
    return last


def load(rest: str, *, spec: str, workspace=None) -> TorchScriptClassifier:
    """``torchscript:<path>`` → TorchScriptClassifier, loaded on the CPU, named after the file's stem and keyed by
    its hash. The recipe is the archive's ``shiftlab_recipe.json``, else the default ``Recipe()``. Raises
    ``InputError`` when the file is missing or not a TorchScript archive.
    """
    path = Path(rest).expanduser()
    if not path.is_file():
        raise InputError(f"{spec}: no such file")
    extra = {RECIPE_FILE: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError) as e:
        raise InputError(f"{spec}: not a TorchScript archive ({' '.join(str(e).split())[:150]})") from None
    recipe = Recipe.from_fields(extra[RECIPE_FILE], f"{spec} ({RECIPE_FILE})") if extra[RECIPE_FILE] else Recipe()
    return TorchScriptClassifier(module, recipe, name=path.stem, key=file_key(spec, path))
