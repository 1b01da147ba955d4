"""Preprocessing recipes: how an image file becomes a model's input tensor.

A recipe has a geometric part (resize, crop, interpolation, colour mode) that decides the decoded uint8
tensor, and a normalisation part (mean, std) applied on the fly. The decoded-tensor cache is keyed by the
geometric part only, so models that differ only in mean/std share one decode; predictions are keyed by
the whole recipe.

Geometry follows torchvision's ``Resize(int)`` + ``CenterCrop`` on PIL images exactly (shorter side to
``resize``, longer side truncated; crop offsets rounded), since published accuracies were measured so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from PIL import Image

from shiftlab.errors import InputError, UnknownNameError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

INTERPOLATIONS = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
    "box": Image.BOX,
}


@dataclass(frozen=True)
class Recipe:
    """Preprocessing of one model.

    resize: target of the shorter side in px (aspect kept), or of both sides when ``square``; None = none.
    crop: centre-crop size in px (zero-padded if the image is smaller); None = none.
    mean, std: per-channel normalisation of values in [0, 1].
    mode: ``RGB`` (3 channels) or ``L`` (1 channel).
    """

    resize: int | None = 256
    crop: int | None = 224
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    mode: str = "RGB"
    square: bool = False

    def __post_init__(self):
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(f"unknown interpolation {self.interpolation!r}; one of {', '.join(INTERPOLATIONS)}")
        if self.mode not in ("RGB", "L"):
            raise InputError(f"recipe mode must be RGB or L, not {self.mode!r}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise InputError(f"recipe mean/std need {self.channels} values for mode {self.mode}")
        if self.crop is None and not (self.square and self.resize):
            raise InputError("a recipe needs a crop size, or square=True with a resize, to give fixed-size inputs")
        if any(v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0)
               for v in (self.resize, self.crop)):
            raise InputError(f"recipe resize and crop must be positive integers, not {self.resize!r}, {self.crop!r}")
        if any(s <= 0 for s in self.std):
            raise InputError("recipe std values must be positive")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @property
    def channels(self) -> int:
        """The number of channels: 3 for ``RGB``, 1 for ``L``."""
        return 3 if self.mode == "RGB" else 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the model input in px: the crop size, or the resize when there is no crop."""
        side = self.crop if self.crop is not None else self.resize
        return (self.channels, side, side)

    def geometry(self) -> dict:
        """The fields that decide the decoded pixels (resize, crop, interpolation, mode, square), not mean/std."""
        return {"resize": self.resize, "crop": self.crop, "interpolation": self.interpolation,
                "mode": self.mode, "square": self.square}

    def geometry_key(self) -> str:
        """A 16-hex-digit hash of ``geometry()``: the decoded cache's key (shared when only mean/std differ)."""
        return _short_hash(self.geometry())

    def key(self) -> str:
        """A 16-hex-digit hash of every field: the prediction store's key."""
        return _short_hash(asdict(self))

    def to_json(self) -> dict:
        """The fields as a JSON-ready dict (mean and std as lists)."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_json(cls, d: dict) -> Recipe:
        """The recipe of a ``to_json`` dict; ``InputError`` for invalid values."""
        d = dict(d)
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        return cls(**d)

    @classmethod
    def from_fields(cls, fields, where: str) -> Recipe:
        """A recipe stored with a model (JSON text or a dict); fields left out keep their defaults.

        Malformed input is the user's to fix, so it becomes an InputError that names ``where``.
        """
        try:
            d = json.loads(fields) if isinstance(fields, (str, bytes)) else dict(fields)
            return cls.from_json({**cls().to_json(), **d})
        except InputError as e:
            raise InputError(f"{where}: bad recipe: {e}") from None
        except (ValueError, TypeError) as e:  # bad JSON, not an object, unknown field names
            raise InputError(f"{where}: malformed recipe ({type(e).__name__}: {e}); expected a JSON object with "
                             f"fields among {', '.join(cls().to_json())}") from None

    def with_overrides(self, **kw) -> Recipe:
        """A copy with the given fields replaced; None values are ignored (``self`` when none is left)."""
        kw = {k: v for k, v in kw.items() if v is not None}
        for k in ("mean", "std"):
            if k in kw:
                kw[k] = tuple(kw[k])
        return replace(self, **kw) if kw else self

    # --- geometry -------------------------------------------------------------------------------
    def apply(self, image: Image.Image) -> np.ndarray:
        """PIL image (already in ``mode``) → uint8 array (C, H, W) of ``input_shape``."""
        im = image if image.mode == self.mode else image.convert(self.mode)
        resample = INTERPOLATIONS[self.interpolation]
        if self.resize is not None:
            w, h = im.size
            if self.square:
                size = (self.resize, self.resize)
            elif w <= h:
                size = (self.resize, int(self.resize * h / w))
            else:
                size = (int(self.resize * w / h), self.resize)
            if size != (w, h):
                im = im.resize(size, resample=resample)
        a = np.asarray(im, dtype=np.uint8)
        if a.ndim == 2:
            a = a[:, :, None]
        if self.crop is not None:
            a = _center_crop(a, self.crop)
        return np.ascontiguousarray(a.transpose(2, 0, 1))

    # --- normalisation --------------------------------------------------------------------------
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Float tensor (N, C, H, W) with values in [0, 1] → normalised model input."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


def _center_crop(a: np.ndarray, size: int) -> np.ndarray:
    h, w = a.shape[:2]
    if h < size or w < size:  # torchvision pads with zeros, symmetric-ish
        ph, pw = max(size - h, 0), max(size - w, 0)
        a = np.pad(a, ((ph // 2, (ph + 1) // 2), (pw // 2, (pw + 1) // 2), (0, 0)))
        h, w = a.shape[:2]
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return a[top:top + size, left:left + size]


def _short_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


#: named recipes; ``--recipe NAME`` on the CLI
RECIPES: dict[str, Recipe] = {
    "imagenet": Recipe(),  # resize 256, centre crop 224, bilinear, ImageNet mean/std
    "inception": Recipe(resize=299, crop=299, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    # the embedded digits world: 32×32 RGB images (larger files are shrunk to 32 px first)
    "world": Recipe(resize=32, crop=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
    # its 28×28 grey view for the robust-features study: inputs stay in [0, 1]
    "world-grey28": Recipe(resize=28, crop=28, mode="L", mean=(0.0,), std=(1.0,)),
}


def get_recipe(name: str) -> Recipe:
    """The named recipe of ``RECIPES``; ``UnknownNameError`` for an unknown name."""
    try:
        return RECIPES[name]
    except KeyError:
        raise UnknownNameError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}") from None


def recipe_overrides(recipe: str | None = None, *, resize: int | None = None, crop: int | None = None,
                     interpolation: str | None = None, mean=None, std=None) -> dict:
    """The field overrides that make every model use one preprocessing (``load_model(recipe_overrides=...)``).

    ``recipe``: a named recipe (``RECIPES``) whose geometry, mode and normalisation replace each model's own;
    the single fields given win over it. Without ``recipe``, only the fields given (None = the model's own).
    ``mean`` / ``std``: sequences of floats, or their comma-separated text ("0.485,0.456,0.406").
    Returns a dict of Recipe field → value (None values mean "keep the model's").
    """
    given = {"resize": resize, "crop": crop, "interpolation": interpolation,
             "mean": _floats(mean, "mean"), "std": _floats(std, "std")}
    if recipe is None:
        return given
    base = get_recipe(recipe).to_json()
    return {**{k: base[k] for k in ("resize", "crop", "interpolation", "mean", "std", "mode", "square")},
            **{k: v for k, v in given.items() if v is not None}}


def _floats(v, what: str) -> tuple[float, ...] | None:
    if v is None:
        return None
    try:
        return tuple(float(x) for x in (v.split(",") if isinstance(v, str) else v))
    except (TypeError, ValueError):
        raise InputError(f"{what} must be comma-separated numbers, e.g. 0.485,0.456,0.406") from None
