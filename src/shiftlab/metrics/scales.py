"""Accuracy scales: logit, probit and linear, with one clip constant for fitting and drawing alike.

Accuracies are fractions in [0, 1]. Logit and probit have no value at 0 or 1, so both are clipped to
[``EPS``, 1 − ``EPS``] first (``EPS`` = 1e-6: about ±13.8 in logit space). The fits of
``shiftlab.metrics.robustness`` and the axes of ``shiftlab.report.figures`` use these functions, so a model
at 100 % is fitted and drawn at the same place.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri  # = scipy.stats.norm's cdf / ppf, without importing scipy.stats

from shiftlab.errors import InputError

#: accuracies are clipped to [EPS, 1 − EPS] before a logit / probit transform (0 and 1 have none)
EPS = 1e-6
SCALES = ("logit", "probit", "linear")


# ------------------------------------------------------------------------------------------- transforms

def check_scale(scale: str) -> str:
    """Return ``scale`` if it is one of ``SCALES`` (logit, probit, linear); ``InputError`` otherwise."""
    if scale not in SCALES:
        raise InputError(f"unknown scale {scale!r}; use one of {', '.join(SCALES)}")
    return scale


def transform(acc, scale: str = "logit") -> np.ndarray:
    """Map accuracies (fractions) to the fitting space.

    Parameters
    ----------
    acc : array-like
        Accuracies as fractions in [0, 1].
    scale : {"logit", "probit", "linear"}, default="logit"
        ``logit``: t(a) = ln(a / (1 − a)); ``probit``: t(a) = Φ⁻¹(a) (``scipy.stats.norm.ppf``);
        ``linear``: t(a) = a.

    Returns
    -------
    t : ndarray of float

    Notes
    -----
    For logit and probit, accuracies are first clipped to [``EPS``, 1 − ``EPS``] (``EPS`` = 1e-6), so
    that 0 and 1 give finite values (about ±13.8 in logit space). Linear values are not clipped.
    """
    check_scale(scale)
    a = np.asarray(acc, dtype=float)
    if scale == "linear":
        return a.copy()
    a = np.clip(a, EPS, 1 - EPS)
    if scale == "logit":
        return np.log(a) - np.log1p(-a)
    return ndtri(a)


def inverse_transform(t, scale: str = "logit") -> np.ndarray:
    """Map values of the fitting space back to accuracies: the inverse of :func:`transform`.

    Parameters
    ----------
    t : array-like
    scale : {"logit", "probit", "linear"}, default="logit"
        ``logit``: 1 / (1 + e^(−t)); ``probit``: Φ(t); ``linear``: t.

    Returns
    -------
    acc : ndarray of float
    """
    check_scale(scale)
    t = np.asarray(t, dtype=float)
    if scale == "linear":
        return t.copy()
    if scale == "logit":
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-t))
    return ndtr(t)
