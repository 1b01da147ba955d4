"""The review app for hours of work (issue 19.7), in a real browser: no literal "null" in the mistakes view,
a key that accepts the suggestion, undo that returns to the undone item in every view, the README's key table
read against the keys the app binds."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from review.test_browser import _events, _open, _until
from shiftlab.review import tasks as tk

pytestmark = pytest.mark.browser

MISTAKES_CONFIG = {
    "title": "Which errors are real?",
    "decisions": [{"name": "Not a mistake", "help": "the prediction is right"},
                  {"name": "Fine-grained error", "reasons": ["Major", "Minor", "Borderline"]},
                  {"name": "Major", "reasons": ["Major", "Minor", "Borderline"]}],
}


def _mistakes_task(rws):
    ids = list(rws.pool.ids[:3])
    items = [{"id": ids[0], "caption": "eight → five: evidence",
              "suggestion": {"decision": "Fine-grained error", "reason": "Minor"}},
             {"id": ids[1], "caption": "nine → three", "suggestion": {"decision": "Not a mistake", "reason": None}},
             {"id": ids[2], "caption": "one → two", "suggestion": None}]
    return tk.images_task("pool", MISTAKES_CONFIG, name="mistakes", items=items, workspace=rws.ws)


def test_mistakes_view_shows_no_null_and_a_accepts_the_suggestion(page, live, rws):
    task = _mistakes_task(rws)
    _open(page, live, task["name"])
    expect(page.locator("#progress")).to_contain_text("1 / 3")
    for _ in range(3):  # a no-crop config and a suggestion without a reason: nothing renders as "null"
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


README = Path(__file__).resolve().parents[2] / "README.md"
VIEWS = {"near-duplicates": "duplicates", "class browser": "classes", "labelling": "labelling",
         "image decisions": "images"}
ARROWS = ["ArrowDown", "ArrowLeft", "ArrowRight", "ArrowUp"]


def _keys(text: str) -> set[str]:
    """The keys a README cell names: `1`–`5` is a range, `space` the space bar, "arrows" the four arrows."""
    out = set()
    for a, b in re.findall(r"`([^`]+)`\s*–\s*`([^`]+)`", text):
        out |= {str(i) for i in range(int(a), int(b) + 1)}
    text = re.sub(r"`[^`]+`\s*–\s*`[^`]+`", "", text)
    out |= {{"space": " ", "Esc": "Escape"}.get(k, k) for k in re.findall(r"`([^`]+)`", text)}
    if "arrows" in text:
        out |= set(ARROWS)
    return out


def _readme_keys():
    sec = README.read_text(encoding="utf-8").split("## The review app", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in sec.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in VIEWS:
            rows[VIEWS[cells[0]]] = _keys(cells[2])
    everywhere = _keys(re.search(r"Everywhere:(.*?)Decisions flow", sec, re.S).group(1))
    return rows, everywhere


def test_readme_key_table_matches_the_keys_each_view_binds(page, live, rws):
    rows, everywhere = _readme_keys()
    assert set(rows) == set(VIEWS.values()), rows
    assert {"j", "k", "u", "?", "Escape", *ARROWS} <= everywhere, everywhere
    first = True
    for kind, documented in rows.items():
        if first:
            _open(page, live, rws.tasks[kind]["name"])
            first = False
        else:
            page.goto(f"{live.url}/task/{rws.tasks[kind]['name']}")
        _until(page, "SL.boundKeys().includes('u')")
        bound = set(page.evaluate("SL.boundKeys()"))
        # every key the README gives this view does something there, and the view binds nothing it does not name
        assert documented <= bound, (kind, documented - bound)
        assert bound <= documented | everywhere, (kind, bound - documented - everywhere)
        assert everywhere - {"?", "Escape"} <= bound, (kind, everywhere - bound)  # ? and Esc: common.js itself


def test_labelling_1_and_x_select_and_2_unselects(page, live, rws):
    _open(page, live, rws.tasks["labelling"]["name"])
    page.wait_for_selector("#grid .tile.focus")
    sel = page.locator("#grid .tile.selected")
    page.keyboard.press("1")
    expect(sel).to_have_count(1)
    page.keyboard.press("1")  # selecting again keeps it selected (not a toggle)
    page.keyboard.press("x")
    expect(sel).to_have_count(1)
    page.keyboard.press("2")
    expect(sel).to_have_count(0)
    page.keyboard.press("2")
    expect(sel).to_have_count(0)
    page.locator("#grid .tile").nth(3).click()  # a click toggles
    expect(sel).to_have_count(1)
    page.locator("#grid .tile").nth(3).click()
    expect(sel).to_have_count(0)


def test_undo_moves_back_to_the_undone_tile_in_every_view(page, live, rws):
    # near-duplicates: decide pair 1, walk on, undo → pair 1 again
    dup = rws.tasks["duplicates"]
    _open(page, live, dup["name"])
    page.wait_for_selector(".ncard.focus")
    page.keyboard.press("1")
    expect(page.locator("#progress")).to_contain_text("decided 1")
    page.keyboard.press("j"), page.keyboard.press("j")
    page.keyboard.press("u")
    expect(page.locator("#progress")).to_contain_text("pair 1 / ")
    expect(page.locator("#progress")).to_contain_text("decided 0")

    # image decisions: the same
    im = rws.tasks["images"]
    page.goto(f"{live.url}/task/{im['name']}")
    expect(page.locator("#progress")).to_contain_text("1 / ")
    page.keyboard.press("1")
    expect(page.locator("#progress")).to_contain_text("2 / ")
    expect(page.locator("#progress")).to_contain_text("decided 1")
    page.keyboard.press("j"), page.keyboard.press("j")
    expect(page.locator("#progress")).to_contain_text("4 / ")
    page.keyboard.press("u")
    expect(page.locator("#progress")).to_contain_text("1 / ")
    expect(page.locator("#progress")).to_contain_text("decided 0")

    # class browser: blacklist a tile of class 1, move to the next class, undo → class 1, that tile in focus
    cl = rws.tasks["classes"]
    page.goto(f"{live.url}/task/{cl['name']}")
    page.wait_for_selector("#grid .tile.focus")
    page.keyboard.press("j")
    target = page.get_attribute("#grid .tile.focus", "data-id")
    first_class = page.text_content("#class-head h1")
    page.keyboard.press("2")
    expect(page.locator(f'#grid .tile[data-id="{target}"] .badge')).to_have_count(1)
    page.keyboard.press("]")
    expect(page.locator("#class-head h1")).not_to_have_text(first_class)
    page.keyboard.press("u")
    expect(page.locator("#class-head h1")).to_have_text(first_class)
    expect(page.locator("#grid .tile.focus")).to_have_attribute("data-id", target)
    expect(page.locator(f'#grid .tile[data-id="{target}"] .badge')).to_have_count(0)

    # labelling: submit page 1, go on to page 3, undo → page 1, not submitted
    lb = rws.tasks["labelling"]
    page.goto(f"{live.url}/task/{lb['name']}")
    page.wait_for_selector("#grid .tile.focus")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("submitted page 1")
    page.keyboard.press("]")
    expect(page.locator("#progress")).to_contain_text(re.compile("^page 3"))
    page.keyboard.press("u")
    expect(page.locator("#progress")).to_contain_text(re.compile("^page 1 / .* not submitted"))


def test_position_follows_the_reviewer_to_another_browser(page, live, rws):
    task = rws.tasks["duplicates"]
    _open(page, live, task["name"], who="ann")
    page.wait_for_selector(".ncard.focus")
    for _ in range(3):
        page.keyboard.press("j")
    expect(page.locator("#progress")).to_contain_text("pair 4 / ")
    deadline = time.monotonic() + 10  # the last move reaches the server
    while live.app.state.positions.get(task["name"], "ann") != "3":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    browser = page.context.browser
    for who, expected in (("ann", "pair 4 / "), ("bob", "pair 1 / ")):
        ctx = browser.new_context()  # another browser profile: no local storage, no URL hash
        pg = ctx.new_page()
        pg.goto(f"{live.url}/?token={live.token}")
        _open(pg, live, task["name"], who=who)
        expect(pg.locator("#progress")).to_contain_text(expected)
        ctx.close()


def test_n_marks_the_rest_of_the_query_not_duplicate(page, live, rws):
    task = rws.tasks["duplicates"]
    items = task["items"]
    q0 = items[0]["query"]
    group = [it["target"] for it in items if it["query"] == q0]
    assert len(group) >= 2, "the fixture's first query needs two neighbours"
    _open(page, live, task["name"])
    page.wait_for_selector(".ncard.focus")
    page.keyboard.press("1")  # the first pair: duplicate; the rest of that query in one key
    expect(page.locator("#progress")).to_contain_text("decided 1")
    page.keyboard.press("n")
    expect(page.locator("#progress")).to_contain_text(f"decided {len(group)}")
    expect(page.locator("#progress")).to_contain_text(f"pair {len(group) + 1} / ")  # the next query
    ev = _events(rws, task["name"])
    assert {(e.target, e.decision) for e in ev} == {(group[0], "duplicate"), *((t, "distinct") for t in group[1:])}
    page.keyboard.press("n")  # the next query's pairs, none of the first's again
    expect(page.locator("#status")).to_contain_text("not duplicate")
    assert all(e.target not in group for e in _events(rws, task["name"])[len(ev):])


def test_a_range_in_the_class_grid_takes_one_decision(page, live, rws):
    task = rws.tasks["classes"]
    _open(page, live, task["name"])
    page.wait_for_selector("#grid .tile.focus")
    ids = page.eval_on_selector_all("#grid .tile", "ts => ts.map(t => t.dataset.id)")
    page.keyboard.press("J"), page.keyboard.press("J")  # tiles 0..2
    expect(page.locator("#grid .tile.ranged")).to_have_count(3)
    page.keyboard.press("3")
    expect(page.locator("#grid .tile.ranged")).to_have_count(0)
    expect(page.locator("#grid .tile .badge")).to_have_count(3)
    page.locator("#grid .tile").nth(4).click()
    page.locator("#grid .tile").nth(6).click(modifiers=["Shift"])  # tiles 4..6
    expect(page.locator("#grid .tile.ranged")).to_have_count(3)
    page.keyboard.press("Escape")  # dropped: the next key decides the focus only
    expect(page.locator("#grid .tile.ranged")).to_have_count(0)
    page.locator("#grid .tile").nth(6).click(modifiers=["Shift"])
    expect(page.locator("#grid .tile.ranged")).to_have_count(1)
    page.locator("#grid .tile").nth(4).click(modifiers=["Shift"])
    page.keyboard.press("0")
    expect(page.locator("#grid .tile .badge")).to_have_count(6)
    got = {(e.target, e.decision, e.reason) for e in _events(rws, task["name"])}
    r = task["reasons"][2]
    assert got == {*((i, "blacklist", r) for i in ids[:3]), *((i, "ok", None) for i in ids[4:7])}, got
