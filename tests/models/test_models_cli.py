"""``shiftlab models info`` and ``models list``: what a model is, without running it on data; what a zoo can name."""

from __future__ import annotations

import pytest
import torch

from shiftlab.cli import main

torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    o = capsys.readouterr()
    return code, o.out, o.err


def field(out: str, name: str) -> str:
    """The value cell of a row of the info table."""
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) == 4 and cells[1] == name:
            return cells[2]
    raise AssertionError(f"no row {name!r} in {out}")


def test_info_prints_recipe_features_classes_and_vocabulary(capsys):
    code, out, _ = run(capsys, "models", "info", "torchvision:efficientnet_b0?weights=none")
    assert code == 0
    assert "resize 256, centre crop 224, bicubic" in out  # EfficientNet-B0's own transform, not ResNet's
    assert "1280 (the input of the last linear layer)" in out
    assert field(out, "classes") == "1000" and "1000 categories in ImageNet-1k order" in field(out, "class names")
    code, out, _ = run(capsys, "models", "info", "timm:vit_tiny_patch16_224?pretrained=false")
    assert code == 0 and "resize 248, centre crop 224, bicubic" in out and "0.5, 0.5, 0.5 / 0.5, 0.5, 0.5" in out
    assert "192 (the input of the last linear layer)" in out


def test_info_of_a_local_checkpoint_and_of_predictions(capsys, tmp_path):
    import numpy as np

    torch.manual_seed(0)
    path = tmp_path / "r18-7.pth"
    torch.save(torchvision.models.resnet18(num_classes=7).state_dict(), path)
    code, out, _ = run(capsys, "models", "info", f"torchvision:resnet18?weights={path}")
    assert code == 0 and field(out, "classes") == "7" and field(out, "features").startswith("512 ")
    np.save(tmp_path / "p.npy", np.zeros((5, 3), dtype=np.float32))
    code, out, _ = run(capsys, "models", "info", f"predictions:{tmp_path / 'p.npy'}")
    assert code == 0 and field(out, "rows") == "5" and field(out, "columns") == "3 (classes)"


def test_info_errors_are_one_line(capsys):
    code, _, err = run(capsys, "models", "info", "torchvision:squeezenet1_1?weights=none")
    assert code == 2 and "no nn.Linear layer" in err and err.count("\n") == 1


def test_list_zoos_with_filters(capsys):
    code, out, _ = run(capsys, "models", "list", "torchvision", "--filter", "vit_b*")
    assert code == 0 and "torchvision:vit_b_16" in out and "IMAGENET1K_SWAG_E2E_V1" in out
    assert "resnet" not in out and "(2)" in out
    code, out, _ = run(capsys, "models", "list", "timm", "--filter", "convnext_atto*")
    assert code == 0
    names = [line for line in out.splitlines() if line.startswith("timm:")]
    assert names == [f"timm:{n}" for n in timm.list_models("convnext_atto*")] and len(names) >= 2
    assert f"{len(names)} timm model names" in out
    code, _, err = run(capsys, "models", "list", "keras")
    assert code == 2 and "torchvision or timm" in err
