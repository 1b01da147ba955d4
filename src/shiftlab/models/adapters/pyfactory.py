"""``python:<module>:<factory>``: a function of the user's that builds the model.

``<module>`` is an importable dotted name or a path to a ``.py`` file. The factory returns an
``nn.Module``, a ``(module, recipe)`` pair (recipe as a ``Recipe`` or a dict of its fields), or a ready
``Classifier``. Keyword arguments may follow as ``?k=v&k2=v2`` (values parsed as JSON when they parse).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path

from torch import nn

from shiftlab.data.recipes import Recipe
from shiftlab.errors import InputError
from shiftlab.models.classifier import Classifier, TorchClassifier, weights_key


def _import(module: str, spec: str):
    if module.endswith(".py") or "/" in module:
        path = Path(module).expanduser().resolve()
        if not path.is_file():
            raise InputError(f"{spec}: no such file {path}")
        name = f"shiftlab_user_{path.stem}"
        s = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(s)
        sys.modules[name] = mod
        try:
            s.loader.exec_module(mod)
        except Exception as e:
            raise InputError(f"{spec}: {path.name} failed to import ({type(e).__name__}: {e})") from None
        return mod
    try:
        return importlib.import_module(module)
    except Exception as e:
        raise InputError(f"{spec}: cannot import {module!r} ({type(e).__name__}: {e})") from None


def _kwargs(query: str) -> dict:
    out = {}
    for part in filter(None, query.split("&")):
        k, _, v = part.partition("=")
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def load(rest: str, *, spec: str, workspace=None) -> Classifier:
    """``python:<module>:<factory>[?k=v&…]`` → the Classifier the factory builds (see the module docstring).

    A bare module gets the default ``Recipe()``, the factory's name (with the query) as its name and a hash of
    its weights as its key. Raises ``InputError`` for a malformed spec, an import that fails, a missing factory,
    a factory that raises, or a result that is neither an ``nn.Module`` nor a Classifier.
    """
    rest, _, query = rest.partition("?")
    module_name, sep, factory_name = rest.rpartition(":")
    if not sep or not module_name or not factory_name:
        raise InputError(f"{spec}: expected python:<module or file.py>:<factory>")
    mod = _import(module_name, spec)
    factory = getattr(mod, factory_name, None)
    if not callable(factory):
        raise InputError(f"{spec}: {module_name} has no callable {factory_name!r}")
    try:
        out = factory(**_kwargs(query))
    except Exception as e:
        raise InputError(f"{spec}: the factory raised {type(e).__name__}: {e} (--debug shows where)") from e
    if isinstance(out, Classifier):
        return out
    recipe = Recipe()
    if isinstance(out, tuple) and len(out) == 2:
        out, r = out
        recipe = r if isinstance(r, Recipe) else Recipe.from_fields(r, spec)
    if not isinstance(out, nn.Module):
        raise InputError(f"{spec}: the factory returned {type(out).__name__}, not an nn.Module or Classifier")
    name = factory_name if not query else f"{factory_name}?{query}"
    return TorchClassifier(out, recipe, name=name, key=weights_key(spec, out))
