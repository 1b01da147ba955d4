"""The Ray executor: the cells of a run, split into image shards, computed on a Ray cluster.

Shape of a run (``RayExecutor.predict``):
- one shard = one chunk of the PredictionStore (rows [lo, hi) of a cell, 512 by default). The driver reads the
  shard's compressed files and hands them to a ``decode_shard`` task (once per recipe geometry: the decoded
  shard sits in Ray's object store, the cluster's decoded cache, shared by every model of that geometry);
- one ``forward_shard`` task per (model, shard) on a CPU (or, where the cluster has them, a GPU) worker; the
  model travels once through the object store and stays loaded in the worker (``ray_worker``);
- the driver holds the cells' file locks, writes each returned chunk with the store's own atomic
  ``write_chunk`` and consolidates the cell with ``finalize``: the files are those of a local run.

Faults are Ray's: a killed worker's task is retried (``max_retries``), a lost decoded shard is rebuilt from
its lineage. A killed driver leaves the chunks written so far, each whole, and the next run computes only the
rest. At most ``max_in_flight`` shards are out at a time, shard-major, so decoded shards leave the object
store once their models have run. Plain tasks, not Ray Data: rows keep their order and batches their
boundaries (the batching is what makes logits bit-identical), and retries come with tasks.
"""

from __future__ import annotations

import os
import socket
import stat
import time
from collections import deque
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import ray

from shiftlab.errors import InputError
from shiftlab.models.classifier import Classifier
from shiftlab.predict.executors import ADDRESS_ENV
from shiftlab.predict.executors import ray_worker as worker
from shiftlab.progress import bars, info

#: tries of a task whose worker died (Ray's own retry; the result does not depend on where it ran)
RETRIES = 3


def _first_line(e: BaseException) -> str:
    return " ".join(str(e).split("\n")[0].split())[:160] or type(e).__name__


def probe(address: str, timeout: float) -> None:
    """``InputError`` unless a TCP connection to ``HOST:PORT`` (or ``ray://HOST:PORT``) opens within ``timeout``
    seconds: Ray itself retries an absent head node for a minute or more, and a user should not wait on that."""
    u = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = u.hostname, u.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise InputError(f"--ray-address {address}: give auto, local, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        why = f"no answer within {timeout:g} s" if isinstance(e, TimeoutError) else \
            (e.strerror or type(e).__name__).lower()
        raise InputError(f"cannot reach the Ray cluster at {address} ({why}); start it "
                         "with 'ray start --head' or give --ray-address / $SHIFTLAB_RAY_ADDRESS") from None


def connect(address: str | None, timeout: float) -> tuple[str, bool]:
    """Join the Ray cluster at ``address`` (see ``make_executor``): (the address, whether we connected and so
    must disconnect). A process already in a Ray session (a notebook, a test, a bench) keeps it."""
    if ray.is_initialized():
        return "the running Ray session", False
    address = address or os.environ.get(ADDRESS_ENV) or "auto"
    quiet = {"logging_level": "ERROR", "log_to_driver": False}
    if address == "local":
        ray.init(address="local", include_dashboard=False, **quiet)
        return address, True
    if address != "auto":
        probe(address, timeout)
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
        raise InputError(f"cannot reach the Ray cluster at {address}: {_first_line(e).rstrip('.')}; start one with "
                         "'ray start --head' or give --ray-address HOST:PORT") from None
    return address, True


def _compressed(path: Path) -> tuple[str, bytes] | str:
    """(suffix, bytes) of an image file for a worker to decode, or the reason there is nothing to send (the
    reasons ``decode_image`` gives for these cases: the worker has no view of the driver's file system)."""
    try:
        st = path.stat()
    except OSError:
        return "missing"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return path.suffix, path.read_bytes()


class RayExecutor:
    """Predictions and kNN chunks on a Ray cluster (module docstring). ``timings`` adds up, over the executor's
    life, the seconds spent decoding and in forward passes (on workers) and in transfer and store (on the
    driver), and the images and shards computed."""

    name = "ray"

    def __init__(self, address: str | None = None, *, connect_timeout: float = 10.0,
                 max_in_flight: int | None = None, progress: bool = True):
        self.address, self._owned = connect(address, connect_timeout)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.gpus = ray.cluster_resources().get("GPU", 0)
        self.max_in_flight = max_in_flight or max(4, 2 * cpus)
        self.progress = progress
        self.timings = {"decode": 0.0, "forward": 0.0, "transfer": 0.0, "store": 0.0, "images": 0, "shards": 0}
        self._decode = ray.remote(num_cpus=1, max_retries=RETRIES)(worker.decode_shard)
        self._call = ray.remote(num_cpus=1, max_retries=RETRIES)(worker.call)
        self._forward = ray.remote(max_retries=RETRIES)(worker.forward_shard)
        self._in_flight: dict = {}  # object ref → (job, chunk, shard key) of what is out on the cluster

    # --- predictions ------------------------------------------------------------------------------
    def predict(self, engine, manifest, models, features: bool = False) -> list:
        """One ``ModelPredictions`` per model; the cells not yet stored are computed on the cluster first."""
        models = list(models)
        todo = {}
        for m in models:
            if isinstance(m, Classifier):
                cell = engine.cell(manifest, m)
                if not cell.is_complete(features):
                    todo.setdefault(cell.dir, (m, cell))  # one writer per cell, even for a repeated spec
        if todo:
            engine.require_images(manifest)
            self._fill(engine, manifest, list(todo.values()), features)
        return [engine.predict(manifest, m, features=features) for m in models]

    def _fill(self, engine, manifest, cells: list, features: bool) -> None:
        t_run, before = time.perf_counter(), dict(self.timings)
        gpu = 1 if self.gpus and engine.device_option != "cpu" else 0
        paths = manifest.abspaths()
        with ExitStack() as stack:
            for _, cell in cells:
                stack.enter_context(cell.writing())
            jobs = [(m, c, c.pending_chunks(features)) for m, c in cells if not c.is_complete(features)]
            # shard-major: every model of a shard is sent before the next shard, so its decoded copy goes soon
            work = deque(sorted(((c.chunk_range(i), m.recipe.geometry_key(), j, i)
                                 for j, (m, c, pending) in enumerate(jobs) for i in pending)))
            users: dict = {}
            for (lo_hi, geo, _, _) in work:
                users[(lo_hi, geo)] = users.get((lo_hi, geo), 0) + 1
            boxes = [[ray.put(m)] for m, _, _ in jobs]  # each model crosses the network once per node
            with bars(disable=not self.progress) as new_bar:
                progress = [new_bar(f"{m.name} on {manifest.name}",
                                    sum(c.chunk_range(i)[1] - c.chunk_range(i)[0] for i in pending))
                            for m, c, pending in jobs]
                try:
                    self._run(work, jobs, users, boxes, paths, engine, features, gpu, progress)
                except BaseException:  # an error or Ctrl-C: what is still out would only burn the cluster
                    for ref in self._in_flight:
                        ray.cancel(ref)
                    raise
            t = time.perf_counter()
            for _, c, _ in jobs:
                c.finalize()
            self.timings["store"] += time.perf_counter() - t
        self._summary(time.perf_counter() - t_run, {k: v - before[k] for k, v in self.timings.items()})

    def _run(self, work: deque, jobs: list, users: dict, boxes: list, paths: list, engine, features: bool,
             gpu: int, progress: list) -> None:
        """Send the shards of ``work`` (at most ``max_in_flight`` out at a time) and store each one that returns."""
        decoded: dict = {}
        in_flight = self._in_flight = {}
        counted: set = set()
        while work or in_flight:
            while work and len(in_flight) < self.max_in_flight:
                (lo, hi), geo, j, i = work.popleft()
                m = jobs[j][0]
                key = ((lo, hi), geo)
                if key not in decoded:
                    t = time.perf_counter()
                    payload = ray.put([_compressed(p) for p in paths[lo:hi]])
                    self.timings["transfer"] += time.perf_counter() - t
                    decoded[key] = self._decode.remote(payload, m.recipe, engine.max_pixels)
                ref = self._forward.options(num_cpus=1, num_gpus=gpu).remote(  # same weights, other
                    boxes[j], f"{m.key}|{m.recipe.key()}", decoded[key],  # recipe: another model
                    engine.batch_size, engine.device_option, features)
                in_flight[ref] = (j, i, key)
                users[key] -= 1
                if not users[key]:  # the last model of this shard is on its way: let it go after
                    decoded.pop(key)
            [ready], _ = ray.wait(list(in_flight), num_returns=1)
            j, i, key = in_flight.pop(ready)
            self._store(jobs[j][1], i, ready, key, counted, progress[j])

    def _store(self, cell, i: int, ready, key, counted: set, progress) -> None:
        """Fetch one finished shard and write it as chunk ``i`` of ``cell``, counting where the time went."""
        t = time.perf_counter()
        try:
            logits, feats, bad, decode_s, forward_s = ray.get(ready)
        except ray.exceptions.RayTaskError as e:  # the worker's own error, as if raised here
            raise e.as_instanceof_cause() from None
        self.timings["transfer"] += time.perf_counter() - t
        lo, hi = cell.chunk_range(i)
        if key not in counted:  # decoded once, whatever the number of models that used it
            counted.add(key)
            self.timings["decode"] += decode_s
        self.timings["forward"] += forward_s
        t = time.perf_counter()
        cell.write_chunk(i, logits, {lo + r: why for r, why in bad.items()}, feats)
        self.timings["store"] += time.perf_counter() - t
        self.timings["images"] += hi - lo
        self.timings["shards"] += 1
        progress.advance(hi - lo)

    def _summary(self, wall: float, t: dict) -> None:
        """One line on the driver: this run's images and shards, and where its time went."""
        info(f"ray ({self.address}): {t['images']:,} images in {t['shards']} shards, {wall:.1f} s; decode "
             f"{t['decode']:.1f} s and forward {t['forward']:.1f} s on workers, transfer {t['transfer']:.1f} s and "
             f"store {t['store']:.1f} s on the driver")

    # --- any chunked work -------------------------------------------------------------------------
    def map(self, fn, shared, items):
        """``fn(shared, *item)`` for each item, in order, as tasks (``shared`` goes to the object store once;
        at most ``max_in_flight`` items are out at a time). ``fn`` must be importable on the workers."""
        if isinstance(shared, np.ndarray):  # a memory map goes as its bytes, not as a path on this machine
            shared = np.asarray(shared).view(np.ndarray)
        shared_ref = ray.put(shared)
        pending: deque = deque()
        for item in items:
            pending.append(self._call.remote(fn, shared_ref, *item))
            if len(pending) >= self.max_in_flight:
                yield self._get(pending.popleft())
        while pending:
            yield self._get(pending.popleft())

    def _get(self, ref):
        t = time.perf_counter()
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            raise e.as_instanceof_cause() from None
        finally:
            self.timings["transfer"] += time.perf_counter() - t

    def close(self) -> None:
        """Leave the cluster, if this executor joined it (a session the caller started stays up)."""
        if self._owned:
            ray.shutdown()
            self._owned = False
