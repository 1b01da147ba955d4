"""Models: the Classifier interface, spec strings → models (schemes, adapters, plug-ins), networks, attacks and the
seeded training loop. ``Recipe`` / ``RECIPES`` are re-exported from ``shiftlab.data.recipes``."""

from shiftlab.data.recipes import RECIPES, Recipe, get_recipe
from shiftlab.models.classifier import Classifier, TorchClassifier
from shiftlab.models.specs import SCHEMES, load_model

__all__ = ["RECIPES", "SCHEMES", "Classifier", "Recipe", "TorchClassifier", "get_recipe", "load_model"]
