"""Effective-robustness fits that say when they mean nothing (too few reference models, a degenerate spread),
in the table, the report and the plot, and as an error with --strict; the report's table and zoomed plot."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from shiftlab.analyze.robustness import MIN_REFERENCE, fit_warnings, robustness_study
from shiftlab.cli import main
from shiftlab.errors import InputError


def _results(tmp_path, rows, n=1000):
    """A results CSV as 'shiftlab eval --out' writes it: (model, id accuracy, shifted accuracy) per row."""
    df = pd.DataFrame([{"model": m, "dataset": ds, "n_images": n, "n_bad": 0, "top1": a}
                       for m, a, b in rows for ds, a in (("id", a), ("ood", b))])
    path = tmp_path / "results.csv"
    df.to_csv(path, index=False)
    return path


SPREAD = [("a", 0.60, 0.45), ("b", 0.70, 0.57), ("c", 0.80, 0.66), ("d", 0.90, 0.81)]


def test_two_models_warn_and_strict_refuses(tmp_path):
    path = _results(tmp_path, SPREAD[:2])
    r = robustness_study("id", "ood", results=path, n_boot=200)
    # the line goes through both points: every effective robustness is 0, with a zero-width interval
    np.testing.assert_allclose(r.table.effective_robustness, 0, atol=1e-12)
    assert len(r.warnings) == 1 and "only 2 reference models" in r.warnings[0]
    with pytest.raises(InputError, match=r"only 2 reference models.*\(--strict\)"):
        robustness_study("id", "ood", results=path, n_boot=200, strict=True)


def test_enough_models_with_spread_do_not_warn(tmp_path):
    r = robustness_study("id", "ood", results=_results(tmp_path, SPREAD), n_boot=200, strict=True)
    assert r.warnings == [] and r.fit.n == len(SPREAD) >= MIN_REFERENCE
    assert (r.table.effective_robustness_high > r.table.effective_robustness_low).all()


def test_a_degenerate_spread_warns(tmp_path):
    # four models within 0.6 points of one another on 1,000 images: far inside one model's 95% interval (±3 points)
    rows = [("a", 0.700, 0.55), ("b", 0.702, 0.60), ("c", 0.704, 0.52), ("d", 0.706, 0.58)]
    r = robustness_study("id", "ood", results=_results(tmp_path, rows), n_boot=200)
    assert len(r.warnings) == 1 and "span only 70.00–70.60%" in r.warnings[0]
    assert "less than their typical 95% interval" in r.warnings[0]
    # the same models measured on 10 million images each: their intervals are far narrower than the spread
    r = robustness_study("id", "ood", results=_results(tmp_path, rows, n=10_000_000), n_boot=200)
    assert r.warnings == []
    # without intervals the bar is one point of accuracy (the testbed's top1s.csv has no image counts)
    no_ci = r.result.table.drop(columns=["id_acc_low", "id_acc_high"])
    assert "less than 1 point" in fit_warnings(dataclasses.replace(r.result, table=no_ci))[0]


def test_the_warning_is_in_the_report_and_the_plot(tmp_path):
    r = robustness_study("id", "ood", results=_results(tmp_path, SPREAD[:2]), n_boot=50)
    _, page = r.write(tmp_path / "rb")
    html = page.read_text()
    assert re.search(r'<aside class="note warning">\s*<p><strong>Warning:</strong> the line is fitted on only 2', html)
    # the plot says it above its axes (a figure title covers no point)
    from shiftlab.report.figures import robustness_plot

    fig = robustness_plot(r.result, band=r.band, warning=r.warnings[0])
    assert fig._suptitle is not None and fig._suptitle.get_text() == f"warning: {r.warnings[0]}"
    assert robustness_plot(r.result, band=r.band)._suptitle is None


def test_report_has_the_table_beside_the_figure_and_zooms_to_the_reference_range(tmp_path):
    # four reference models between 60 and 90 %, one far below: it is left out of the zoomed plot only
    rows = [*SPREAD, ("tiny", 0.02, 0.01)]
    types = tmp_path / "types.csv"
    pd.DataFrame({"model": [m for m, *_ in rows], "type": ["STANDARD"] * 4 + ["OTHER"]}).to_csv(types, index=False)
    r = robustness_study("id", "ood", results=_results(tmp_path, rows), types=types, n_boot=100)
    csv, page = r.write(tmp_path / "rb")
    html = page.read_text()
    figs = re.findall(r'<img src="([^"]+)"', html)
    assert figs == ["robustness.png", "robustness-all.png"]  # the zoom, then every model
    assert "1 models outside that range are in the last figure and the table" in html
    body = re.search(r"<tbody>(.*?)</tbody>", html, re.S).group(1)
    rows_html = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    names = [re.sub(r"<[^>]+>", "", re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)[0]) for tr in rows_html]
    assert names == r.table.sort_values("effective_robustness", ascending=False).model.tolist()
    assert len(rows_html) == 5 and pd.read_csv(csv).shape[0] == 5
    # the zoomed axes span the reference models, not the 2 % model
    from shiftlab.report.figures import robustness_plot

    ax = robustness_plot(r.result, zoom=True).axes[0]
    lo, hi = ax.get_xlim()
    assert lo < 0.60 and hi > 0.90 and lo > 0.3
    assert robustness_plot(r.result).axes[0].get_xlim()[0] < 0.02


def test_cli_warns_under_the_table_and_strict_is_exit_2(capsys, tmp_path):
    path = _results(tmp_path, SPREAD[:2])
    code = main(["--quiet", "robustness", "--results", str(path), "--id", "id", "--ood", "ood", "--n-boot", "20",
                 "--out", str(tmp_path / "rb")])
    out = capsys.readouterr().out
    assert code == 0
    table_end = out.index("└")
    warning = out.index("warning: the line is fitted on only 2 reference models")
    assert table_end < warning < out.index("fit in logit space")  # right under the rows it qualifies
    code = main(["--quiet", "robustness", "--results", str(path), "--id", "id", "--ood", "ood", "--strict",
                 "--out", str(tmp_path / "rb2")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "(--strict)" in err
    assert not (tmp_path / "rb2").exists()  # nothing written for a refused fit
    code = main(["--quiet", "robustness", "--results", str(_results(tmp_path, SPREAD)), "--id", "id", "--ood", "ood",
                 "--strict", "--n-boot", "20", "--out", str(tmp_path / "rb3")])
    assert code == 0 and "warning" not in capsys.readouterr().out
