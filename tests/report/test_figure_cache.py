"""The figure cache draws a FigureCall once per content, and again when its data or drawing code changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shiftlab.report import Section
from shiftlab.report.figure_cache import FigureCall, figure_cache
from shiftlab.report.figures import bar_chart

CALLS = []


def counted_bars(df, *rest, color="C0", **kw):
    CALLS.append(len(df))
    return bar_chart(df, color="C0", **kw)


def _df(v=0.5):
    return pd.DataFrame({"model": ["a", "b"], "top1": [v, 0.7]})


def _png(sec):
    return sec.blocks[-1].asset.data


def test_a_figure_is_drawn_once_per_content_and_again_when_the_data_change(tmp_path):
    CALLS.clear()
    with figure_cache(tmp_path):
        a = Section("s").figure(FigureCall(counted_bars, _df(), label="model", value="top1"), "f")
        b = Section("s").figure(FigureCall(counted_bars, _df(), label="model", value="top1"), "f")
        assert CALLS == [2]  # the second came from the cache
        assert _png(a) == _png(b) and _png(a)[:8] == b"\x89PNG\r\n\x1a\n"
        Section("s").figure(FigureCall(counted_bars, _df(0.51), label="model", value="top1"), "f")
        Section("s").figure(FigureCall(counted_bars, _df(), label="model", value="top1", title="other"), "f")
    assert CALLS == [2, 2, 2]
    assert len(list(tmp_path.glob("*.png"))) == 3


def test_without_a_cache_or_with_an_opaque_argument_the_figure_is_simply_drawn(tmp_path):
    CALLS.clear()
    Section("s").figure(FigureCall(counted_bars, _df(), label="model", value="top1"), "f")
    Section("s").figure(FigureCall(counted_bars, _df(), label="model", value="top1"), "f")
    assert CALLS == [2, 2]
    with figure_cache(tmp_path):
        for _ in range(2):
            Section("s").figure(FigureCall(counted_bars, _df(), label="model", value="top1", color=object()), "f")
    assert CALLS == [2, 2, 2, 2] and not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("change", ["array", "file", "code"])
def test_the_key_follows_arrays_files_and_the_drawing_code(tmp_path, change, monkeypatch):
    import shiftlab.report.figure_cache as fc

    f = tmp_path / "img.txt"
    f.write_text("x")
    arr = np.arange(6.0)
    call = FigureCall(counted_bars, _df(), arr, f)
    before = call.key(150)
    assert before == FigureCall(counted_bars, _df(), arr.copy(), f).key(150)
    if change == "array":
        after = FigureCall(counted_bars, _df(), arr + 1e-9, f).key(150)
    elif change == "file":
        f.write_text("xy")
        after = call.key(150)
    else:
        monkeypatch.setattr(fc, "_source_digest", lambda fn: "edited")
        after = call.key(150)
    assert after != before
    assert FigureCall(counted_bars, _df(), arr, f).key(300) != FigureCall(counted_bars, _df(), arr, f).key(150) \
        or change == "file"
