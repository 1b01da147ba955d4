"""Errors that a user can act on.

Every ShiftlabError carries a one-line message that says what is wrong and what to do; the CLI prints it
and exits with status 2 (a traceback only with ``--debug``).
"""

from __future__ import annotations


class ShiftlabError(Exception):
    """Base class: bad input or configuration that the user can fix."""

    def __init__(self, message: str):
        # one line, always: the CLI shows nothing else
        super().__init__(" ".join(str(message).split()))


class InputError(ShiftlabError):
    """A file, folder or value given by the user is malformed, missing or inconsistent."""


class LabelFileError(InputError):
    """A label file is malformed, repeats an image, names a class out of range, or does not fit the set."""


class UnknownNameError(ShiftlabError):
    """A dataset, model, layout or class name that nothing is registered under."""


class MissingDependencyError(ShiftlabError):
    """An optional library (torchvision, timm, onnxruntime, ...) is not importable here."""


class PredictionMismatchError(InputError):
    """Precomputed predictions do not match the manifest (ids, row count, class count)."""


class IncompleteError(ShiftlabError):
    """A stored result is not finished; it is never read as if it were."""
