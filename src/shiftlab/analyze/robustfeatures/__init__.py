"""Robust and non-robust features (SPECS S4: Ilyas et al. 2019, and the MNIST perturbation-group study).

``evaluate``: clean and robust accuracy of many models under one attack (``robust_accuracy``); ``invert``:
representation inversion; ``construct``: D_R / D_NR / D_det / D_rand as resumable files + manifests
(``build_set``); ``protocol``: the (robust, standard) pair → the four sets (``robust_datasets``) and fresh models
trained on each (``robust_study``); ``mnist``: the MNIST study (Tables 1–2, the reconstruction grid), its models
trained by ``mnist_train`` (the study's own loops); ``loaders``: ``load_robust_dataset`` / ``load_nonrobust_dataset``.
"""

from shiftlab.analyze.robustfeatures.loaders import load_nonrobust_dataset, load_robust_dataset

__all__ = ["load_nonrobust_dataset", "load_robust_dataset"]
