"""The review commands run against the review tests' small workspace (tests/review)."""

from review.conftest import review_template, rws  # noqa: F401  (fixtures, used by name)
