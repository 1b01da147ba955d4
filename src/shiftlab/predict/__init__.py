"""Predictions: the decoded-tensor cache, the PredictionStore, and the decode-once engine."""
