"""Executors: where the pending work of a run is computed, with the same results wherever that is.

- ``local`` (the default): this process, one model at a time over the decoded cache (``predict.engine``).
- ``ray``: a Ray cluster (the optional extra ``pip install 'shiftlab[ray]'``; ``ray_executor.py``). Images are
  decoded and models run on the workers; the driver keeps the PredictionStore and writes the same chunk files
  with the same atomic renames, so a cell finished on Ray is reused locally and vice versa.

An executor offers two things: ``predict(engine, manifest, models, features)`` (the predictions of each loaded
model, computing the cells not yet stored) and ``map(fn, shared, items)`` (``fn(shared, *item)`` for each item,
in order; the near-duplicate search sends its query chunks through it). Library calls take the executor in
force, ``current_executor()``: ``with use_executor(make_executor("ray")):`` around any study (``evaluate``,
``dedup_pool``, ...) runs its predictions and kNN on Ray without the study knowing; the CLI's ``--executor``
does exactly that. This module never imports Ray: the core works without it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from shiftlab.errors import InputError, MissingDependencyError

EXECUTORS = ("local", "ray")
#: where ``--ray-address`` falls back to when not given
ADDRESS_ENV = "SHIFTLAB_RAY_ADDRESS"
RAY_HINT = "pip install 'shiftlab[ray]'"


class LocalExecutor:
    """This process: the engine computes each model's missing chunks in turn (models are loaded one at a time)."""

    name = "local"

    def predict(self, engine, manifest, models: Iterable, features: bool = False) -> list:
        """One ``ModelPredictions`` per model (an iterable of loaded models, consumed one at a time)."""
        return [engine.predict(manifest, m, features=features) for m in models]

    def map(self, fn: Callable, shared, items: Iterable[tuple]) -> Iterator:
        """``fn(shared, *item)`` for each item, in order, lazily."""
        for item in items:
            yield fn(shared, *item)

    def close(self) -> None:
        """Nothing to release."""


_stack: list = []


def current_executor():
    """The executor in force: the innermost ``use_executor``, else a ``LocalExecutor``."""
    return _stack[-1] if _stack else LocalExecutor()


@contextmanager
def use_executor(executor):
    """Make ``executor`` the one in force inside the block (closing it is the caller's business)."""
    _stack.append(executor)
    try:
        yield executor
    finally:
        _stack.remove(executor)


def make_executor(name: str = "local", address: str | None = None, *, connect_timeout: float = 10.0,
                  max_in_flight: int | None = None, progress: bool = True):
    """The executor called ``name`` (``local`` or ``ray``). For ``ray``, ``address`` is ``auto`` (the cluster this
    machine belongs to), ``HOST:PORT`` (its head node), ``ray://HOST:PORT`` (Ray Client) or ``local`` (start one on
    this machine); default ``$SHIFTLAB_RAY_ADDRESS``, else ``auto``. A cluster that does not answer within
    ``connect_timeout`` seconds is an ``InputError`` naming the address; no Ray installed is a
    ``MissingDependencyError`` with the install command. ``max_in_flight``: shards out on the cluster at a time
    (default twice its CPUs).
    """
    if name == "local":
        return LocalExecutor()
    if name != "ray":
        raise InputError(f"unknown executor {name!r}; use {' or '.join(EXECUTORS)}")
    if importlib.util.find_spec("ray") is None:
        raise MissingDependencyError(f"the ray executor needs Ray, which is not installed here: {RAY_HINT}")
    from shiftlab.predict.executors.ray_executor import RayExecutor  # only now: Ray is an optional extra

    return RayExecutor(address, connect_timeout=connect_timeout, max_in_flight=max_in_flight, progress=progress)


__all__ = ["ADDRESS_ENV", "EXECUTORS", "LocalExecutor", "current_executor", "make_executor", "use_executor"]
