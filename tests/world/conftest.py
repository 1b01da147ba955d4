"""The zoo's models are checked against the same Classifier contract as the adapters (tests/models)."""

from models.conftest import check_classifier  # noqa: F401  (a fixture, used by name)
