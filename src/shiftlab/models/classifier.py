"""The Classifier: what every analysis needs from a model, whatever it was built with.

Inputs are float tensors (N, C, H, W) with values in [0, 1]; the classifier normalises them with its
recipe. Outputs: ``logits`` (N, K), ``features`` (N, D) = the input of the last linear layer, and that
layer's ``weight`` (K, D) and ``bias`` (K,), so that logits = features @ weight.T + bias.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import nn

from shiftlab.data.recipes import Recipe
from shiftlab.errors import InputError


class Classifier:
    """Base class. Subclasses implement ``_forward(x_normalised) -> (logits, features | None)``."""

    name: str
    recipe: Recipe
    key: str  #: identity for the prediction store (spec + weights hash)
    #: where the meaning of output k comes from (``shiftlab models info`` prints it)
    vocabulary: str = "not stated by the model: output k is read as class k of the dataset's vocabulary"

    def __init__(self, name: str, recipe: Recipe, key: str):
        self.name, self.recipe, self.key = name, recipe, key
        self.device = torch.device("cpu")

    # --- the interface ----------------------------------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float inputs in [0, 1] → (N, K) logits."""
        return self.forward(x, features=False)[0]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float inputs in [0, 1] → (N, D) penultimate features (the last linear layer's input)."""
        f = self.forward(x, features=True)[1]
        return f

    def forward(self, x: torch.Tensor, features: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, features or None) for inputs in [0, 1]."""
        x = self.recipe.normalize(x.to(self.device))
        return self._forward(x, features)

    def last_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (K, D), bias (K,)) of the last linear layer; subclasses implement it."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        """K, the number of classes: the rows of the last layer's weight."""
        return int(self.last_layer()[0].shape[0])

    def to(self, device: torch.device | str, channels_last: bool = False) -> Classifier:
        """Run on ``device`` from now on; returns ``self``. Subclasses use ``channels_last``."""
        self.device = torch.device(device)
        return self

    def _forward(self, x: torch.Tensor, features: bool):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def find_last_linear(module: nn.Module) -> tuple[str, nn.Linear]:
    """The classification layer: timm's ``get_classifier()``, a ``fc``/``head``/``classifier``/``linear`` attribute,
    else the last ``nn.Linear`` registered."""
    get = getattr(module, "get_classifier", None)
    if callable(get):
        layer = get()
        if isinstance(layer, nn.Linear):
            for n, m in module.named_modules():
                if m is layer:
                    return n, layer
    for attr in ("fc", "head", "classifier", "linear", "last_linear"):
        m = getattr(module, attr, None)
        if isinstance(m, nn.Sequential) and len(m) and isinstance(m[-1], nn.Linear):
            return f"{attr}.{len(m) - 1}", m[-1]
        if isinstance(m, nn.Linear):
            return attr, m
    last = None
    for n, m in module.named_modules():
        if isinstance(m, nn.Linear):
            last = (n, m)
    if last is None:
        raise InputError(f"{type(module).__name__} has no nn.Linear layer: shiftlab needs a final linear "
                         "classification layer for features and weights")
    return last


class TorchClassifier(Classifier):
    """An ``nn.Module`` ending in a linear layer; features are captured by a hook on that layer's input."""

    def __init__(self, module: nn.Module, recipe: Recipe, name: str, key: str | None = None):
        super().__init__(name, recipe, key or weights_key(name, module))
        self.module = module.eval()
        self.layer_name, self.layer = find_last_linear(module)
        self._captured: list[torch.Tensor] = []
        self.layer.register_forward_pre_hook(self._capture)
        self.channels_last = False

    def _capture(self, _mod, inputs):
        if self._capturing:
            self._captured.append(inputs[0])

    _capturing = False

    def to(self, device, channels_last: bool = False) -> TorchClassifier:
        """Move the module to ``device``, in channels-last memory format if asked (default False); returns ``self``."""
        super().to(device)
        self.module.to(self.device)
        self.channels_last = channels_last
        if channels_last:
            self.module.to(memory_format=torch.channels_last)
        return self

    def _forward(self, x, features):
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        self._captured.clear()
        self._capturing = features
        try:
            logits = self.module(x)
        finally:
            self._capturing = False
        if isinstance(logits, (tuple, list)):  # e.g. Inception aux outputs in train mode
            logits = logits[0]
        feats = None
        if features:
            if not self._captured:
                raise InputError(f"{self.name}: the layer {self.layer_name!r} was not called in forward()")
            feats = self._captured[-1].flatten(1)
            self._captured.clear()
        return logits, feats

    def last_layer(self):
        """(weight (K, D), bias (K,)) of the linear layer, detached; a zero bias when it has none."""
        w = self.layer.weight.detach()
        b = self.layer.bias.detach() if self.layer.bias is not None else torch.zeros(w.shape[0], device=w.device)
        return w, b


def weights_key(name: str, module: nn.Module) -> str:
    """A content hash of a module's parameters and buffers (cheap enough for zoo-sized models)."""
    h = hashlib.sha256(name.encode())
    for k, v in module.state_dict().items():
        h.update(k.encode())
        # raw bytes via uint8: numpy has no bfloat16, and the bytes of other dtypes are unchanged
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"{name}@{h.hexdigest()[:16]}"


def file_key(spec: str, path) -> str:
    """``<spec>@<hash>``: the spec and the first 16 hex digits of the sha256 of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"{spec}@{h.hexdigest()[:16]}"


@dataclass
class ModelInfo:
    """One line of ``shiftlab models``."""

    scheme: str
    example: str
    available: bool
    note: str
