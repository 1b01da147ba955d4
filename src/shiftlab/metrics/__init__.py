"""Metrics: functions of arrays (predictions, labels) that return numbers and DataFrames."""

from shiftlab.metrics.accuracy import (
                                       accuracy_summary,
                                       clopper_pearson,
                                       per_class_accuracy,
                                       topk_correct,
                                       topk_indices,
)

__all__ = ["accuracy_summary", "clopper_pearson", "per_class_accuracy", "topk_correct", "topk_indices"]
