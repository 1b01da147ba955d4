"""The zoo adapters against the real torchvision and timm, and robustness-library checkpoints.

For each family: features are what the last linear layer reads (logits = features @ W.T + b, with that layer
re-drawn at random so that zero-initialised heads cannot pass by construction), the logits are the model's own,
and the Recipe gives the very tensor of the zoo's own eval transform on an odd-sized image.
"""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
from PIL import Image

from shiftlab.errors import InputError, ShiftlabError
from shiftlab.models import load_model
from shiftlab.models.adapters.zoo import recipe_from_transforms

torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")

from .conftest import normalise  # noqa: E402


@pytest.fixture(scope="module")
def odd_image():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (301, 411, 3), dtype=np.uint8))


def recipe_tensor(recipe, image) -> torch.Tensor:
    return recipe.normalize(torch.from_numpy(recipe.apply(image)).float().unsqueeze(0) / 255)[0]


def check_head(clf):
    """logits = features @ W.T + b (a random head) and = the module's own output on the normalised input."""
    torch.manual_seed(1)
    with torch.no_grad():
        clf.layer.weight.normal_(0, 0.05)
        if clf.layer.bias is not None:
            clf.layer.bias.normal_(0, 0.5)
    x = torch.rand(2, *clf.recipe.input_shape)
    with torch.no_grad():
        logits, feats = clf.forward(x, features=True)
        w, b = clf.last_layer()
        own = clf.module(normalise(x, clf.recipe.mean, clf.recipe.std))
    assert feats.shape == (2, w.shape[1]) and logits.shape == (2, clf.num_classes)
    assert logits.abs().max() > 0.1  # a live head
    torch.testing.assert_close(feats @ w.T + b, logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(own, logits, rtol=1e-4, atol=1e-4)


# one of each family torchvision ships with a linear head (the small member where there are several)
TV_FAMILIES = ["resnet18", "vgg11", "densenet121", "efficientnet_b0", "convnext_tiny", "vit_b_16", "swin_t",
               "mobilenet_v3_small", "regnet_x_400mf", "maxvit_t", "shufflenet_v2_x0_5", "mnasnet0_5"]


@pytest.mark.parametrize("name", TV_FAMILIES)
def test_torchvision_family_features_and_recipe(name, odd_image):
    clf = load_model(f"torchvision:{name}?weights=none")
    check_head(clf)
    t = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    a, b = recipe_tensor(clf.recipe, odd_image), t(odd_image)
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name, weights, expect", [
    ("resnet50", "IMAGENET1K_V1", (256, 224, "bilinear")), ("resnet50", "IMAGENET1K_V2", (232, 224, "bilinear")),
    ("efficientnet_b3", "IMAGENET1K_V1", (320, 300, "bicubic")),
    ("vit_b_16", "IMAGENET1K_SWAG_E2E_V1", (384, 384, "bicubic")),
    ("inception_v3", "IMAGENET1K_V1", (342, 299, "bilinear")), ("swin_t", "IMAGENET1K_V1", (232, 224, "bicubic"))])
def test_torchvision_recipes_differ_by_weights(name, weights, expect, odd_image):
    t = torchvision.models.get_model_weights(name)[weights].transforms()
    r = recipe_from_transforms(t)
    assert (r.resize, r.crop, r.interpolation) == expect
    torch.testing.assert_close(recipe_tensor(r, odd_image), t(odd_image), rtol=0, atol=1e-6)


def test_torchvision_random_init_is_seeded():
    a, b = load_model("torchvision:resnet18?weights=none"), load_model("torchvision:resnet18?weights=none")
    c = load_model("torchvision:resnet18?weights=none&seed=1")
    assert a.key == b.key != c.key
    assert torch.equal(a.layer.weight, b.layer.weight) and not torch.equal(a.layer.weight, c.layer.weight)


def test_torchvision_weights_from_the_hub_cache(tmp_path, monkeypatch):
    """Released weights are read from $TORCH_HOME/hub/checkpoints when the file is there (no download)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    member = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    torch.manual_seed(3)
    stand_in = torchvision.models.resnet18()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(stand_in.state_dict(), tmp_path / "hub" / "checkpoints" / member.url.rsplit("/", 1)[-1])
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried to download"))
    clf = load_model("torchvision:resnet18")
    assert clf.key == "torchvision:resnet18@IMAGENET1K_V1"
    assert torch.equal(clf.layer.weight, stand_in.fc.weight)
    assert "1000 categories" in clf.vocabulary


def test_torchvision_missing_weights_offline_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ShiftlabError) as e:
        load_model("torchvision:resnet18?weights=IMAGENET1K_V1")
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "hub" / "checkpoints") in msg and "resnet18-f37072fd.pth" in msg


def test_torchvision_local_state_dict_with_other_classes(tmp_path):
    torch.manual_seed(4)
    net = torchvision.models.resnet18(num_classes=7)
    path = tmp_path / "finetuned.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    clf = load_model(f"torchvision:resnet18?weights={path}")
    assert clf.num_classes == 7 and torch.equal(clf.layer.weight, net.fc.weight)
    assert clf.key.startswith("torchvision:resnet18@")
    with pytest.raises(InputError, match="does not fit torchvision's resnet34"):
        load_model(f"torchvision:resnet34?weights={path}")


@pytest.mark.parametrize("spec, match", [
    ("torchvision:squeezenet1_0?weights=none", "no nn.Linear layer"),
    ("torchvision:nosuchnet", "no classification model 'nosuchnet'"),
    ("torchvision:fasterrcnn_resnet50_fpn", "no classification model"),
    ("torchvision:resnet18?weights=IMAGENET9K", "has no weights 'IMAGENET9K'.*IMAGENET1K_V1"),
    ("torchvision:resnet18?wieghts=none", "unknown option 'wieghts'"),
    ("torchvision:resnet18?weights=/no/such/file.pth", "no checkpoint file"),
    ("timm:nosuchnet", "timm has no model"),
    ("timm:deit_tiny_distilled_patch16_224?pretrained=false", "not one linear layer"),
    ("timm:resnet18?pretrained=false&seed=x", "seed must be an integer")])
def test_bad_zoo_specs_are_one_line(spec, match):
    with pytest.raises(InputError, match=match) as e:
        load_model(spec)
    assert "\n" not in str(e.value)


TIMM_ARCHS = ["resnet18", "efficientnet_b0", "vit_tiny_patch16_224", "deit_tiny_patch16_224", "convnext_atto",
              "mobilenetv3_small_100", "regnetx_002", "xcit_nano_12_p16_224", "mixnet_s"]


@pytest.mark.parametrize("name", TIMM_ARCHS)
def test_timm_arch_features_and_recipe(name, odd_image):
    from timm.data import create_transform, resolve_data_config

    clf = load_model(f"timm:{name}?pretrained=false")
    check_head(clf)
    # the features are timm's own pre-logits
    x = torch.rand(1, *clf.recipe.input_shape)
    with torch.no_grad():
        pre = clf.module.forward_head(clf.module.forward_features(normalise(x, clf.recipe.mean, clf.recipe.std)),
                                      pre_logits=True)
        torch.testing.assert_close(clf.features(x), pre.flatten(1))
    t = create_transform(**resolve_data_config({}, model=clf.module))
    torch.testing.assert_close(recipe_tensor(clf.recipe, odd_image), t(odd_image), rtol=0, atol=1e-6)


def test_timm_recipe_reads_crop_pct_and_squash():
    from shiftlab.models.adapters.timm_zoo import recipe_from_config

    cfg = {"input_size": (3, 288, 288), "crop_pct": 0.95, "interpolation": "bilinear", "mean": (0.5,) * 3,
           "std": (0.5,) * 3, "crop_mode": "squash"}
    r = recipe_from_config(cfg, spec="t")
    assert (r.resize, r.crop, r.interpolation, r.square) == (303, 288, "bilinear", True)
    with pytest.raises(InputError, match="crop_mode 'border'"):
        recipe_from_config({**cfg, "crop_mode": "border"}, spec="t")


def test_timm_local_checkpoint(tmp_path):
    torch.manual_seed(5)
    net = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "r18.pth"
    torch.save(net.state_dict(), path)
    clf = load_model(f"timm:resnet18?pretrained={path}")
    assert torch.equal(clf.layer.weight, net.fc.weight)
    assert clf.key.startswith("timm:resnet18@") and clf.key != load_model("timm:resnet18?pretrained=false").key


def madry_checkpoint(net, mean, std, path):
    """A file shaped as the robustness library's training loop saves one (DataParallel(AttackerModel))."""
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    sd = {"module.normalizer.new_mean": m, "module.normalizer.new_std": s}
    for k, v in net.state_dict().items():
        sd[f"module.model.{k}"] = v
        sd[f"module.attacker.model.{k}"] = v
    sd["module.attacker.normalize.new_mean"], sd["module.attacker.normalize.new_std"] = m, s
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    torch.save({"model": sd, "optimizer": opt.state_dict(), "schedule": None, "epoch": 90}, path)


@pytest.mark.parametrize("arch, cifar", [("resnet18", False), ("wide_resnet50_2", False), ("resnet18", True),
                                         ("resnet50", True)])
def test_madry_checkpoint(arch, cifar, tmp_path):
    from shiftlab.models.nets import CifarResNet

    torch.manual_seed(6)
    net = CifarResNet(arch, n_classes=10) if cifar else torchvision.models.get_model(arch, num_classes=1000)
    net.eval()
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    path = tmp_path / f"{arch}.pt"
    madry_checkpoint(net, mean, std, path)
    clf = load_model(f"madry:{arch}:{path}")
    assert clf.recipe.mean == pytest.approx(mean) and clf.recipe.std == pytest.approx(std)
    assert clf.recipe.input_shape == ((3, 32, 32) if cifar else (3, 224, 224))
    x = torch.rand(2, *clf.recipe.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(clf.logits(x), net(normalise(x, mean, std)))
    check_head(clf)


def test_madry_bad_files(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save(torchvision.models.resnet18().state_dict(), plain)
    with pytest.raises(InputError, match="not a robustness-library checkpoint"):
        load_model(f"madry:resnet18:{plain}")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint"):
        load_model(f"madry:resnet18:{junk}")
    with pytest.raises(InputError, match="expected madry:ARCH:PATH"):
        load_model("madry:resnet18")


def test_timm_missing_weights_offline_is_one_line(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ShiftlabError) as e:
        load_model("timm:resnet18?pretrained=true")
    msg = str(e.value)
    assert "\n" not in msg and "timm:resnet18" in msg and "Hugging Face hub cache" in msg
