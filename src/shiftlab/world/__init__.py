"""The embedded default: a small, deterministic universe built from scikit-learn's 1,797 real 8×8 scans.

``build_world(workspace, WorldConfig(seed=0))`` writes train / test (the original collection process), a
shifted candidate pool with simulated crowd votes, planted near-duplicates, watermarks, label errors, a
spurious cue and its spurious set, a multi-label set with an ImageNet-M-like split, a 28×28 grey view and a
class hierarchy, and records every planted fact as ground truth (``World.truth``).
"""

from shiftlab.world import plugin
from shiftlab.world.build import SPLITS, WORLD_VERSION, World, WorldConfig, build_world, load_world

plugin.register()  # importing the world is enough to use it, entry point or not

__all__ = ["SPLITS", "WORLD_VERSION", "World", "WorldConfig", "build_world", "load_world"]
