"""Model spec strings → Classifier (or precomputed predictions), like timm's registry.

``world:<name>`` (the embedded digits-world zoo), ``torchvision:<name>``, ``timm:<name>``,
``robustbench:<name>@<dataset>/<threat>``, ``torchscript:<path>``, ``onnx:<path>``,
``python:<module>:<factory>``, ``predictions:<path>[#array]``.
A bare name is looked up among the workspace's model aliases (``shiftlab models add NAME SPEC``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from shiftlab.errors import MissingDependencyError, UnknownNameError
from shiftlab.models.recipes import Recipe


@dataclass(frozen=True)
class Scheme:
    name: str
    example: str
    loader: str  #: "module:function" inside shiftlab.models.adapters, imported on use
    requires: tuple[str, ...] = ()
    install: str = ""
    doc: str = ""

    def missing(self) -> list[str]:
        out = []
        for mod in self.requires:
            try:
                importlib.import_module(mod)
            except Exception:
                out.append(mod)
        return out

    def load_fn(self) -> Callable:
        mod, fn = self.loader.split(":")
        return getattr(importlib.import_module(f"shiftlab.models.adapters.{mod}"), fn)


SCHEMES: dict[str, Scheme] = {s.name: s for s in [
    Scheme("world", "world:cnn-medium-s0", "world:load",
           doc="a model of the embedded digits-world zoo (trained and cached on first use)"),
    Scheme("torchvision", "torchvision:resnet50", "hub:load_torchvision", ("torchvision",),
           "pip install torchvision", "torchvision.models with its default weights and transforms"),
    Scheme("timm", "timm:vit_base_patch16_224", "hub:load_timm", ("timm",), "pip install timm",
           "timm.create_model(pretrained=True) with its data config"),
    Scheme("robustbench", "robustbench:Salman2020Do_R50@imagenet/Linf", "hub:load_robustbench",
           ("robustbench",), "pip install git+https://github.com/RobustBench/robustbench.git",
           "RobustBench model zoo: <name>@<dataset>/<threat model>"),
    Scheme("torchscript", "torchscript:model.pt", "torchscript:load", doc="a TorchScript archive"),
    Scheme("onnx", "onnx:model.onnx", "onnx:load", ("onnxruntime", "onnx"), "pip install 'shiftlab[onnx]'",
           "an ONNX graph run with onnxruntime"),
    Scheme("python", "python:mypkg.models:build", "pyfactory:load",
           doc="a factory returning an nn.Module (module may be a .py path)"),
    Scheme("predictions", "predictions:preds.npz#resnet50", "predictions:load",
           doc="precomputed logits, probabilities or top-k indices (.npy/.npz/.csv/.parquet)"),
]}


def split_spec(spec: str) -> tuple[str, str]:
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in SCHEMES:
        raise UnknownNameError(
            f"unknown model {spec!r}: use one of the schemes {', '.join(s + ':' for s in SCHEMES)} "
            "or a name registered with 'shiftlab models add'")
    if not rest:
        raise UnknownNameError(f"model spec {spec!r} is empty after the scheme, e.g. {SCHEMES[scheme].example}")
    return scheme, rest


def resolve_alias(spec: str, workspace=None) -> str:
    if ":" in spec:
        return spec
    from shiftlab.registry import model_aliases

    aliases = model_aliases(workspace)
    if spec in aliases:
        return aliases[spec]
    split_spec(spec)  # raises the helpful message
    return spec


def load_model(spec: str, *, recipe: Recipe | None = None, workspace=None, recipe_overrides: dict | None = None):
    """Build a Classifier (or ``PrecomputedPredictions`` for ``predictions:``) from a spec string.

    ``recipe`` replaces the model's own preprocessing; ``recipe_overrides`` changes single fields of it.
    """
    spec = resolve_alias(spec, workspace)
    scheme_name, rest = split_spec(spec)
    scheme = SCHEMES[scheme_name]
    missing = scheme.missing()
    if missing:
        raise MissingDependencyError(
            f"{spec}: {', '.join(missing)} is not importable here; install it with: {scheme.install}")
    model = scheme.load_fn()(rest, spec=spec, workspace=workspace)
    if recipe is not None or recipe_overrides:
        from shiftlab.models.adapters.predictions import PrecomputedPredictions

        if not isinstance(model, PrecomputedPredictions):
            model.recipe = (recipe or model.recipe).with_overrides(**(recipe_overrides or {}))
    return model
