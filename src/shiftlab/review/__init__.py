"""The review app and its decision log (DESIGN: ReviewLog; issue: the review app).

``shiftlab.review.log`` works without the web app (notebooks, CSV imports); ``shiftlab.review.tasks``
defines what reviewers are asked and turns their decisions back into the shapes the builders read;
``shiftlab.review.app`` is the FastAPI app and ``shiftlab.review.server`` runs it.
"""

from shiftlab.review.log import Event, ReviewLog, fold, read_decisions

__all__ = ["Event", "ReviewLog", "fold", "read_decisions"]
