"""Model zoos: ``torchvision:``, ``timm:``, ``robustbench:``.

Each loads the zoo's model with its pretrained weights and turns the zoo's own preprocessing config into
a Recipe. They are used only where the library imports (``shiftlab models`` says which); weights come
from the zoo's cache or download, so an offline machine needs them cached beforehand.
"""

from __future__ import annotations

from shiftlab.data.recipes import IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, Recipe
from shiftlab.errors import InputError, ShiftlabError
from shiftlab.models.classifier import TorchClassifier


def _interp(x) -> str:
    name = str(getattr(x, "value", x)).lower().split(".")[-1]
    return name if name in INTERPOLATIONS else "bilinear"


def _weights_error(spec: str, e: Exception) -> ShiftlabError:
    return ShiftlabError(f"{spec}: could not load pretrained weights ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:120]}); on an offline machine put them in the zoo's cache first")


def load_torchvision(rest: str, *, spec: str, workspace=None) -> TorchClassifier:
    """``torchvision:<name>[@<weights>]`` → TorchClassifier with the weights' preprocessing as its Recipe.

    ``weights`` defaults to the model's ``DEFAULT`` weights; the key is ``<spec>@<weights name>``. Raises
    ``InputError`` for an unknown model or weights, ``ShiftlabError`` when the weights cannot be loaded.
    """
    import torchvision

    name, _, weights = rest.partition("@")
    try:
        w = torchvision.models.get_model_weights(name)
        w = w[weights] if weights else w.DEFAULT
    except (ValueError, KeyError) as e:
        raise InputError(f"{spec}: torchvision has no model/weights {rest!r} ({e})") from None
    try:
        model = torchvision.models.get_model(name, weights=w)
    except Exception as e:
        raise _weights_error(spec, e) from None
    t = w.transforms()
    recipe = Recipe(resize=int(t.resize_size[0]), crop=int(t.crop_size[0]), interpolation=_interp(t.interpolation),
                    mean=tuple(t.mean), std=tuple(t.std))
    return TorchClassifier(model, recipe, name=name, key=f"{spec}@{w.name}")


def load_timm(rest: str, *, spec: str, workspace=None) -> TorchClassifier:
    """``timm:<name>`` → TorchClassifier with pretrained weights; the Recipe comes from timm's data config.

    crop = the input size in px, resize = crop / ``crop_pct`` (default 0.875). Raises ``InputError`` for an
    unknown model, ``ShiftlabError`` when the weights cannot be loaded.
    """
    import timm
    from timm.data import resolve_data_config

    if not timm.is_model(rest):
        raise InputError(f"{spec}: timm has no model {rest!r} (see timm.list_models())")
    try:
        model = timm.create_model(rest, pretrained=True)
    except Exception as e:
        raise _weights_error(spec, e) from None
    cfg = resolve_data_config({}, model=model)
    size = int(cfg["input_size"][-1])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    recipe = Recipe(resize=int(size / crop_pct), crop=size, interpolation=_interp(cfg.get("interpolation", "bicubic")),
                    mean=tuple(cfg.get("mean", IMAGENET_MEAN)), std=tuple(cfg.get("std", IMAGENET_STD)))
    return TorchClassifier(model, recipe, name=rest, key=spec)


def load_robustbench(rest: str, *, spec: str, workspace=None) -> TorchClassifier:
    """``robustbench:<name>[@<dataset>/<threat>]`` (default ``imagenet/Linf``) → TorchClassifier.

    RobustBench models normalise inside, so the Recipe has mean 0 and std 1: resize 256 / crop 224 for ImageNet,
    a 32 px crop otherwise. Raises ``ShiftlabError`` when the model cannot be loaded.
    """
    from robustbench.utils import load_model as rb_load

    name, _, where = rest.partition("@")
    dataset, _, threat = (where or "imagenet/Linf").partition("/")
    try:
        model = rb_load(model_name=name, dataset=dataset, threat_model=threat or "Linf")
    except Exception as e:
        raise _weights_error(spec, e) from None
    # RobustBench models normalise inside; ImageNet ones use resize 256 / crop 224 ("Res256Crop224")
    if dataset == "imagenet":
        recipe = Recipe(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    else:
        recipe = Recipe(resize=None, crop=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return TorchClassifier(model, recipe, name=name, key=spec)
