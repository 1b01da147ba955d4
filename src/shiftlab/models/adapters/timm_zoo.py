"""``timm:NAME[?pretrained=true|false|PATH&seed=0]``: any timm model with a linear classifier.

``pretrained=true`` loads timm's released weights (Hugging Face hub cache, downloaded when missing and the
machine is online), ``false`` a seeded random init, a path a local checkpoint (timm's ``checkpoint_path``).
The recipe is timm's own eval transform, from ``resolve_data_config`` over the model's ``pretrained_cfg``:
input size, ``crop_pct`` (resize = floor(size / crop_pct), as timm), ``crop_mode`` (``center``; ``squash``
resizes both sides), interpolation and mean/std. Features are ``forward_head(…, pre_logits=True)``: what
the classifier layer reads, so logits = features @ W.T + b.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from shiftlab.data.recipes import Recipe
from shiftlab.errors import InputError
from shiftlab.models.adapters.zoo import interpolation_name, split_options, weights_error
from shiftlab.models.classifier import TorchClassifier, file_key, weights_key

OPTIONS = {"pretrained": "true", "seed": "0"}


class TimmClassifier(TorchClassifier):
    """A timm model: logits through ``forward_head``, features from ``forward_head(pre_logits=True)``."""

    def _forward(self, x, features):
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if not features:
            return self.module(x), None
        pre = self.module.forward_head(self.module.forward_features(x), pre_logits=True)
        return self.layer(pre), pre.flatten(1)


def recipe_from_config(cfg: dict, *, spec: str) -> Recipe:
    """timm's resolved data config → the Recipe of its eval transform (``transforms_factory`` in eval mode)."""
    _, h, w = cfg["input_size"]
    if h != w:
        raise InputError(f"{spec}: input size {h}×{w} is not square; shiftlab recipes crop squares")
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    mode = cfg.get("crop_mode") or "center"
    if mode not in ("center", "squash"):
        raise InputError(f"{spec}: timm crop_mode {mode!r} has no shiftlab equivalent (center and squash do)")
    return Recipe(resize=math.floor(h / crop_pct), crop=int(h), interpolation=interpolation_name(cfg["interpolation"]),
                  mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), square=mode == "squash")


def load(rest: str, *, spec: str, workspace=None) -> TimmClassifier:
    """The TimmClassifier of a ``timm:`` spec (see the module docstring); ``InputError`` for an unknown model,
    option or a head that is not one linear layer, ``ShiftlabError`` when released weights cannot be loaded."""
    import timm
    from timm.data import resolve_data_config

    name, opts = split_options(rest, spec=spec, allowed=OPTIONS)
    if not timm.is_model(name):
        raise InputError(f"{spec}: timm has no model {name!r} (see 'shiftlab models list timm --filter …')")
    p = opts["pretrained"]
    if p.lower() in ("true", "1", "yes"):
        try:
            model = timm.create_model(name, pretrained=True)
        except Exception as e:
            raise weights_error(spec, e, where="the Hugging Face hub cache ($HF_HOME)") from None
        key = f"timm:{name}@{model.pretrained_cfg.get('tag') or 'default'}"
    elif p.lower() in ("false", "0", "no", "none"):
        try:
            seed = int(opts["seed"])
        except ValueError:
            raise InputError(f"{spec}: seed must be an integer, not {opts['seed']!r}") from None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = timm.create_model(name, pretrained=False)
        key = weights_key(f"timm:{name}", model)
    else:
        try:
            model = timm.create_model(name, pretrained=False, checkpoint_path=p)
        except (FileNotFoundError, RuntimeError, KeyError) as e:
            raise InputError(f"{spec}: could not load the checkpoint {p} ({' '.join(str(e).split())[:200]})") from None
        key = file_key(f"timm:{name}", p)
    head = model.get_classifier()
    if not isinstance(head, nn.Linear):
        raise InputError(f"{spec}: the classifier of {name} is a {type(head).__name__}, not one linear layer; "
                         "shiftlab needs logits = features @ W.T + b")
    recipe = recipe_from_config(resolve_data_config({}, model=model), spec=spec)
    clf = TimmClassifier(model, recipe, name=name, key=key)
    if clf.num_classes == 1000:
        clf.vocabulary = "ImageNet-1k order (timm's default label set)"
    return clf
