"""Every kind of report page, rendered by chromium: the demo report and the robustness report (a sound fit and
one over too few models). Each page is screenshot to tests/test-artifacts/ for a person to look at, and checked
for what a reader would trip over: missing images, tables wider than the page, model names broken over lines,
figures or tables without a number and caption, numbers that skip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shiftlab.world.zoo import ZOO

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

# what the page reports about itself: image sizes, overflowing tables, broken names, figure and table labels
PAGE_FACTS = """() => {
  const lines = el => { const r = document.createRange(); r.selectNodeContents(el);
                        return new Set(Array.from(r.getClientRects()).map(b => Math.round(b.top))).size; };
  const label = f => { const c = f.querySelector(':scope > figcaption');
                       return c ? c.textContent.trim() : ''; };
  return {
    images: Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth, i.complete]),
    overflow: Array.from(document.querySelectorAll('.scroll')).filter(s => s.scrollWidth > s.clientWidth + 1)
                   .map(s => s.querySelector('th') ? s.querySelector('th').textContent : '?'),
    broken: Array.from(document.querySelectorAll('td.word')).filter(td => lines(td) > 1).map(td => td.textContent),
    figures: Array.from(document.querySelectorAll('figure.fig, figure.grid')).map(label),
    tables: Array.from(document.querySelectorAll('figure.table')).map(label),
    wide: Array.from(document.querySelectorAll('figure.fig img'))
               .filter(i => i.getBoundingClientRect().right
                            > document.querySelector('main').getBoundingClientRect().right + 1)
               .map(i => i.getAttribute('src')),
  };
}"""


def _check_page(page_path: Path, shot: str, width: int = 1280) -> dict:
    from helpers import chromium_browser

    errors = []
    with chromium_browser() as b:
        page = b.new_page(viewport={"width": width, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(page_path.as_uri())
        page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=15000)
        facts = page.evaluate(PAGE_FACTS)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    assert not errors
    assert facts["images"] and all(w > 0 and done for _, w, done in facts["images"]), facts["images"]
    assert facts["overflow"] == [], f"tables wider than the page: {facts['overflow']}"
    assert facts["broken"] == [], f"names broken over lines: {facts['broken']}"
    assert facts["wide"] == [], f"figures wider than the page: {facts['wide']}"
    for kind, labels in (("Figure", facts["figures"]), ("Table", facts["tables"])):
        nums = [int(m.group(1)) if (m := re.match(rf"{kind} (\d+)\. \S", t)) else None for t in labels]
        assert None not in nums, f"a {kind.lower()} without a number and caption: {labels}"
        assert nums == list(range(1, len(nums) + 1)), nums
    return facts


@pytest.mark.browser
def test_demo_report_page(demo):
    _, res = demo
    facts = _check_page(res.path, "demo-report.png")
    # every figure the report draws is on the page, numbered in order, the marks legend among them
    # (the spurious-features section adds 4 figures and 2 tables to the 9 and 7 before it; the robust-features
    # section 2 figures (the robustness curve, the examples) and 2 tables (its MNIST tables only once 'robust mnist'
    # has run); the easy set 2 and 1)
    assert len(facts["figures"]) == 17 and len(facts["tables"]) == 12
    assert any(f.startswith("Figure 13. Left: the spurious score") for f in facts["figures"])
    assert any(f.startswith("Figure 14. Robust accuracy against the L2 radius") for f in facts["figures"])
    assert any(f.startswith("Figure 15. The first training images (D), their robust and non-robust") for f in
               facts["figures"])
    assert any(t.startswith("Table 12. The statistics, derived from the records") for t in facts["tables"])
    assert facts["figures"][-1].startswith("Figure 17. Cropped images of the set")
    assert facts["figures"][1].startswith("Figure 2. The marks on the thumbnails")
    assert any(t.startswith("Table 5. Share of each model's top-1 errors") for t in facts["tables"])
    # the same checks in a small laptop's window
    _check_page(res.path, "demo-report-1024.png", width=1024)


@pytest.mark.browser
@pytest.mark.parametrize("models", [list(ZOO), ["linear", "cnn-wide"]], ids=["zoo", "two-models"])
def test_robustness_report_page(demo, tmp_path, models):
    from shiftlab.analyze.robustness import robustness_study
    from shiftlab.workspace import Workspace

    ws, _ = demo
    r = robustness_study("world-test", "world-pool", models=[f"world:{m}" for m in models],
                         workspace=Workspace.resolve(ws), n_boot=200)
    _, page = r.write(tmp_path / "rb")
    facts = _check_page(page, f"robustness-report-{len(models)}-models.png")
    html = page.read_text()
    assert facts["tables"] and facts["tables"][0].startswith("Table 1. Every model by effective robustness")
    assert len(re.findall(r"<tbody>.*?</tbody>", html, re.S)) == 1 and html.count("<tr") == len(models) + 1
    warned = 'class="note warning"' in html
    assert warned == (len(models) < 3)


@pytest.mark.browser
def test_robustness_report_page_with_long_model_names(tmp_path):
    """Names as long as imagenet-testbed's (70 characters, no space) wrap instead of pushing the table off the page."""
    import pandas as pd

    from shiftlab.analyze.robustness import robustness_study

    long = [f"resnet50_with_gaussian_noise_contrast_motion_blur_jpeg_compression_{i:03d}" for i in range(3)]
    rows = [(m, a, b) for m, a, b in zip(["alexnet", "resnet18", "resnet50", *long],
                                         [0.56, 0.70, 0.76, 0.74, 0.66, 0.60], [0.44, 0.57, 0.63, 0.65, 0.53, 0.47])]
    df = pd.DataFrame([{"model": m, "dataset": ds, "n_images": 10_000, "top1": acc}
                       for m, a, b in rows for ds, acc in (("val", a), ("v2", b))])
    df.to_csv(tmp_path / "results.csv", index=False)
    r = robustness_study("val", "v2", results=tmp_path / "results.csv", baseline="resnet50", n_boot=100)
    _, page = r.write(tmp_path / "rb")
    _check_page(page, "robustness-report-long-names.png")
    assert 'class="long">resnet50_with_gaussian_noise' in page.read_text()
