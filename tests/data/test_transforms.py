"""The S4 perturbation groups: each does exactly what the spec says, seeded, on tensors and arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from shiftlab.data import transforms as P
from shiftlab.data.transforms import GROUP_IDS, GROUPS, all_versions, perturb
from shiftlab.errors import InputError


def digits_like(n=6, c=1, size=28, seed=0) -> torch.Tensor:
    """Bright blobs of ink on a dark background, with values spread over [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=g) * 0.25
    for i in range(n):
        top, left = 4 + i % 5, 5 + (2 * i) % 7
        x[i, :, top:top + 14, left:left + 10] = 0.35 + 0.65 * torch.rand(14, 10, generator=g)
    return x.repeat(1, c, 1, 1)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True in a 1-d bool array."""
    m = np.concatenate([[False], mask, [False]]).astype(int)
    d = np.diff(m)
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends)]


def test_groups_in_the_study_order():
    assert GROUPS == {1: "vertical lines", 2: "horizontal lines", 3: "noise", 4: "removal", 5: "unmodified"}
    assert GROUP_IDS["removal"] == 4


@pytest.mark.parametrize("size", [28, 32])
def test_vertical_lines_five_lines_two_px_wide_full_height(size):
    x = torch.zeros(40, 1, size, size)
    out = perturb(x, 1, seed=3)
    for img in out[:, 0].numpy():
        cols = np.isclose(img, 0.6)
        assert (cols == cols[0]).all(), "a line covers the full height"
        assert np.isclose(img[:, ~cols[0]], 0).all(), "nothing else changes"
        r = runs(cols[0])
        assert len(r) == 5 and all(length == 2 for _, length in r)


@pytest.mark.parametrize("size", [28, 32])
def test_horizontal_lines_seven_lines_one_px_wide_full_width(size):
    x = torch.zeros(40, 1, size, size)
    out = perturb(x, "horizontal lines", seed=3)
    for img in out[:, 0].numpy():
        rows = np.isclose(img, 0.6)
        assert (rows == rows[:, :1]).all(), "a line covers the full width"
        r = runs(rows[:, 0])
        assert len(r) == 7 and all(length == 1 for _, length in r)


def test_lines_add_then_clip():
    x = torch.full((5, 1, 28, 28), 0.7)
    x[:, :, :, ::2] = 0.2
    out = perturb(x, 1, seed=0)
    on = (out - x).abs() > 1e-6
    assert torch.allclose(out[on & (x > 0.5)], torch.tensor(1.0)), "0.7 + 0.6 is clipped to 1"
    assert torch.allclose(out[on & (x < 0.5)], torch.tensor(0.8)), "0.2 + 0.6 = 0.8"
    assert out.max() <= 1.0


def test_line_positions_cover_the_whole_range_and_never_touch():
    rng = np.random.default_rng(0)
    pos = P.line_positions(4000, 28, 5, 2, rng)
    assert pos.min() == 0 and pos.max() == 26, "lines reach both edges"
    assert (np.diff(pos, axis=1) >= 3).all(), "2 px lines with at least 1 px between them"
    # uniform over all placements: 2 lines of 2 px in 7 px fit in C(4, 2) = 6 ways
    small = P.line_positions(6000, 7, 2, 2, rng)
    placements, counts = np.unique(small, axis=0, return_counts=True)
    assert placements.tolist() == [[0, 3], [0, 4], [0, 5], [1, 4], [1, 5], [2, 5]]
    assert counts.min() > 900 and counts.max() < 1100


def test_lines_do_not_fit_in_a_tiny_image():
    with pytest.raises(InputError, match="do not fit"):
        perturb(torch.zeros(1, 1, 8, 8), 1, seed=0)


def test_noise_is_half_normal_added_and_clipped():
    x = torch.zeros(64, 1, 28, 28)
    e = perturb(x, 3, seed=0)
    assert (e >= 0).all() and (e <= 1).all()
    # |N(0, 0.3)|: mean 0.3·√(2/π) ≈ 0.239, P(> 1) ≈ 0.0009
    assert abs(float(e.mean()) - 0.3 * np.sqrt(2 / np.pi)) < 0.005
    assert abs(float(e.std()) - 0.3 * np.sqrt(1 - 2 / np.pi)) < 0.005
    y = digits_like()
    out = perturb(y, 3, seed=0)
    assert (out >= y).all() and (out <= 1).all()
    assert ((out == 1) & (y < 1)).any(), "bright pixels get clipped at 1"
    assert torch.allclose(out, (y + e[: len(y)]).clamp(0, 1)), "the same draws, whatever the image"


@pytest.mark.parametrize("c", [1, 3])
def test_removal_zeroes_one_contiguous_run_of_30_percent_of_the_ink(c):
    x = digits_like(n=12, c=c)
    out = perturb(x, 4, seed=5)
    for i in range(len(x)):
        ink = (x[i].mean(0) > 0.3).flatten().numpy()
        where = np.flatnonzero(ink)  # row-major order
        changed = (out[i] != x[i]).any(0).flatten().numpy()
        zeroed = (out[i] == 0).all(0).flatten().numpy()
        assert not changed[~ink].any(), "only pixels > 0.3 are touched"
        assert (zeroed[changed]).all(), "a touched pixel is zero in all channels"
        hit = np.flatnonzero(changed[where])  # positions within the ordered list of ink pixels
        assert len(hit) == round(0.3 * len(where))
        assert (np.diff(hit) == 1).all(), "one contiguous run in row-major order"
        untouched = ~changed
        assert torch.equal(out[i].flatten(1)[:, untouched], x[i].flatten(1)[:, untouched])


def test_removal_uses_the_channel_mean_and_random_starts():
    x = torch.zeros(1, 3, 10, 10)
    x[0, 0, 2:8, 2:8] = 1.0  # channel mean 1/3 > 0.3: ink
    x[0, 1, 0, :] = 0.8  # channel mean 0.27: not ink
    starts = set()
    for seed in range(30):
        out = perturb(x, 4, seed=seed)
        assert torch.equal(out[0, 1, 0], x[0, 1, 0])
        gone = np.flatnonzero(((out != x).any(1)[0]).flatten().numpy())
        assert len(gone) == round(0.3 * 36) == 11
        starts.add(int(gone[0]))
    assert len(starts) > 5, "the run starts at a random position"


def test_removal_without_ink_changes_nothing():
    x = torch.full((2, 1, 28, 28), 0.3)  # not > 0.3
    assert torch.equal(perturb(x, 4, seed=0), x)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 60), st.integers(0, 2**32 - 1))
def test_removal_count_for_any_amount_of_ink(count, seed):
    rng = np.random.default_rng(count)
    x = np.zeros((1, 1, 9, 9), np.float32)
    x.reshape(-1)[rng.permutation(81)[:count]] = 0.9
    out = perturb(x, 4, seed=seed)
    gone = np.flatnonzero((out != x).reshape(-1))
    assert len(gone) == round(0.3 * count)
    order = np.flatnonzero(x.reshape(-1) > 0.3)
    k = np.searchsorted(order, gone)
    assert (np.diff(k) == 1).all() and (out.reshape(-1)[gone] == 0).all()


def test_unmodified_is_a_copy():
    x = digits_like()
    out = perturb(x, 5, seed=0)
    assert torch.equal(out, x) and out is not x
    out[0] = 0
    assert x[0].max() > 0, "the input is never modified"


@pytest.mark.parametrize("group", [1, 2, 3, 4])
def test_seeded_identical_and_different_seeds_differ(group):
    x = digits_like()
    before = x.clone()
    a, b, c = perturb(x, group, seed=11), perturb(x, group, seed=11), perturb(x, group, seed=12)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(x, before)


def test_all_versions_stacks_the_groups_in_order_and_batches_do_not_matter():
    x = digits_like(n=8)
    v = all_versions(x, seed=4)
    assert v.shape == (5, *x.shape) and v.dtype == x.dtype
    for g in GROUPS:
        assert torch.equal(v[g - 1], perturb(x, g, seed=4))
    assert torch.equal(all_versions(x[:3], seed=4), v[:, :3]), "an image's version does not depend on later ones"
    assert not torch.equal(v[0], v[1])


@pytest.mark.parametrize("group", list(GROUPS))
def test_channels_are_perturbed_alike(group):
    grey = digits_like(c=1)
    rgb = perturb(grey.repeat(1, 3, 1, 1), group, seed=2)
    assert torch.allclose(rgb, perturb(grey, group, seed=2).repeat(1, 3, 1, 1), atol=1e-6)


@pytest.mark.parametrize("group", list(GROUPS))
def test_dark_ink_perturbs_the_inverted_image(group):
    paper = 1 - digits_like(c=3)
    out = perturb(paper, group, seed=9, dark_ink=True)
    assert torch.allclose(out, 1 - perturb(1 - paper, group, seed=9), atol=1e-6)
    assert (out >= 0).all() and (out <= 1).all()
    if group in (1, 2, 3):
        assert (out <= paper + 1e-6).all(), "lines and noise add dark ink"
    if group == 4:
        assert (out >= paper - 1e-6).all() and (out == 1).any(), "removal erases ink to white"


def test_numpy_in_numpy_out_and_tensors_keep_dtype():
    x = digits_like().numpy().astype(np.float64)
    out = perturb(x, 3, seed=0)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    assert np.allclose(out, perturb(torch.from_numpy(x), 3, seed=0).numpy())
    assert isinstance(all_versions(x, seed=0), np.ndarray)
    t = digits_like().double()
    assert perturb(t, 1, seed=0).dtype == torch.float64


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(2, 28, 28), "shape"),
    (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "float"),
    (torch.full((1, 1, 28, 28), 1.5), r"\[0, 1\]"),
    ([[0.0]], "Tensor or numpy"),
])
def test_bad_inputs_say_what_to_do(bad, match):
    with pytest.raises(InputError, match=match):
        perturb(bad, 1, seed=0)


def test_bad_group_and_seed():
    x = digits_like()
    with pytest.raises(InputError, match="1 \\(vertical lines\\)"):
        perturb(x, 6, seed=0)
    with pytest.raises(InputError, match="seed"):
        perturb(x, 1, seed=-1)
