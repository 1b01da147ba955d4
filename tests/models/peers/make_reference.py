"""Run with the real robustness and robustbench libraries importable (see test_peer_zoos.py).

argv[1]: an output folder. Writes there
- ``madry_<dataset>_<arch>.pt``: checkpoints saved the way robustness's training loop saves them, and
  ``madry_reference.npz``: the library's own AttackerModel logits on fixed inputs;
- ``rb/<dataset>/<threat>/<name>.pt``: seeded checkpoints in RobustBench's layout, and ``robustbench.json``:
  RobustBench's own logits and preprocessing against shiftlab's ``robustbench:`` adapter on one image.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

out = Path(sys.argv[1])
ref = {}

# --- robustness: DataParallel(AttackerModel) checkpoints -----------------------------------------------
from robustness.attacker import AttackerModel  # noqa: E402
from robustness.datasets import CIFAR, ImageNet  # noqa: E402

for ds, arch, side in [(CIFAR("/nonexistent"), "resnet18", 32), (CIFAR("/nonexistent"), "resnet50", 32),
                       (ImageNet("/nonexistent"), "resnet18", 224)]:
    torch.manual_seed(0)
    att = AttackerModel(ds.get_model(arch, False), ds)
    for m in att.modules():  # non-trivial batch-norm statistics, so that eval mode is really checked
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    dp = torch.nn.DataParallel(att)
    opt = torch.optim.SGD(att.parameters(), lr=0.1, momentum=0.9)
    name = f"madry_{type(ds).__name__.lower()}_{arch}"
    torch.save({"model": dp.state_dict(), "optimizer": opt.state_dict(), "schedule": None, "epoch": 1},
               out / f"{name}.pt")
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    att.eval()
    with torch.no_grad():
        logits, _ = att(x)
    ref[f"{name}/x"], ref[f"{name}/logits"] = x.numpy(), logits.numpy()
np.savez(out / "madry_reference.npz", **ref)

# --- robustbench: its load_model from a local model_dir, against shiftlab's adapter ---------------------
from robustbench.data import get_preprocessing  # noqa: E402
from robustbench.model_zoo import model_dicts  # noqa: E402
from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel  # noqa: E402
from robustbench.utils import load_model  # noqa: E402

from shiftlab.models import load_model as shiftlab_load  # noqa: E402

image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (300, 347, 3), dtype=np.uint8))
small = Image.fromarray(np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8))
result = {}
for name, dataset, threat, img in [("Salman2020Do_R18", "imagenet", "Linf", image),
                                   ("Engstrom2019Robustness", "cifar10", "L2", small)]:
    ds, tm = BenchmarkDataset(dataset), ThreatModel(threat)
    torch.manual_seed(0)
    net = model_dicts[ds][tm][name]["model"]()
    inner = net.model if dataset == "imagenet" else net  # RobustBench's ImageNet files hold the bare network
    path = out / "rb" / dataset / threat / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(inner.state_dict(), path)
    theirs = load_model(name, model_dir=out / "rb", dataset=dataset, threat_model=threat).eval()
    x_theirs = get_preprocessing(ds, tm, name, None)(img).unsqueeze(0)
    ours = shiftlab_load(f"robustbench:{name}@{dataset}/{threat}?model_dir={out / 'rb'}")
    x_ours = torch.from_numpy(ours.recipe.apply(img)).float().unsqueeze(0) / 255
    with torch.no_grad():
        l_theirs, l_ours = theirs(x_theirs), ours.logits(x_ours)
        feats = ours.features(x_ours)
    w, b = ours.last_layer()
    same_shape = x_theirs.shape == x_ours.shape
    result[name] = {"input_max_diff": float((x_theirs - x_ours).abs().max()) if same_shape else None,
                    "logits_max_diff": float((l_theirs - l_ours).abs().max()),
                    "logits_scale": float(l_theirs.abs().max()),
                    "head_max_diff": float((feats @ w.T + b - l_ours).abs().max()),
                    "recipe": ours.recipe.to_json()}
(out / "robustbench.json").write_text(json.dumps(result, indent=1))
print(json.dumps(result))
