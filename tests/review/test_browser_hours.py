"""The review app for hours of work (issue 19.7), in a real browser: no literal "null" in the mistakes view,
a key that accepts the suggestion, undo that returns to the undone item in every view, the README's key table
read against the keys the app binds."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from shiftlab.review import tasks as tk
from review.test_browser import _events, _open, _until, page  # noqa: F401  (page is a fixture)

pytestmark = pytest.mark.browser

MISTAKES_CONFIG = {
    "title": "Which errors are real?",
    "decisions": [{"name": "Not a mistake", "help": "the prediction is right"},
                  {"name": "Fine-grained error", "reasons": ["Major", "Minor", "Borderline"]},
                  {"name": "Major", "reasons": ["Major", "Minor", "Borderline"]}],
}


def _mistakes_task(rws):
    ids = list(rws.pool.ids[:3])
    items = [{"id": ids[0], "caption": "eight → five: evidence", "suggestion": {"decision": "Fine-grained error", "reason": "Minor"}},
             {"id": ids[1], "caption": "nine → three", "suggestion": {"decision": "Not a mistake", "reason": None}},
             {"id": ids[2], "caption": "one → two", "suggestion": None}]
    return tk.images_task("pool", MISTAKES_CONFIG, name="mistakes", items=items, workspace=rws.ws)


def test_mistakes_view_shows_no_null_and_a_accepts_the_suggestion(page, live, rws):
    task = _mistakes_task(rws)
    _open(page, live, task["name"])
    expect(page.locator("#progress")).to_contain_text("1 / 3")
    for i in range(3):  # a no-crop config and a suggestion without a reason: nothing renders as "null"
        side = page.inner_text("aside.side")
        assert "null" not in side and "undefined" not in side, side
        page.keyboard.press("j")
    page.keyboard.press("k"), page.keyboard.press("k")
    expect(page.locator("#progress")).to_contain_text("1 / 3")
    expect(page.locator("#current")).to_contain_text("suggested: Fine-grained error · Minor")
    page.keyboard.press("?")
    expect(page.locator("#help")).to_contain_text("accept the suggestion")
    page.keyboard.press("Escape")
    page.keyboard.press("a")  # decision and reason of the suggestion in one key
    expect(page.locator("#progress")).to_contain_text("2 / 3 · decided 1")
    expect(page.locator("#current")).to_contain_text("suggested: Not a mistake")
    assert "· None" not in page.inner_text("#current")
    page.keyboard.press("a")  # a decision without reasons
    expect(page.locator("#progress")).to_contain_text("decided 2")
    page.keyboard.press("a")  # no suggestion: nothing is decided
    expect(page.locator("#status")).to_contain_text("no suggestion")
    ev = _events(rws, task["name"])
    assert [(e.target, e.decision, e.reason) for e in ev] == [
        (task["items"][0]["id"], "Fine-grained error", "Minor"), (task["items"][1]["id"], "Not a mistake", None)]
