"""The easy-set review in a real browser (S5 "Review"): keep / crop / remove with a reason from S5's twelve (the
tenth to twelfth on 0, - and =), a crop box drawn with the mouse, whole-class exclusion and undo, all as ReviewLog
events that fold into the intervention records the build reads."""

from __future__ import annotations

import pandas as pd
import pytest
from playwright.sync_api import expect

from helpers import drag_box
from review.test_browser import _events, _open, _shot, _until
from shiftlab.curate.easyset.decisions import decision_records, queue_items
from shiftlab.review import tasks as tk
from shiftlab.review.decision_configs import builtin_config
from shiftlab.review.log import UNDO, read_decisions

pytestmark = pytest.mark.browser
REASONS = builtin_config("easyset")["decisions"][2]["reasons"]


def test_easyset_review_by_mouse_and_keys_folds_into_records(page, live, rws):
    ids = list(rws.pool.ids[rws.pool.labels == 0][:5])
    items = [{"id": f, "caption": f"class 0 · rank {r}"} for r, f in enumerate(ids, 1)]
    task = tk.images_task("pool", "easyset", name="easyset-pool", items=items, workspace=rws.ws)
    assert len(REASONS) == 12 and REASONS[9:] == ["small size", "virtual", "other"]
    _open(page, live, task["name"])
    _until(page, "document.querySelector('#big').naturalWidth > 0")
    nat = page.evaluate("[document.querySelector('#big').naturalWidth, document.querySelector('#big').naturalHeight]")
    box = page.locator("#big").bounding_box()
    fx0, fy0, fx1, fy1 = 0.1, 0.05, 0.8, 0.7
    drag_box(page, box, (fx0, fy0, fx1, fy1), via=0.4)
    assert "crop box:" in page.text_content("#current")
    page.keyboard.press("2")  # crop → its reason
    page.wait_for_selector("#reason-pick", state="visible")
    assert "watermark" in page.text_content("#reason-pick") and "=" in page.text_content("#reason-pick")
    _shot(page, "easyset-reason")
    page.keyboard.press("1")  # watermark
    expect(page.locator("#progress")).to_contain_text("decided 1")
    page.keyboard.press("3")  # image 2: remove …
    page.wait_for_selector("#reason-pick", state="visible")
    page.keyboard.press("0")  # … small size (the tenth reason)
    expect(page.locator("#progress")).to_contain_text("decided 2")
    page.keyboard.press("1")  # image 3: keep
    expect(page.locator("#progress")).to_contain_text("decided 3")
    page.keyboard.press("4")  # image 4: exclude the class …
    page.keyboard.press("-")  # … virtual (the eleventh)
    expect(page.locator("#progress")).to_contain_text("decided 4")
    page.keyboard.press("u")  # … undone
    expect(page.locator("#progress")).to_contain_text("decided 3")
    _shot(page, "easyset")
    ev = _events(rws, task["name"])
    assert [(e.target, e.decision, e.reason) for e in ev] == [
        (ids[0], "crop", "watermark"), (ids[1], "remove", "small size"), (ids[2], "keep", None),
        (ids[3], "exclude class", "virtual"), (ids[3], UNDO, None)]
    expected = (fx0 * nat[0], fy0 * nat[1], fx1 * nat[0], fy1 * nat[1])
    assert all(abs(a - b) <= 1 for a, b in zip(ev[0].crop, expected)), (ev[0].crop, expected)
    assert ev[4].supersedes == ev[3].id and {e.reviewer for e in ev} == {"ann"}
    # the log folds into the records the build reads: the undone exclusion is gone, the box is the drawn one
    queue = queue_items({0: [(f, 1.0 - r / 10) for r, f in enumerate(ids)]}, {})
    recs = decision_records(read_decisions(tk.log_path(rws.ws), task["name"]), queue)
    got = [(r.image, r.action, r.reason, r.crop) for r in recs.itertuples()]
    assert got == [(ids[0], "crop", "watermark", ev[0].crop), (ids[1], "remove", "small size", None),
                   (ids[2], "keep", None, None)]
    assert isinstance(recs, pd.DataFrame) and not (recs["action"] == "exclude").any()
