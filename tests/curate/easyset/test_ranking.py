"""The ranked lists (S5 "Filter", "Ranking"): the released safebets.json loads and a ranking computed from its
entries rebuilds it byte for byte; order, ties, agreement and top-k on hand-made tables; predictions arrive
through the prediction store (``predictions:`` specs) and the ReaL single-label filter."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shiftlab.curate.easyset.ranking import (
    absent_classes,
    dumps_ranking,
    rank,
    ranking_table,
    read_ranking,
    write_ranking,
)
from shiftlab.curate.easyset.select import extras, rank_dataset
from shiftlab.data.classes import imagenet_1k
from shiftlab.data.manifest import Manifest
from shiftlab.errors import InputError


def test_released_file_loads_and_rebuilds_byte_equal(reference, tmp_path):
    path = reference / "s-r50-n" / "safebets.json"
    r = read_ranking(path)
    assert list(r) == ["salman", "resnet", "erichson"]
    assert {m: len(v) for m, v in r.items()} == {"salman": 996, "resnet": 996, "erichson": 996}
    assert all(absent_classes(r, m, 1000) == [681, 782, 836, 837] for m in r)
    # the candidate rows the file holds, shuffled: every entry is a correct prediction of its model
    t = ranking_table(r).sample(frac=1.0, random_state=0)
    cand = pd.DataFrame({"model": t["model"], "id": t["id"], "label": t["class"], "prediction": t["class"],
                         "confidence": t["confidence"].astype(np.float32), "margin": 0.0})
    rebuilt = rank(cand, top=5, models=list(r))
    assert dumps_ranking(rebuilt) == path.read_bytes()
    write_ranking(tmp_path / "s.json", rebuilt)
    assert (tmp_path / "s.json").read_bytes() == path.read_bytes()


def table(rows):
    return pd.DataFrame(rows, columns=["model", "id", "label", "prediction", "confidence", "margin"])


def test_order_ties_agreement_and_top():
    c = table([("a", "f3", 1, 1, 0.9, 0.5), ("a", "f1", 1, 1, 0.9, 0.8), ("a", "f2", 1, 1, 0.95, 0.1),
               ("a", "f4", 0, 0, 0.99, 0.9), ("a", "f5", 0, 2, 0.999, 0.9),  # f5: wrong, never ranked
               ("b", "f3", 1, 1, 0.5, 0.1), ("b", "f1", 1, 0, 0.6, 0.2), ("b", "f2", 1, 1, 0.7, 0.3),
               ("b", "f4", 0, 0, 0.8, 0.4), ("b", "f5", 0, 0, 0.4, 0.1)])
    r = rank(c, top=2)
    # class keys in the order they first get an entry: a's highest is f4 (class 0)
    assert list(r["a"]) == ["0", "1"] and r["a"]["1"] == [["f2", 0.949999988079071], ["f1", 0.8999999761581421]]
    assert json.loads(dumps_ranking(r))["a"]["0"] == [["f4", 0.9900000095367432]]
    assert rank(c, top=3)["a"]["1"][1:] == [["f1", 0.8999999761581421], ["f3", 0.8999999761581421]]  # name
    assert [f for f, _ in rank(c, top=3, tie="margin")["a"]["1"]] == ["f2", "f1", "f3"]
    c.loc[c.id == "f3", "margin"] = 0.95
    assert [f for f, _ in rank(c, top=3, tie="margin")["a"]["1"]] == ["f2", "f3", "f1"]
    # ensemble: only images every model gets right (f1 is wrong for b, f5 for a)
    ens = rank(c, top=5, agreement="ensemble")
    assert [f for f, _ in ens["a"]["1"]] == ["f2", "f3"] and [f for f, _ in ens["b"]["0"]] == ["f4"]
    assert extras(c, "a", 1, exclude=["f2"], n=5) == [("f1", 0.8999999761581421), ("f3", 0.8999999761581421)]
    with pytest.raises(InputError, match="agreement"):
        rank(c, agreement="all")


def test_read_ranking_rejects_other_shapes(tmp_path):
    p = tmp_path / "r.json"
    p.write_text('{"m": {"1": [["f", "high"]]}}')
    with pytest.raises(InputError, match="class '1'"):
        read_ranking(p)


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_rank_dataset_through_prediction_store_with_real_filter(tmp_path, workspace):
    """Three ``predictions:`` models on 12 ImageNet validation ids, ReaL labels from a hand-made real.json: images
    with 0 or 2 ReaL labels leave, the label becomes the ReaL one, and classes with fewer than 2 images drop."""
    n = 12
    ids = [f"ILSVRC2012_val_{i + 1:08d}.JPEG" for i in range(n)]
    real = [[5], [5], [5], [7], [7], [], [5, 7], [9], [5], [7], [5], [7]]  # 8 (9) has one image only
    (tmp_path / "real.json").write_text(json.dumps(real))
    m = Manifest(pd.DataFrame({"id": ids, "path": None, "sha256": None, "label": [0] * n}), name="val-x-1",
                 vocabulary=imagenet_1k())
    rng = np.random.default_rng(0)
    specs = []
    for name in ("a", "b", "t"):
        z = rng.normal(0, 1, (n, 1000)).astype(np.float32)
        for i, labs in enumerate(real):  # every model right on everything but b on image 3
            if len(labs) == 1 and not (name == "b" and i == 2):
                z[i, labs[0]] = 8.0 + i / 10
        np.savez(tmp_path / f"{name}.npz", ids=np.array(ids), logits=z)
        specs.append(f"predictions:{tmp_path / name}.npz")
    r = rank_dataset(m, specs[:2], specs[2], single_label=f"real:{tmp_path / 'real.json'}", top=3,
                     min_class_images=2, workspace=workspace, progress=False)
    assert r.n_images == 12 and r.n_filtered == 9 and r.dropped_classes == [9]
    assert r.target == "t" and set(r.ranking) == {"a", "b", "t"}
    # confidence grows with the row index (logit 8 + i/10), so later images rank first
    assert [f[-10:-5] for f, _ in r.ranking["t"]["5"]] == ["00011", "00009", "00003"]
    assert [f[-10:-5] for f, _ in r.ranking["b"]["5"]] == ["00011", "00009", "00002"]
    assert [f[-10:-5] for f, _ in r.ranking["t"]["7"]] == ["00012", "00010", "00005"]
    assert extras(r.candidates, "t", 5, exclude=[f for f, _ in r.ranking["t"]["5"]], n=3)[0][0].endswith("02.JPEG")
    ens = rank_dataset(m, specs[:2], specs[2], single_label=f"real:{tmp_path / 'real.json'}", top=3,
                       min_class_images=2, agreement="ensemble", workspace=workspace, progress=False)
    assert "ILSVRC2012_val_00000003.JPEG" not in [f for f, _ in ens.ranking["t"]["5"]]
