"""`make test` installs Debian's chromium and Playwright drives it (the review app's tests build on this)."""

from __future__ import annotations

import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run"]


@pytest.mark.browser
def test_playwright_drives_debian_chromium(tmp_path):
    if shutil.which("chromium") is None:
        pytest.fail("chromium is not installed: 'make test' installs it with apt-get (needs root)")
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "p.html"
    page_file.write_text("<button id=b onclick=\"this.textContent=String(6*7)\">press</button>")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            page.keyboard.press("Tab")
            page.keyboard.press("Enter")
            assert page.text_content("#b") == "42"
        finally:
            browser.close()
