"""The published notes, audited (S5): each rule of the table on a sentence of its own, then the whole notes.txt:
the unmapped statements are listed, the notebook's substring rules give the published figures, the records' figures
differ where and as the audit explains, and removed_or_modified.txt is cross-checked."""

from __future__ import annotations

import pandas as pd

from shiftlab.curate.easyset.audit import PUBLISHED, compare, cross_check, notebook_figures
from shiftlab.curate.easyset.notes import RULES, import_notes
from shiftlab.curate.easyset.ranking import read_ranking
from shiftlab.curate.easyset.stats import easyset_statistics


def v(n):
    return f"ILSVRC2012_val_{n:08d}.JPEG"


RANKED = {7: [v(i) for i in (1, 2, 3, 4, 5)]}


def parsed(note, ranked=RANKED):
    ni = import_notes(f"# header\nclass 7: {note}\n", ranked)
    return [(r.image, r.action, r.reason, bool(r.cropped), r.rule) for r in ni.records.itertuples()], ni


def test_each_rule():
    assert {name for name, _ in RULES} == {"status", "extra", "remaining", "valid-count", "group", "remove", "crop",
                                           "contain", "reason"}
    recs, _ = parsed("ILSVRC2012_val_00000001 and ILSVRC2012_val_00000002.JPEG removed\ndue to watermarks.")
    assert recs == [(v(1), "remove", "watermark", False, "remove"), (v(2), "remove", "watermark", False, "remove")]
    recs, _ = parsed("ILSVRC2012_val_00000003.JPEG needs to be cropped due to outer frame.")
    assert recs == [(v(3), "crop", "frame/border", True, "crop")]
    # no full stop between two removals; a removal carried over by "and <id> due to"
    recs, _ = parsed("ILSVRC2012_val_00000001.JPEG removed due to low resolution\nILSVRC2012_val_00000002.JPEG and "
                     "ILSVRC2012_val_00000003.JPEG removed due watermarks and ILSVRC2012_val_00000004.JPEG due\nto "
                     "small size.")
    assert [(i, a, r) for i, a, r, _, _ in recs] == [(v(1), "remove", "low quality"), (v(2), "remove", "watermark"),
                                                     (v(3), "remove", "watermark"), (v(4), "remove", "small size")]
    recs, ni = parsed("ACTION REQUIRED -- two new images needed\nApart from ILSVRC2012_val_00000002.JPEG, all images "
                      "contain watermarks!\nX-Tra: ILSVRC2012_val_00000009.JPEG and ILSVRC2012_val_00000008.JPEG "
                      "(required cropping) -- higher ranked images contained watermarks.")
    assert [(i, a, c, rule) for i, a, _, c, rule in recs] == [
        (v(1), "remove", False, "group"), (v(3), "remove", False, "group"), (v(4), "remove", False, "group"),
        (v(5), "remove", False, "group"), (v(9), "add", False, "extra"), (v(8), "add", True, "extra")]
    assert ni.status == {7: "ACTION REQUIRED -- two new images needed"} and ni.unmapped.empty
    # a named image's record wins over the group's; "remaining" = the ranked images not removed by name
    _, ni = parsed("All five images contain watermarks. The following two images were\nremoved: "
                   "ILSVRC2012_val_00000001.JPEG and ILSVRC2012_val_00000005.JPEG\nReason: Required cropping would "
                   "delete parts of the relevant object.\nRemaining three images were cropped.")
    st = easyset_statistics(ni.records, RANKED, [7])
    assert st.classes.loc[0, "images"] == [v(2), v(3), v(4)] and st.classes.loc[0, "n_cropped"] == 3
    assert st.classes.loc[0, "category"] == "substituted"
    recs, _ = parsed("FINAL REMARK -- only one valid image exists!")
    assert [(i, rule) for i, _, _, _, rule in recs] == [(v(i), "valid-count") for i in (2, 3, 4, 5)]
    recs, _ = parsed('FINAL REMARK -- this class ("web site") is excluded!\nReason: The class is inherently digital.')
    assert recs == [(None, "exclude", "virtual", False, "status")]


def test_unmappable_sentences_are_listed_not_guessed():
    recs, ni = parsed("ILSVRC2012_val_00000001.JPEG and ILSVRC2012_val_00000002.JPEG due to watermarks. "
                      "ILSVRC2012_val_00000003.JPEG removed due to unnatural shadow. (BTW: a cockroach?!)")
    assert recs == [(v(3), "remove", "other", False, "remove")]
    assert list(ni.unmapped["why"]) == ["names images but no action (remove / crop)",
                                        "removal without a recognised reason (recorded as 'other')",
                                        "no image and no action"]
    _, ni = parsed("All five images were removed due to watermarks.", ranked=None)
    assert list(ni.unmapped["why"]) == ["speaks of unnamed images: needs the ranking (--ranking)"]


def test_published_notes_audited(reference):
    folder = reference / "s-r50-n"
    text = (folder / "notes.txt").read_text()
    ranked = {int(k): [f for f, _ in lst] for k, lst in read_ranking(folder / "safebets.json")["salman"].items()}
    ni = import_notes(text, ranked)
    assert len(ni.classes) == 553
    assert sorted(set(ni.unmapped["class"])) == [182, 195, 244, 270, 314, 453, 485, 523, 584, 720, 745, 782, 787, 849,
                                                 898]
    assert ni.conflicts.to_dict("records") == [{"class": 503, "image": v(38514), "actions": ["crop", "remove"]}]
    # the notebook's substring rules give every published figure they can reach
    nb, _ = notebook_figures(text)
    assert {k: nb[k] for k in PUBLISHED if k in nb and k != "additions_removed"} == \
        {k: PUBLISHED[k] for k in PUBLISHED if k in nb and k != "additions_removed"}
    st = easyset_statistics(ni.records, ranked, range(1000))
    table = compare(ni, st, text, ranked).set_index("figure")
    got = table["records"].to_dict()
    assert got["classes clean as ranked"] == 452 and got["classes crop-only"] == 18
    assert got["classes with top-5 substitutions"] == 457 and got["top-3 images removed in them"] == 542
    assert (got["classes needing additions"], got["filled"], got["excluded"], got["still short"]) == (73, 55, 1, 17)
    assert (got["with 0 images"], got["with 1 image"], got["with 2 images"]) == (4, 6, 7)
    assert got["images added in them"] == 109 and got["classes in the set"] == 995
    assert got["classes with the full number of images"] == 982
    # every difference is explained, naming the classes that make it
    diff = table[table["published"] != table["records"]]
    assert diff["explanation"].str.len().gt(0).all()
    assert "+1 (162): removals only at ranks 4-5" in table.loc["classes clean as ranked", "explanation"]
    assert "+3 (244, 270, 584): its note names images without an action" in \
        table.loc["classes clean as ranked", "explanation"]
    assert "542 at the target's ranks 1-3, 82 at 4-5, 2 not in its list" in \
        table.loc["top-3 images removed in them", "explanation"]
    assert (table.loc[["still short", "with 0 images", "with 1 image", "with 2 images"], "explanation"] == "").all()
    # a heading's count of valid images that names none: the assumed removals are marked as such
    assumed = ni.records[ni.records["rule"] == "valid-count"]
    assert sorted(set(assumed["class"])) == [501, 618] and len(assumed) == 3
    assert isinstance(table, pd.DataFrame)


def test_removed_or_modified_cross_check(reference):
    folder = reference / "s-r50-n"
    cc = cross_check((folder / "removed_or_modified.txt").read_text(), (folder / "notes.txt").read_text())
    assert (cc.n_lines, cc.n_unique, cc.without_extension) == (821, 820, 49)
    assert cc.malformed == ["ILSVRC2012_val_000013367"]
    assert cc.only_in_file == ["ILSVRC2012_val_000013367.JPEG"]
    assert cc.only_in_notes == [v(1336), v(3721), v(15689), v(47147)]
