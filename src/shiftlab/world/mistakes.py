"""What the mistakes study knows about the digits world: its hierarchy, training set and planted cues.

Registered with ``shiftlab.analyze.mistakes.register_context`` by the world's plug-in, so
``default_context`` (the CLI's ``mistakes``, a notebook's ``find_mistakes``) uses the ground truth for a split
of the built world without being told.
"""

from __future__ import annotations

from shiftlab.data.hierarchy import read_hierarchy
from shiftlab.errors import ShiftlabError
from shiftlab.world.build import SPLITS, load_world, world_root


def world_cues(world, split: str) -> dict[str, set[int]]:
    """Which spurious cue each image of a world split shows (from the ground truth); the multilabel split
    is rendered without cues, so its images are known to show none."""
    t = world.truth(split)
    if "cue" in t.columns:
        return {str(i): ({int(c)} if c >= 0 else set()) for i, c in zip(t["id"], t["cue"])}
    if "cue_class" in t.columns:
        return {str(i): {int(c)} for i, c in zip(t["id"], t["cue_class"])}
    if split == "multilabel":
        return {str(i): set() for i in t["id"]}
    return {}


def world_context(dataset, workspace=None) -> dict | None:
    """The mistakes context of a dataset in the digits vocabulary, None for any other vocabulary.

    ``hierarchy``: the world's own (None while the world is not built); for a split of the built world also
    ``train`` (the neighbour search's training set; none for the training set itself, where every image is
    its own neighbour) and ``cues`` (which planted spurious cue each image shows).
    """
    if dataset.vocabulary.name != "digits":
        return None
    _, root = world_root(workspace)
    folder = root / "hierarchy"
    hierarchy = read_hierarchy(folder, n_classes=len(dataset.vocabulary)) if folder.is_dir() else None
    ctx = {"train": None, "hierarchy": hierarchy, "cues": None}
    if dataset.dataset == "world":
        try:
            world = load_world(workspace)
        except ShiftlabError:
            return ctx
        if dataset.variant in SPLITS:
            ctx["cues"] = world_cues(world, dataset.variant) or None
            if dataset.variant != "train":
                ctx["train"] = world.manifest("train")
    return ctx
