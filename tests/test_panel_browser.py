"""The showcase of ``examples/comments.py`` and its Redis panel, in a real headless Chromium.

Needs Playwright's Python package and a Chromium of the system (``apt-get install
chromium``); Playwright's own browser downloads are not used. Without them the tests are
skipped, unless ``CI`` is set: then they fail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from .conftest import close_clients
from .examples import imported
from .recorded import SCRIPT_TAG
from .servers import RedisServer

pytestmark = [pytest.mark.one_kind, pytest.mark.browser]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "comments.py"
SCREENSHOT = ROOT / "docs" / "_static" / "redis-panel.png"
PANEL = "#flDebugRedisPanel-content"
TIMEOUT_MS = 15_000
#: The value set by the page ``/long`` that the tests add to the example: its arguments
#: are longer than the panel shows before folding them.
LONG_VALUE = 'a "long" value, ' * 8
#: For each command cell of the panel, its command, badges and hits or misses: how many
#: line boxes each one takes, and its vertical middle.
COMMAND_CELL_PARTS = """cells => cells.map(cell =>
    [...cell.querySelectorAll("code.frp-command, .frp-badge, .frp-reads")].map(part => {
        const box = part.getBoundingClientRect();
        return [part.getClientRects().length, (box.top + box.bottom) / 2];
    }))"""


def _lines(element: Any) -> int:
    """How many lines of text ``element`` (a locator) takes."""
    height, line_height = element.evaluate(
        "e => [e.getBoundingClientRect().height, parseFloat(getComputedStyle(e).lineHeight)]"
    )
    return round(float(height) / float(line_height))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so this is a failure, not a skip")
    pytest.skip(reason)


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _unavailable("no chromium on PATH (apt-get install chromium)")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    """``examples/comments.py`` imported as a module."""
    if importlib.util.find_spec("flask_debugtoolbar") is None:
        _unavailable("Flask-DebugToolbar is not installed")
    with imported("comments.py") as module:
        yield module


@pytest.fixture()
def server_url(example: ModuleType, redis_server: RedisServer, plain: redis.Redis) -> Iterator[str]:
    """The example app served on a free port of 127.0.0.1 by a thread of werkzeug's."""
    from werkzeug.serving import make_server

    db1 = redis_server.client(db=1)
    db1.flushdb()
    db1.close()
    app = example.create_app(redis_server.url)

    def long_argument() -> str:
        example.db.set("long", LONG_VALUE)
        return "<!doctype html><html><body><p>A long argument</p></body></html>"

    app.add_url_rule("/long", "long", long_argument)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}/"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        close_clients(app)


@dataclass
class BrowserLog:
    """What the page reported: console errors, uncaught exceptions, dialogs."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for the tests of this module: launched once, as that is slow."""
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture()
def page(browser: Any, server_url: str) -> Iterator[tuple[Any, BrowserLog]]:
    """A Chromium page in a context of its own, and the log of what went wrong on it."""
    log = BrowserLog()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on(
            "console",
            lambda message: (
                log.errors.append(f"console: {message.text}") if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: log.errors.append(f"pageerror: {error}"))

        def on_dialog(dialog: Any) -> None:
            log.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        yield page, log
    finally:
        context.close()


def test_the_panel_in_chromium(page: tuple[Any, BrowserLog], server_url: str) -> None:
    browser_page, log = page
    response = browser_page.goto(server_url + "tour")
    assert response is not None and response.status == 200

    # The toolbar shows the panel's subtitle without opening it.
    nav = browser_page.locator("#flDebugRedisPanel a.flDebugRedisPanel")
    nav.wait_for(state="visible")
    subtitle = nav.locator("small").inner_text()
    assert " calls in " in subtitle and "1 duplicate" in subtitle and "1 N+1 hint" in subtitle

    nav.click()
    panel = browser_page.locator(PANEL)
    panel.wait_for(state="visible")
    assert panel.locator("h3").inner_text() == "Redis calls"

    rows = panel.locator("tr.frp-call")
    texts = rows.all_inner_texts()
    # A pipeline of 8 SETs, 3 GETs, 6 GETs in a loop, a transaction of 2, a SET to CACHE
    # and the failing LPUSH.
    assert len(texts) == 21
    assert panel.locator("tr.frp-group").all_inner_texts()[0].startswith("pipeline #1: 8 ")
    assert panel.locator("tr.frp-group").all_inner_texts()[1].startswith("transaction #2: 2 ")

    duplicates = panel.locator("tr.frp-duplicate")
    assert duplicates.count() == 2
    assert "duplicate ×2" in duplicates.first.inner_text()

    # The key that is HTML is shown as text, and nothing ran it.
    script_cells = panel.locator("td.frp-args code", has_text=SCRIPT_TAG)
    assert script_cells.count() == 2  # the SET in the pipeline, then the GET
    assert panel.locator("script").count() == 1  # the panel's own

    errors = panel.locator("tr.frp-error")
    assert errors.count() == 1
    assert "ResponseError: WRONGTYPE" in errors.inner_text()

    loop = next(
        number
        for number, line in enumerate(EXAMPLE.read_text().splitlines(), 1)
        if "prices = [db.get(" in line
    )
    hints = panel.locator("li.frp-hint").all_inner_texts()
    assert hints == [f"N+1: 6 GET calls from comments.py:{loop}: use MGET or a pipeline"]
    assert panel.locator("tr.frp-n-plus-one").count() == 6

    # Copy as redis-cli: the key holds a space and quotes.
    quoted_get = rows.filter(has_text="GET").filter(has_text='"greeting \\"en\\""').first
    button = quoted_get.locator("button.frp-copy")
    button.click()
    browser_page.wait_for_function(
        "button => button.hasAttribute('data-copied')", arg=button.element_handle()
    )
    assert button.get_attribute("data-copied") == 'GET "greeting \\"en\\""'

    # The example's arguments are short: none is folded (see the test below).
    assert panel.locator("td.frp-args details").count() == 0

    # The screenshot of docs/panel.rst, rewritten only when asked for.
    shot = browser_page.screenshot()
    assert shot.startswith(b"\x89PNG") and len(shot) > 10_000
    if os.environ.get("FLASK_REDIS_UPDATE_SCREENSHOT"):
        SCREENSHOT.write_bytes(shot)

    # The error's text has room: two lines (WRONGTYPE ... wrong kind of value), not four.
    assert _lines(errors.locator(".frp-error-text")) <= 2
    # A command and its badges stay on one line, whole, on narrower screens too.
    for width in (1400, 1000, 800):
        browser_page.set_viewport_size({"width": width, "height": 1000})
        for parts in panel.locator("td.frp-cmd").evaluate_all(COMMAND_CELL_PARTS):
            assert [count for count, _ in parts] == [1] * len(parts), (width, parts)
            middles = [middle for _, middle in parts]
            assert max(middles) - min(middles) < 6, (width, parts)

    assert log.dialogs == []
    assert log.errors == []


def open_panel(browser_page: Any, url: str) -> Any:
    """Load ``url`` and open its Redis panel: the panel's element."""
    response = browser_page.goto(url)
    assert response is not None and response.status == 200
    nav = browser_page.locator("#flDebugRedisPanel a.flDebugRedisPanel")
    nav.click()
    panel = browser_page.locator(PANEL)
    panel.wait_for(state="visible")
    return panel


def test_a_long_argument_opens_on_a_click_and_is_copied_whole(
    page: tuple[Any, BrowserLog], server_url: str
) -> None:
    browser_page, log = page
    panel = open_panel(browser_page, server_url + "long")
    whole = 'long "' + LONG_VALUE.replace('"', '\\"') + '"'

    (details,) = panel.locator("td.frp-args details").all()
    preview, full = details.locator("summary code"), details.locator("code.frp-full")
    assert preview.is_visible() and not full.is_visible()
    assert preview.inner_text().endswith("…") and len(preview.inner_text()) == 81

    details.locator("summary").click()

    full.wait_for(state="visible")
    assert details.get_attribute("open") is not None
    assert not preview.is_visible()
    assert full.text_content() == whole

    button = panel.locator("button.frp-copy")
    button.click()
    browser_page.wait_for_function(
        "button => button.hasAttribute('data-copied')", arg=button.element_handle()
    )
    assert button.get_attribute("data-copied") == f"SET {whole}"
    assert log.dialogs == []
    assert log.errors == []


def test_the_showcase_page_says_where_the_panel_and_metrics_are(
    page: tuple[Any, BrowserLog], server_url: str
) -> None:
    browser_page, log = page
    response = browser_page.goto(server_url)
    assert response is not None and response.status == 200
    help_text = browser_page.locator("#toolbar-help").inner_text()
    assert "development mode" in help_text and "click Redis in the toolbar" in help_text

    # A long comment of one word wraps: the page does not scroll sideways.
    word = "Redis" * 90
    browser_page.locator("textarea[name=comment]").fill(word)
    with browser_page.expect_navigation():
        browser_page.get_by_role("button", name="Add comment").click()
    comment = browser_page.locator("p.comment")
    assert comment.inner_text() == word
    assert _lines(comment) > 1
    assert browser_page.evaluate(
        "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )

    # Where the page says: the Redis tab of the toolbar, with the page's call to each prefix.
    browser_page.locator("#flDebugRedisPanel a.flDebugRedisPanel").click()
    panel = browser_page.locator(PANEL)
    panel.wait_for(state="visible")
    calls = [
        (row.locator("td").nth(1).inner_text(), row.locator("code.frp-command").inner_text())
        for row in panel.locator("tr.frp-call").all()
    ]
    assert calls == [("CACHE", "INCRBY"), ("REDIS", "LRANGE")]
    browser_page.locator(f"{PANEL} a.flDebugClose").click()
    panel.wait_for(state="hidden")

    # The tour, linked from the page, and the metrics of both prefixes.
    browser_page.locator("#tour-link").click()
    browser_page.wait_for_url(server_url + "tour")
    assert browser_page.locator("h1").inner_text() == "hello world"
    browser_page.goto(server_url + "metrics")
    metrics = browser_page.locator("body").inner_text()
    assert 'flask_redis_commands_total{prefix="cache",command="INCRBY"}' in metrics
    assert 'flask_redis_commands_total{prefix="redis",command="LPUSH"}' in metrics

    assert log.dialogs == []
    assert log.errors == []


def test_the_requests_a_page_fetches_are_listed_and_each_opens_its_calls(
    page: tuple[Any, BrowserLog], server_url: str
) -> None:
    browser_page, log = page
    response = browser_page.goto(server_url + "live")
    assert response is not None and response.status == 200
    products = browser_page.locator("#products[data-loaded='1'] li")
    products.first.wait_for()
    assert products.count() == 6

    browser_page.locator("#flDebugRedisPanel a.flDebugRedisPanel").click()
    panel = browser_page.locator(PANEL)
    panel.wait_for(state="visible")
    listed = panel.locator("table.frp-requests tbody tr")
    # The page's own request, and its two fetches, which the panel read again after load.
    listed.filter(has_text="GET /api/products").first.wait_for()
    listed.filter(has_text="GET /stats").first.wait_for()
    assert "this page" in listed.filter(has_text="GET /live").first.inner_text()
    before = listed.filter(has_text="GET /api/products").count()
    stats_before = listed.filter(has_text="GET /stats").count()

    # A fetch after the panel was drawn joins the list, without a reload. (The open panel
    # covers the page: the button is clicked from the page's script.)
    browser_page.locator("#reload").dispatch_event("click")
    browser_page.locator("#products[data-loaded='2']").wait_for()
    browser_page.wait_for_function(
        "([selector, count]) => [...document.querySelectorAll(selector)]"
        ".filter(row => row.textContent.includes('GET /api/products')).length > count",
        arg=[f"{PANEL} table.frp-requests tbody tr", before],
    )
    browser_page.wait_for_function(  # and the XMLHttpRequest's
        "([selector, count]) => [...document.querySelectorAll(selector)]"
        ".filter(row => row.textContent.includes('GET /stats')).length > count",
        arg=[f"{PANEL} table.frp-requests tbody tr", stats_before],
    )
    newest = listed.filter(has_text="GET /api/products").first  # /stats may answer later
    assert newest.locator(".frp-n1").count() == 1  # its one GET per product

    # One click opens the page of its calls.
    with browser_page.context.expect_page() as opened:
        newest.locator("a").click()
    calls_page = opened.value
    calls_page.wait_for_load_state()
    assert calls_page.locator("h1").inner_text() == "Redis calls of GET /api/products"
    assert calls_page.locator("tr.frp-call").count() == 8 + 6  # the seed pipeline, 6 GETs
    assert calls_page.locator("li.frp-hint").count() == 1
    # Its copy buttons work there as in the panel.
    button = calls_page.locator("tr.frp-call").filter(has_text="product:0").last.locator("button")
    button.click()
    calls_page.wait_for_function(
        "button => button.hasAttribute('data-copied')", arg=button.element_handle()
    )
    assert button.get_attribute("data-copied") == "GET product:0"
    calls_page.close()
    assert log.errors == [] and log.dialogs == []


def test_a_bare_json_request_links_to_its_calls(
    page: tuple[Any, BrowserLog], server_url: str
) -> None:
    browser_page, log = page
    response = browser_page.request.get(server_url + "stats")
    assert response.ok and set(response.json()) == {"comments", "views"}
    link = response.headers["x-debug-redis-link"]

    calls = browser_page.goto(link)
    assert calls is not None and calls.status == 200
    assert browser_page.locator("h1").inner_text() == "Redis calls of GET /stats"
    commands = browser_page.locator("tr.frp-call code.frp-command").all_inner_texts()
    assert commands == ["LLEN", "GET"]
    assert log.errors == []


#: Per width, what overflows in the open panel: elements past its right edge (under the
#: toolbar), cells whose content is wider than they are, headers on more than one line, and
#: words of the arguments split over two lines.
LAYOUT_FAULTS = """([panel, toolbar]) => {
    const edge = document.querySelector(toolbar).getBoundingClientRect().left + 1;
    const root = document.querySelector(panel + " .frp");
    const faults = [];
    const visible = e => e.getClientRects().length > 0;
    if (root.scrollWidth > root.clientWidth + 1) faults.push("the panel scrolls sideways");
    for (const e of root.querySelectorAll("*")) {
        if (visible(e) && e.getBoundingClientRect().right > edge)
            faults.push("under the toolbar: " + e.tagName + " " + e.className);
    }
    for (const cell of root.querySelectorAll("td, th")) {
        if (visible(cell) && cell.scrollWidth > cell.clientWidth + 1)
            faults.push("overflows its cell: " + cell.textContent.slice(0, 40));
    }
    for (const th of root.querySelectorAll("th")) {
        if (visible(th) && th.getBoundingClientRect().height > 2 * parseFloat(
                getComputedStyle(th).lineHeight || "20"))
            faults.push("a header on two lines: " + th.textContent);
    }
    for (const code of root.querySelectorAll("td.frp-args code.frp-full")) {
        const text = code.firstChild;
        if (!text || !visible(code)) continue;
        let start = 0;
        for (const word of text.data.split(" ")) {
            const range = document.createRange();
            range.setStart(text, start);
            range.setEnd(text, start + word.length);
            start += word.length + 1;
            if (word.length < 12 && range.getClientRects().length > 1)
                faults.push("a word broken: " + word);
        }
    }
    return faults;
}"""
WIDTHS = (1400, 800, 412)
SCREENSHOTS = {width: ROOT / "docs" / "_static" / f"redis-panel-{width}.png" for width in WIDTHS}


@pytest.mark.parametrize("width", WIDTHS)
def test_the_panel_fits_the_window(
    page: tuple[Any, BrowserLog], server_url: str, width: int
) -> None:
    browser_page, log = page
    browser_page.set_viewport_size({"width": width, "height": 900})
    panel = open_panel(browser_page, server_url + "tour")

    faults = browser_page.evaluate(LAYOUT_FAULTS, [PANEL, "#flDebugToolbar"])
    assert faults == []
    # Every call is there, each with its command, arguments, time, caller and copy button.
    for part in ("code.frp-command", "td.frp-args", "td.frp-ms", "td.frp-caller", ".frp-copy"):
        cells = panel.locator(f"tr.frp-call {part}")
        assert cells.count() == 21
        assert all(box is not None for box in (c.bounding_box() for c in cells.all()))
    shot = browser_page.screenshot()
    if os.environ.get("FLASK_REDIS_UPDATE_SCREENSHOT"):
        SCREENSHOTS[width].write_bytes(shot)
    assert log.errors == []
