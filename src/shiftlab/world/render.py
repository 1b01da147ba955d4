"""Rendering 8×8 scanned digits as 32×32 RGB "photos" by a documented collection process.

A ``Process`` is the set of knobs that a collection process fixes: digit size, placement jitter, rotation,
stroke width (a grey dilation or erosion of the ink), blur, contrast, paper colour and texture, ink colour.
The original train/test sets and the candidate pool use two different processes, which is what makes the
pool "shifted" in the way a freshly collected test set is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

SIZE = 32


@dataclass(frozen=True)
class Process:
    """Ranges are sampled uniformly per image. Units: px, degrees, Gaussian sigma in px, intensities in [0, 1]."""

    digit_size: tuple[int, int] = (22, 26)  # height of the digit's 8×8 grid after upscaling
    jitter: int = 1  # max placement offset from the centre
    rotation: tuple[float, float] = (-5.0, 5.0)
    stroke: tuple[int, ...] = (0,)  # dilation radius (>0 thicker pen, <0 thinner)
    blur: tuple[float, float] = (0.3, 0.6)
    contrast: tuple[float, float] = (0.88, 1.0)
    paper: tuple[tuple[float, float, float], ...] = ((0.95, 0.94, 0.90),)  # base colours
    paper_jitter: float = 0.02
    texture: float = 0.02  # amplitude of low-frequency paper texture
    noise: float = 0.015  # per-pixel sensor noise
    ink: tuple[tuple[float, float, float], ...] = ((0.08, 0.09, 0.20), (0.05, 0.05, 0.06))

    def to_json(self) -> dict:
        """The fields as a JSON-ready dict."""
        return asdict(self)


ORIGINAL = Process()

#: the candidate pool's process: other pens (thin and thick), softer focus, looser placement, tinted and
#: textured paper, pencil-like inks with lower contrast
SHIFTED = Process(
    digit_size=(20, 27), jitter=2, rotation=(-10.0, 10.0), stroke=(-1, 0, 0, 0, 1), blur=(0.45, 0.9),
    contrast=(0.6, 0.95), paper=((0.93, 0.88, 0.72), (0.80, 0.86, 0.93), (0.86, 0.86, 0.86), (0.96, 0.95, 0.93)),
    paper_jitter=0.04, texture=0.05, noise=0.025,
    ink=((0.08, 0.09, 0.20), (0.35, 0.33, 0.33), (0.45, 0.12, 0.10), (0.05, 0.05, 0.06)),
)

#: the ImageNet-M-like "hard" images: heavy degradation, but the digit is still there
HARD = Process(
    digit_size=(17, 27), jitter=3, rotation=(-20.0, 20.0), stroke=(-1, 0, 1, 2), blur=(0.9, 1.25),
    contrast=(0.4, 0.55), paper=SHIFTED.paper, paper_jitter=0.05, texture=0.08, noise=0.04, ink=SHIFTED.ink,
)


@dataclass
class Rendered:
    """One rendered digit: ``image`` (32, 32, 3) uint8, its ``ink`` coverage, the digit's ``box``, its ``clarity``
    and the sampled ``params`` (size, rotation, stroke, offset, blur, contrast, box).
    """

    image: np.ndarray  # (32, 32, 3) uint8
    ink: np.ndarray  # (32, 32) float ink coverage in [0, 1], after blur
    box: tuple[int, int, int, int]  # digit bounding box (x0, y0, x1, y1), exclusive ends
    clarity: float  # how legible the rendering is, in (0, 1); drives simulated annotators
    params: dict


def ink_mask(digit8: np.ndarray, height: int, rotation: float, stroke: int) -> np.ndarray:
    """8×8 values 0–16 → a (height, height) ink map in [0, 1]."""
    d = np.clip(digit8.astype(np.float64) / 16.0, 0, 1)
    m = np.clip(ndimage.zoom(d, height / 8.0, order=3, grid_mode=True, mode="grid-constant"), 0, 1)
    if rotation:
        m = np.clip(ndimage.rotate(m, rotation, reshape=False, order=1, mode="constant"), 0, 1)
    if stroke > 0:
        m = ndimage.grey_dilation(m, size=(1 + 2 * stroke, 1 + 2 * stroke))
    elif stroke < 0:
        m = ndimage.grey_erosion(m, size=(2, 2))
    return m


def paper(rng: np.random.Generator, p: Process, size: int = SIZE) -> np.ndarray:
    """A (size, size, 3) paper background in [0, 1]: one of the process's paper colours, jittered, plus texture."""
    base = np.asarray(p.paper[rng.integers(len(p.paper))]) + rng.uniform(-p.paper_jitter, p.paper_jitter, 3)
    tex = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 3.0)
    tex = tex / (np.abs(tex).max() + 1e-9) * p.texture
    return np.clip(base[None, None, :] + tex[:, :, None], 0, 1)


def compose(bg: np.ndarray, ink: np.ndarray, colour, contrast: float, rng, noise: float) -> np.ndarray:
    """Ink on paper: ``bg`` (H, W, 3) in [0, 1] blended towards ``colour`` by ``ink`` (H, W) × ``contrast``, plus
    Gaussian noise of std ``noise`` → (H, W, 3) uint8.
    """
    a = np.clip(ink * contrast, 0, 1)[:, :, None]
    img = bg * (1 - a) + np.asarray(colour)[None, None, :] * a
    img = img + rng.normal(0, noise, img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def place(mask: np.ndarray, dx: int, dy: int, size: int = SIZE) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Put a square mask at the canvas centre shifted by (dx, dy); returns the canvas and the ink box."""
    h = mask.shape[0]
    canvas = np.zeros((size + 2 * h, size + 2 * h))
    top = h + (size - h) // 2 + dy
    left = h + (size - h) // 2 + dx
    canvas[top:top + h, left:left + h] = np.maximum(canvas[top:top + h, left:left + h], mask)
    out = canvas[h:h + size, h:h + size]
    ys, xs = np.nonzero(out > 0.15)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if len(xs) else (0, 0, 0, 0)
    return out, box


def render(digit8: np.ndarray, rng: np.random.Generator, p: Process = ORIGINAL, *, ambiguity: float = 0.0,
           max_size: int | None = None) -> Rendered:
    """Render one 8×8 digit. ``ambiguity`` in [0, 1] (how close the scan is to another class) lowers clarity."""
    lo, hi = p.digit_size
    if max_size:
        lo, hi = min(lo, max_size - 2), min(hi, max_size)
    height = int(rng.integers(lo, hi + 1))
    rot = float(rng.uniform(*p.rotation))
    stroke = int(p.stroke[rng.integers(len(p.stroke))])
    m = ink_mask(digit8, height, rot, stroke)
    dx, dy = (int(v) for v in rng.integers(-p.jitter, p.jitter + 1, 2))
    canvas, box = place(m, dx, dy)
    blur = float(rng.uniform(*p.blur))
    canvas = np.clip(ndimage.gaussian_filter(canvas, blur), 0, 1)
    contrast = float(rng.uniform(*p.contrast))
    colour = p.ink[rng.integers(len(p.ink))]
    bg = paper(rng, p)
    img = compose(bg, canvas, colour, contrast, rng, p.noise)
    # legibility: ink/paper contrast, focus, pen, size and how typical the scan is of its class
    lum = lambda c: 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]  # noqa: E731
    visible = contrast * (lum(bg.mean(axis=(0, 1))) - lum(colour))
    raw = 0.35 + 0.8 * visible - 0.35 * max(blur - 0.5, 0) - 0.08 * abs(stroke) - 0.6 * ambiguity \
        + 0.02 * (height - 22)
    clarity = float(np.clip(raw, 0.02, 0.98))
    return Rendered(img, canvas, box, clarity, {"height": height, "rotation": round(rot, 2), "stroke": stroke,
                                                "dx": dx, "dy": dy, "blur": round(blur, 3),
                                                "contrast": round(contrast, 3), "digit_box": list(box)})


def render_grey28(digit8: np.ndarray) -> np.ndarray:
    """The MNIST-like view: white digit on black, 20 px box centred by centre of mass in 28×28, uint8."""
    m = ink_mask(digit8, 20, 0.0, 0)
    canvas = np.zeros((28, 28))
    canvas[4:24, 4:24] = m
    cy, cx = ndimage.center_of_mass(canvas)
    canvas = ndimage.shift(canvas, (14 - cy, 14 - cx), order=1, mode="constant")
    return np.clip(np.round(canvas * 255), 0, 255).astype(np.uint8)
