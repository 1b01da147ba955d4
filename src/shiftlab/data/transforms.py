"""The perturbation groups of the MNIST robust-features study (SPECS S4), as pure seeded functions.

Inputs are float images ``x`` of shape (N, C, H, W) with values in [0, 1] — a ``torch.Tensor`` or a
``numpy.ndarray``; every function returns a new object of the same kind, dtype (and device), never
modifying ``x``. The groups, with their ids in the study's order:

====  ================  =====================================================================================
id    name              what it does
====  ================  =====================================================================================
1     vertical lines    5 vertical lines, 2 px wide, +0.6, clipped to [0, 1]
2     horizontal lines  7 horizontal lines, 1 px wide, +0.6, clipped to [0, 1]
3     noise             \\|N(0, 0.3)\\| added to every pixel, clipped to [0, 1]
4     removal           among the pixels > 0.3 in row-major order, a contiguous run of round(0.3 · count) of
                        them (from a random start) is set to 0
5     unmodified        a copy of the input
====  ================  =====================================================================================

Choices the study leaves open, fixed here:

- *Line positions* are seeded and drawn per image, uniformly among all placements in which the lines
  neither overlap nor touch (at least ``min_gap`` = 1 px of untouched image between two lines), so that a
  line always has exactly its stated width and the lines of an image can be counted.
- *Pixels* are spatial positions: with several channels, a line or the noise adds the same amount to every
  channel of a pixel, "pixel > 0.3" means "channel mean > 0.3", and removal zeroes all channels of the
  chosen pixels. A grey image repeated over 3 channels is thus perturbed exactly like the grey image.
- *Rounding*: the removal run has ``round(fraction * count)`` pixels with Python's ``round`` (halves to
  even); its start is uniform over ``0 … count - run``, so the run never wraps around.
- *Ink polarity*: the study's images are MNIST-like, bright ink on a dark background, and the groups add or
  remove *bright* values. For dark ink on light paper (the RGB digits world) pass ``dark_ink=True``: the
  group is then applied to ``1 - x`` and the result inverted back, so that lines and noise add ink and
  removal erases ink to white.

Randomness: each group draws from its own generator ``numpy.random.default_rng([seed, group])``, with one
draw per image in image order, so ``perturb(x, g, s)[:k]`` equals ``perturb(x[:k], g, s)`` and
``all_versions(x, s)[g - 1]`` equals ``perturb(x, g, s)``.

Example::

    >>> x = torch.rand(8, 1, 28, 28)
    >>> versions = all_versions(x, seed=0)          # (5, 8, 1, 28, 28)
    >>> noisy = perturb(x, GROUP_IDS["noise"], seed=0)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from shiftlab.errors import InputError

#: group id → name, in the study's order (ids 1 … 5)
GROUPS: dict[int, str] = {1: "vertical lines", 2: "horizontal lines", 3: "noise", 4: "removal", 5: "unmodified"}
#: name → group id
GROUP_IDS: dict[str, int] = {v: k for k, v in GROUPS.items()}

LINE_INTENSITY = 0.6  #: added to the pixels of a line (before clipping)
VERTICAL = (5, 2)  #: (number of lines, width in px) of group 1
HORIZONTAL = (7, 1)  #: (number of lines, width in px) of group 2
NOISE_STD = 0.3  #: σ of the half-normal noise of group 3
INK_THRESHOLD = 0.3  #: a pixel above it counts as ink for group 4
REMOVAL_FRACTION = 0.3  #: fraction of the ink pixels that group 4 zeroes


# --- the single groups: numpy in, numpy out --------------------------------------------------------------
def line_positions(n_images: int, size: int, n_lines: int, width: int, rng: np.random.Generator, *,
                   min_gap: int = 1) -> np.ndarray:
    """Start offsets (px) of ``n_lines`` lines of ``width`` px across an axis of ``size`` px, per image.

    Placements are uniform over all in which consecutive lines are at least ``min_gap`` px apart.
    Returns int64 (n_images, n_lines), sorted ascending in each row.
    """
    slack = size - (n_lines * width + (n_lines - 1) * min_gap)
    if slack < 0:
        raise InputError(f"{n_lines} lines of {width} px with {min_gap} px between them do not fit in {size} px")
    # n distinct sorted draws from 0 … slack+n-1, minus 0 … n-1: a uniform non-decreasing sequence in [0, slack]
    keys = rng.random((n_images, slack + n_lines))
    chosen = np.sort(np.argsort(keys, axis=1, kind="stable")[:, :n_lines], axis=1)
    return chosen - np.arange(n_lines) + np.arange(n_lines) * (width + min_gap)


def _lines(x: np.ndarray, rng: np.random.Generator, n_lines: int, width: int, intensity: float,
           axis: int) -> np.ndarray:
    n, size = x.shape[0], x.shape[axis]
    starts = line_positions(n, size, n_lines, width, rng)
    covered = np.zeros((n, size), bool)
    rows = np.arange(n)[:, None]
    for k in range(width):
        covered[rows, starts + k] = True
    shape = (n, 1, 1, size) if axis == 3 else (n, 1, size, 1)
    return np.clip(x + intensity * covered.reshape(shape).astype(x.dtype), 0.0, 1.0)


def vertical_lines(x: np.ndarray, rng: np.random.Generator, n_lines: int = VERTICAL[0], width: int = VERTICAL[1],
                   intensity: float = LINE_INTENSITY) -> np.ndarray:
    """Group 1: ``n_lines`` full-height lines of ``width`` px, ``+intensity`` then clipped to [0, 1]."""
    return _lines(x, rng, n_lines, width, intensity, axis=3)


def horizontal_lines(x: np.ndarray, rng: np.random.Generator, n_lines: int = HORIZONTAL[0],
                     width: int = HORIZONTAL[1], intensity: float = LINE_INTENSITY) -> np.ndarray:
    """Group 2: ``n_lines`` full-width lines of ``width`` px, ``+intensity`` then clipped to [0, 1]."""
    return _lines(x, rng, n_lines, width, intensity, axis=2)


def noise(x: np.ndarray, rng: np.random.Generator, std: float = NOISE_STD) -> np.ndarray:
    """Group 3: ``|N(0, std)|`` per pixel (the same for all channels of a pixel) added, clipped to [0, 1]."""
    n, _, h, w = x.shape
    e = np.abs(rng.normal(0.0, std, (n, 1, h, w))).astype(x.dtype)
    return np.clip(x + e, 0.0, 1.0)


def removal(x: np.ndarray, rng: np.random.Generator, fraction: float = REMOVAL_FRACTION,
            threshold: float = INK_THRESHOLD) -> np.ndarray:
    """Group 4: list the pixels whose channel mean is > ``threshold`` in row-major order; set a contiguous
    run of ``round(fraction * count)`` of them, starting at a uniform random position, to 0 in all channels."""
    n, c, h, w = x.shape
    out = x.copy()
    ink = (x.mean(axis=1) > threshold).reshape(n, h * w)
    u = rng.random(n)  # one draw per image, also for images without ink: later images keep their draws
    flat = out.reshape(n, c, h * w)
    for i in range(n):
        where = np.flatnonzero(ink[i])
        run = int(round(fraction * len(where)))
        if run == 0:
            continue
        start = min(int(u[i] * (len(where) - run + 1)), len(where) - run)
        flat[i, :, where[start:start + run]] = 0
    return flat.reshape(n, c, h, w)


def _identity(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x.copy()


_APPLY: dict[int, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    1: vertical_lines, 2: horizontal_lines, 3: noise, 4: removal, 5: _identity}


# --- the public entry points: tensors or arrays ----------------------------------------------------------
def _check(x, seed: int) -> None:
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise InputError(f"perturbations take a torch.Tensor or numpy array, not {type(x).__name__}")
    if x.ndim != 4:
        raise InputError(f"perturbations take images of shape (N, C, H, W), not {tuple(x.shape)}")
    floating = x.is_floating_point() if isinstance(x, torch.Tensor) else np.issubdtype(x.dtype, np.floating)
    if not floating:
        raise InputError(f"perturbations take float images in [0, 1], not {x.dtype} (divide uint8 pixels by 255)")
    if x.numel() if isinstance(x, torch.Tensor) else x.size:
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise InputError(f"perturbations take values in [0, 1], got {lo:.3g} … {hi:.3g}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, not {seed!r}")


def _group_id(group: int | str) -> int:
    g = GROUP_IDS.get(group, group) if isinstance(group, str) else group
    if g not in GROUPS:
        raise InputError(f"unknown perturbation group {group!r}; one of "
                         + ", ".join(f"{k} ({v})" for k, v in GROUPS.items()))
    return int(g)


def _apply(arr: np.ndarray, g: int, seed: int, dark_ink: bool) -> np.ndarray:
    rng = np.random.default_rng([int(seed), g])
    if dark_ink:
        return 1 - _APPLY[g](1 - arr, rng)
    return _APPLY[g](arr, rng)


def perturb(x, group: int | str, seed: int, *, dark_ink: bool = False):
    """Apply one perturbation group.

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray, float, shape (N, C, H, W), values in [0, 1]
        Images; bright ink on a dark background unless ``dark_ink``.
    group : int or str
        A key of ``GROUPS`` (1 … 5) or its name (``"vertical lines"``, …).
    seed : int
        Non-negative; same ``x``, group and seed ⇒ identical output.
    dark_ink : bool, default False
        The images have dark ink on light paper: perturb ``1 - x`` and invert back.

    Returns
    -------
    Same kind, dtype and device as ``x``, shape (N, C, H, W), values in [0, 1].
    """
    _check(x, seed)
    g = _group_id(group)
    if isinstance(x, torch.Tensor):
        arr = x.detach().cpu().numpy()
        return torch.from_numpy(np.ascontiguousarray(_apply(arr, g, seed, dark_ink))).to(x.device, x.dtype)
    return _apply(np.asarray(x), g, seed, dark_ink).astype(x.dtype, copy=False)


def all_versions(x, seed: int, *, dark_ink: bool = False):
    """The five versions of every image, stacked in group order: ``out[g - 1] == perturb(x, g, seed)``.

    Returns the kind of ``x``, shape (5, N, C, H, W).
    """
    outs = [perturb(x, g, seed, dark_ink=dark_ink) for g in GROUPS]
    return torch.stack(outs) if isinstance(x, torch.Tensor) else np.stack(outs)
