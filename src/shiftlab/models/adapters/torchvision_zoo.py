"""``torchvision:NAME[?weights=DEFAULT|none|<enum member>|PATH&seed=0]``: any torchvision classification model.

Weights: ``DEFAULT`` (or a member such as ``IMAGENET1K_V2``) from the torch hub cache
(``$TORCH_HOME/hub/checkpoints``), downloaded when missing and the machine is online; ``none`` = random
init, seeded (``seed``, default 0) so that two loads give one model; a path = a local state dict (the number
of classes is read from it). The recipe is the weights' own eval transform (resize, crop, interpolation,
mean/std; e.g. ViT-B/16 uses bilinear 256/224, EfficientNet-B0 bicubic 256/224, ResNet-50 V2 232/224); a
model without released weights gets ImageNet's. Features are the input of the last linear layer, found for
every family with one (SqueezeNet ends in a convolution and is refused).
"""

from __future__ import annotations

import torch

from shiftlab.data.recipes import Recipe
from shiftlab.errors import InputError
from shiftlab.models.adapters.zoo import read_state_dict, recipe_from_transforms, split_options, weights_error
from shiftlab.models.classifier import TorchClassifier, find_last_linear, weights_key

OPTIONS = {"weights": "DEFAULT", "seed": "0"}


def classification_models() -> list[str]:
    """The names torchvision lists among its classification models (``torchvision.models`` itself)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _weights_enum(name: str, spec: str):
    import torchvision

    if name not in classification_models():
        raise InputError(f"{spec}: torchvision has no classification model {name!r} "
                         "(see 'shiftlab models list torchvision')")
    try:
        return torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        return None  # a model without released weights


def _hub_checkpoints() -> str:
    return f"{torch.hub.get_dir()}/checkpoints"


def load(rest: str, *, spec: str, workspace=None) -> TorchClassifier:
    """The TorchClassifier of a ``torchvision:`` spec (see the module docstring); ``InputError`` for an unknown
    name, weights member or option, ``ShiftlabError`` when released weights cannot be loaded."""
    import torchvision

    name, opts = split_options(rest, spec=spec, allowed=OPTIONS)
    enum = _weights_enum(name, spec)
    default = enum.DEFAULT if enum is not None else None
    w = opts["weights"]
    recipe = recipe_from_transforms(default.transforms()) if default is not None else Recipe()
    if w.lower() == "none" or (w == "DEFAULT" and default is None):
        model = _random_init(name, opts["seed"], spec)
    elif "/" in w or "\\" in w or w.endswith((".pt", ".pth", ".bin")):
        model = _from_state_dict(name, w, spec)
    else:
        if enum is None:
            raise InputError(f"{spec}: torchvision has no released weights for {name}; use weights=none or a path")
        try:
            member = enum[w]
        except KeyError:
            raise InputError(f"{spec}: {name} has no weights {w!r}; one of DEFAULT, none, a path, "
                             + ", ".join(m.name for m in enum)) from None
        recipe = recipe_from_transforms(member.transforms())
        try:
            model = torchvision.models.get_model(name, weights=member)
        except Exception as e:
            raise weights_error(spec, e, where=f"{_hub_checkpoints()} (file {member.url.rsplit('/', 1)[-1]})") from None
        # released weights are a fixed file: their enum name is identity enough for the prediction store
        return _classifier(model, recipe, name, key=f"torchvision:{name}@{member.name}", vocab=member.meta)
    return _classifier(model, recipe, name, key=weights_key(f"torchvision:{name}", model),
                       vocab=default.meta if default is not None else None)


def _random_init(name: str, seed: str, spec: str):
    import torchvision

    try:
        s = int(seed)
    except ValueError:
        raise InputError(f"{spec}: seed must be an integer, not {seed!r}") from None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s)
        return torchvision.models.get_model(name, weights=None)


def _from_state_dict(name: str, path: str, spec: str):
    import torchvision

    sd = read_state_dict(path, spec=spec)
    model = torchvision.models.get_model(name, weights=None)
    layer_name, layer = find_last_linear(model)
    k = sd.get(f"{layer_name}.weight")
    if k is not None and k.shape[0] != layer.out_features:  # fine-tuned to another number of classes
        model = torchvision.models.get_model(name, weights=None, num_classes=int(k.shape[0]))
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise InputError(f"{spec}: {path} does not fit torchvision's {name} "
                         f"({' '.join(str(e).split())[:200]})") from None
    return model


def _classifier(model, recipe: Recipe, name: str, key: str, vocab: dict | None) -> TorchClassifier:
    clf = TorchClassifier(model, recipe, name=name, key=key)
    cats = (vocab or {}).get("categories")
    if cats and len(cats) == clf.num_classes:
        clf.vocabulary = f"the weights' meta: {len(cats)} categories in ImageNet-1k order" if len(cats) == 1000 \
            else f"the weights' meta: {len(cats)} categories"
    return clf
