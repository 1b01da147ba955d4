"""``world:<name>``: a model of the embedded digits-world zoo (``shiftlab.world.zoo``).

The model is trained on the workspace's registered ``world-train`` dataset the first time it is asked for
and loaded from ``<workspace>/models/zoo/`` afterwards. Without a built world the spec fails with one line
that says how to build it.
"""

from __future__ import annotations

from shiftlab.data.layouts import read_dataset
from shiftlab.errors import ShiftlabError, UnknownNameError
from shiftlab.models.classifier import TorchClassifier
from shiftlab.models.specs import Scheme
from shiftlab.registry import dataset_path
from shiftlab.workspace import Workspace
from shiftlab.world.zoo import ZOO, load_zoo_model

TRAIN_DATASET = "world-train"


def load(rest: str, *, spec: str, workspace=None) -> TorchClassifier:
    """The zoo model ``rest`` trained on the workspace's ``world-train`` (trained and cached on first use)."""
    if rest not in ZOO:
        raise UnknownNameError(f"{spec}: no model {rest!r} in the digits-world zoo; known: {', '.join(ZOO)}")
    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    # checked first: read_dataset would take an unregistered name for a path
    if dataset_path(TRAIN_DATASET, ws) is None:
        raise ShiftlabError(f"the digits world is not built in {ws.root}: run 'shiftlab world build'")
    return load_zoo_model(rest, read_dataset(TRAIN_DATASET, workspace=ws), ws)


SCHEME = Scheme("world", "world:cnn-medium-s0", load,
                doc="a model of the embedded digits-world zoo (trained and cached on first use)")
