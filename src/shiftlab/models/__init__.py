"""Models: the Classifier interface, preprocessing recipes, and adapters from spec strings."""

from shiftlab.data.recipes import RECIPES, Recipe, get_recipe
from shiftlab.models.classifier import Classifier, TorchClassifier
from shiftlab.models.specs import SCHEMES, load_model

__all__ = ["RECIPES", "SCHEMES", "Classifier", "Recipe", "TorchClassifier", "get_recipe", "load_model"]
