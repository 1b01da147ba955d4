"""What the zoo adapters (torchvision, timm, RobustBench, robustness-library checkpoints) share.

``split_options`` reads the ``NAME?key=value&…`` part of a spec, ``recipe_from_transforms`` turns a zoo's
own eval transform into a Recipe, ``read_state_dict`` loads a checkpoint file without running pickled code.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

import torch

from shiftlab.data.recipes import INTERPOLATIONS, Recipe
from shiftlab.errors import InputError, ShiftlabError


def split_options(rest: str, *, spec: str, allowed: dict[str, str]) -> tuple[str, dict[str, str]]:
    """``"resnet50?weights=none"`` → ``("resnet50", {"weights": "none"})``, the defaults of ``allowed`` filled in.

    ``InputError`` (one line) for an option not in ``allowed``, an option given twice or an empty name.
    """
    name, _, query = rest.partition("?")
    if not name:
        raise InputError(f"{spec}: no model name before '?'")
    given: dict[str, str] = {}
    for k, v in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if k not in allowed:
            raise InputError(f"{spec}: unknown option {k!r}; options: "
                             + ", ".join(f"{a}= (default {d!r})" for a, d in allowed.items()))
        if k in given:
            raise InputError(f"{spec}: option {k!r} given twice")
        given[k] = v
    return name, {**allowed, **given}


def interpolation_name(x) -> str:
    """A zoo's interpolation (a torchvision ``InterpolationMode``, a PIL constant name or a string) → a
    Recipe interpolation name; ``InputError`` for one shiftlab cannot reproduce."""
    name = str(getattr(x, "value", x)).lower().split(".")[-1]
    if name not in INTERPOLATIONS:
        raise InputError(f"interpolation {x!r} has no shiftlab equivalent (one of {', '.join(INTERPOLATIONS)})")
    return name


def _first(v) -> int:
    return int(v[0]) if isinstance(v, (list, tuple)) else int(v)


def recipe_from_transforms(t, *, mean=None, std=None, native_size: int | None = None) -> Recipe:
    """A torchvision eval transform → the Recipe that gives the same tensor.

    Understood: torchvision's ``ImageClassification`` preset (resize_size, crop_size, interpolation, mean,
    std) and a ``Compose`` of ``Resize`` (an int: shorter side; a pair: both sides), ``CenterCrop``,
    ``ToTensor``/``PILToTensor``/``ConvertImageDtype`` and ``Normalize``. ``mean``/``std`` apply when the
    transform does not normalise (RobustBench models normalise inside: 0 and 1). ``native_size``: the crop
    for a transform that neither resizes nor crops (CIFAR's bare ``ToTensor``).
    """
    if hasattr(t, "crop_size") and hasattr(t, "resize_size"):  # torchvision.transforms._presets.ImageClassification
        resize = t.resize_size
        square = isinstance(resize, (list, tuple)) and len(resize) == 2
        return Recipe(resize=_first(resize), crop=_first(t.crop_size),
                      interpolation=interpolation_name(t.interpolation), mean=tuple(t.mean), std=tuple(t.std),
                      square=square)
    steps = list(getattr(t, "transforms", [t]))
    fields: dict = {"resize": None, "crop": None, "interpolation": "bilinear"}
    for s in steps:
        kind = type(s).__name__
        if kind == "Resize":
            if fields["crop"] is not None:
                raise InputError(f"transform {t!r}: a Resize after a CenterCrop has no Recipe equivalent")
            size = s.size
            fields["square"] = isinstance(size, (list, tuple)) and len(size) == 2
            if fields["square"] and int(size[0]) != int(size[1]):
                raise InputError(f"transform {t!r}: a non-square Resize {tuple(size)} has no Recipe equivalent")
            fields["resize"], fields["interpolation"] = _first(size), interpolation_name(s.interpolation)
        elif kind == "CenterCrop":
            fields["crop"] = _first(s.size)
        elif kind == "Normalize":
            mean, std = tuple(float(m) for m in s.mean), tuple(float(v) for v in s.std)
        elif kind not in ("ToTensor", "PILToTensor", "ConvertImageDtype", "ToDtype", "ToImage"):
            raise InputError(f"transform step {kind} has no Recipe equivalent (in {t!r})")
    if fields["crop"] is None and not fields.get("square"):
        fields["crop"] = fields["resize"] or native_size
    return Recipe(**fields, mean=tuple(mean) if mean is not None else (0.0, 0.0, 0.0),
                  std=tuple(std) if std is not None else (1.0, 1.0, 1.0))


def weights_error(spec: str, e: Exception, where: str = "") -> ShiftlabError:
    """A one-line error for pretrained weights that could not be loaded, naming where they are looked for."""
    hint = f"; they are looked for in {where}" if where else "; on an offline machine put them in the zoo's cache first"
    return ShiftlabError(f"{spec}: could not load the weights ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:160]}){hint}")


def read_state_dict(path: str, *, spec: str) -> dict:
    """The tensors of a checkpoint file, read with ``weights_only=True`` (no pickled code runs).

    A dict holding ``state_dict`` or ``model`` is unwrapped; a ``module.`` prefix (DataParallel) is dropped.
    ``InputError`` for a missing or unreadable file.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{spec}: no checkpoint file at {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(f"{spec}: {p} is not a readable PyTorch checkpoint ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:160]})") from None
    for k in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(k), dict):
            obj = obj[k]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{spec}: {p} holds no state dict (a mapping of parameter names to tensors)")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj
