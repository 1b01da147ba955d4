"""``world:<name>``: a model of the embedded digits-world zoo (``shiftlab.models.zoo``).

The model is trained on the workspace's registered ``world-train`` dataset the first time it is asked for
and loaded from ``<workspace>/models/zoo/`` afterwards. Without a built world the spec fails with one line
that says how to build it.
"""

from __future__ import annotations

from shiftlab.errors import ShiftlabError, UnknownNameError
from shiftlab.models.classifier import TorchClassifier
from shiftlab.workspace import Workspace

TRAIN_DATASET = "world-train"


def load(rest: str, *, spec: str, workspace=None) -> TorchClassifier:
    from shiftlab.data.layouts import read_dataset
    from shiftlab.models.zoo import ZOO, load_zoo_model
    from shiftlab.registry import dataset_path

    if rest not in ZOO:
        raise UnknownNameError(f"{spec}: no model {rest!r} in the digits-world zoo; known: {', '.join(ZOO)}")
    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    # checked first: read_dataset would take an unregistered name for a path
    if dataset_path(TRAIN_DATASET, ws) is None:
        raise ShiftlabError(f"the digits world is not built in {ws.root}: run 'shiftlab world build'")
    return load_zoo_model(rest, read_dataset(TRAIN_DATASET, workspace=ws), ws)
