"""A demo section's computed tables, kept in the workspace by content, so that a rerun reads them back.

The key names everything the tables follow from: the models' keys (their weights), the content hashes of the
sets, the section's settings and a version the section bumps when it computes differently. Tables are stored as
JSON (``orient="split"``), which keeps columns, their order and plain values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence

import pandas as pd

from shiftlab.fsutil import atomic_write_json
from shiftlab.models.specs import load_model


def content_key(workspace, models: Sequence[str], manifests: Sequence, *settings) -> str:
    """A digest of the models' keys, the manifests' content hashes and ``settings`` (anything JSON can write)."""
    keys = [load_model(m, workspace=workspace).key for m in models]
    payload = json.dumps([keys, [m.content_hash for m in manifests], list(settings)], default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def cached_tables(workspace, section: str, key: str,
                  compute: Callable[[], Sequence[pd.DataFrame]]) -> tuple[pd.DataFrame, ...]:
    """The tables ``compute()`` returns, read from ``<workspace>/<section>/demo/tables-<key>.json`` when kept."""
    path = workspace.root / section / "demo" / f"tables-{key}.json"
    if path.is_file():
        return tuple(pd.DataFrame(**t) for t in json.loads(path.read_text())["tables"])
    tables = tuple(compute())
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"tables": [t.to_dict(orient="split", index=False) for t in tables]})
    return tables
