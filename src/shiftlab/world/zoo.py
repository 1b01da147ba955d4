"""The embedded model zoo of the digits world: small models trained on ``world-train`` and cached.

Nine models of varied family and capacity, each ending in a linear classification layer ``fc`` (so that
every analysis gets logits, penultimate features and the last layer's weights from ``TorchClassifier``):

====================  ===========================================================================
name                  what it is
====================  ===========================================================================
``linear``            flatten → ``fc`` (multinomial logistic regression on the pixels)
``linear-coarse``     average-pool to 4×4 → ``fc``: deliberately weak, it widens the accuracy range
``mlp``               flatten → 128 ReLU units → ``fc``
``cnn-small``         the zoo CNN at width 8
``cnn-medium-s0/s1``  the zoo CNN at width 16, two seeds
``cnn-wide``          the zoo CNN at width 32
``cnn-adv-l2``        width 16, adversarially trained with L2 PGD in [0, 1] pixel space (SPECS S4)
``cnn-worst-of-k``    width 16, trained on the worst of the five S4 perturbation versions of each sample
====================  ===========================================================================

The zoo CNN: 2×2 average pool (the world's digits are 8×8 scans rendered at 32 px, so 16 px lose little
and quarter the cost) → conv 3×3 (w) → ReLU → max-pool → conv 3×3 (2w) → ReLU → max-pool to 4×4 →
flatten (32·w features) → ``fc``.

Inputs are images in [0, 1]; the recipe's normalisation (``RECIPES["world"]``: mean 0.5, std 0.25) is
applied in training exactly as ``Classifier.forward`` applies it, so an attack on the classifier works in
[0, 1] pixel space with the normalisation inside the model.

Training reads pixels through the decode-once cache, is seeded (initialisation, order, augmentation,
attacks) and deterministic for a given thread count. A trained model is stored as
``<workspace>/models/zoo/<name>-<hash16>.pt`` (state dict, config, training record), where ``hash16``
hashes the model's config, the training manifest's content hash and ``CODE_VERSION``; it is written
atomically under a file lock, so two processes never train the same model twice. All nine together train
in well under a minute on 2 CPU cores.

Example::

    >>> train = read_dataset("world-train")
    >>> entries = train_zoo(train)                       # trains what is missing
    >>> clf = load_zoo_model("cnn-medium-s0", train)     # a TorchClassifier, recipe RECIPES["world"]
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from shiftlab.data.recipes import RECIPES, Recipe
from shiftlab.data.transforms import GROUPS, perturb
from shiftlab.errors import InputError, ShiftlabError, UnknownNameError
from shiftlab.fsutil import atomic_write_bytes, file_lock
from shiftlab.models.classifier import TorchClassifier
from shiftlab.models.nets import MLP, LinearNet, SmallCNN, n_params
from shiftlab.models.train import TrainSettings, train_classifier
from shiftlab.predict.cache import DecodedCache
from shiftlab.progress import info
from shiftlab.workspace import Workspace

#: part of every cache key: bump it when architectures or training change, so stale weights are not reused
CODE_VERSION = "zoo-1"
FILE_FORMAT = 1
FAMILIES = ("linear", "mlp", "cnn")


# --- configuration ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ZooConfig:
    """How one zoo model is built and trained. Every field but ``doc`` is part of the cache key.

    Parameters
    ----------
    name : str
        The model's name in the zoo (``world:<name>``).
    family : {"linear", "mlp", "cnn"}
    width : int, default 0
        ``cnn``: channels of the first convolution (the second has 2·width); ``mlp``: hidden units.
    pool_to : int or None, default None
        ``linear``: average-pool the image to ``pool_to``×``pool_to`` px before the linear layer.
    seed : int, default 0
        Seeds initialisation, sample order, augmentation and attacks.
    epochs, batch_size : int, default 15, 64
    lr, weight_decay : float, default 3e-3, 0.0
        Adam with a one-cycle schedule peaking at ``lr``.
    shift : int, default 0
        Augmentation: a random translation of up to ±``shift`` px per axis and sample (edges replicated).
    training : {"standard", "pgd-l2", "worst-of-k"}, default "standard"
        ``pgd-l2``: each batch is replaced by its L2 PGD adversarial examples (``eps``, ``pgd_steps``,
        ``pgd_step``; no random start; inputs in [0, 1], normalisation inside). ``worst-of-k``: each
        sample is trained on whichever of its five S4 perturbation versions has the highest loss at that step;
        the versions are made once per sample before training with ``perturb_seed``.
    eps, pgd_step : float or None
        L2 radius and step size of the attack, in [0, 1] pixel units.
    pgd_steps : int or None
    perturb_seed : int or None
        Seed of the worst-of-k versions (``shiftlab.data.transforms.all_versions``).
    dark_ink : bool, default True
        The world has dark ink on light paper: the perturbations add and remove dark ink.
    recipe : str, default "world"
        Name of the preprocessing recipe in ``RECIPES``.
    doc : str
        One line for people; not part of the cache key.
    """

    name: str
    family: str
    width: int = 0
    pool_to: int | None = None
    seed: int = 0
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0
    shift: int = 0
    training: str = "standard"
    eps: float | None = None
    pgd_steps: int | None = None
    pgd_step: float | None = None
    perturb_seed: int | None = None
    dark_ink: bool = True
    recipe: str = "world"
    doc: str = field(default="", compare=False)

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise InputError(f"zoo model {self.name!r}: family must be one of {', '.join(FAMILIES)}")
        if self.family in ("mlp", "cnn") and self.width < 1:
            raise InputError(f"zoo model {self.name!r}: a {self.family} needs width >= 1")
        try:  # the training loop's own checks (training kind, epochs, batch size, PGD parameters)
            self.settings()
        except InputError as e:
            raise InputError(f"zoo model {self.name!r}: {e}") from None
        if self.training == "worst-of-k" and self.perturb_seed is None:
            raise InputError(f"zoo model {self.name!r}: worst-of-k training needs perturb_seed")
        if self.recipe not in RECIPES:
            raise UnknownNameError(f"zoo model {self.name!r}: unknown recipe {self.recipe!r}")

    def settings(self) -> TrainSettings:
        """The training loop's settings (``shiftlab.models.train``)."""
        return TrainSettings(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                             weight_decay=self.weight_decay, seed=self.seed, shift=self.shift,
                             training=self.training, eps=self.eps, pgd_steps=self.pgd_steps, pgd_step=self.pgd_step)

    def to_json(self) -> dict:
        """The fields that define the model (``doc`` left out)."""
        d = asdict(self)
        d.pop("doc")
        return d

    @classmethod
    def from_json(cls, d: Mapping) -> ZooConfig:
        """The config of a ``to_json`` dict; unknown keys are ignored, missing ones take their defaults."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _cnn(name: str, width: int, seed: int = 0, doc: str = "", **kw) -> ZooConfig:
    return ZooConfig(name, "cnn", width=width, seed=seed, shift=2, doc=doc, **kw)


_ADV_EPS, _ADV_STEPS = 2.0, 7

#: the default zoo, in order of listing
ZOO: dict[str, ZooConfig] = {c.name: c for c in [
    ZooConfig("linear", "linear", doc="flatten → linear (logistic regression on pixels)"),
    ZooConfig("linear-coarse", "linear", pool_to=4, doc="average-pool to 4×4 → linear: a deliberately weak model"),
    ZooConfig("mlp", "mlp", width=128, doc="flatten → 128 ReLU units → linear"),
    _cnn("cnn-small", 8, doc="zoo CNN, width 8"),
    _cnn("cnn-medium-s0", 16, seed=0, doc="zoo CNN, width 16, seed 0"),
    _cnn("cnn-medium-s1", 16, seed=1, doc="zoo CNN, width 16, seed 1"),
    _cnn("cnn-wide", 32, doc="zoo CNN, width 32"),
    _cnn("cnn-adv-l2", 16, training="pgd-l2", eps=_ADV_EPS, pgd_steps=_ADV_STEPS,
         pgd_step=2.5 * _ADV_EPS / _ADV_STEPS,
         doc=f"zoo CNN, width 16, L2 PGD adversarial training (ε {_ADV_EPS}, {_ADV_STEPS} steps)"),
    _cnn("cnn-worst-of-k", 16, training="worst-of-k", perturb_seed=0,
         doc="zoo CNN, width 16, worst-of-k training over the five S4 perturbation groups"),
]}


def build_module(config: ZooConfig, in_shape: tuple[int, int, int], n_classes: int) -> nn.Module:
    """An untrained module for ``config``, initialised from ``config.seed`` (global RNG state untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if config.family == "linear":
            return LinearNet(in_shape, n_classes, config.pool_to)
        if config.family == "mlp":
            return MLP(in_shape, n_classes, config.width)
        return SmallCNN(in_shape, n_classes, config.width)


# --- training ---------------------------------------------------------------------------------------------
@dataclass
class TrainingData:
    """What training reads: uint8 pixels (N, C, H, W) and int64 labels (N,), undecodable/unlabelled rows out."""

    pixels: torch.Tensor
    labels: torch.Tensor
    n_classes: int
    n_excluded: int
    manifest: str
    manifest_hash: str


def training_data(train, recipe: Recipe, workspace, *, progress: bool = True) -> TrainingData:
    """Decode ``train`` once through the decoded-tensor cache and keep the usable rows."""
    cache = DecodedCache(train, recipe, workspace, progress=progress).build()
    keep = cache.valid_mask() & (train.labels >= 0)
    if not keep.any():
        raise InputError(f"{train.name}: no decodable, labelled images to train the zoo on")
    pixels = torch.from_numpy(np.ascontiguousarray(cache.pixels()[keep]))
    return TrainingData(pixels, torch.from_numpy(train.labels[keep]), len(train.vocabulary),
                        int((~keep).sum()), train.name, train.content_hash)


def train_model(config: ZooConfig, data: TrainingData, *, progress: bool = True,
                label: str | None = None) -> tuple[nn.Module, dict]:
    """Train one zoo model from scratch (``shiftlab.models.train.train_classifier``).

    Returns
    -------
    module : nn.Module in eval mode
    record : dict
        ``train_classifier``'s record plus ``n_excluded`` (training rows left out: undecodable or unlabelled).
    """
    t0 = time.perf_counter()
    recipe = RECIPES[config.recipe]
    module = build_module(config, tuple(data.pixels.shape[1:]), data.n_classes)
    versions = None
    if config.training == "worst-of-k":
        # made once per sample, before training, and kept as uint8 like the clean pixels
        x01 = data.pixels.float().div(255)
        versions = torch.stack([perturb(x01, g, config.perturb_seed, dark_ink=config.dark_ink)
                                .mul_(255).round_().to(torch.uint8) for g in GROUPS])
        del x01
    module, record = train_classifier(module, data.pixels, data.labels, config.settings(), normalize=recipe.normalize,
                                      versions=versions, progress=progress, label=label or config.name)
    record["seconds"] = round(time.perf_counter() - t0, 3)
    return module, {**record, "n_excluded": data.n_excluded}


# --- cache ------------------------------------------------------------------------------------------------
def zoo_hash(config: ZooConfig, train) -> str:
    """16 hex digits over (config, recipe, training manifest content hash, CODE_VERSION)."""
    doc = {"config": config.to_json(), "recipe": RECIPES[config.recipe].to_json(),
           "train": train.content_hash, "code": CODE_VERSION}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def zoo_dir(workspace=None) -> Path:
    """The folder of the zoo's weight files, ``<workspace>/models/zoo`` (made if missing)."""
    d = _ws(workspace).models / "zoo"
    d.mkdir(parents=True, exist_ok=True)
    return d


def zoo_path(config: ZooConfig, train, workspace=None) -> Path:
    """``<workspace>/models/zoo/<name>-<hash16>.pt``."""
    return zoo_dir(workspace) / f"{config.name}-{zoo_hash(config, train)}.pt"


@dataclass
class ZooEntry:
    """One trained zoo model: its config, weights file, training record and module (eval mode)."""

    name: str
    config: ZooConfig
    hash: str
    path: Path
    record: dict
    module: nn.Module
    trained: bool  #: True if this call trained it, False if it came from the cache
    _classifier: TorchClassifier | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> str:
        """Identity for the prediction store: ``world:<name>@<hash16>``."""
        return f"world:{self.name}@{self.hash}"

    def classifier(self) -> TorchClassifier:
        """The model as a Classifier: inputs in [0, 1], recipe ``RECIPES[config.recipe]`` (one per entry:
        each Classifier hooks the module's last layer)."""
        if self._classifier is None:
            self._classifier = TorchClassifier(self.module, RECIPES[self.config.recipe], name=self.name, key=self.key)
        return self._classifier


def _ws(workspace) -> Workspace:
    return workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)


def _save(path: Path, config: ZooConfig, module: nn.Module, record: dict, data: TrainingData) -> None:
    payload = {
        "format": FILE_FORMAT, "code_version": CODE_VERSION, "config": config.to_json(), "doc": config.doc,
        "input_shape": list(data.pixels.shape[1:]), "n_classes": data.n_classes,
        "train_manifest": {"name": data.manifest, "content_hash": data.manifest_hash},
        "record": record, "state_dict": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def _load(path: Path, config: ZooConfig, digest: str) -> ZooEntry:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload["config"] != config.to_json():
            raise ValueError("the stored config differs from the requested one")
        module = build_module(config, tuple(payload["input_shape"]), int(payload["n_classes"]))
        module.load_state_dict(payload["state_dict"])
    except Exception as e:
        raise ShiftlabError(f"{path}: unreadable zoo checkpoint ({type(e).__name__}: {e}); delete it to "
                            "retrain the model") from None
    return ZooEntry(config.name, config, digest, path, payload["record"], module.eval(), trained=False)


def _resolve(names, zoo: Mapping[str, ZooConfig] | None, overrides: Mapping | None) -> list[ZooConfig]:
    zoo = ZOO if zoo is None else zoo
    if names is None:
        names = list(zoo)
    elif isinstance(names, str):
        names = [names]
    out = []
    for n in names:
        if n not in zoo:
            raise UnknownNameError(f"no model {n!r} in the digits-world zoo; known: {', '.join(zoo)}")
        out.append(replace(zoo[n], **overrides) if overrides else zoo[n])
    return out


def train_zoo(train, workspace=None, names: Iterable[str] | str | None = None, *, progress: bool = True,
              zoo: Mapping[str, ZooConfig] | None = None, overrides: Mapping | None = None) -> dict[str, ZooEntry]:
    """Train the zoo models that are not cached yet; load the others.

    Parameters
    ----------
    train : Manifest
        The training set (the world's ``world-train``); its content hash is part of every cache key.
    workspace : Workspace, path or None
        Where ``models/zoo/`` and the decoded cache live (default: the resolved workspace).
    names : iterable of str, str or None, default None
        Which models (default: all of ``zoo``, in its order).
    progress : bool, default True
        Rich progress bars and one line per trained model (silenced by ``--quiet`` too).
    zoo : mapping name → ZooConfig, default ``ZOO``
    overrides : mapping, optional
        Fields replaced in every selected config (e.g. ``{"epochs": 1}`` for a quick run); they change the
        cache key like any config change.

    Returns
    -------
    dict name → ZooEntry, in the order of ``names``. ``entry.trained`` tells trained from cached;
    ``entry.record["seconds"]`` is the training time.
    """
    ws = _ws(workspace)
    configs = _resolve(names, zoo, overrides)
    data: dict[str, TrainingData] = {}  # per recipe, decoded once
    out: dict[str, ZooEntry] = {}
    for i, config in enumerate(configs, 1):
        digest = zoo_hash(config, train)
        path = zoo_dir(ws) / f"{config.name}-{digest}.pt"
        if path.is_file():
            out[config.name] = _load(path, config, digest)
            continue
        with file_lock(path.with_name(f".{path.stem}.lock")):
            if path.is_file():  # another process trained it while we waited
                out[config.name] = _load(path, config, digest)
                continue
            if config.recipe not in data:
                data[config.recipe] = training_data(train, RECIPES[config.recipe], ws, progress=progress)
            module, record = train_model(config, data[config.recipe], progress=progress,
                                         label=f"{config.name} ({i}/{len(configs)})" if len(configs) > 1 else None)
            record = {**record, "manifest": train.name, "manifest_hash": train.content_hash,
                      "code_version": CODE_VERSION}
            _save(path, config, module, record, data[config.recipe])
        if progress:
            info(f"zoo: trained {config.name} in {record['seconds']:.1f}s "
                 f"(train acc {100 * record['final_acc']:.1f}%)")
        out[config.name] = ZooEntry(config.name, config, digest, path, record, module, trained=True)
    return out


def load_zoo_model(name: str, train, workspace=None, *, progress: bool = True,
                   zoo: Mapping[str, ZooConfig] | None = None, overrides: Mapping | None = None) -> TorchClassifier:
    """One zoo model as a ``TorchClassifier`` (trained and cached first if needed).

    Its recipe is ``RECIPES["world"]`` and its ``key`` is ``world:<name>@<hash16>``, so stored predictions
    follow the weights. Other parameters as in ``train_zoo``.
    """
    return train_zoo(train, workspace, [name], progress=progress, zoo=zoo, overrides=overrides)[name].classifier()


def summary(entries: Mapping[str, ZooEntry]) -> pd.DataFrame:
    """One row per model: name, family, training, params, epochs, seconds, final train loss/acc, cached."""
    return pd.DataFrame([{
        "name": e.name, "family": e.config.family, "training": e.config.training,
        "params": n_params(e.module), "epochs": e.record.get("epochs"), "seconds": e.record.get("seconds"),
        "final_loss": e.record.get("final_loss"), "final_acc": e.record.get("final_acc"),
        "cached": not e.trained} for e in entries.values()])
