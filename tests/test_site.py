"""The built site, as a reader sees it: no broken internal link, no table to scroll sideways.

Run by ``nox -s docs`` after the HTML build, with ``THREADKIT_SITE`` naming the
built site (docs/_build/html); skipped elsewhere.  The link check reads the
HTML; the layout check and the screenshots use Debian's headless Chromium
through Selenium and ``chromium-driver`` (``.ci/run`` installs both; nothing
is downloaded).  The screenshots go to ``THREADKIT_SITE``'s sibling
``screenshots/``, for a person to look at: the home page, the tutorial and the
ResourceWorker reference, at 1280 px and 390 px.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

_site = os.environ.get("THREADKIT_SITE")
pytestmark = pytest.mark.skipif(
    not _site, reason="THREADKIT_SITE names no built site (nox -s docs sets it)"
)
SITE = Path(_site or ".").resolve()

CHROMIUM = os.environ.get("THREADKIT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("THREADKIT_CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOT_PAGES = ["index.html", "tutorial.html", "reference/worker.html"]
WIDTHS = [1280, 390]
# A page's height is capped in its full-page screenshot.
MAX_HEIGHT = 20_000


class _Page(HTMLParser):
    """The ids (anchors) a page defines and the links it makes."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name == "id" or (tag == "a" and name == "name"):
                self.ids.add(value)
            elif (tag, name) in {("a", "href"), ("link", "href"), ("img", "src")}:
                self.links.append(value)


def pages() -> dict[Path, _Page]:
    parsed = {}
    for path in sorted(SITE.rglob("*.html")):
        page = _Page()
        page.feed(path.read_text(encoding="utf-8"))
        parsed[path] = page
    return parsed


def broken_links(site: dict[Path, _Page], root: Path) -> list[str]:
    broken = []
    for path, page in site.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc:  # not a page of this site
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            where = f"{path.relative_to(root)}: {link}"
            if not target.is_file():
                broken.append(f"{where} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                if target not in site:
                    broken.append(f"{where} (outside the site)")
                elif unquote(parts.fragment) not in site[target].ids:
                    broken.append(f"{where} (no such anchor)")
    return broken


def test_the_site_was_built() -> None:
    assert (SITE / "index.html").is_file(), f"no index.html in {SITE}"
    assert len(list(SITE.rglob("*.html"))) > 10


def test_no_page_has_a_broken_internal_link_or_anchor() -> None:
    site = pages()
    broken = broken_links(site, SITE)
    assert not broken, "\n".join(broken)


def test_the_link_check_finds_a_broken_anchor_and_a_missing_page(tmp_path: Path) -> None:
    # The check itself, on a two-page site: it must not pass whatever it is given.
    (tmp_path / "a.html").write_text(
        '<a href="b.html#there">ok</a><a href="b.html#gone">x</a><a href="c.html">y</a>'
        '<a href="#top" id="top">z</a><a href="https://example.org/#x">far</a>',
        encoding="utf-8",
    )
    (tmp_path / "b.html").write_text('<h1 id="there">b</h1>', encoding="utf-8")
    site = {}
    for name in ("a.html", "b.html"):
        page = _Page()
        page.feed((tmp_path / name).read_text(encoding="utf-8"))
        site[tmp_path / name] = page
    assert broken_links(site, tmp_path) == [
        "a.html: b.html#gone (no such anchor)",
        "a.html: c.html (no such file)",
    ]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        pytest.fail(
            f"no {CHROMIUM} or {CHROMEDRIVER}: install Debian's chromium and chromium-driver"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER)
    )
    try:
        yield driver
    finally:
        driver.quit()


def show(driver: Any, page: str, width: int, height: int = 900) -> None:
    """Load *page* in a viewport exactly *width* CSS pixels wide."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )
    driver.get((SITE / page).as_uri())


# For every table: does it need sideways scrolling?  Inside a box that scrolls
# sideways (furo wraps tables in one), that box's content is wider than the box;
# elsewhere, the table is wider than its parent.
_WIDE_TABLES = """
const wide = [];
for (const table of document.querySelectorAll("article table")) {
    let scroller = null;
    for (let el = table.parentElement; el && el !== document.body; el = el.parentElement) {
        const overflow = getComputedStyle(el).overflowX;
        if (overflow === "auto" || overflow === "scroll") { scroller = el; break; }
    }
    const [needed, room] = scroller
        ? [scroller.scrollWidth, scroller.clientWidth]
        : [table.scrollWidth, table.parentElement.clientWidth];
    if (needed > room + 1) {
        const head = table.querySelector("th, td");
        wide.push(`${needed} > ${room} px: table starting `
                  + JSON.stringify(head ? head.textContent.trim().slice(0, 40) : ""));
    }
}
return wide;
"""


def test_no_table_needs_horizontal_scrolling_at_1280_px(browser: Any) -> None:
    wide = {}
    for path in sorted(pages()):
        page = str(path.relative_to(SITE))
        show(browser, page, 1280)
        if found := browser.execute_script(_WIDE_TABLES):
            wide[page] = found
    assert not wide, wide


def test_the_table_check_finds_a_table_too_wide(browser: Any, tmp_path: Path) -> None:
    page = tmp_path / "wide.html"
    page.write_text(
        '<article><div style="overflow-x: auto; width: 300px"><table><tr>'
        + "<td>averyveryverylongcellthatcannotwrap</td>" * 10
        + "</tr></table></div></article>",
        encoding="utf-8",
    )
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
    )
    browser.get(page.as_uri())
    assert len(browser.execute_script(_WIDE_TABLES)) == 1


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", SCREENSHOT_PAGES)
def test_screenshots_of_the_main_pages(browser: Any, page: str, width: int) -> None:
    out = SITE.parent / "screenshots"
    out.mkdir(exist_ok=True)
    show(browser, page, width)
    height = min(MAX_HEIGHT, browser.execute_script("return document.body.scrollHeight"))
    show(browser, page, width, height)
    name = out / f"{page.removesuffix('.html').replace('/', '-')}-{width}.png"
    assert browser.save_screenshot(str(name)), name
    assert name.stat().st_size > 10_000
    # The page itself is no wider than the screen: nothing but a table's own
    # box (or a code block's) may scroll sideways.
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{page} at {width} px is {overflow} px wider than the screen"
