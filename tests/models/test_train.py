"""The seeded training loop: augmentation by shifts, determinism, the three trainings."""

from __future__ import annotations

import pytest
import torch

from shiftlab.errors import InputError
from shiftlab.models.nets import LinearNet
from shiftlab.models.train import TrainSettings, shift_images, train_classifier


def test_shift_images_translates_and_replicates_the_paper():
    x = torch.zeros(2, 1, 5, 5)
    x[:, :, 2, 2] = 1
    x[:, :, :, 0] = 0.5  # a left border that must be replicated, not replaced by black
    out = shift_images(x, torch.tensor([1, 0]), torch.tensor([0, -2]))
    assert out[0, 0, 2, 3] == 1 and out[0, 0, 2, 2] == 0, "right by one"
    assert out[1, 0, 0, 2] == 1, "up by two"
    assert (out[0, 0, :, 0] == 0.5).all() and (out[0, 0, :, 1] == 0.5).all()
    assert torch.equal(shift_images(x, torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long)), x)


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    pixels = (torch.rand(n, 1, 8, 8, generator=g) * 60).to(torch.uint8)
    pixels[labels == 1, :, :, :4] += 150  # class 1: a bright left half
    return pixels, labels


def _module():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return LinearNet((1, 8, 8), 2)


def test_training_is_seeded_learns_and_leaves_the_global_rng_alone():
    pixels, labels = _data()
    before = torch.random.get_rng_state()
    s = TrainSettings(epochs=5, batch_size=16, lr=0.05, seed=1, shift=1)
    m1, r1 = train_classifier(_module(), pixels, labels, s, progress=False)
    m2, r2 = train_classifier(_module(), pixels, labels, s, progress=False)
    assert torch.equal(torch.random.get_rng_state(), before)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b), "same seed, same weights"
    assert r1["loss_per_epoch"] == r2["loss_per_epoch"]
    assert r1["final_acc"] > 0.9 and r1["n_train"] == 64 and r1["epochs"] == 5
    assert not m1.training
    m3, _ = train_classifier(_module(), pixels, labels, TrainSettings(epochs=5, batch_size=16, lr=0.05, seed=2,
                                                                       shift=1), progress=False)
    assert not torch.equal(m1.fc.weight, m3.fc.weight), "another seed, another order and augmentation"


def test_worst_of_k_needs_versions_and_pgd_needs_its_parameters():
    pixels, labels = _data()
    with pytest.raises(InputError, match="versions"):
        train_classifier(_module(), pixels, labels, TrainSettings(training="worst-of-k"), progress=False)
    with pytest.raises(InputError, match="versions"):
        train_classifier(_module(), pixels, labels, TrainSettings(), versions=pixels[None], progress=False)
    with pytest.raises(InputError, match="pgd-l2 training needs"):
        TrainSettings(training="pgd-l2")
    s = TrainSettings(epochs=2, batch_size=16, lr=0.05, training="worst-of-k")
    flipped = torch.stack([pixels, 255 - pixels])  # the second version inverts the cue
    _, rec = train_classifier(_module(), pixels, labels, s, versions=flipped, progress=False)
    assert rec["epochs"] == 2
