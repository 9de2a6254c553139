"""The page of one request's calls, which every response of a toolbar app links to, HTML
or not (``X-Debug-Redis-Link``): what it shows, and where it does not exist."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask, abort, jsonify, redirect

from .recorded import SECRET_FORMS, AppFactory, ToolbarApp, no_secret_in, read_page, send

pytest.importorskip("flask_debugtoolbar")

from flask_redis_panel._history import REQUESTS
from flask_redis_panel.panel import LINK_HEADER

PAGE_PATH = "/_debug_toolbar/redis/"


def _views(toolbar: ToolbarApp) -> Flask:
    """Add views that answer JSON, a redirect, an error and an async JSON, each after
    Redis calls, to ``toolbar``'s app."""
    app, db = toolbar.app, toolbar.db

    @app.get("/api/items")
    def items() -> Any:
        db.set("item:1", "one")
        return jsonify(item=db.get("item:1"), length=db.strlen("item:1"))

    @app.post("/api/move")
    def move() -> Any:
        db.rename("item:1", "item:2")
        return redirect("/api/items")

    @app.get("/api/missing")
    def missing() -> Any:
        db.get("missing")
        abort(404)

    @app.get("/api/async")
    async def async_items() -> Any:
        return jsonify(item=await toolbar_async(toolbar).get("item:1"))

    return app


def toolbar_async(toolbar: ToolbarApp) -> Any:
    """The asyncio client of the toolbar app's ``REDIS`` prefix."""
    return toolbar.db.async_connection


def _page_of(client: Any, response: Any) -> Any:
    """Follow the link header of ``response`` with ``client``."""
    link = response.headers[LINK_HEADER]
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc) == ("http", "localhost")  # absolute, as Symfony's
    assert parts.path.startswith(PAGE_PATH)
    return client.get(parts.path)


def test_a_json_response_links_to_the_page_of_its_calls(make_app: AppFactory) -> None:
    client = _views(make_app()).test_client()

    response = client.get("/api/items")
    assert response.get_json() == {"item": "one", "length": 3}
    page = _page_of(client, response)

    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert page.headers["Cache-Control"] == "no-store"
    text = page.get_data(as_text=True)
    assert "Redis calls of <code>GET /api/items</code>" in text
    assert "Status 200 · 3 calls in " in text
    assert [cell for cell in ("SET", "GET", "STRLEN") if f">{cell}</code>" in text] == [
        "SET",
        "GET",
        "STRLEN",
    ]
    assert "flDebugToolbar" not in text  # the page is the toolbar's own: no toolbar on it
    assert LINK_HEADER not in page.headers


@pytest.mark.parametrize(
    ("method", "path", "status", "command"),
    [
        ("post", "/api/move", 302, "RENAME"),
        ("get", "/api/missing", 404, "GET"),
        ("get", "/api/async", 200, "GET"),
    ],
    ids=["redirect", "error", "async"],
)
def test_redirects_errors_and_async_views_link_to_their_calls(
    make_app: AppFactory, method: str, path: str, status: int, command: str
) -> None:
    toolbar = make_app()
    client = _views(toolbar).test_client()
    toolbar.db.set("item:1", "one")

    response = getattr(client, method)(path)
    assert response.status_code == status
    text = _page_of(client, response).get_data(as_text=True)

    assert f"Redis calls of <code>{method.upper()} {path}</code>" in text
    assert f"Status {status} · 1 call in " in text
    assert f">{command}</code>" in text


def test_an_html_page_links_to_its_calls_too(make_app: AppFactory) -> None:
    toolbar = make_app()
    toolbar.page(lambda: toolbar.db.get("html"))  # a toolbar page, with the panel in it
    client = toolbar.app.test_client()

    response = client.get("/")
    assert 'id="flDebugToolbar"' in response.get_data(as_text=True)
    assert "Status 200 · 1 call in " in _page_of(client, response).get_data(as_text=True)


def test_the_page_of_an_unknown_request_is_not_found(make_app: AppFactory) -> None:
    client = _views(make_app()).test_client()
    client.get("/api/items")

    assert client.get(PAGE_PATH + "no-such-token").status_code == 404


def test_only_the_last_requests_are_kept(make_app: AppFactory) -> None:
    client = _views(make_app()).test_client()
    links = [client.get("/api/items").headers[LINK_HEADER] for _ in range(REQUESTS + 5)]

    kept = [client.get(urlsplit(link).path).status_code for link in links]
    assert kept == [404] * 5 + [200] * REQUESTS


def test_without_the_toolbar_there_is_no_link_and_no_page(make_app: AppFactory) -> None:
    client = _views(make_app(DEBUG_TB_ENABLED=False)).test_client()

    response = client.get("/api/items")
    assert response.status_code == 200
    assert LINK_HEADER not in response.headers
    assert client.get(PAGE_PATH + "any").status_code == 404


def test_a_host_the_toolbar_does_not_show_itself_to_gets_no_link_and_no_page(
    make_app: AppFactory,
) -> None:
    client = _views(make_app(DEBUG_TB_HOSTS=["10.0.0.1"])).test_client()
    allowed = {"REMOTE_ADDR": "10.0.0.1"}

    assert LINK_HEADER not in client.get("/api/items").headers  # from 127.0.0.1
    path = urlsplit(client.get("/api/items", environ_base=allowed).headers[LINK_HEADER]).path
    assert client.get(path).status_code == 404
    assert client.get(path, environ_base=allowed).status_code == 200


def test_once_the_panel_is_not_listed_there_is_no_link_and_no_page(make_app: AppFactory) -> None:
    toolbar = make_app()
    client = _views(toolbar).test_client()
    path = urlsplit(client.get("/api/items").headers[LINK_HEADER]).path
    toolbar.app.config["DEBUG_TB_PANELS"] = ()  # read at each request

    assert LINK_HEADER not in client.get("/api/items").headers
    assert client.get(path).status_code == 404


def test_an_app_that_does_not_record_calls_has_no_link_and_no_page(
    make_app: AppFactory,
) -> None:
    client = _views(make_app(REDIS_RECORD_CALLS=False, CACHE_RECORD_CALLS=False)).test_client()

    assert LINK_HEADER not in client.get("/api/items").headers
    assert client.get(PAGE_PATH + "any").status_code == 404


@pytest.mark.parametrize("form", list(SECRET_FORMS), ids=list(SECRET_FORMS))
def test_no_form_of_a_secret_reaches_the_page(
    make_app: AppFactory, restored: None, form: str
) -> None:
    toolbar = make_app()
    app = toolbar.app

    @app.get("/api/secret")
    def secret() -> Any:
        send(toolbar.db, SECRET_FORMS[form], "single")
        send(toolbar.db, SECRET_FORMS[form], "pipeline")
        return jsonify(done=True)

    client = app.test_client()
    response = client.get("/api/secret")
    text = _page_of(client, response).get_data(as_text=True)

    assert no_secret_in(text)
    assert no_secret_in(str(response.headers))
    assert "***" in text


def test_the_path_and_arguments_are_shown_as_text(make_app: AppFactory) -> None:
    toolbar = make_app()
    app = toolbar.app
    script = "<script>alert(1)</script>"

    @app.get("/api/<path:name>")
    def named(name: str) -> Any:
        toolbar.db.set(name, "\n\x00\xff")
        return jsonify(name=name)

    client = app.test_client()
    response = client.get("/api/" + script)
    text = _page_of(client, response).get_data(as_text=True)

    assert script not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_the_page_of_1000_calls_of_100_kb_values_stays_under_2_mb(make_app: AppFactory) -> None:
    toolbar = make_app()
    app = toolbar.app
    value = "v" * 100_000

    @app.get("/api/big")
    def big() -> Any:
        for number in range(1000):
            toolbar.db.set(f"big:{number % 10}", value)
        return jsonify(done=True)

    client = app.test_client()
    page = _page_of(client, client.get("/api/big")).get_data()

    assert len(page) < 2_000_000
    assert value.encode() not in page
    assert page.count(b'<tr class="frp-call') == 1000


LIST_PATH = "/_debug_toolbar/redis/"


def test_the_list_gives_the_recent_requests_newest_first(make_app: AppFactory) -> None:
    toolbar = make_app()
    client = _views(toolbar).test_client()
    client.get("/api/items")
    client.get("/api/missing")
    toolbar.db.set("n", "1")

    listed = client.get(LIST_PATH)
    assert listed.headers["Cache-Control"] == "no-store"
    requests = listed.get_json()["requests"]
    assert [(r["method"], r["path"], r["status"], r["calls"]) for r in requests] == [
        ("GET", "/api/missing", 404, 1),
        ("GET", "/api/items", 200, 3),
    ]
    assert all(r["link"] == PAGE_PATH + r["token"] for r in requests)
    assert client.get(requests[0]["link"]).status_code == 200
    assert LINK_HEADER not in listed.headers  # the list is no request of the app's


def test_where_the_toolbar_shows_no_panel_the_list_is_not_found(make_app: AppFactory) -> None:
    client = _views(make_app(DEBUG_TB_HOSTS=["10.0.0.1"])).test_client()
    client.get("/api/items", environ_base={"REMOTE_ADDR": "10.0.0.1"})

    assert client.get(LIST_PATH).status_code == 404
    assert client.get(LIST_PATH, environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code == 200


def test_the_panel_lists_the_requests_before_its_page_and_marks_its_own(
    make_app: AppFactory,
) -> None:
    toolbar = make_app()
    app = _views(toolbar)

    @app.get("/html")
    def html_page() -> str:
        toolbar.db.get("html")
        return "<!doctype html><html><body><p>A page</p></body></html>"

    client = app.test_client()
    client.get("/api/items")
    for _ in range(3):
        client.get("/api/missing")

    page = read_page(client.get("/html").get_data(as_text=True))

    listed = page.panel[page.panel.index('<table class="frp-requests">') :]
    listed = listed[: listed.index("</table>")]
    rows = re.findall(
        r'<tr data-token="[^"]+"( class="frp-current")?><td><a href="([^"]+)"[^>]*>'
        r"<code>(.*?)</code></a>(.*?)</td>(.*?)</tr>",
        listed,
    )
    assert [html.unescape(row[2]) for row in rows] == [
        "GET /html", "GET /api/missing", "GET /api/missing", "GET /api/missing", "GET /api/items",
    ]  # fmt: skip
    assert [bool(row[0]) for row in rows] == [True, False, False, False, False]
    assert "this page" in rows[0][3]
    assert all("frp-n1" not in row[4] and "frp-err" not in row[4] for row in rows)
    assert 'data-label="Status">404</td>' in rows[1][4]
    assert all(row[1].startswith(PAGE_PATH) for row in rows)
    assert client.get(rows[-1][1]).status_code == 200


def test_the_list_marks_n_plus_one_hints_and_errors(make_app: AppFactory) -> None:
    from flask_redis_panel._analysis import N_PLUS_ONE_THRESHOLD

    toolbar = make_app()
    app, db = toolbar.app, toolbar.db

    @app.get("/api/loop")
    def loop() -> Any:
        return jsonify([db.get(f"item:{number}") for number in range(N_PLUS_ONE_THRESHOLD)])

    @app.get("/api/failing")
    def failing() -> Any:
        db.set("text", "x")
        try:
            db.lpush("text", "y")
        except Exception as error:  # redis-py's or valkey-py's ResponseError
            return jsonify(error=type(error).__name__)
        return jsonify(error=None)

    @app.get("/html")
    def html_page() -> str:
        return "<!doctype html><html><body><p>A page</p></body></html>"

    client = app.test_client()
    client.get("/api/loop")
    assert client.get("/api/failing").get_json() == {"error": "ResponseError"}

    requests = client.get(LIST_PATH).get_json()["requests"]
    assert [(r["path"], r["hints"], r["errors"]) for r in requests] == [
        ("/api/failing", 0, 1),
        ("/api/loop", 1, 0),
    ]
    panel = read_page(client.get("/html").get_data(as_text=True)).panel
    listed = panel[panel.index('<table class="frp-requests">') :]
    rows = listed[: listed.index("</table>")].split("<tr data-token=")[1:]
    assert ["frp-err" in row for row in rows] == [False, True, False]
    assert ["frp-n1" in row for row in rows] == [False, False, True]


def test_requests_of_static_files_are_not_kept(make_app: AppFactory) -> None:
    toolbar = make_app()
    client = _views(toolbar).test_client()
    client.get("/api/items")

    static = client.get("/_debug_toolbar/static/css/toolbar.css")
    static.close()
    assert static.status_code == 200
    assert LINK_HEADER not in static.headers
    assert [r["path"] for r in client.get(LIST_PATH).get_json()["requests"]] == ["/api/items"]


def test_a_streamed_response_links_to_the_calls_made_before_it_streams(
    make_app: AppFactory,
) -> None:
    toolbar = make_app()
    app, db = toolbar.app, toolbar.db

    @app.get("/api/stream")
    def stream() -> Any:
        db.set("streamed", "1")

        def lines() -> Any:
            yield "one\n"
            yield "two\n"

        return app.response_class(lines(), mimetype="text/plain")

    client = app.test_client()
    response = client.get("/api/stream")
    assert response.get_data(as_text=True) == "one\ntwo\n"
    text = _page_of(client, response).get_data(as_text=True)
    assert "Redis calls of <code>GET /api/stream</code>" in text
    assert ">SET</code>" in text
