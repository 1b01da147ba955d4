"""Model spec strings → Classifier (or precomputed predictions), like timm's registry.

Built in: ``torchvision:<name>``, ``timm:<name>``, ``robustbench:<name>@<dataset>/<threat>``, ``madry:<arch>:<path>``,
``torchscript:<path>``, ``onnx:<path>``, ``python:<module>:<factory>``, ``predictions:<path>[#array]``.
More schemes come from ``register_scheme`` (timm's ``register_model`` is the model): shiftlab's digits world adds
``world:<name>`` that way, and any installed package can add its own through a ``shiftlab.plugins`` entry point
(``shiftlab.registry.load_plugins``). A bare name is looked up among the workspace's model aliases
(``shiftlab models add NAME SPEC``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from shiftlab.data.recipes import Recipe
from shiftlab.errors import InputError, MissingDependencyError, UnknownNameError
from shiftlab.models.adapters.predictions import PrecomputedPredictions
from shiftlab.registry import load_plugins, model_aliases


@dataclass(frozen=True)
class Scheme:
    """A spec prefix and how to load it: ``name``, an ``example`` spec, the ``loader``, the modules it ``requires``,
    the ``install`` command that provides them and a one-line ``doc``.
    """

    name: str
    example: str
    #: a function ``(rest, *, spec, workspace)``, or its "package.module:function" (imported on use)
    loader: str | Callable
    requires: tuple[str, ...] = ()
    install: str = ""
    doc: str = ""

    def missing(self) -> list[str]:
        """The modules of ``requires`` that fail to import here (empty when the scheme is usable)."""
        out = []
        for mod in self.requires:
            try:
                importlib.import_module(mod)
            except Exception:
                out.append(mod)
        return out

    def load_fn(self) -> Callable:
        """The loader as a function; one given as ``"package.module:function"`` is imported here."""
        if callable(self.loader):
            return self.loader
        mod, fn = self.loader.rsplit(":", 1)
        return getattr(importlib.import_module(mod), fn)


_ADAPTERS = "shiftlab.models.adapters"
#: every known scheme by name: the built-in ones below, then what ``register_scheme`` adds
SCHEMES: dict[str, Scheme] = {s.name: s for s in [
    Scheme("torchvision", "torchvision:resnet50?weights=DEFAULT", f"{_ADAPTERS}.torchvision_zoo:load", ("torchvision",),
           "pip install torchvision", "torchvision classification models; ?weights=DEFAULT|none|<member>|<path>"),
    Scheme("timm", "timm:vit_base_patch16_224?pretrained=true", f"{_ADAPTERS}.timm_zoo:load", ("timm",),
           "pip install timm", "timm models with their data config; ?pretrained=true|false|<path>"),
    Scheme("robustbench", "robustbench:Salman2020Do_R50@imagenet/Linf?model_dir=models",
           f"{_ADAPTERS}.robustbench_zoo:load", ("robustbench",),
           "pip install git+https://github.com/RobustBench/robustbench.git",
           "RobustBench model zoo: <name>@<dataset>/<threat model>, checkpoints in model_dir"),
    Scheme("madry", "madry:resnet50:imagenet_l2_3_0.pt", f"{_ADAPTERS}.madry:load", ("torchvision",),
           "pip install torchvision", "a checkpoint of MadryLab's robustness library: madry:<arch>:<path>"),
    Scheme("torchscript", "torchscript:model.pt", f"{_ADAPTERS}.torchscript:load", doc="a TorchScript archive"),
    Scheme("onnx", "onnx:model.onnx", f"{_ADAPTERS}.onnx:load", ("onnxruntime", "onnx"),
           "pip install 'shiftlab[onnx]'", "an ONNX graph run with onnxruntime"),
    Scheme("python", "python:mypkg.models:build", f"{_ADAPTERS}.pyfactory:load",
           doc="a factory returning an nn.Module (module may be a .py path)"),
    Scheme("predictions", "predictions:preds.npz#resnet50", f"{_ADAPTERS}.predictions:load",
           doc="precomputed logits, probabilities or top-k indices (.npy/.npz/.csv/.parquet)"),
]}
_BUILT_IN = frozenset(SCHEMES)


def register_scheme(scheme: Scheme, *, replace: bool = False) -> Scheme:
    """Make ``<scheme.name>:<rest>`` specs load through ``scheme.loader(rest, spec=, workspace=)``.

    A built-in scheme cannot be replaced; another registered one only with ``replace=True`` (a second
    registration of an equal Scheme is a no-op, so a plug-in may register twice). Returns the scheme.
    """
    name = scheme.name
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise InputError(f"model scheme names are letters, digits, '-' and '_', not {name!r}")
    old = SCHEMES.get(name)
    if old is not None and old != scheme:
        if name in _BUILT_IN or not replace:
            raise InputError(f"model scheme {name!r} is already registered ({old.doc or old.loader}); "
                             "pass replace=True to replace a plug-in's scheme")
    SCHEMES[name] = scheme
    return scheme


def schemes() -> dict[str, Scheme]:
    """All model schemes, the installed plug-ins' included (``shiftlab models`` lists them)."""
    load_plugins()
    return SCHEMES


def split_spec(spec: str) -> tuple[str, str]:
    """``"scheme:rest"`` → ``(scheme, rest)``; ``UnknownNameError`` for an unknown scheme (after loading the
    plug-ins) or an empty ``rest``.
    """
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in SCHEMES:
        load_plugins()  # an installed plug-in may add it (or, for the message below, others)
    if not sep or scheme not in SCHEMES:
        raise UnknownNameError(
            f"unknown model {spec!r}: use one of the schemes {', '.join(s + ':' for s in SCHEMES)} "
            "or a name registered with 'shiftlab models add'")
    if not rest:
        raise UnknownNameError(f"model spec {spec!r} is empty after the scheme, e.g. {SCHEMES[scheme].example}")
    return scheme, rest


def resolve_alias(spec: str, workspace=None) -> str:
    """The spec a name stands for: a spec with a ``:`` is returned as is, a bare name is looked up among the
    workspace's model aliases; ``UnknownNameError`` for a name that is neither.
    """
    if ":" in spec:
        return spec
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
        if not isinstance(model, PrecomputedPredictions):
            model.recipe = (recipe or model.recipe).with_overrides(**(recipe_overrides or {}))
    return model
