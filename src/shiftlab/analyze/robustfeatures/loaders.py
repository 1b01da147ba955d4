"""``load_robust_dataset`` / ``load_nonrobust_dataset``: the reconstructed sets as arrays, for a notebook.

The original study's loaders read relative folders and return y as uint8; these read the files the study wrote
in the workspace (an absolute place: ``--workspace`` > ``$SHIFTLAB_HOME`` > ``./shiftlab-workspace``, or the
``workspace`` argument), return y as int64, and say which variant and source they loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shiftlab.errors import ShiftlabError
from shiftlab.fsutil import read_json
from shiftlab.progress import info
from shiftlab.workspace import Workspace

#: the MNIST study's folder in a workspace
MNIST_FOLDER = ("robustfeatures", "mnist")


def _load(variant: str, dataset: str | None, workspace) -> tuple[np.ndarray, np.ndarray]:
    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    if dataset is None:
        folder = ws.root.joinpath(*MNIST_FOLDER, variant)
        hint = "run 'shiftlab robust mnist' first"
    else:
        folder = ws.root / "robustfeatures" / f"{dataset}-{variant}"
        hint = f"run 'shiftlab robust datasets' for {dataset} first"
    if not (folder / "complete.json").is_file():
        raise ShiftlabError(f"no finished {variant} set in {folder}: {hint}")
    with np.load(folder / "data.npz") as z:
        x, y = z["x"].astype(np.float32), z["y"].astype(np.int64)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    params = read_json(folder / "params.json")
    info(f"loaded the {variant} set {folder.name!r} ({len(x)} images {tuple(x.shape[1:])}, from "
         f"{params.get('data_source', params.get('source', '?'))}, model {params.get('model', '?')}) from {folder}")
    return x, y


def load_robust_dataset(dataset: str | None = None, *, workspace=None) -> tuple[np.ndarray, np.ndarray]:
    """(x float32 (N, H, W) in [0, 1] — (N, C, H, W) for colour sets —, y int64 (N,)) of the robust set.

    ``dataset``: None for the MNIST study's reconstruction from the worst-of-k CNN; otherwise the training set a
    ``robust datasets`` run started from (e.g. ``world-train``) for its D_R. Raises ``ShiftlabError`` with the
    command to run when the set is not built.
    """
    return _load("robust", dataset, workspace)


def load_nonrobust_dataset(dataset: str | None = None, *, workspace=None) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`load_robust_dataset`, for the non-robust set (the standard model's reconstruction; D_NR)."""
    return _load("nonrobust", dataset, workspace)


def describe(folder: str | Path) -> dict:
    """The parameters a constructed set was built with (its ``params.json``)."""
    return read_json(Path(folder) / "params.json")
