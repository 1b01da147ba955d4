"""shiftlab: build, audit and evaluate test sets for image classifiers.

The five nouns (see DESIGN.md): Manifest, Classifier, PredictionStore, ReviewLog, Report.
"""

__version__ = "0.1.0"
