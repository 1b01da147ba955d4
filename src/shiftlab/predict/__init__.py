"""Predictions: the decoded-tensor cache, the PredictionStore, and the decode-once engine."""

from shiftlab.predict.engine import ModelPredictions, predict

__all__ = ["ModelPredictions", "predict"]
