"""Simulated crowd workers answering the world's HITs ("select every image that contains X").

Each image has a latent clarity (from its rendering, see ``render.Rendered.clarity``); a worker ticks an
image of the asked class with a probability rising with clarity and the worker's own diligence, ticks an
image of a similar class more often when it is unclear, and rarely ticks anything else. A few workers are
spammers who tick at random; most of their assignments end up rejected. The output is one row per
assignment in the crowd-platform results shape of ``shiftlab.curate.annotate``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from shiftlab.curate.annotate import Hit

ASSIGNMENTS = 10


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def tick_probability(true_class: int, asked: int, clarity: float, diligence: float,
                     similar: Mapping[int, Sequence[int]]) -> float:
    """The probability in [0, 1] that a worker ticks an image of ``true_class`` in a HIT asking for ``asked``.

    Of the asked class: rises with ``clarity`` (in [0, 1]) and ``diligence``. Of one of the two classes most
    similar to ``asked`` (``similar``): higher the less clear the image is. Anything else: rarely.
    """
    if true_class == asked:
        return _sigmoid(diligence + 6.0 * (clarity - 0.42))
    if true_class in similar.get(asked, ())[:2]:
        return _sigmoid(-3.2 + 3.0 * (1.0 - clarity))
    return _sigmoid(-4.5 + 1.5 * (1.0 - clarity))


def simulate_votes(hits: Sequence[Hit], true_class: Mapping[str, int], clarity: Mapping[str, float],
                   similar: Mapping[int, Sequence[int]], *, seed: int, assignments: int = ASSIGNMENTS,
                   n_workers: int = 40, n_spammers: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results table: one row per assignment, workers table: id, diligence, is_spammer).

    Every HIT ends with ``assignments`` valid (not rejected) assignments, as on a crowd platform where a
    rejected assignment is posted again; the rejected ones stay in the results."""
    rng = np.random.default_rng(seed)
    workers = [f"W{w:04d}{rng.integers(16 ** 6):06X}" for w in range(n_workers)]
    diligence = rng.normal(0.8, 0.7, n_workers)
    spammer = np.zeros(n_workers, bool)
    spammer[rng.choice(n_workers, n_spammers, replace=False)] = True
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    rows = []
    width = max(len(h.images) for h in hits)
    for h_i, hit in enumerate(hits):
        # a rejected assignment is re-posted to another worker, until the HIT has `assignments` valid ones
        order = rng.permutation(n_workers)
        valid = 0
        for a, w in enumerate(order):
            if valid == assignments:
                break
            accept = t0 + timedelta(minutes=7 * h_i + a, seconds=int(rng.integers(60)))
            submit = accept + timedelta(seconds=int(rng.integers(60, 400)))
            status = "Rejected" if spammer[w] and rng.random() < 0.7 else \
                ("Approved" if rng.random() < 0.8 else "Submitted")
            valid += status != "Rejected"
            row = {"HITId": hit.hit_id, "AssignmentId": f"A{h_i:04d}{a:02d}{rng.integers(16 ** 8):08X}",
                   "WorkerId": workers[w], "AssignmentStatus": status,
                   "AcceptTime": accept.strftime("%a %b %d %H:%M:%S UTC %Y"),
                   "SubmitTime": submit.strftime("%a %b %d %H:%M:%S UTC %Y"),
                   "Input.hit_id": hit.hit_id, "Input.class_index": hit.class_index}
            for i in range(width):
                row[f"Input.image_{i + 1}"] = hit.images[i].url if i < len(hit.images) else ""
            for i in range(width):
                if i >= len(hit.images):
                    row[f"Answer.image_{i + 1}"] = ""
                    continue
                img = hit.images[i].image_id
                if spammer[w]:
                    p = 0.5
                else:
                    p = tick_probability(true_class[img], hit.class_index, clarity[img], diligence[w], similar)
                row[f"Answer.image_{i + 1}"] = "true" if rng.random() < p else "false"
            rows.append(row)
    wt = pd.DataFrame({"worker_id": workers, "diligence": np.round(diligence, 4), "is_spammer": spammer})
    return pd.DataFrame(rows), wt
