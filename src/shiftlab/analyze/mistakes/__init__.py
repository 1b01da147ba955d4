"""Which errors are real (SPECS S2): mistake records, class confusions and the automatic pre-categorisation.

- Mistake records in the ``vit3b_mistakes.json`` shape of Vasudevan et al. 2022:
  ``{file name: {"top_prediction": int, "failure category": str, "failure severity": str}}``.
  ``read_mistakes`` merges the two spellings of the OOV category and can fold Borderline into Minor;
  ``write_mistakes`` writes the same shape back (sorted by file name), so a file round-trips.
- Class confusions: unordered class pairs with counts, stored with a < b (``read_confusions`` reads the
  published ``class_confusion_*.json``; ``confusion_pairs`` counts them over the top-1 errors of a model set).
- ``precategorize``: every top-1 error gets a suggested category in the order of Peychev et al. 2023 (the
  automated version of the manual review), with the evidence of each check:
  1. the prediction is in the image's correct ∪ unclear multi-labels → "Not a mistake";
  2. label and prediction share a superclass in the class hierarchy → "Fine-grained error";
  3. the prediction is among the classes of the image's nearest training images in feature space
     → "Fine-grained error with OOV" (the image looks like training images of the predicted class);
  4. the predicted class's spurious cue is present in the image (where that is known) → "Spurious Correlation";
  5. otherwise → "Major" (a candidate: a person confirms it).
  People confirm or change each suggestion in the review app: ``review_queue_items`` makes the queue,
  ``apply_review_decisions`` turns the folded decisions into the final records.

Modules: ``records`` (categories and the record files), ``confusions``, ``precategorize`` (the checks) and
``study`` (``find_mistakes``: one model on one set, its review queue and final records). The figures are in
``shiftlab.report.figures`` (``confusions``, ``categories``).
"""

from shiftlab.analyze.mistakes.confusions import (
    CONFUSION_COLUMNS,
    ConfusionStudy,
    confusion_pairs,
    confusion_study,
    model_confusions,
    read_confusions,
)
from shiftlab.analyze.mistakes.precategorize import nearest_training_labels, precategorize
from shiftlab.analyze.mistakes.records import (
    AUTO_ORDER,
    CATEGORIES,
    FINE_GRAINED,
    FINE_GRAINED_OOV,
    MAJOR,
    MULTILABEL_OPTIONS,
    NON_PROTOTYPICAL,
    NOT_A_MISTAKE,
    RECORD_COLUMNS,
    SEVERITIES,
    SPURIOUS,
    SUGGESTED_SEVERITY,
    mistakes_to_json,
    normalize_category,
    normalize_severity,
    read_mistakes,
    write_mistakes,
)
from shiftlab.analyze.mistakes.study import (
    MistakesResult,
    apply_review_decisions,
    category_fractions,
    default_context,
    find_mistakes,
    hierarchy_for,
    mistakes_study,
    read_cues,
    register_context,
    review_config,
    review_queue_items,
)

__all__ = [
    "AUTO_ORDER",
    "CATEGORIES",
    "CONFUSION_COLUMNS",
    "FINE_GRAINED",
    "FINE_GRAINED_OOV",
    "MAJOR",
    "MULTILABEL_OPTIONS",
    "NON_PROTOTYPICAL",
    "NOT_A_MISTAKE",
    "RECORD_COLUMNS",
    "SEVERITIES",
    "SPURIOUS",
    "SUGGESTED_SEVERITY",
    "ConfusionStudy",
    "MistakesResult",
    "apply_review_decisions",
    "category_fractions",
    "confusion_pairs",
    "confusion_study",
    "default_context",
    "find_mistakes",
    "hierarchy_for",
    "mistakes_study",
    "mistakes_to_json",
    "model_confusions",
    "nearest_training_labels",
    "normalize_category",
    "normalize_severity",
    "precategorize",
    "read_confusions",
    "read_cues",
    "read_mistakes",
    "register_context",
    "review_config",
    "review_queue_items",
    "write_mistakes",
]
