"""Names that stand for datasets and models in a workspace.

A registered dataset is a manifest saved as ``<workspace>/manifests/<name>.parquet``; a registered model
is an alias for a spec string in ``<workspace>/models/aliases.json``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from shiftlab.errors import InputError
from shiftlab.workspace import Workspace

# whole-string matches only (fullmatch): "$" alone also matches before a final newline, so "evil\n" passed
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*", re.ASCII)
#: longest workspace name: "<name>.parquet" and the like must stay under the file systems' 255-byte limit
MAX_NAME = 200


def _valid(name) -> bool:
    return isinstance(name, str) and len(name) <= MAX_NAME and _NAME.fullmatch(name) is not None


def _ws(workspace) -> Workspace:
    return workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)


def check_name(name: str) -> str:
    """``name`` if it is a valid workspace name (letters, digits, ``.``, ``_``, ``-``; at most ``MAX_NAME``
    characters, starting with a letter or digit), else ``InputError``."""
    if not _valid(name):
        shown = repr(name) if len(str(name)) <= 60 else repr(str(name)[:60]) + f"… ({len(name)} characters)"
        raise InputError(f"{shown} is not a valid name: use up to {MAX_NAME} letters, digits, '.', '_' and '-', "
                         "starting with a letter or digit")
    return name


def dataset_path(name: str, workspace=None) -> Path | None:
    """The manifest file of the registered dataset ``name``, or None when there is none (or the name is invalid)."""
    if not _valid(name):
        return None
    p = _ws(workspace).root / "manifests" / f"{name}.parquet"
    return p if p.is_file() else None


def list_datasets(workspace=None) -> list[str]:
    """The names of the workspace's registered datasets, sorted."""
    d = _ws(workspace).root / "manifests"
    return sorted(p.stem for p in d.glob("*.parquet")) if d.is_dir() else []


def register_dataset(manifest, name: str | None = None, workspace=None) -> Path:
    """Save ``manifest`` as the registered dataset ``name`` (default: its own name; under another name it is
    renamed to it); returns the path of ``manifests/<name>.parquet``. ``InputError`` for an invalid name.
    """
    from dataclasses import replace

    name = check_name(name or manifest.name)
    if name != manifest.name:
        manifest = replace(manifest, name=name)
    return manifest.save(_ws(workspace).manifests / f"{name}.parquet")


def _aliases_file(workspace) -> Path:
    return _ws(workspace).root / "models" / "aliases.json"


def model_aliases(workspace=None) -> dict[str, str]:
    """The workspace's model aliases: registered name → spec (empty when there are none)."""
    f = _aliases_file(workspace)
    return json.loads(f.read_text()) if f.is_file() else {}


def register_model(name: str, spec: str, workspace=None) -> None:
    """Make ``name`` an alias of ``spec`` in ``models/aliases.json`` (replacing an earlier one; the spec is not
    checked). ``InputError`` for an invalid name.
    """
    check_name(name)
    aliases = model_aliases(workspace)
    aliases[name] = spec
    f = _aliases_file(workspace)
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_name(f".aliases.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(aliases, indent=2, sort_keys=True))
    os.replace(tmp, f)


# --- plug-ins ---------------------------------------------------------------------------------------------
#: entry-point group of shiftlab plug-ins: each names a function called once, without arguments, before
#: shiftlab first looks up a model scheme or a dataset's default context; it registers what it adds
#: (``shiftlab.models.specs.register_scheme``, ``shiftlab.analyze.mistakes.register_context``,
#: ``shiftlab.curate.annotate.register_similar_classes``). shiftlab's
#: own digits world is one (``world = "shiftlab.world.plugin:register"`` in pyproject.toml).
PLUGIN_GROUP = "shiftlab.plugins"
_plugins_loaded = False


def load_plugins() -> None:
    """Run every installed ``shiftlab.plugins`` entry point once per process (later calls do nothing).

    A plug-in that fails to import is reported as an InputError naming it, rather than silently missing."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True  # set first: a plug-in may itself look up schemes while registering
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()()
        except Exception as e:
            _plugins_loaded = False
            raise InputError(f"shiftlab plug-in {ep.name!r} ({ep.value}) failed to load: "
                             f"{type(e).__name__}: {e}") from e
