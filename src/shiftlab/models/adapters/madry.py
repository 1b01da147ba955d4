"""``madry:ARCH:PATH``: a checkpoint saved by MadryLab's ``robustness`` library, read without that library.

Such a file is ``{"model": state_dict, "optimizer": …, "epoch": …}``; the state dict is that of the library's
``AttackerModel`` (usually inside DataParallel): ``module.normalizer.new_mean`` / ``new_std`` (3, 1, 1), the
network under ``module.model.`` and a second copy under ``module.attacker.model.``. shiftlab takes the network
and puts the normaliser's mean/std into the Recipe. ARCH is a torchvision name for ImageNet checkpoints
(``resnet18``, ``resnet50``, ``wide_resnet50_2``…: the library's ImageNet models share torchvision's
parameter names) and the CIFAR ResNets (``resnet18``…``resnet152``, recognised by their ``linear`` layer) are
built by ``shiftlab.models.nets.CifarResNet``. The geometry is the library's test transform: resize 256 /
crop 224 for ImageNet, the 32 px image itself for CIFAR.
"""

from __future__ import annotations

from shiftlab.data.recipes import Recipe
from shiftlab.errors import InputError
from shiftlab.models.adapters.zoo import read_state_dict
from shiftlab.models.classifier import TorchClassifier, file_key
from shiftlab.models.nets import CifarResNet


def split_network(sd: dict, *, spec: str) -> tuple[dict, tuple, tuple]:
    """An AttackerModel state dict → (the network's state dict, mean, std); ``InputError`` when it is not one."""
    try:
        mean = tuple(float(v) for v in sd["normalizer.new_mean"].flatten())
        std = tuple(float(v) for v in sd["normalizer.new_std"].flatten())
    except KeyError:
        raise InputError(f"{spec}: no normalizer.new_mean / new_std in the checkpoint: not a robustness-library "
                         "checkpoint (a plain state dict loads with torchvision:NAME?weights=PATH)") from None
    net = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    if not net:
        raise InputError(f"{spec}: the checkpoint has no 'model.' parameters (the network of the AttackerModel)")
    return net, mean, std


def load(rest: str, *, spec: str, workspace=None) -> TorchClassifier:
    """The TorchClassifier of a ``madry:ARCH:PATH`` spec; ``InputError`` for an unknown ARCH, a missing file or
    a checkpoint that does not fit ARCH."""
    arch, sep, path = rest.partition(":")
    if not sep or not path:
        raise InputError(f"{spec}: expected madry:ARCH:PATH, e.g. madry:resnet50:imagenet_l2_3_0.pt")
    net, mean, std = split_network(read_state_dict(path, spec=spec), spec=spec)
    if "linear.weight" in net:  # the library's CIFAR models
        if arch not in CifarResNet.DEPTHS:
            raise InputError(f"{spec}: {arch!r} is not a CIFAR ResNet shiftlab builds "
                             f"({', '.join(CifarResNet.DEPTHS)})")
        model = CifarResNet(arch, n_classes=int(net["linear.weight"].shape[0]))
        recipe = Recipe(resize=None, crop=32, mean=mean, std=std)
    else:
        import torchvision

        if arch not in torchvision.models.list_models(module=torchvision.models):
            raise InputError(f"{spec}: {arch!r} is not a torchvision classification model")
        k = net.get("fc.weight", net.get("classifier.weight"))
        kw = {"num_classes": int(k.shape[0])} if k is not None else {}
        model = torchvision.models.get_model(arch, weights=None, **kw)
        recipe = Recipe(resize=256, crop=224, interpolation="bilinear", mean=mean, std=std)
    try:
        model.load_state_dict(net)
    except RuntimeError as e:
        raise InputError(f"{spec}: the checkpoint does not fit {arch} ({' '.join(str(e).split())[:200]})") from None
    return TorchClassifier(model, recipe, name=f"{arch}:{path.rsplit('/', 1)[-1]}", key=file_key(spec, path))
