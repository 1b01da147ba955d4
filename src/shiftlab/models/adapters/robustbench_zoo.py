"""``robustbench:NAME[@DATASET/THREAT][?model_dir=PATH]``: a RobustBench model zoo entry.

RobustBench's own ``load_model`` reads ``<model_dir>/<dataset>/<threat>/<NAME>.pt`` (``model_dir`` defaults
to RobustBench's ``./models``) and downloads it only when missing. Its models normalise inside, so the
Recipe has mean 0 / std 1 and only the geometry of the benchmark's preprocessing
(``robustbench.data.get_preprocessing``: ``Res256Crop224`` for most ImageNet entries, the bare tensor for
CIFAR). robustbench stays out of shiftlab's dependencies: version 1.1.1 on PyPI pins timm 1.0.9, imports
``pkg_resources`` and the git-only ``autoattack``.
"""

from __future__ import annotations

from shiftlab.errors import InputError
from shiftlab.models.adapters.zoo import recipe_from_transforms, split_options, weights_error
from shiftlab.models.classifier import TorchClassifier, weights_key

OPTIONS = {"model_dir": "./models"}
#: the side of the images of RobustBench's small-image datasets (their preprocessing is ToTensor alone)
NATIVE_SIZE = {"cifar10": 32, "cifar100": 32}


def load(rest: str, *, spec: str, workspace=None) -> TorchClassifier:
    """The TorchClassifier of a ``robustbench:`` spec; ``InputError`` for an unknown dataset, threat model or
    name, ``ShiftlabError`` when the checkpoint is neither in ``model_dir`` nor downloadable."""
    from robustbench.data import get_preprocessing
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    from robustbench.utils import load_model as rb_load

    body, opts = split_options(rest, spec=spec, allowed=OPTIONS)
    name, _, where = body.partition("@")
    dataset, _, threat = (where or "imagenet/Linf").partition("/")
    try:
        ds, tm = BenchmarkDataset(dataset), ThreatModel(threat or "Linf")
    except ValueError as e:
        raise InputError(f"{spec}: {e}; datasets: {', '.join(d.value for d in BenchmarkDataset)}, "
                         f"threat models: {', '.join(t.value for t in ThreatModel)}") from None
    if name not in model_dicts.get(ds, {}).get(tm, {}):
        raise InputError(f"{spec}: RobustBench has no {ds.value}/{tm.value} model {name!r}")
    try:
        model = rb_load(model_name=name, model_dir=opts["model_dir"], dataset=ds, threat_model=tm)
    except Exception as e:
        raise weights_error(spec, e, where=f"{opts['model_dir']}/{ds.value}/{tm.value}/{name}.pt") from None
    recipe = recipe_from_transforms(get_preprocessing(ds, tm, name, None), native_size=NATIVE_SIZE.get(ds.value))
    key = weights_key(f"robustbench:{name}@{ds.value}/{tm.value}", model)
    return TorchClassifier(model, recipe, name=name, key=key)
