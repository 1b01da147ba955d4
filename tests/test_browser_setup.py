"""`make test` installs Debian's chromium and Playwright drives it (the review app's tests build on this)."""

from __future__ import annotations

import pytest

from helpers import chromium_browser


@pytest.mark.browser
def test_playwright_drives_debian_chromium(tmp_path):
    page_file = tmp_path / "p.html"
    page_file.write_text("<button id=b onclick=\"this.textContent=String(6*7)\">press</button>")
    with chromium_browser() as browser:
        page = browser.new_page()
        page.goto(page_file.as_uri())
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        assert page.text_content("#b") == "42"
