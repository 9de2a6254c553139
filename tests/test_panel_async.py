"""The Redis panel of an ``async def`` view: Flask-DebugToolbar calls the view itself,
without Flask's ``ensure_sync`` (its issue #158); the panel hands it a function that runs the
coroutine. The calls of the asyncio client are marked as awaited."""

from __future__ import annotations

import pytest
from flask import Flask

from flask_redis import Redis, get_recorded_calls

from .recorded import AppFactory

pytest.importorskip("flask_debugtoolbar")
pytest.importorskip("asgiref")  # Flask's async views need it


def test_the_toolbar_alone_fails_on_an_async_view() -> None:
    """Flask-DebugToolbar's issue #158, as it is without the Redis panel."""
    from flask_debugtoolbar import DebugToolbarExtension

    app = Flask(__name__)
    app.debug = True
    app.config.update(SECRET_KEY="test-secret-key", DEBUG_TB_INTERCEPT_REDIRECTS=False)
    DebugToolbarExtension(app)

    @app.get("/")
    async def page() -> str:
        return "<html><body></body></html>"

    with pytest.warns(RuntimeWarning, match="never awaited"):
        with pytest.raises(TypeError, match="it was a coroutine"):
            app.test_client().get("/")
        import gc

        gc.collect()  # the coroutine the toolbar made and dropped warns when collected


def test_the_toolbar_alone_runs_an_async_class_based_view() -> None:
    """A class-based view runs its coroutine itself (Flask's ``ensure_sync``)."""
    from flask.views import View
    from flask_debugtoolbar import DebugToolbarExtension

    app = Flask(__name__)
    app.debug = True
    app.config.update(SECRET_KEY="test-secret-key", DEBUG_TB_INTERCEPT_REDIRECTS=False)
    DebugToolbarExtension(app)

    class Page(View):
        async def dispatch_request(self) -> str:
            return "<html><body><p>The class-based page</p></body></html>"

    app.add_url_rule("/", view_func=Page.as_view("page"))

    text = app.test_client().get("/").get_data(as_text=True)
    assert "The class-based page" in text
    assert 'id="flDebug"' in text


def test_an_async_view_renders_with_the_toolbar_and_its_calls_in_the_panel(
    make_app: AppFactory,
) -> None:
    toolbar = make_app()
    db = toolbar.db

    async def view() -> None:
        await db.async_connection.set("key", "value")
        await db.async_connection.get("key")
        async with db.async_connection.pipeline(transaction=True) as pipe:
            await pipe.incr("count").get("count").execute()

    page = toolbar.async_page(view)

    assert "The async page" in page.text
    assert page.subtitle.startswith("4 calls in ")
    assert [row.command for row in page.rows] == [
        "SET async", "GET async hit", "INCRBY async", "GET async hit",
    ]  # fmt: skip
    assert page.groups[0].startswith("transaction #1: 2 commands in one round trip")


def test_sync_and_async_calls_of_a_view_are_each_marked(make_app: AppFactory) -> None:
    toolbar = make_app()
    db, cache = toolbar.db, toolbar.cache
    marks: list[tuple[str, str, bool]] = []

    async def view() -> None:
        await db.async_connection.set("awaited", "1")
        db.connection.set("blocking", "1")  # the sync client, in the coroutine
        await cache.async_connection.get("awaited")
        cache.connection.get("blocking")
        marks.extend(
            (call.prefix, call.command, call.asynchronous) for call in get_recorded_calls()
        )

    page = toolbar.async_page(view)

    assert marks == [
        ("REDIS", "SET", True),
        ("REDIS", "SET", False),
        ("CACHE", "GET", True),
        ("CACHE", "GET", False),
    ]
    assert [row.command for row in page.rows] == ["SET async", "SET", "GET async miss", "GET miss"]
    assert page.panel.count('<span class="frp-badge frp-async"') == 2


def test_a_sync_view_has_no_async_mark(make_app: AppFactory) -> None:
    toolbar = make_app()
    page = toolbar.page(lambda: toolbar.db.connection.get("key"))
    assert [row.command for row in page.rows] == ["GET miss"]
    assert "frp-async" not in page.panel.split("</style>", 1)[-1]


def test_an_async_view_without_the_toolbar_records_its_awaited_calls(app: Flask) -> None:
    app.config["REDIS_RECORD_CALLS"] = True
    ext = Redis(app)

    @app.get("/")
    async def page() -> list[bool]:
        await ext.async_connection.ping()
        ext.connection.ping()
        return [call.asynchronous for call in get_recorded_calls()]

    assert app.test_client().get("/").get_json() == [True, False]


def test_an_async_view_renders_under_the_profiler_panel_too(make_app: AppFactory) -> None:
    """The profiler panel, before the Redis panel, wraps the view in a function that is
    not a coroutine function: the coroutine it returns is awaited all the same."""
    toolbar = make_app(DEBUG_TB_PROFILER_ENABLED=True)
    db = toolbar.db

    async def view() -> None:
        await db.async_connection.incr("profiled")

    page = toolbar.async_page(view)

    assert [row.command for row in page.rows] == ["INCRBY async"]
    assert "flDebugProfilerPanel" in page.text
