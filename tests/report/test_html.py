"""Report: a self-contained page, escaped text, formatted tables, TOC anchors, atomic re-writes, text output."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markupsafe import Markup
from matplotlib.figure import Figure
from PIL import Image

from shiftlab.errors import InputError
from shiftlab.report import Report, Section, accuracy_scatter, bar_chart, markdownish, thumbnail_grid
from shiftlab.report.html import MARKER

REPO = Path(__file__).resolve().parents[2]
EVIL = "<script>alert(1)</script>"
FIXED = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)


class _Page(HTMLParser):
    """Collects what a browser would fetch or follow: tags with src/href, ids, and script elements."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.ids: set[str] = set()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href", "srcset", "poster", "data") and v is not None:
                self.refs.append((tag, k, v))
            if k == "id":
                self.ids.add(v)


def _parse(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    return p


def _results() -> pd.DataFrame:
    return pd.DataFrame({
        "model": ["cnn-wide", "mlp", EVIL],
        "n_images": [1797, 1797, 1797],
        "top1": [0.9731, 0.9012, 0.5],
        "top1_low": [0.9648, 0.8866, 0.4766],
        "top1_high": [0.9799, 0.9144, 0.5234],
    })


def _fig(seed: int = 0) -> Figure:
    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.plot(np.random.default_rng(seed).random(10))
    return fig


def build_sample_report() -> Report:
    """A report like the demo one: intro, a results table, the scatter, a bar chart and image grids."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(0)
    fam = ["linear", "mlp", "cnn", "cnn", "cnn", "cnn", "cnn (adv.)", "cnn (worst-of-k)", "mlp", "cnn"]
    names = ["linear", "mlp-64", "cnn-8", "cnn-16", "cnn-32", "cnn-64", "cnn-16-adv", "cnn-16-wok", "mlp-256",
             "cnn-32-s1"]
    top1_id = np.array([0.921, 0.951, 0.962, 0.975, 0.981, 0.986, 0.955, 0.97, 0.958, 0.98])
    t = np.log(top1_id / (1 - top1_id))
    ood = 1 / (1 + np.exp(-(0.9 * t - 0.9 + rng.normal(0, 0.08, len(t)) + np.array([0, 0, 0, 0, 0, 0, .5, .3, 0, 0]))))
    n_id, n_ood = 1797, 900
    df = pd.DataFrame({"model": names, "family": fam, "top1_id": top1_id, "top1_ood": ood})
    for col, n in (("top1_id", n_id), ("top1_ood", n_ood)):
        from shiftlab.metrics.accuracy import clopper_pearson

        ci = [clopper_pearson(round(a * n), n) for a in df[col]]
        df[col + "_low"], df[col + "_high"] = [c[0] for c in ci], [c[1] for c in ci]
    df["gap"] = df["top1_ood"] - df["top1_id"]

    r = Report("Digits world: does accuracy hold on a new test set?",
               "Ten models of the embedded zoo evaluated on the original `test` set and on a freshly "
               "collected `pool` sample drawn *the same way*.\n\n"
               "- accuracies are top-1 with 95% Clopper–Pearson intervals\n"
               "- **effective robustness** is measured against the fit over standard models",
               meta={"dataset": "digits-pool-1", "models": len(df), "images": n_ood, "seed": 0}, created=FIXED)
    sec = r.section("Accuracy", "Every model loses accuracy on the new set; the adversarially trained CNN "
                                "loses least.")
    table = df[["model", "family", "top1_id", "top1_id_low", "top1_id_high", "top1_ood", "top1_ood_low",
                "top1_ood_high", "gap"]].rename(columns={"top1_id": "top-1 original", "top1_ood": "top-1 new"})
    sec.table(table, "Top-1 accuracy on both test sets.",
              formats={"top-1 original": "{:.1%}", "top-1 new": "{:.1%}", "gap": "{:+.1%}"},
              intervals={"top-1 original": ("top1_id_low", "top1_id_high"),
                         "top-1 new": ("top1_ood_low", "top1_ood_high")},
              highlight={"top-1 new": "max", "gap": "max"})
    sec.note("12 images of the pool could not be decoded and are excluded from every accuracy.", level="warning")
    fig = accuracy_scatter(df, "top1_id", "top1_ood", group="family", x_err=("top1_id_low", "top1_id_high"),
                           y_err=("top1_ood_low", "top1_ood_high"), fit=(0.9, -0.9),
                           xlabel="top-1, original test set", ylabel="top-1, new test set")
    sec.figure(fig, "accuracy-scatter", "Accuracy on the new set against the original one (logit axes). "
                                        "Points below the dashed line lose accuracy.")
    sec2 = r.section("Errors by category", "Which kinds of mistakes the models make on the new set.")
    counts = pd.Series({"fine-grained": 41, "non-prototypical": 23, "spurious correlation": 9, "major": 17,
                        "label error": 6})
    sec2.figure(bar_chart(counts, xlabel="errors"), "error-categories", "Errors per category, all models.")
    digits = load_digits()
    sec3 = r.section("Examples", "The first images of the new set, with label and the prediction of `cnn-32`.")
    sec3.images([(digits.images[i] / 16, f"label {digits.target[i]}") for i in range(12)],
                "Images shown at their pixels (8×8), enlarged.", name="pool-examples", size=96)
    sec3.figure(thumbnail_grid(digits.images[:16] / 16, [f"{y} → {(y + 1) % 10}" for y in digits.target[:16]],
                               ncols=8), "mistakes-grid", "The same as one matplotlib figure (label → prediction).")
    r.section("Untrusted names", "A model may be called anything; it is shown as text.") \
        .table(pd.DataFrame({"model": [EVIL, "**not bold**"], "top1": [0.5, 0.25]}), formats={"top1": "{:.1%}"})
    return r


# ------------------------------------------------------------------------------------------------ page

def test_page_is_self_contained(tmp_path):
    index = build_sample_report().write(tmp_path / "rep")
    html = index.read_text()
    page = _parse(html)
    assert "script" not in page.tags  # no JS at all, and the evil model name did not become a tag
    assert "link" not in page.tags  # CSS is inlined
    assert "<style>" in html and "font-family" not in html.split("<style>")[0]
    assert not re.search(r"url\(", html), "no CSS url(): fonts and images would be fetched"
    assets = [v for tag, k, v in page.refs if not (tag == "a" and k == "href")]
    assert not [v for v in assets if re.match(r"^(https?:)?//", v)], "assets must not come from the network"
    imgs = [v for tag, k, v in page.refs if tag == "img"]
    assert imgs == ["accuracy-scatter.png", "error-categories.png", *[f"pool-examples-{i:03d}.png" for i in range(12)],
                    "mistakes-grid.png"]  # in page order: scatter, bars, 12 thumbnails, the grid figure
    for src in imgs:
        assert "/" not in src and (index.parent / src).is_file(), src
    # each <img> is sized from its file: figures at 100 CSS px per inch of a 150-dpi PNG, thumbnails at 96 px
    tags = {m["src"]: m for m in (dict(re.findall(r'(\w+)="([^"]*)"', t)) for t in re.findall(r"<img [^>]+>", html))}
    for src in imgs:
        with Image.open(index.parent / src) as im:
            assert im.format == "PNG", src
            w, h = im.size
        shown = 96 if src.startswith("pool-examples-") else round(w * 100 / 150)
        assert (int(tags[src]["width"]), int(tags[src]["height"])) == (shown, round(h * shown / w)), src
        if src.startswith("pool-examples-"):
            assert (w, h) == (8, 8) and tags[src]["class"] == "pixelated"  # the 8x8 digits, kept at their pixels
        else:
            assert w > 300 and "class" not in tags[src]
    assert [tags[f"pool-examples-{i:03d}.png"]["alt"] for i in range(3)] == ["label 0", "label 1", "label 2"]
    for tag, _k, v in page.refs:  # every link is an anchor on the page or a file beside it
        if tag == "a":
            assert (v.startswith("#") and v[1:] in page.ids) or (index.parent / v).is_file(), v


def test_user_text_is_escaped(tmp_path):
    r = Report(EVIL, f"intro {EVIL}", meta={EVIL: EVIL}, created=FIXED)
    sec = r.section(EVIL, f"para {EVIL}")
    sec.heading(EVIL).note(EVIL).table(pd.DataFrame({EVIL: [EVIL], "x": [1.5]}), caption=EVIL)
    sec.figure(_fig(), "f", caption=EVIL, alt=EVIL)
    sec.images([(np.zeros((4, 4), np.uint8), EVIL)], caption=EVIL)
    html = r.write(tmp_path / "r").read_text()
    assert "<script" not in html
    assert "script" not in _parse(html).tags
    e = "&lt;script&gt;alert(1)&lt;/script&gt;"  # the text, escaped once (not twice: no "&amp;lt;")
    assert "&amp;lt;" not in html
    # shown as text in every place it was given: each of these is the whole content of its element
    for place in [f"<title>{e}</title>", f"<h1>{e}</h1>", f"<dt>{e}</dt><dd>{e}</dd>", f"<p>intro {e}</p>",
                  f'<a href="#script-alert-1-script">{e}</a>', f'<span class="secnum">1</span>{e}<a class="anchor"',
                  f"<p>para {e}</p>", f"<h3>{e}</h3>", f"<p>{e}</p>", f'<span class="label">Table 1.</span> {e}</fig',
                  f"<th>{e}</th>", f'<td class="word">{e}</td>', f'alt="{e}">',
                  f'<span class="label">Figure 1.</span> {e}</fig',
                  f'alt="{e}" class="pixelated"><figcaption>{e}</figcaption>',
                  f'<span class="label">Figure 2.</span> {e}</fig']:
        assert place in html, place
    assert html.count(e) == 18  # the 16 places above (the meta pair counts twice, the figure alt once more)


def test_markdownish_marks_and_safety():
    h = str(markdownish("a **b** *c* `<d>` [e](https://x.org/p?a=1&b=2)\n\n- one\n- two"))
    assert "<strong>b</strong>" in h and "<em>c</em>" in h and "<code>&lt;d&gt;</code>" in h
    assert '<a href="https://x.org/p?a=1&amp;b=2">e</a>' in h
    assert h.count("<p>") == 1 and "<ul><li>one</li><li>two</li></ul>" in h
    assert str(markdownish("[x](javascript:alert(1))")) == "<p>[x](javascript:alert(1))</p>"  # left as text
    assert str(markdownish("snake_case_name")) == "<p>snake_case_name</p>"  # underscores are not emphasis
    assert str(markdownish("top1 * 2 * 3")) == "<p>top1 * 2 * 3</p>"
    assert str(markdownish(Markup("<b>trusted</b>"))) == "<b>trusted</b>"


def _cells(html: str) -> list[list[str]]:
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S)
    return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S)] for r in rows]


def test_table_shows_formatted_numbers(tmp_path):
    r = Report("t", created=FIXED)
    r.section("Accuracy").table(_results(), "results", formats={"top1": "{:.1%}"},
                                intervals={"top1": ("top1_low", "top1_high")}, highlight={"top1": "max"})
    html = r.render_html()
    rows = _cells(html)
    assert rows[0] == ["model", "n_images", "top1"]  # interval columns folded into top1
    assert rows[1] == ["cnn-wide", "1,797", "97.3% [96.5, 98.0]"]
    assert rows[3][2] == "50.0% [47.7, 52.3]"
    assert re.search(r'<td class="num best">97\.3%', html)  # right-aligned and the best one bold
    assert '<th class="num">top1</th>' in html and "<th>model</th>" in html
    assert "0.9731" not in html


def test_table_defaults_rows_and_validation():
    df = pd.DataFrame({"n": [1234567, 2], "x": [0.123456, float("nan")], "flag": [True, False], "s": ["a", None]})
    from shiftlab.report.tables import format_table

    t = format_table(df, highlight=[False, True], max_rows=1)
    assert [c.text for c in t.rows[0]] == ["1,234,567", "0.1235", "yes", "a"]
    assert t.numeric == [True, True, False, False]
    assert t.shown_note == "first 1 of 2 rows"
    assert t.row_classes == [""]
    full = format_table(df)
    assert [c.text for c in full.rows[1]] == ["2", "—", "no", "—"]
    with pytest.raises(InputError, match="'nope' not in the table"):
        format_table(df, formats={"nope": "{:.1%}"})
    with pytest.raises(InputError, match="one per row"):
        format_table(df, highlight=[True])
    with pytest.raises(InputError, match="'max' or 'min'"):
        format_table(df, highlight={"n": "best"})


def test_toc_links_each_section_anchor():
    r = Report("t", created=FIXED)
    for title in ["Accuracy", "Accuracy", "Near-duplicates & copies", "Über spurious"]:
        r.section(title, "x")
    r.add(Section("Custom", anchor="my-anchor"))
    page = _parse(r.render_html())
    toc = re.search(r'<nav class="toc".*?</nav>', r.render_html(), re.S).group(0)
    links = re.findall(r'href="#([^"]+)"', toc)
    assert links == ["accuracy", "accuracy-2", "near-duplicates-copies", "ber-spurious", "my-anchor"]
    assert links == [s.anchor for s in r.sections]
    for a in links:
        assert a in page.ids
    assert len(set(links)) == len(links)


def test_sections_with_the_same_title_keep_their_images_apart(tmp_path):
    r = Report("t", created=FIXED)
    for k in range(2):  # built independently, as two analysis modules would
        r.add(Section("Examples").images([np.full((4, 4), 60 * k, np.uint8)]))
    files = [a.filename for s in r.sections for a in s.assets()]
    assert files == ["examples-images-0-000.png", "examples-2-images-0-000.png"]
    out = r.write(tmp_path / "r").parent
    assert np.asarray(Image.open(out / files[1])).max() == 60


def test_rewrite_replaces_figures_and_keeps_other_files(tmp_path):
    out = tmp_path / "rep"
    r1 = Report("one", created=FIXED)
    r1.section("A").figure(_fig(0), "scatter").figure(_fig(1), "old-only")
    r1.write(out)
    before = (out / "scatter.png").read_bytes()
    (out / "notes.txt").write_text("mine")  # a file the report did not write
    r2 = Report("two", created=FIXED)
    r2.section("A").figure(_fig(2), "scatter")
    index = r2.write(out)
    assert (out / "scatter.png").read_bytes() != before
    assert not (out / "old-only.png").exists()
    assert (out / "notes.txt").read_text() == "mine"
    page = index.read_text()
    assert "<title>two</title>" in page and "<h1>two</h1>" in page and ">one<" not in page
    assert re.findall(r'<img src="([^"]+)"', page) == ["scatter.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "index.html", "notes.txt", "scatter.png"])
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_write_is_deterministic_with_fixed_time(tmp_path):
    a = build_sample_report().write(tmp_path / "a")
    b = build_sample_report().write(tmp_path / "b")
    assert a.read_bytes() == b.read_bytes() and "2024-05-01 12:00" in a.read_text()
    files = sorted(p.name for p in a.parent.iterdir())
    assert files == sorted(p.name for p in b.parent.iterdir()) and len(files) == 17  # 15 PNGs, page, marker
    for name in files:
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes(), name


def test_figure_inputs(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pfig = plt.figure()
    plt.plot([1, 2])
    png = tmp_path / "given.png"
    Image.new("RGB", (30, 20), "red").save(png)
    r = Report("t", created=FIXED)
    sec = r.section("A").figure(pfig, "py plot").figure(png, "copied.png", "from a file")
    assert not plt.fignum_exists(pfig.number)  # closed once rendered
    out = r.write(tmp_path / "r").parent
    assert (out / "copied.png").read_bytes() == png.read_bytes()  # a file is copied byte for byte
    with Image.open(out / "py-plot.png") as im:  # the pyplot figure: 6.4 x 4.8 in at 150 dpi, tight box
        assert im.format == "PNG" and (im.width, im.height) == (sec.blocks[0].asset.width, sec.blocks[0].asset.height)
        assert 600 < im.width <= 960 and 450 < im.height <= 720
        w, h = im.size
    html = (out / "index.html").read_text()
    shown = round(w * 100 / 150)  # 100 CSS px per inch
    assert f'<img src="py-plot.png" width="{shown}" height="{round(h * shown / w)}" alt="py-plot">' in html
    assert '<img src="copied.png" width="30" height="20" alt="from a file">' in html  # a file: shown at its pixels
    with pytest.raises(InputError, match="does not exist"):
        sec.figure(tmp_path / "nope.png", "x")
    other = Section("B").figure(_fig(), "py-plot")
    with pytest.raises(InputError, match="another name"):
        r.add(other)


def test_images_thumbnails(tmp_path):
    big = tmp_path / "big.jpg"
    Image.new("RGB", (1600, 800), "blue").save(big)
    r = Report("t", created=FIXED)
    r.section("Grid").images([big, (np.full((8, 8), 0.5), "digit"), Image.new("L", (10, 10))], name="ex", size=64)
    out = r.write(tmp_path / "r").parent
    with Image.open(out / "ex-000.png") as im:
        assert im.format == "PNG" and im.size == (512, 256)  # downscaled to 512 on the longer side, as PNG
        assert np.abs(np.asarray(im.convert("RGB"), int) - [0, 0, 255]).max() <= 2  # still the blue JPEG
    with Image.open(out / "ex-001.png") as im:
        assert im.size == (8, 8) and (np.asarray(im) == 128).all()  # 0.5 → 128, kept at its pixels
    with Image.open(out / "ex-002.png") as im:
        assert im.size == (10, 10) and not np.asarray(im).any()
    html = (out / "index.html").read_text()
    thumbs = re.findall(r'<figure class="thumb">(.*?)</figure>', html)
    assert thumbs == [  # shown 64 px wide; the small ones enlarged with visible pixels; captions where given
        '<img src="ex-000.png" width="64" height="32" alt="ex-000.png">',
        '<img src="ex-001.png" width="64" height="64" alt="digit" class="pixelated"><figcaption>digit</figcaption>',
        '<img src="ex-002.png" width="64" height="64" alt="ex-002.png" class="pixelated">']


def test_render_text_has_the_same_tables():
    r = Report("Results", "Top-1 of **three** models.", meta={"seed": 0}, created=FIXED)
    r.section("Accuracy", "See `top1`.").table(_results(), "results", formats={"top1": "{:.1%}"},
                                               intervals={"top1": ("top1_low", "top1_high")})
    r.sections[0].figure(_fig(), "f", "a caption")
    text = r.render_text()
    assert "Top-1 of three models." in text and "See top1." in text
    assert "97.3% [96.5, 98.0]" in text and "1,797" in text
    assert EVIL in text  # plain text: shown verbatim, not interpreted as rich markup
    assert "[figure f.png: a caption]" in text
    line = next(ln for ln in text.splitlines() if "cnn-wide" in ln)
    assert line.rstrip().endswith("97.3% [96.5, 98.0]")  # numbers right-aligned in their column
    assert text.index("1,797") > line.index("cnn-wide")


def test_to_console_prints(capsys):
    from rich.console import Console

    r = Report("R", created=FIXED)
    r.section("S").table(pd.DataFrame({"a": [1]}))
    r.to_console(Console(width=80, force_terminal=False))
    out = capsys.readouterr().out
    lines = [ln.rstrip() for ln in out.splitlines()]
    # the title, then the section's rule, then the table: header "a", its rule, the cell "1"
    assert lines == ["R", "", "S " + "─" * 78, "", "  a", " ───", "  1", ""]
    assert out == r.render_text(width=80)  # the same text as render_text


# ------------------------------------------------------------------------------------------------ browser

@pytest.mark.browser
def test_sample_report_renders_in_chromium(tmp_path):
    from helpers import chromium_browser

    index = build_sample_report().write(tmp_path / "report")
    errors, requests = [], []
    with chromium_browser() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda q: requests.append(q.url))
        page.goto(index.as_uri(), wait_until="load")
        page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=15_000)
        sizes = page.evaluate("() => [...document.images].map(i => [i.getAttribute('src'), i.naturalWidth])")
        assert len(sizes) == 15
        assert all(w > 0 for _, w in sizes), sizes
        # the layout holds: the page is no wider than the viewport, and tables fit in the column
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 1280
        assert page.evaluate("() => getComputedStyle(document.querySelector('td.num')).textAlign") == "right"
        assert page.inner_text("section#untrusted-names td") == EVIL
        page.click("nav.toc a[href='#examples']")
        assert page.evaluate("() => location.hash") == "#examples"
        art = REPO / "test-artifacts"
        art.mkdir(exist_ok=True)
        page.screenshot(path=str(art / "report-sample.png"), full_page=True)
    assert not errors, errors
    assert all(u.startswith("file://") for u in requests), [u for u in requests if not u.startswith("file://")]
    shutil.copytree(index.parent, REPO / "test-artifacts" / "report-sample", dirs_exist_ok=True)
