"""Where shiftlab keeps what it builds: manifests, decoded caches, predictions, reports.

Resolution order: an explicit path (``--workspace``), then ``$SHIFTLAB_HOME``, then
``./shiftlab-workspace``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIRNAME = "shiftlab-workspace"


@dataclass(frozen=True)
class Workspace:
    """The folder where shiftlab keeps what it builds (``root``); each folder property makes its folder if missing."""

    root: Path

    @classmethod
    def resolve(cls, path: str | os.PathLike | None = None) -> Workspace:
        """The workspace at ``path``, else ``$SHIFTLAB_HOME``, else ``./shiftlab-workspace`` (``~`` expanded, made
        absolute; nothing is created).
        """
        if path is None:
            path = os.environ.get("SHIFTLAB_HOME") or Path.cwd() / DEFAULT_DIRNAME
        return cls(Path(path).expanduser().resolve())

    def _dir(self, *parts: str) -> Path:
        d = self.root.joinpath(*parts)
        d.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def manifests(self) -> Path:
        """Registered manifests, one ``<name>.parquet`` each."""
        return self._dir("manifests")

    @property
    def decoded(self) -> Path:
        """Decoded-tensor caches, one folder per (manifest, geometric recipe)."""
        return self._dir("cache", "decoded")

    @property
    def figures(self) -> Path:
        """Drawn report figures kept by content (``shiftlab.report.figure_cache``), so a rebuilt report draws
        only what changed."""
        return self._dir("cache", "figures")

    @property
    def predictions(self) -> Path:
        """PredictionStore cells, one folder per (model, manifest, recipe)."""
        return self._dir("predictions")

    @property
    def models(self) -> Path:
        """Model aliases (``aliases.json``) and stored weights such as the world's zoo (``models/zoo``)."""
        return self._dir("models")

    @property
    def reports(self) -> Path:
        """Reports written by default, one folder each (e.g. ``reports/demo``)."""
        return self._dir("reports")
