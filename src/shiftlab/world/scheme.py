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
from shiftlab.world.zoo import ZOO, train_zoo

TRAIN_DATASET = "world-train"
#: the zoo CNN trained where the cue is a shortcut (``shiftlab.world.shortcut``; named here to keep imports light)
SHORTCUT_MODEL = "cnn-shortcut"


def load(rest: str, *, spec: str, workspace=None) -> TorchClassifier:
    """The zoo model ``rest`` trained on the workspace's ``world-train`` (trained and cached on first use)."""
    if rest not in ZOO and rest != SHORTCUT_MODEL:
        raise UnknownNameError(f"{spec}: no model {rest!r} in the digits-world zoo; known: "
                               f"{', '.join([*ZOO, SHORTCUT_MODEL])}")
    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    # checked first: read_dataset would take an unregistered name for a path
    if dataset_path(TRAIN_DATASET, ws) is None:
        raise ShiftlabError(f"the digits world is not built in {ws.root}: run 'shiftlab world build'")
    if rest == SHORTCUT_MODEL:  # trained on its own set, made from the world (shiftlab.world.shortcut)
        from shiftlab.world.build import load_world
        from shiftlab.world.shortcut import shortcut_model

        return shortcut_model(load_world(ws))
    train_file = dataset_path(TRAIN_DATASET, ws)
    memo_key = (rest, str(train_file.resolve()), _identity(train_file))
    hit = _LOADED.get(memo_key)
    if hit is not None and _identity(hit[1]) == hit[2]:
        return hit[0]
    entry = train_zoo(read_dataset(TRAIN_DATASET, workspace=ws), ws, [rest])[rest]
    _LOADED[memo_key] = (entry.classifier(), entry.path, _identity(entry.path))
    return entry.classifier()


#: the models this process has loaded, by (name, train manifest file, its version) → (classifier, weights
#: file, its version): a demo asks for each model dozens of times (once per set and study), and reading the
#: manifest and the weights again each time cost seconds of a rerun. A changed manifest or weights file misses.
_LOADED: dict[tuple, tuple] = {}


def _identity(path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


SCHEME = Scheme("world", "world:cnn-medium-s0", load,
                doc="a model of the embedded digits-world zoo (trained and cached on first use)")
