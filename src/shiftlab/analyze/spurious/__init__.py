"""Spurious features by class-wise neural PCA (SPECS S3, Neuhaus et al. 2023).

``pca``: the class-wise decomposition of a logit into components (fit, α, the stored basis); ``score``: the
spurious score (AP and ROC-AUC of p_k, positives against images of k's spurious feature without k);
``spufix``: SpuFix, the logit correction for labelled components, as a wrapper Classifier.
"""
