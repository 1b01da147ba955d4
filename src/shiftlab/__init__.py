"""shiftlab: build, audit and evaluate test sets for image classifiers.

The five nouns (ARCHITECTURE.md): Manifest, Classifier, PredictionStore, ReviewLog, Report. The main entry
points are importable from here, so a notebook needs no submodule paths::

    import shiftlab as sl
    test = sl.read_dataset("world-test")
    result = sl.evaluate(test, ["world:mlp", "world:cnn-wide"])

They load on first use (``import shiftlab`` itself imports nothing heavy): each name below maps to the module
that defines it.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name → the module that defines it
_EXPORTS = {
    # data
    "Manifest": "shiftlab.data.manifest", "read_dataset": "shiftlab.data.layouts",
    "Recipe": "shiftlab.data.recipes", "read_labelled_dataset": "shiftlab.data.labelfiles",
    # models and predictions
    "load_model": "shiftlab.models.specs", "register_scheme": "shiftlab.models.specs",
    "Classifier": "shiftlab.models.classifier", "TorchClassifier": "shiftlab.models.classifier",
    # (``predict`` itself is ``shiftlab.predict.predict``: the name here is the subpackage)
    "PredictionStore": "shiftlab.predict.store",
    # studies
    "evaluate": "shiftlab.analyze.evaluate", "multilabel_summary": "shiftlab.analyze.multilabel",
    "robustness_study": "shiftlab.analyze.robustness", "effective_robustness": "shiftlab.metrics.robustness",
    "find_mistakes": "shiftlab.analyze.mistakes", "mistakes_study": "shiftlab.analyze.mistakes",
    "confusion_study": "shiftlab.analyze.mistakes", "label_issues": "shiftlab.analyze.label_issues",
    "find_near_duplicates": "shiftlab.curate.dedup", "dedup_pool": "shiftlab.curate.imagenetv2",
    "sample_pool_revision": "shiftlab.curate.imagenetv2", "import_candidates": "shiftlab.curate.candidates",
    "make_hit_batch": "shiftlab.curate.annotate", "import_hits": "shiftlab.curate.votes",
    # report, review, the embedded world
    "Report": "shiftlab.report.html", "ReviewLog": "shiftlab.review.log",
    "build_world": "shiftlab.world", "load_world": "shiftlab.world", "run_demo": "shiftlab.world.demo",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shiftlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
