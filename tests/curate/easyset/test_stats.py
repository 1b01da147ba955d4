"""The statistics, reconciled (S5): a hand-made review log with known counts, undo included, folded through the
ReviewLog into records; every figure is checked, and the partitions add up."""

from __future__ import annotations

import pandas as pd
import pytest

from shiftlab.curate.easyset.decisions import choose_extras, decision_records, queue_items
from shiftlab.curate.easyset.records import make_records
from shiftlab.curate.easyset.stats import easyset_statistics
from shiftlab.errors import InputError
from shiftlab.review.log import ReviewLog, read_decisions


def f(k, r):
    return f"c{k}-r{r}"


#: 8 classes; class 6 has only 2 ranked images; every class has 3 extras x1..x3 (confidence falling)
RANKED = {k: [(f(k, r), 1 - r / 100) for r in range(1, 6 if k != 6 else 3)] for k in range(8)}
EXTRAS = {k: [(f"c{k}-x{i}", 0.9 - i / 100) for i in range(1, 4)] for k in range(8)}


def test_hand_made_log_known_counts(tmp_path):
    q = queue_items(RANKED, EXTRAS)
    T = "easyset-test"
    with ReviewLog(tmp_path / "log.sqlite") as log:
        def say(target, decision, reason=None, crop=None):
            return log.append(reviewer="ann", task=T, target=target, decision=decision, reason=reason, crop=crop)
        # class 0: nothing → clean; class 7: only rank 5 removed → still clean (the top-3 stands)
        say(f(7, 5), "remove", "noise")
        say(f(1, 2), "crop", "watermark", (0, 0, 10, 8))                    # crop-only
        say(f(2, 1), "remove", "watermark")                                  # substituted by rank 4 …
        say(f(2, 4), "crop", "frame/border", (1, 1, 9, 9))                   # … which is cropped
        for r, why in ((1, "noise"), (2, "watermark"), (3, "watermark"), (4, "greyscale")):
            say(f(3, r), "remove", why)                                      # 1 survivor: needs 2 extras
        say("c3-x1", "crop", "watermark", (0, 0, 5, 5))                      # usable but cropped
        say("c3-x2", "keep")
        say("c3-x3", "keep")                                                 # uncropped beats x1's confidence
        for r in range(1, 6):
            say(f(4, r), "remove", "small size")                             # all 5 gone, 1 extra: short with 1
        say("c4-x1", "remove", "watermark")
        say("c4-x2", "keep")
        wrong = say("class:5", "exclude class", "virtual")
        log.undo(wrong.id, reviewer="ann")                                   # undone …
        say("class:5", "exclude class", "other")                             # … and decided again
        # class 6: 2 ranked images, nobody added any → short with 2
        decisions = read_decisions(log, T)
    recs = decision_records(decisions, q)
    adds = recs[recs["action"] == "add"]
    assert list(adds["image"]) == ["c3-x2", "c3-x3", "c4-x2"]  # x1 (cropped) lost to the uncropped ones
    st = easyset_statistics(recs, {k: [x for x, _ in v] for k, v in RANKED.items()}, range(8))
    got = dict(zip(st.table["key"], st.table["count"]))
    assert got == {"classes": 8, "clean": 2, "crop_only": 1, "substituted": 1, "substituted_removed": 1,
                   "substituted_cropped": 1, "additions": 4, "filled": 1, "excluded": 1, "short": 2, "short_0": 0,
                   "short_1": 1, "short_2": 1, "additions_removed": 9, "additions_added": 3, "removed": 11,
                   "added": 3, "cropped": 2, "images": 3 + 3 + 3 + 3 + 1 + 0 + 2 + 3, "set_classes": 7,
                   "full_classes": 5}
    cats = dict(zip(st.classes["class"], st.classes["category"]))
    assert cats == {0: "clean", 1: "crop-only", 2: "substituted", 3: "filled", 4: "short", 5: "excluded",
                    6: "short", 7: "clean"}
    assert st.classes.set_index("class").loc[2, "images"] == [f(2, 2), f(2, 3), f(2, 4)]
    reasons = st.reasons.set_index("reason")
    assert reasons.loc["watermark", "removal_classes"] == 3  # classes 2, 3 and 4 (its removed extra x1)
    assert reasons.loc["watermark", "intervention_classes"] == 4  # + class 1's crop (class 3's cropped x1 unused)
    assert reasons.loc["small size", "removal_classes"] == 1 and reasons.loc["virtual", "removal_classes"] == 0


def test_partitions_are_asserted():
    """A class the fold cannot place in one category is a bug, and the assertion says so (never a wrong table)."""
    recs = make_records([{"class": 0, "image": "a", "action": "remove", "reason": "noise"}])
    st = easyset_statistics(recs, {0: ["a", "b", "c", "d"]}, [0])
    assert st.figure("substituted") == 1 and st.figure("images") == 3


def test_choose_extras_prefers_uncropped():
    usable = pd.DataFrame({"id": ["hi", "mid", "lo"], "confidence": [0.99, 0.9, 0.8], "cropped": [True, False, False]})
    assert choose_extras(usable, 2) == ["mid", "lo"] and choose_extras(usable, 3) == ["mid", "lo", "hi"]


def test_records_reject_unknown_reason():
    with pytest.raises(InputError, match="reason 'ugly'"):
        make_records([{"class": 0, "image": "a", "action": "remove", "reason": "ugly"}])


def test_reasons_chart_draws_the_classes_per_reason():
    from shiftlab.report.figures.easyset import reasons_chart

    recs = make_records([{"class": k, "image": f"i{k}", "action": "remove", "reason": r}
                         for k, r in ((0, "watermark"), (1, "watermark"), (2, "noise"), (2, "watermark"))])
    st = easyset_statistics(recs, {k: [f"i{k}", "a", "b", "c"] for k in range(3)}, range(3))
    fig = reasons_chart(st.reasons)
    bars = sorted((p.get_width(), p.get_y()) for p in fig.axes[0].patches)
    assert [w for w, _ in bars] == [1, 3]  # noise 1 class, watermark 3; reasons no class has are left out
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert set(labels) == {"watermark", "noise"}
