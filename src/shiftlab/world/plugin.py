"""The digits world as a shiftlab plug-in: what it adds to the layers below it.

``register`` is the ``shiftlab.plugins`` entry point named ``world`` (pyproject.toml), so ``load_model("world:mlp")``
and the mistakes study's default context work wherever shiftlab is installed, without importing this package
first. A user's package plugs in the same way.
"""

from __future__ import annotations

from shiftlab.analyze.mistakes import register_context
from shiftlab.curate.annotate import register_similar_classes
from shiftlab.models.specs import register_scheme
from shiftlab.world.hierarchy import SIMILAR
from shiftlab.world.mistakes import world_context
from shiftlab.world.scheme import SCHEME


def register() -> None:
    """Add the ``world:`` model scheme, the world's mistakes context and the digits' similar classes (for HIT
    controls); idempotent."""
    register_scheme(SCHEME)
    register_context(world_context)
    register_similar_classes("digits", SIMILAR)
