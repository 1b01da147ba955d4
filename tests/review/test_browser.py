"""The review app in a real browser (Playwright driving Debian's chromium): keyboard review of the
near-duplicate queue with undo and reload, a crop box drawn with the mouse, a submitted labelling page,
the class browser; screenshots of every view go to test-artifacts/review/."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from helpers import drag_box
from shiftlab.review import tasks as tk
from shiftlab.review.log import UNDO, ReviewLog

pytestmark = pytest.mark.browser
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "review"


def _open(page, live, task, who="ann"):
    page.goto(f"{live.url}/task/{task}")
    page.wait_for_selector("#who-input", state="visible")  # first visit: who is deciding?
    page.fill("#who-input", who)
    page.press("#who-input", "Enter")
    page.wait_for_selector("#who-dialog", state="hidden")


def _until(page, expression, timeout=10.0):
    """Poll a JS expression (wait_for_function would eval inside the page, which its CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def _shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    _until(page, "Array.from(document.images).every(i => i.complete)")
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def _events(rws, task):
    with ReviewLog(tk.log_path(rws.ws)) as log:
        return log.events(task)


def test_near_duplicate_queue_by_keyboard_with_undo_and_reload(page, live, rws):
    task = rws.tasks["duplicates"]
    items = task["items"]
    _open(page, live, task["name"])
    page.wait_for_selector(".ncard.focus")
    assert page.text_content("#progress").startswith(f"pair 1 / {len(items)}")
    page.keyboard.press("1")  # pair 0: duplicate
    expect(page.locator("#progress")).to_contain_text("decided 1")
    page.keyboard.press("2")  # pair 1: not a duplicate
    expect(page.locator("#progress")).to_contain_text("decided 2")
    page.keyboard.press("j")  # skip pair 2
    page.keyboard.press("1")  # pair 3: duplicate
    expect(page.locator("#progress")).to_contain_text("decided 3")
    page.keyboard.press("u")  # undo pair 3: focus returns to it
    expect(page.locator("#progress")).to_contain_text("decided 2")
    assert page.text_content("#progress").startswith(f"pair 4 / {len(items)}")
    page.keyboard.press(" ")
    page.wait_for_selector("#preview", state="visible")
    _shot(page, "duplicates-preview")
    page.keyboard.press("Escape")
    page.reload()
    page.wait_for_selector(".ncard.focus")
    assert page.text_content("#progress").startswith(f"pair 4 / {len(items)}")  # the position survived
    focused = page.get_attribute(".ncard.focus", "data-target")
    assert focused == items[3]["target"]
    _shot(page, "duplicates")
    for _ in range(3):
        page.keyboard.press("k")
    expect(page.locator(f'.ncard[data-target="{items[0]["target"]}"] .badge')).to_have_text("duplicate")
    expect(page.locator(f'.ncard[data-target="{items[1]["target"]}"] .badge')).to_have_text("not duplicate")
    ev = _events(rws, task["name"])
    assert [(e.target, e.decision) for e in ev] == [(items[0]["target"], "duplicate"), (items[1]["target"], "distinct"),
                                                    (items[3]["target"], "duplicate"), (items[3]["target"], UNDO)]
    assert ev[3].supersedes == ev[2].id and {e.reviewer for e in ev} == {"ann"}


def test_crop_box_drawn_with_the_mouse_is_stored_in_original_pixels(page, live, rws):
    task = rws.tasks["images"]
    _open(page, live, task["name"])
    _until(page, "document.querySelector('#big').naturalWidth > 0")
    nat = page.evaluate("[document.querySelector('#big').naturalWidth, document.querySelector('#big').naturalHeight]")
    box = page.locator("#big").bounding_box()
    assert box["width"] > 2 * nat[0]  # shown enlarged: screen pixels are not image pixels
    fx0, fy0, fx1, fy1 = 0.25, 0.2, 0.75, 0.9
    drag_box(page, box, (fx0, fy0, fx1, fy1), via=0.5)
    assert "crop box:" in page.text_content("#current")
    _shot(page, "images-crop")
    page.keyboard.press("2")  # watermark → asks for the reason
    page.wait_for_selector("#reason-pick", state="visible")
    page.keyboard.press("1")  # corner: croppable
    expect(page.locator("#progress")).to_contain_text("decided 1")
    page.keyboard.press("1")  # the next image: clean
    expect(page.locator("#progress")).to_contain_text("decided 2")
    ev = _events(rws, task["name"])
    assert [(e.target, e.decision, e.reason) for e in ev] == [
        (task["items"][0]["id"], "watermark", "corner: croppable"), (task["items"][1]["id"], "clean", None)]
    expected = (fx0 * nat[0], fy0 * nat[1], fx1 * nat[0], fy1 * nat[1])
    assert ev[0].crop is not None and all(abs(a - b) <= 1 for a, b in zip(ev[0].crop, expected)), (ev[0].crop, expected)
    assert ev[1].crop is None
    _shot(page, "images")


def test_labelling_page_submits_what_hits_import_reads(page, live, rws, tmp_path):
    from shiftlab.curate.votes import import_votes

    task = rws.tasks["labelling"]
    _open(page, live, task["name"], who="worker-7")
    page.wait_for_selector("#grid .tile.focus")
    chosen = [0, 2, 9]
    for i in range(max(chosen) + 1):
        if i in chosen:
            page.keyboard.press("1" if i != 2 else "x")
        if i < max(chosen):
            page.keyboard.press("j")
    page.keyboard.press("k")
    page.keyboard.press("x")  # select 8 …
    page.keyboard.press("2")  # … and 2 clears it again
    assert page.locator("#grid .tile.selected").count() == 3
    _shot(page, "labelling")
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_contain_text(re.compile("^page 2"))  # moved on at once …
    expect(page.locator("#status")).to_contain_text("submitted page 1: 3 of")  # … and saved
    ev = _events(rws, task["name"])
    assert len(ev) == 1 and ev[0].target == task["items"][0]["target"] and ev[0].reviewer == "worker-7"
    answers = json.loads(ev[0].note)["answers"]
    assert [i for i, a in enumerate(answers) if a] == chosen
    with ReviewLog(tk.log_path(rws.ws)) as log:
        results = tk.labelling_results(log, task)
    results.to_csv(tmp_path / "results.csv", index=False)
    votes = import_votes(tmp_path / "results.csv", rws.batch)
    f = votes.frequencies.set_index("image_id")
    hit = task["items"][0]
    # a padded page can show an image twice: count its positions and the chosen ones among them
    for image_id in {im["id"] for im in hit["images"]}:
        positions = [i for i, im in enumerate(hit["images"]) if im["id"] == image_id]
        assert f.loc[image_id, "n_answers"] == len(positions)
        assert f.loc[image_id, "n_yes"] == len(set(positions) & set(chosen))


def test_class_browser_blacklists_by_key_and_filters(page, live, rws):
    task = rws.tasks["classes"]
    _open(page, live, task["name"])
    page.wait_for_selector("#grid .tile.focus")
    first = page.get_attribute("#grid .tile.focus", "data-id")
    page.keyboard.press("3")  # blacklist: low quality
    page.keyboard.press("0")  # the next one is fine
    expect(page.locator("#grid .badge")).to_have_count(2)
    page.check("#f-unreviewed")
    assert page.locator(f'#grid .tile[data-id="{first}"]').count() == 0
    page.uncheck("#f-unreviewed")
    page.keyboard.press("]")
    expect(page.locator("#class-head h1")).to_have_text(rws.pool.vocabulary.classes[1].name)
    # the grid's thumbnails came in one request, as data URLs
    assert page.get_attribute("#grid .tile img", "src").startswith("data:image/")
    _shot(page, "classes")
    st = {e.target: (e.decision, e.reason) for e in _events(rws, task["name"])}
    assert st[first] == ("blacklist", "low quality") and sorted(d for d, _ in st.values()) == ["blacklist", "ok"]


def test_a_script_tag_in_a_class_name_shows_as_text(page, live, rws):
    from dataclasses import replace

    from shiftlab.data.classes import ClassInfo, Vocabulary
    from shiftlab.registry import register_dataset

    evil = "<script>alert(1)</script>"
    voc = Vocabulary("evil", (ClassInfo(0, None, (evil,), '<img src=x onerror="alert(2)">'),
                              ClassInfo(1, None, ("two",), "")))
    register_dataset(replace(rws.pool, vocabulary=voc), "pool", rws.ws)
    t = tk.classes_task("pool", name="evil", workspace=rws.ws)
    _open(page, live, t["name"])
    page.wait_for_selector("#class-head h1")
    assert page.text_content("#class-head h1") == evil
    assert page.locator("#class-head script").count() == 0  # text, not an element; no dialog fired (fixture)
