"""What runs on a Ray worker: decode one shard of compressed images, run one model over a decoded shard.

Both call the very functions the local executor uses (``cache.decode_pixels``, ``engine.forward_rows``) on the
same rows in the same batches, which is why a cell computed on Ray holds the same bytes as a local one.
Imported by Ray in its worker processes (and by ``ray_executor`` on the driver), never by the core.
"""

from __future__ import annotations

import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import ray

from shiftlab.predict.cache import decode_pixels
from shiftlab.predict.engine import forward_rows, resolve_device

#: models a worker process keeps loaded between tasks (an actor pool's worth of reuse without actors: a worker
#: that runs the next shard of the same model skips fetching and unpickling it); a few, so 300 do not pile up
KEEP_MODELS = 2
_models: OrderedDict = OrderedDict()


def _model(box: list, key: str, device):
    """The classifier in ``box[0]`` (an object ref, boxed so Ray does not fetch it for every task) on ``device``."""
    m = _models.get((key, str(device)))
    if m is None:
        m = ray.get(box[0]).to(device, channels_last=device.type == "cuda")
        _models[(key, str(device))] = m
        while len(_models) > KEEP_MODELS:
            _models.popitem(last=False)
    _models.move_to_end((key, str(device)))
    return m


def decode_shard(payload: list, recipe, max_pixels: int):
    """(uint8 (n, C, H, W) pixels, {row in shard: reason}, seconds) of ``payload``: per image ``(suffix, bytes)``
    or the reason the driver already found (missing file, not a regular file). Undecodable rows are zeros.

    The bytes go through a temporary file so that ``decode_image`` sees exactly what it sees locally (its
    checks, its fast JPEG path and its reasons all work on a path)."""
    t0 = time.perf_counter()
    pixels = np.zeros((len(payload), *recipe.input_shape), np.uint8)
    bad: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="shiftlab-decode-") as tmp:
        for j, item in enumerate(payload):
            if isinstance(item, str):
                bad[j] = item
                continue
            f = Path(tmp) / f"{j}{item[0]}"
            f.write_bytes(item[1])
            px, reason = decode_pixels(f, recipe, max_pixels)
            f.unlink()
            if px is None:
                bad[j] = reason
            else:
                pixels[j] = px
    return pixels, bad, time.perf_counter() - t0


def forward_shard(box: list, key: str, decoded, batch_size: int, device: str, features: bool):
    """One model over one decoded shard: (float16 logits (n, K), float32 features (n, D) or None, the shard's
    undecodable rows {row in shard: reason}, its decoding seconds, the forward seconds).

    Logits go back as float16, what the store keeps anyway: half the bytes on the network, the same file."""
    pixels, bad, decode_s = decoded
    dev = resolve_device(device)
    model = _model(box, key, dev)
    valid = np.ones(len(pixels), bool)
    valid[list(bad)] = False
    t0 = time.perf_counter()
    logits, feats = forward_rows(model, lambda a, b: (pixels[a:b], valid[a:b]), 0, len(pixels), features,
                                 batch_size=batch_size, device=dev)
    return logits.astype(np.float16), feats, bad, decode_s, time.perf_counter() - t0


def call(fn, shared, *args):
    """``fn(shared, *args)``: one item of ``RayExecutor.map``."""
    return fn(shared, *args)
