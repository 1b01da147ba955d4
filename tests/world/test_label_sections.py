"""The report sections of the label studies (what the demo shows), on the shared world with two zoo models."""

from __future__ import annotations

import re

from conftest import ZOO_WORLD_MODELS
from shiftlab.analyze.mistakes import NOT_A_MISTAKE
from shiftlab.report import Report
from shiftlab.world.label_sections import label_issues_section, multilabel_section


def test_sections_write_tables_figures_and_thumbnails(zoo_world, tmp_path):
    specs = [f"world:{n}" for n in ZOO_WORLD_MODELS]
    rep = Report("labels")
    ml_sec, study = multilabel_section(zoo_world, specs, progress=False)
    li_sec, ranking = label_issues_section(zoo_world, specs, progress=False)
    rep.add(ml_sec)
    rep.add(li_sec)
    html = rep.write(tmp_path).read_text()
    for src in re.findall(r'<img[^>]+src="([^"]+)"', html):
        assert (tmp_path / src).is_file(), src
    assert {"mistake-categories.png", "confusions.png"} <= {p.name for p in tmp_path.glob("*.png")}
    assert len(list(tmp_path.glob("not-a-mistake-*"))) == 16 and len(list(tmp_path.glob("label-issues-*"))) == 16
    # one row per model; multi-label accuracy above top-1 for every model, as the planted blends predict
    a = study.accuracy
    assert list(a.model) == list(ZOO_WORLD_MODELS) and (a.ml_accuracy > a.top1).all()
    assert (study.fractions[NOT_A_MISTAKE] > 0).all()
    n = len(zoo_world.truth()["label_errors"])
    assert f"are among the first {2 * n}" in html and "Which given labels are wrong?" in html
    assert len(ranking) == len(zoo_world.manifest("test"))
