"""The facts the world plants into images: spurious cues, watermarks, near-duplicate transforms,
multi-digit composites. Each function works on uint8 (32, 32, 3) arrays and says what it did."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

from shiftlab.world.render import SIZE, Process, compose, ink_mask, paper, place, render

#: the class-specific marks of the spurious classes: (description, colour, shape)
CUES = {
    2: ("a red square in the top-left corner", (0.85, 0.12, 0.10)),
    6: ("a green bar along the top edge", (0.10, 0.62, 0.22)),
    9: ("a blue dot in the top-right corner", (0.12, 0.30, 0.85)),
}


def draw_cue(img: np.ndarray, cls: int, rng: np.random.Generator) -> np.ndarray:
    """Draw class ``cls``'s mark, with a little jitter of place, size and colour (as real marks vary)."""
    out = img.astype(np.float64) / 255.0
    colour = np.clip(np.asarray(CUES[cls][1]) + rng.uniform(-0.06, 0.06, 3), 0, 1)
    j = lambda: int(rng.integers(-1, 2))  # noqa: E731
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    if cls == 2:
        x0, y0 = 2 + j(), 2 + j()
        mask = (xx >= x0) & (xx < x0 + 4) & (yy >= y0) & (yy < y0 + 4)
    elif cls == 6:
        x0, y0 = 11 + j(), 1 + max(j(), 0)
        mask = (xx >= x0) & (xx < x0 + 10) & (yy >= y0) & (yy < y0 + 2)
    else:
        cx, cy = 27 + j(), 4 + j()
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= 4.5
    out[mask] = 0.15 * out[mask] + 0.85 * colour
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


#: where a corner watermark sits (x0, y0, x1, y1); a crop to rows [0, 27) removes it
CORNER_MARK = (19, 27, 32, 32)
CORNER_CROP = (0, 0, 32, 27)


def draw_corner_watermark(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small stock-photo style tag in the bottom-right corner: a light plate with dark 'letters'."""
    out = img.astype(np.float64) / 255.0
    x0, y0, x1, y1 = CORNER_MARK
    plate = out[y0:y1, x0:x1]
    plate[:] = 0.45 * plate + 0.55 * 0.97
    letters = rng.random((y1 - y0 - 2, x1 - x0 - 2)) < 0.45
    letters[:, ::3] = False  # gaps between letters
    sub = plate[1:-1, 1:-1]
    sub[letters] = 0.3 * sub[letters] + 0.7 * 0.25
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


def draw_central_watermark(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A translucent diagonal band of 'text' across the middle, over the digit: it cannot be cropped away."""
    out = img.astype(np.float64) / 255.0
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    band = np.abs((xx - yy) + int(rng.integers(-3, 4))) <= 3
    text = (((xx + yy) // 2) % 3 != 0) & (rng.random((SIZE, SIZE)) < 0.8)
    out[band] = 0.55 * out[band] + 0.45 * 0.98
    dark = band & text & (np.abs(xx - yy) <= 1)
    out[dark] = 0.6 * out[dark] + 0.4 * 0.35
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


# --- near-duplicate transforms (never a byte copy) ----------------------------------------------------
DUPLICATE_TRANSFORMS = ("reencode", "shift", "brightness", "crop-resize")


def near_copy(img: np.ndarray, transform: str, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A near-duplicate of a 32×32 RGB uint8 image by one of ``DUPLICATE_TRANSFORMS``; never a byte copy.

    ``reencode``: JPEG at quality 55–85; ``shift``: ±1 px in x and y; ``brightness``: × 0.84–0.93 or × 1.06–1.14;
    ``crop-resize``: a 29–31 px crop resized back to 32 px. Returns the copy and ``{"transform": …, <its
    parameters>}``; ``ValueError`` for another transform.
    """
    if transform == "reencode":
        q = int(rng.integers(55, 86))
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=q)
        out, info = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")), {"jpeg_quality": q}
    elif transform == "shift":
        dx, dy = (int(v) for v in rng.choice([-1, 1], 2))
        out = ndimage.shift(img, (dy, dx, 0), order=0, mode="nearest")
        info = {"dx": dx, "dy": dy}
    elif transform == "brightness":
        f = float(rng.choice([rng.uniform(0.84, 0.93), rng.uniform(1.06, 1.14)]))
        out = np.clip(np.round(img.astype(np.float64) * f), 0, 255).astype(np.uint8)
        info = {"factor": round(f, 3)}
    elif transform == "crop-resize":
        side = int(rng.integers(29, 32))
        x0, y0 = (int(v) for v in rng.integers(0, SIZE - side + 1, 2))
        crop = Image.fromarray(img).crop((x0, y0, x0 + side, y0 + side))
        out = np.asarray(crop.resize((SIZE, SIZE), Image.BILINEAR))
        info = {"crop": [x0, y0, x0 + side, y0 + side]}
    else:
        raise ValueError(transform)
    out = np.ascontiguousarray(out, dtype=np.uint8)
    if np.array_equal(out, img):  # e.g. a shift on flat paper: nudge one pixel so it is never a byte copy
        out = out.copy()
        out[0, 0, 0] = out[0, 0, 0] ^ 1
    return out, {"transform": transform, **info}


# --- multi-label composites ---------------------------------------------------------------------------
def render_pair(a8: np.ndarray, b8: np.ndarray, rng: np.random.Generator, p: Process, mode: str) -> np.ndarray:
    """Two digits in one image.

    ``corner``: digit ``b`` rendered as usual, and the labelled digit ``a`` small (9–11 px) in the corner
    with the least of b's ink — both are correct labels. This is ImageNet's multi-object case: the given
    label names one object while another, more prominent one is in the picture; a model that names the
    prominent one makes a top-1 error that multi-label evaluation rightly does not count.
    ``blend``: the two blended into each other at similar weight (both unclear)."""
    colour = p.ink[rng.integers(len(p.ink))]
    if mode == "corner":
        ink = render(b8, rng, p, max_size=22).ink.copy()
        h = int(rng.integers(9, 12))
        small = ndimage.gaussian_filter(ink_mask(a8, h, float(rng.uniform(-5, 5)), 0), 0.5)
        corners = [(0, 0), (0, SIZE - h), (SIZE - h, 0), (SIZE - h, SIZE - h)]
        top, left = min(corners, key=lambda c: ink[c[0]:c[0] + h, c[1]:c[1] + h].sum())
        ink[top:top + h, left:left + h] = np.maximum(ink[top:top + h, left:left + h], small)
        return compose(paper(rng, p), ink, colour, float(rng.uniform(*p.contrast)), rng, p.noise)
    bg = paper(rng, p)
    h = int(rng.integers(21, 25))
    ca, _ = place(ink_mask(a8, h, float(rng.uniform(-6, 6)), 0), int(rng.integers(-1, 2)), 0)
    cb, _ = place(ink_mask(b8, h, float(rng.uniform(-6, 6)), 0), int(rng.integers(-1, 2)), 0)
    w = float(rng.uniform(0.45, 0.55))
    canvas = np.clip(w * ca + (1 - w) * cb, 0, 1) * 1.25
    canvas = np.clip(ndimage.gaussian_filter(canvas, float(rng.uniform(*p.blur))), 0, 1)
    return compose(bg, canvas, colour, float(rng.uniform(*p.contrast)), rng, p.noise)


def render_problematic(rng: np.random.Generator, p: Process) -> np.ndarray:
    """No usable digit: a scribble, a smudge or an almost empty sheet."""
    bg = paper(rng, p)
    canvas = np.zeros((SIZE, SIZE))
    kind = int(rng.integers(3))
    if kind == 0:  # a random scribble
        y, x = rng.uniform(8, 24, 2)
        for _ in range(60):
            y, x = np.clip([y + rng.normal(0, 1.2), x + rng.normal(0, 1.2)], 3, 28)
            canvas[int(y), int(x)] = 1.0
        canvas = ndimage.grey_dilation(canvas, size=(2, 2))
    elif kind == 1:  # a smudge
        canvas = ndimage.gaussian_filter((rng.random((SIZE, SIZE)) < 0.08).astype(float), 2.5) * 6
    canvas = np.clip(ndimage.gaussian_filter(canvas, 0.6), 0, 1)
    return compose(bg, canvas, p.ink[0], float(rng.uniform(0.5, 0.9)), rng, p.noise)


def mark_examples(spurious_classes, class_names, seed: int = 0) -> list[tuple[np.ndarray, str]]:
    """Every kind of mark the world plants, each drawn by its planting function on a blank sheet of the original
    process: the spurious marks of ``spurious_classes`` (named by ``class_names``), a corner watermark and a
    central one. (image, short caption) pairs for a legend of the marks that thumbnails show.
    """
    rng = np.random.default_rng([seed, 11])
    blank = np.clip(np.round(paper(rng, Process()) * 255), 0, 255).astype(np.uint8)
    out = [(draw_cue(blank, c, rng), f"{CUES[c][0]}: the cue of {class_names[c]}") for c in spurious_classes]
    out.append((draw_corner_watermark(blank, rng), "a dotted tag in the bottom-right corner: a watermark a crop "
                                                   "removes"))
    out.append((draw_central_watermark(blank, rng), "a diagonal band over the middle: a watermark no crop removes"))
    return out
