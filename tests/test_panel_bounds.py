"""The panel stays small and quick whatever the calls hold: its text is bounded by bytes of
HTML, after the quoting for redis-cli and the escaping for HTML, not by counts."""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

import pytest

from flask_redis import RecordedCall
from flask_redis._display import ARGUMENT_LIMIT, as_text, displayed

from .recorded import AppFactory, fastest_rendering

pytest.importorskip("flask_debugtoolbar")

from flask_redis_panel._model import Snapshot
from flask_redis_panel._view import ROW_TEXT_BYTES, html_size, make_row
from flask_redis_panel.panel import render

CALLS = 1000
#: The target: any 1000 calls make less HTML than this, and take less time to render.
MOST_BYTES = 2_000_000
MOST_SECONDS = 0.5
#: Why a call whose value the recorder cut cannot be copied.
CUT_SHORT = "Not copyable: a value was cut short when recorded"

#: Arguments that cost the most once quoted for redis-cli and escaped for HTML: 200
#: characters (the most the recorder keeps of a value), or bytes (shown as hex past 100).
WORST: dict[str, Any] = {
    "quotes": '"' * 200,  # \" then \&#34;: 6 bytes each
    "apostrophes-ampersands": "'&" * 100,
    "backslashes": "\\" * 200,
    "angle-brackets": "<>" * 100,
    "control-characters": "".join(map(chr, range(1, 33))) * 6,  # \x01 ...
    "line-separators": "\u2028" * 200,  # \xe2\x80\xa8: 12 characters each
    "utf-8": "\U0001f600" * 200,  # 4 bytes each
    "invalid-utf-8": b"\xff\xfe" * 100,
    "control-bytes": bytes(range(32)) * 6,
}


def worst_call(client: Any, client_module: ModuleType, number: int) -> None:
    """Call ``number`` of the worst request: 50 arguments of one kind of :data:`WORST`;
    every third an unknown command named by one, which the server quotes in its error
    (a ``ResponseError`` of ``client_module``, the library of ``client``)."""
    kind = list(WORST)[number % len(WORST)]
    value = WORST[kind]
    if number % 3:
        client.execute_command("EXISTS", *[value] * 50)
        return
    name = value if isinstance(value, bytes) else value.replace(" ", "_")
    try:
        client.execute_command(name, *[value] * 49)
    except client_module.ResponseError:
        pass


def test_any_1000_calls_render_quickly_to_less_than_2_mb(
    make_app: AppFactory, client_module: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    toolbar = make_app(REDIS_DECODE_RESPONSES=False)
    seconds: list[float] = []

    def view() -> None:
        for number in range(CALLS):
            worst_call(toolbar.db, client_module, number)
        seconds.append(fastest_rendering(5))

    page = toolbar.page(view)

    assert len(page.rows) == CALLS
    assert sum("frp-error" in row.classes for row in page.rows) == CALLS // 3 + 1
    size = len(page.panel.encode())
    [best] = seconds
    with capsys.disabled():
        print(
            f"\nRedis panel, {CALLS} calls of the worst arguments: {size / 1e6:.2f} MB of HTML,"
            f" rendered in {best * 1000:.1f} ms (min of 5)"
        )
    assert size < MOST_BYTES
    assert best < MOST_SECONDS


def recorded_call(**fields: Any) -> RecordedCall:
    """A call as the recorder makes them, of ``SET k v`` unless ``fields`` say otherwise."""
    call = RecordedCall(
        prefix="REDIS", command="SET", args=("k", "v"), args_left_out=0, start=0.0,
        duration=0.001, pipeline=None, transaction=False, error=None, location="app.py:1",
        stack=None, node=None, hits=0, misses=0, redacted=False,
    )  # fmt: skip
    return dataclasses.replace(call, **fields)


def row_html(call: RecordedCall) -> str:
    text = render(Snapshot((call,), {}, 0.01))
    start = text.index('<tr class="frp-call')
    return text[start : text.index("</tr>", start)]


@pytest.mark.parametrize("kind", [kind for kind in WORST if isinstance(WORST[kind], str)])
def test_the_text_of_a_row_is_cut_to_its_budget_of_bytes(kind: str) -> None:
    value = WORST[kind]
    call = recorded_call(command=value.upper(), args=(value,) * 50, error=f"ResponseError: {value}")
    row = make_row(1, call, 0.01, 1, False)

    texts = [row.command, row.error or "", row.preview or "", row.full]
    assert sum(html_size(text) for text in texts) <= ROW_TEXT_BYTES + 32
    assert row.full.endswith(" …") and row.command.endswith(" …")
    assert row.cli is None
    assert row.not_copyable == "Not copyable: too long to show in full"
    assert len(row_html(call).encode()) < MOST_BYTES / CALLS


def test_arguments_that_fit_are_shown_whole_and_copied() -> None:
    value = '"' * 100  # 100 characters, 6 bytes of HTML each once quoted: they fit
    call = recorded_call(args=("k", value))

    row = make_row(1, call, 0.01, 1, False)

    assert row.full == "k " + '"' + '\\"' * 100 + '"'
    assert row.cli == "SET " + row.full
    assert row.preview is not None and row.preview.endswith("…")


#: Values the recorder cuts, by each way it cuts them, just past its limits.
CUT_VALUES: dict[str, Any] = {
    "text": "v" * (ARGUMENT_LIMIT + 1),
    "bytes": b"v" * (ARGUMENT_LIMIT + 1),
    "hex": b"\x00" * (ARGUMENT_LIMIT // 2 + 1),
    "utf-8-cut-inside-a-character": ("€" * ARGUMENT_LIMIT).encode(),
}


def recorded_args(value: Any) -> tuple[tuple[str, ...], bool]:
    """The arguments of ``SET k value`` as the recorder keeps them, and whether it says
    they are exact."""
    _name, args, _left_out, _redacted, exact = displayed(("SET", "k", value), (), 50)
    return as_text(args, exact)


@pytest.mark.parametrize("value", CUT_VALUES.values(), ids=CUT_VALUES.keys())
def test_the_panel_reads_the_recorders_mark_of_a_cut_value(value: Any) -> None:
    args, exact = recorded_args(value)
    cut_call = recorded_call(args=args, exact=exact)
    # A call made by other code than the recorder may not say it was cut: the mark says it,
    # on a value longer than the recorder keeps.
    said_exact = recorded_call(args=args, exact=True)

    assert not exact
    assert make_row(1, cut_call, 0.01, 1, False).not_copyable == CUT_SHORT
    if len(args[1]) > ARGUMENT_LIMIT:
        assert make_row(1, said_exact, 0.01, 1, False).not_copyable == CUT_SHORT


def test_a_value_the_recorder_keeps_whole_is_copied_whatever_its_end() -> None:
    value = "v" * (ARGUMENT_LIMIT - len("... (5 bytes)")) + "... (5 bytes)"
    args, exact = recorded_args(value)

    row = make_row(1, recorded_call(args=args, exact=exact), 0.01, 1, False)

    assert (args, exact) == (("k", value), True)
    assert row.not_copyable is None and row.cli is not None
