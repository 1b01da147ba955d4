"""Analyses: pure functions over manifests, images and predictions.

- ``perturbations``: the five perturbation groups of the MNIST robust-features study (SPECS S4), used by
  worst-of-k training in the embedded zoo and by the robust-features tables.
"""
