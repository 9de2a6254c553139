"""The per-request log of Redis calls, its redaction, Server-Timing and the slow log, on a
real server through a Flask app and its test client."""

from __future__ import annotations

import ast
import dataclasses
import gc
import hashlib
import inspect
import itertools
import logging
import re
import textwrap
import threading
import time
import tracemalloc
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
import redis
from flask import Flask, request
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup
from prometheus_client import CollectorRegistry

import flask_redis._display
import flask_redis._instrument
import flask_redis._recording
from flask_redis import RecordedCall, RecordedCalls, Redis, get_recorded_calls
from flask_redis._client_cache import observe_cache, served_from_cache
from flask_redis._display import ARGUMENT_LIMIT, ARGUMENTS_LIMIT, REDACTED, as_text, displayed
from flask_redis._libraries import ClientLibrary
from flask_redis._redaction import secret_positions, sent_words

from .conftest import SECRET, close_clients
from .recorded import copied, in_threads, recorded, refuses, run
from .servers import ClientCacheServer, RedisServer

#: This file as a recorded location shows it: relative to the app's root (``tests/``).
HERE = Path(__file__).name
#: The file of :func:`tests.recorded.run`, whose view calls the work of a test.
RUN = Path(run.__code__.co_filename).name

#: Calls of the long request of the memory test. 100,000 took about 16 s on the machine
#: these tests were written on, so the test makes 20,000: still twenty times the cap.
MANY_CALLS = 20_000
#: Its last calls, traced by tracemalloc (which makes each call several times slower).
TRACED_CALLS = 3_000

#: One prefix's entry of the ``Server-Timing`` header.
SERVER_TIMING = re.compile(
    r'redis-(?P<prefix>[a-z]+);dur=(?P<dur>\d+\.\d{3});desc="(?P<n>\d+) calls?"'
)


def next_line() -> int:
    """The number of the line after the caller's: where the command to locate is."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno + 1


def commands(calls: Sequence[RecordedCall]) -> list[tuple[str, tuple[str, ...]]]:
    return [(call.command, call.args) for call in calls]


def secret_positions_in_args(name: str, args: Sequence[Any]) -> set[int]:
    """The positions of the secrets of command ``name`` within ``args``, the arguments
    after it."""
    shift = len(sent_words((name,)))
    return {position - shift for position in secret_positions((name, *args))}


@pytest.fixture()
def ext(recording_app: Flask) -> Redis:
    return Redis(recording_app)


@pytest.fixture()
def secured_app(recording_app: Flask, secured_server: RedisServer) -> Flask:
    """:func:`recording_app` pointed at :func:`secured_server`, with its password.

    Its client speaks RESP3, as the ``HELLO 3`` of the tests switches the connection to it
    (redis-py before 8 speaks RESP2 by default).
    """
    recording_app.config.update(
        REDIS_PORT=secured_server.port, REDIS_PASSWORD=SECRET, REDIS_PROTOCOL=3
    )
    return recording_app


@pytest.fixture()
def no_acl_user(plain: redis.Redis) -> Iterator[None]:
    """Remove the ACL user ``alice`` that a test creates."""
    yield
    plain.acl_deluser("alice")


@pytest.fixture()
def no_masterauth(plain: redis.Redis) -> Iterator[None]:
    """Reset ``masterauth``, which a test sets on the session's server."""
    yield
    plain.config_set("masterauth", "")


# --- On or off ----------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [True, False])
def test_recording_follows_app_debug_by_default(quiet_app: Flask, debug: bool) -> None:
    quiet_app.debug = debug
    ext = Redis(quiet_app)
    calls = recorded(quiet_app, lambda: ext.get("k"))
    assert len(calls) == (1 if debug else 0)


@pytest.mark.parametrize(
    ("setting", "debug", "records"),
    [(True, False, True), (False, True, False), ("false", True, False), ("yes", False, True)],
)
def test_record_calls_setting_overrides_app_debug(
    quiet_app: Flask, setting: object, debug: bool, records: bool
) -> None:
    quiet_app.config["REDIS_RECORD_CALLS"] = setting
    quiet_app.debug = debug
    ext = Redis(quiet_app)
    calls = recorded(quiet_app, lambda: ext.get("k"))
    assert commands(calls) == ([("GET", ("k",))] if records else [])


def test_client_is_plain_redis_when_nothing_observes_it(
    quiet_app: Flask, library: ClientLibrary
) -> None:
    quiet_app.config["REDIS_RECORD_CALLS"] = False
    assert type(Redis(quiet_app).connection) is library.client


@pytest.mark.parametrize(
    "settings",
    [
        {"REDIS_RECORD_CALLS": True},
        {"REDIS_SERVER_TIMING": True},
        {"REDIS_SLOW_LOG_THRESHOLD": 1.0},
        {"REDIS_METRICS": True, "REDIS_METRICS_REGISTRY": CollectorRegistry()},
    ],
    ids=["recording", "server-timing", "slow-log", "metrics"],
)
def test_any_observer_makes_the_client_instrumented(
    quiet_app: Flask, library: ClientLibrary, settings: dict[str, Any]
) -> None:
    quiet_app.config["REDIS_RECORD_CALLS"] = False
    quiet_app.config.update(settings)
    client = Redis(quiet_app).connection
    assert type(client) is not library.client
    assert isinstance(client, library.client)


# --- One RecordedCall per command ---------------------------------------------------------


def test_each_command_is_one_recorded_call_with_its_caller(
    recording_app: Flask, ext: Redis
) -> None:
    lines: list[int] = []

    def work() -> None:
        lines.append(next_line())
        ext.set("greeting", "hello")
        lines.append(next_line())
        assert ext.incr("counter", 2) == 2
        lines.append(next_line())
        ext.incrbyfloat("total", 0.5)
        lines.append(next_line())
        ext.execute_command("CLIENT SETNAME", "recorder")

    calls = recorded(recording_app, work)
    assert commands(calls) == [
        ("SET", ("greeting", "hello")),
        ("INCRBY", ("counter", "2")),
        ("INCRBYFLOAT", ("total", "0.5")),
        ("CLIENT SETNAME", ("recorder",)),
    ]
    assert [call.location for call in calls] == [f"{HERE}:{line}" for line in lines]
    for call in calls:
        assert call.prefix == "REDIS"
        assert (call.args_left_out, call.pipeline, call.transaction) == (0, None, False)
        assert (call.error, call.stack, call.node, call.redacted) == (None, None, None, False)


def test_reading_the_calls_during_a_request_keeps_every_call_once(
    recording_app: Flask, ext: Redis
) -> None:
    read: list[RecordedCalls] = []

    def work() -> None:
        ext.set("a", 1)
        read.append(get_recorded_calls())
        assert commands(read[0]) == [("SET", ("a", "1"))]
        ext.get("a")
        ext.get("b")

    calls = recorded(recording_app, work)
    assert calls is read[0]
    assert commands(calls) == [("SET", ("a", "1")), ("GET", ("a",)), ("GET", ("b",))]


def test_starts_increase_and_durations_are_positive(recording_app: Flask, ext: Redis) -> None:
    def work() -> None:
        for number in range(5):
            ext.set(f"k{number}", number)

    calls = recorded(recording_app, work)
    starts = [call.start for call in calls]
    assert len(starts) == 5
    assert starts[0] >= 0
    assert all(earlier < later for earlier, later in zip(starts, starts[1:]))
    assert all(call.duration > 0 for call in calls)
    for call, following in zip(calls, calls[1:]):
        assert call.start + call.duration <= following.start


def test_reads_count_hits_and_misses(recording_app: Flask, ext: Redis, plain: redis.Redis) -> None:
    plain.mset({"a": 1, "b": 2})
    plain.hset("h", mapping={"f": 1, "g": 2})

    def work() -> None:
        ext.get("a")
        ext.get("missing")
        ext.mget("a", "b", "missing")
        ext.hmget("h", ["f", "g", "missing"])
        ext.set("c", 3)

    calls = recorded(recording_app, work)
    assert [(call.command, call.hits, call.misses) for call in calls] == [
        ("GET", 1, 0),
        ("GET", 0, 1),
        ("MGET", 2, 1),
        ("HMGET", 2, 1),
        ("SET", 0, 0),
    ]


def test_an_empty_hash_set_list_or_sorted_set_is_a_miss(
    recording_app: Flask, ext: Redis, plain: redis.Redis
) -> None:
    plain.hset("h", "f", 1)
    plain.sadd("s", "m")
    plain.rpush("l", "i")
    plain.zadd("z", {"m": 1})

    def work() -> None:
        for read in (ext.hgetall, ext.smembers):
            read("missing")
            read(read.__name__[0])
        for read_range in (ext.lrange, ext.zrange):
            read_range("missing", 0, -1)
            read_range(read_range.__name__[0], 0, -1)
            read_range(read_range.__name__[0], 5, 9)  # a range past the end finds nothing

    calls = recorded(recording_app, work)
    assert [(call.command, call.hits, call.misses) for call in calls] == [
        ("HGETALL", 0, 1), ("HGETALL", 1, 0),
        ("SMEMBERS", 0, 1), ("SMEMBERS", 1, 0),
        ("LRANGE", 0, 1), ("LRANGE", 1, 0), ("LRANGE", 0, 1),
        ("ZRANGE", 0, 1), ("ZRANGE", 1, 0), ("ZRANGE", 0, 1),
    ]  # fmt: skip


def test_exists_counts_each_key_it_is_given(
    recording_app: Flask, ext: Redis, plain: redis.Redis
) -> None:
    plain.mset({"a": 1, "b": 2})

    def work() -> None:
        assert ext.exists("a") == 1
        assert ext.exists("missing") == 0
        assert ext.exists("a", "missing", "b", "other") == 2
        assert ext.exists("a", "a") == 2  # a key given twice counts twice

    calls = recorded(recording_app, work)
    assert [(call.hits, call.misses) for call in calls] == [(1, 0), (0, 1), (2, 2), (2, 0)]


def test_a_zero_or_empty_reply_of_a_read_is_a_miss(
    recording_app: Flask, ext: Redis, plain: redis.Redis
) -> None:
    plain.set("text", "abc")
    plain.hset("h", "f", 1)

    def work() -> None:
        assert ext.strlen("text") == 3 and ext.strlen("missing") == 0
        assert ext.getrange("text", 0, 1) == b"ab" and ext.getrange("missing", 0, 1) == b""
        assert ext.hexists("h", "f") and not ext.hexists("h", "g")
        assert ext.get("missing") is None and ext.getdel("text") == b"abc"

    calls = recorded(recording_app, work)
    assert [(call.command, call.hits, call.misses) for call in calls] == [
        ("STRLEN", 1, 0), ("STRLEN", 0, 1), ("GETRANGE", 1, 0), ("GETRANGE", 0, 1),
        ("HEXISTS", 1, 0), ("HEXISTS", 0, 1), ("GET", 0, 1), ("GETDEL", 1, 0),
    ]  # fmt: skip


def test_two_prefixes_are_recorded_in_one_request_in_order(
    recording_app: Flask, redis_server: RedisServer
) -> None:
    recording_app.config.update(
        CACHE_HOST="127.0.0.1", CACHE_PORT=redis_server.port, CACHE_DB=1,
        CACHE_METRICS=False, CACHE_RECORD_CALLS=True,
    )  # fmt: skip
    ext, cache = Redis(recording_app), Redis(recording_app, "CACHE")

    def work() -> None:
        ext.set("a", 1)
        cache.incr("n")
        ext.get("a")

    calls = recorded(recording_app, work)
    assert [(call.prefix, call.command) for call in calls] == [
        ("REDIS", "SET"), ("CACHE", "INCRBY"), ("REDIS", "GET"),
    ]  # fmt: skip
    assert calls.counts == {"REDIS": 2, "CACHE": 1}
    db1 = redis_server.client(db=1)
    assert db1.get("n") == b"1"
    db1.close()


def test_only_prefixes_that_record_are_recorded(
    recording_app: Flask, redis_server: RedisServer
) -> None:
    recording_app.config.update(
        CACHE_HOST="127.0.0.1", CACHE_PORT=redis_server.port, CACHE_METRICS=False,
        CACHE_RECORD_CALLS=False,
    )  # fmt: skip
    ext, cache = Redis(recording_app), Redis(recording_app, "CACHE")

    def work() -> None:
        cache.get("a")
        ext.get("a")

    calls = recorded(recording_app, work)
    assert [(call.prefix, call.command) for call in calls] == [("REDIS", "GET")]


# --- Pipelines and transactions -----------------------------------------------------------


@pytest.mark.parametrize("transaction", [True, False])
def test_commands_of_a_pipeline_share_its_id_start_and_duration(
    recording_app: Flask, ext: Redis, transaction: bool
) -> None:
    lines: list[int] = []

    def work() -> None:
        with ext.pipeline(transaction=transaction) as pipe:
            pipe.set("a", 1).incr("a")
            lines.append(next_line())
            assert pipe.execute() == [True, 2]
        lines.append(next_line())
        ext.get("a")
        with ext.pipeline(transaction=transaction) as pipe:
            pipe.get("a").delete("a")
            lines.append(next_line())
            pipe.execute()

    calls = recorded(recording_app, work)
    assert [(call.command, call.pipeline) for call in calls] == [
        ("SET", 1), ("INCRBY", 1), ("GET", None), ("GET", 2), ("DEL", 2),
    ]  # fmt: skip
    assert [call.transaction for call in calls] == [transaction] * 2 + [False] + [transaction] * 2
    assert calls.pipelines == 2
    for first, second in ((calls[0], calls[1]), (calls[3], calls[4])):
        assert (first.start, first.duration) == (second.start, second.duration)
    assert calls[0].start < calls[2].start < calls[3].start
    executed, single, executed_again = (f"{HERE}:{line}" for line in lines)
    assert [call.location for call in calls] == [executed] * 2 + [single] + [executed_again] * 2
    assert calls[3].hits == 1


def test_pipeline_ids_start_again_in_each_request(recording_app: Flask, ext: Redis) -> None:
    captured: list[RecordedCalls] = []

    @recording_app.route("/pipe")
    def pipe() -> str:
        ext.pipeline().get("a").execute()
        captured.append(get_recorded_calls())
        return ""

    client = recording_app.test_client()
    client.get("/pipe")
    client.get("/pipe")
    assert [[call.pipeline for call in calls] for calls in captured] == [[1], [1]]
    assert captured[0] is not captured[1]


def test_an_explicit_multi_is_a_transaction(recording_app: Flask, ext: Redis) -> None:
    def work() -> None:
        with ext.pipeline(transaction=False) as pipe:
            pipe.multi()
            pipe.set("a", 1).get("a")
            pipe.execute()

    calls = recorded(recording_app, work)
    assert [(call.command, call.pipeline, call.transaction) for call in calls] == [
        ("SET", 1, True), ("GET", 1, True),
    ]  # fmt: skip


def test_watch_and_reads_before_multi_are_single_calls(recording_app: Flask, ext: Redis) -> None:
    def increment(pipe: Any) -> None:
        value = int(pipe.get("counter") or 0)
        pipe.multi()
        pipe.set("counter", value + 1)

    calls = recorded(recording_app, lambda: ext.transaction(increment, "counter"))
    assert [(call.command, call.pipeline, call.transaction) for call in calls] == [
        ("WATCH", None, False), ("GET", None, False), ("SET", 1, True),
    ]  # fmt: skip
    assert calls[1].misses == 1


@pytest.mark.parametrize("transaction", [True, False])
def test_a_failing_command_of_a_pipeline_has_its_own_error(
    recording_app: Flask, ext: Redis, client_module: ModuleType, transaction: bool
) -> None:
    def work() -> None:
        with ext.pipeline(transaction=transaction) as pipe:
            pipe.set("s", "v").lpush("s", "x").get("s")
            replies = pipe.execute(raise_on_error=False)
        assert replies[0] is True and replies[2] == b"v"
        assert isinstance(replies[1], client_module.ResponseError)

    calls = recorded(recording_app, work)
    assert [call.command for call in calls] == ["SET", "LPUSH", "GET"]
    assert calls[0].error is None and calls[2].error is None
    assert calls[1].error is not None
    assert calls[1].error.startswith("ResponseError: WRONGTYPE ")
    assert (calls[1].hits, calls[1].misses) == (0, 0)
    assert (calls[2].hits, calls[2].misses) == (1, 0)


@pytest.mark.parametrize("failing", ["acl-setuser", "redacted-key"])
def test_a_raising_pipeline_does_not_leak_a_secret_into_other_errors(
    recording_app: Flask,
    plain: redis.Redis,
    client_module: ModuleType,
    no_acl_user: None,
    failing: str,
) -> None:
    # redis-py's message of a raising pipeline quotes the failing command in full.
    recording_app.config["REDIS_RECORD_REDACT_KEYS"] = ["session:*"]
    ext = Redis(recording_app)
    plain.set("session:1", "a string")

    def work() -> None:
        pipe = ext.pipeline(transaction=False)
        pipe.get("other")
        if failing == "acl-setuser":  # the server rejects the rule after the password
            pipe.execute_command("ACL SETUSER", "alice", f">{SECRET}", "no-such-rule")
        else:  # a list command on a string
            pipe.lpush("session:1", SECRET)
        with pytest.raises(client_module.ResponseError):
            pipe.execute()

    calls = recorded(recording_app, work)
    assert [call.redacted for call in calls] == [False, True]
    assert [call.error for call in calls] == ["ResponseError", "ResponseError"]
    assert SECRET not in repr(calls)


# --- Errors -------------------------------------------------------------------------------


def test_a_wrong_type_error_is_recorded_and_still_raised(
    recording_app: Flask, ext: Redis, plain: redis.Redis, client_module: ModuleType
) -> None:
    plain.set("s", "v")
    line: list[int] = []

    def work() -> None:
        with pytest.raises(client_module.ResponseError, match="WRONGTYPE"):
            line.append(next_line())
            ext.lpush("s", "x")

    calls = recorded(recording_app, work)
    assert commands(calls) == [("LPUSH", ("s", "x"))]
    (call,) = calls
    assert call.error is not None
    assert call.error.startswith("ResponseError: WRONGTYPE Operation against a key")
    assert call.location == f"{HERE}:{line[0]}"
    assert call.duration > 0


# --- The cap ------------------------------------------------------------------------------


@pytest.mark.parametrize(("cap", "calls_made"), [(5, 8), (0, 3)])
def test_calls_beyond_the_cap_are_counted_not_stored(
    recording_app: Flask, cap: int, calls_made: int
) -> None:
    recording_app.config["REDIS_RECORD_CALLS_MAX"] = cap
    ext = Redis(recording_app)

    def work() -> None:
        for number in range(calls_made):
            ext.set(f"k{number}", number)

    calls = recorded(recording_app, work)
    assert [call.args[0] for call in calls] == [f"k{number}" for number in range(cap)]
    assert calls.dropped == {"REDIS": calls_made - cap}
    assert calls.counts == ({"REDIS": cap} if cap else {})


def test_a_long_request_keeps_the_default_cap_and_flat_memory(
    recording_app: Flask, ext: Redis
) -> None:
    traced: list[tuple[int, int]] = []

    def work() -> None:
        for _ in range(MANY_CALLS - TRACED_CALLS):  # far past the cap: only counting is left
            ext.get("k")
        tracemalloc.start()
        try:
            for _ in range(TRACED_CALLS):
                ext.get("k")
            traced.append(tracemalloc.get_traced_memory())
        finally:
            tracemalloc.stop()

    calls = recorded(recording_app, work)
    assert len(calls) == 1000
    assert calls.counts == {"REDIS": 1000}
    assert calls.dropped == {"REDIS": MANY_CALLS - 1000}
    current, peak = traced[0]
    # Growth and transient use of the traced calls: a byte kept per call would show.
    print(f"{TRACED_CALLS} calls past the cap: {current} bytes kept, {peak} at the peak")
    assert peak < 1_000_000
    assert current < TRACED_CALLS


# --- How arguments are shown --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit"), [(b"v" * 102400, "bytes"), ("v" * 102400, "characters")]
)
def test_a_long_value_is_cut_with_its_size(
    recording_app: Flask, ext: Redis, plain: redis.Redis, value: str | bytes, unit: str
) -> None:
    calls = recorded(recording_app, lambda: ext.set("big", value))
    assert commands(calls) == [("SET", ("big", "v" * ARGUMENT_LIMIT + f"... (102400 {unit})"))]
    assert plain.strlen("big") == 102400


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (b"\xff\x00\x01", "0xff0001"),
        (b"\xfe" * 300, "0x" + "fe" * (ARGUMENT_LIMIT // 2) + "... (300 bytes)"),
        (b"tab\there", "0x" + b"tab\there".hex()),  # text, but not printable
        (b"caf\xc3\xa9", "caf\u00e9"),  # UTF-8
    ],
    ids=["short", "long", "control-character", "utf-8"],
)
def test_binary_values_are_shown_as_hex(
    recording_app: Flask, ext: Redis, value: bytes, shown: str
) -> None:
    calls = recorded(recording_app, lambda: ext.set("bin", value))
    assert commands(calls) == [("SET", ("bin", shown))]


@pytest.mark.parametrize("command", ["MSET", "RPUSH"])
def test_only_the_first_arguments_are_kept(recording_app: Flask, ext: Redis, command: str) -> None:
    args = [f"arg{number}" for number in range(120)]
    calls = recorded(recording_app, lambda: ext.execute_command(command, *args))
    (call,) = calls
    assert call.command == command
    assert call.args == tuple(args[:ARGUMENTS_LIMIT])
    assert (ARGUMENTS_LIMIT, call.args_left_out) == (50, 70)


def test_long_utf8_text_cut_inside_a_character_is_still_text(
    recording_app: Flask, ext: Redis
) -> None:
    value = ("€" * 100).encode()  # 300 bytes: the cut at ARGUMENT_LIMIT splits a character
    assert ARGUMENT_LIMIT % 3 != 0
    calls = recorded(recording_app, lambda: ext.set("k", value))
    shown = calls[0].args[1]
    assert shown == "€" * (ARGUMENT_LIMIT // 3) + f"... ({len(value)} bytes)"
    assert not calls[0].exact


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_bytearray_and_memoryview_arguments_are_shown_as_their_bytes(
    recording_app: Flask,
    ext: Redis,
    plain: redis.Redis,
    client_module: ModuleType,
    kind: Callable[[bytes], Any],
) -> None:
    # A library that refuses the kind (valkey-py 6 and redis-py 7 refuse a bytearray)
    # raises a DataError before sending: the call is recorded all the same, with it.
    refused = refuses(client_module, kind)
    sets = [(kind(b"key"), kind(b"text")), ("bin", kind(b"\x00\xff")), ("long", kind(b"v" * 300))]

    def work() -> None:
        for key, value in sets:
            if refused:
                with pytest.raises(client_module.DataError, match=kind.__name__):
                    ext.set(key, value)
            else:
                ext.set(key, value)

    calls = recorded(recording_app, work)
    assert commands(calls) == [
        ("SET", ("key", "text")),
        ("SET", ("bin", "0x00ff")),
        ("SET", ("long", "v" * ARGUMENT_LIMIT + "... (300 bytes)")),
    ]
    assert "memory at" not in repr(calls) and f"{kind.__name__}(" not in repr(calls)
    if refused:
        for call in calls:
            assert call.error is not None
            assert call.error.startswith(f"DataError: Invalid input of type: '{kind.__name__}'")
        assert [call.exact for call in calls] == [False, False, False]  # nothing was sent
        assert plain.keys() == []
        return
    assert [call.error for call in calls] == [None, None, None]
    assert [call.exact for call in calls] == [True, False, False]
    assert plain.get("key") == b"text"


def test_an_integer_too_long_to_write_is_recorded_by_its_size(
    recording_app: Flask, ext: Redis
) -> None:
    # Python refuses to write an int of more than 4300 digits (3.11 and later): redis-py
    # raises, and the call is recorded all the same.
    huge = 10**5000

    def work() -> None:
        try:
            ext.set("k", huge)
        except ValueError:
            pass

    calls = recorded(recording_app, work)
    assert commands(calls) == [("SET", ("k", f"(an integer of {huge.bit_length()} bits)"))]
    assert not calls[0].exact


@pytest.mark.parametrize(
    ("value", "exact"),
    [("text", True), (7, True), (2.5, True), ("v" * ARGUMENT_LIMIT, True),
     ("v" * (ARGUMENT_LIMIT + 1), False), (b"\xff", False), (b"caf\xc3\xa9", True)],
)  # fmt: skip
def test_a_call_is_exact_when_its_arguments_are_what_was_sent(
    recording_app: Flask, ext: Redis, value: object, exact: bool
) -> None:
    (call,) = recorded(recording_app, lambda: ext.set("k", value))
    assert call.exact is exact


# --- Redaction ----------------------------------------------------------------------------


def test_auth_passwords_are_redacted(secured_app: Flask) -> None:
    ext = Redis(secured_app)

    def work() -> None:
        assert ext.execute_command("AUTH", SECRET) is True
        assert ext.execute_command("AUTH", "default", SECRET) is True

    calls = recorded(secured_app, work)
    assert commands(calls) == [("AUTH", (REDACTED,)), ("AUTH", (REDACTED, REDACTED))]
    assert all(call.redacted and call.error is None for call in calls)
    assert SECRET not in repr(calls)


def test_hello_auth_password_is_redacted(secured_app: Flask) -> None:
    ext = Redis(secured_app)

    def work() -> None:
        reply = ext.execute_command("HELLO", 3, "AUTH", "default", SECRET)
        assert reply[b"proto"] == 3

    calls = recorded(secured_app, work)
    assert commands(calls) == [("HELLO", ("3", "AUTH", "default", REDACTED))]
    assert calls[0].redacted
    assert SECRET not in repr(calls)


@pytest.mark.parametrize("name", [("ACL", "SETUSER"), ("ACL SETUSER",)], ids=["words", "name"])
def test_acl_setuser_passwords_are_redacted(
    recording_app: Flask, ext: Redis, plain: redis.Redis, no_acl_user: None, name: tuple[str, ...]
) -> None:
    hashed = hashlib.sha256(b"another password").hexdigest()
    rules = ("alice", "on", f">{SECRET}", f"#{hashed}", "~*", "+@all")

    def work() -> None:
        assert ext.execute_command(*name, *rules) in (True, b"OK")  # no callback for "ACL"
        assert ext.execute_command("ACL DELUSER", "alice") == 1

    calls = recorded(recording_app, work)
    shown = (*name[1:], "alice", "on", REDACTED, REDACTED, "~*", "+@all")
    assert commands(calls) == [(name[0], shown), ("ACL DELUSER", ("alice",))]
    assert [(call.redacted, call.error) for call in calls] == [(True, None), (False, None)]
    assert SECRET not in repr(calls) and hashed not in repr(calls)


def test_config_set_masterauth_is_redacted(
    recording_app: Flask, ext: Redis, plain: redis.Redis, no_masterauth: None
) -> None:
    def work() -> None:
        assert ext.config_set("masterauth", SECRET) is True
        assert ext.execute_command("CONFIG", "SET", "masterauth", SECRET) in (True, b"OK")
        ext.config_get("masterauth")

    calls = recorded(recording_app, work)
    assert commands(calls) == [
        ("CONFIG SET", ("masterauth", REDACTED)),
        ("CONFIG", ("SET", "masterauth", REDACTED)),
        ("CONFIG GET", ("masterauth",)),
    ]
    assert plain.config_get("masterauth") == {"masterauth": SECRET}
    assert SECRET not in repr(calls)


@pytest.mark.parametrize(
    ("name", "args", "positions"),
    [
        ("AUTH", ("pw",), {0}),
        ("AUTH", ("user", "pw"), {0, 1}),
        ("auth", (b"pw",), {0}),
        ("HELLO", (3, "AUTH", "user", "pw", "SETNAME", "me"), {3}),
        ("HELLO", (3, "auth", "user", "pw"), {3}),
        ("HELLO", (3, "SETNAME", "me"), set()),
        ("HELLO", (), set()),
        ("MIGRATE", ("host", 6379, "k", 0, 5000, "AUTH", "pw"), {6}),
        ("MIGRATE", ("host", 6379, "", 0, 5000, "COPY", "AUTH", "pw", "KEYS", "a", "b"), {7}),
        ("MIGRATE", ("host", 6379, "k", 0, 5000, "AUTH2", "user", "pw"), {7}),
        ("MIGRATE", ("host", 6379, "k", 0, 5000, "REPLACE"), set()),
        (
            "ACL SETUSER",
            ("alice", "on", ">pw", "<old", "#" + "a" * 64, "!" + "b" * 64, "~*"),
            {2, 3, 4, 5},
        ),
        ("ACL", ("SETUSER", "alice", "on", ">pw", "~*", "+@all"), {3}),
        ("ACL", (b"setuser", b">alice", b">pw"), {2}),  # a user name is no secret
        ("ACL", ("GETUSER", "alice"), set()),
        ("ACL DELUSER", ("alice",), set()),
        ("CONFIG SET", ("requirepass", "pw"), {1}),
        ("CONFIG SET", ("masterauth", "pw"), {1}),
        ("CONFIG SET", ("MasterUser", "me"), {1}),
        ("CONFIG", ("SET", "maxmemory", "1mb", "requirepass", "pw", "masterauth", "pw2"), {4, 6}),
        ("config set", ("maxmemory", "1mb", "requirepass", "pw"), {3}),
        ("CONFIG", ("GET", "requirepass"), set()),
        ("CONFIG GET", ("masterauth",), set()),
        ("SET", ("AUTH", "pw"), set()),
        ("CLIENT SETNAME", ("requirepass",), set()),
    ],
)
def test_secret_positions(name: str, args: tuple[Any, ...], positions: set[int]) -> None:
    assert secret_positions_in_args(name, args) == positions


@pytest.mark.parametrize(
    ("name", "args", "positions"),
    [
        ("MIGRATE", ("auth", 6379, "", 0, 5000, "AUTH", "pw", "KEYS", "a"), {6}),
        ("MIGRATE", ("host", 6379, "auth", 0, 5000, "AUTH", "pw"), {6}),
        ("MIGRATE", ("host", 6379, "auth2", 0, 5000, "AUTH2", "user", "pw"), {7}),
        ("HELLO", (3, "SETNAME", "auth", "AUTH", "default", "pw"), {5}),
    ],
    ids=["host-auth", "key-auth", "key-auth2", "client-name-auth"],
)
def test_secret_positions_are_not_fooled_by_values_spelled_auth(
    name: str, args: tuple[Any, ...], positions: set[int]
) -> None:
    assert secret_positions_in_args(name, args) == positions


@pytest.mark.parametrize("globs", [["session:*"], "session:*"], ids=["list", "str"])
def test_values_of_redacted_keys_are_hidden(
    recording_app: Flask, plain: redis.Redis, globs: object
) -> None:
    recording_app.config["REDIS_RECORD_REDACT_KEYS"] = globs
    ext = Redis(recording_app)

    def work() -> None:
        ext.set("session:1", SECRET)
        ext.set("other", "shown")
        ext.mset({"other": "shown", "session:2": SECRET})
        ext.hset("session:3", "field", SECRET)
        ext.get("session:1")

    calls = recorded(recording_app, work)
    assert commands(calls) == [
        ("SET", ("session:1", REDACTED)),
        ("SET", ("other", "shown")),
        ("MSET", ("other", "shown", "session:2", REDACTED)),
        ("HSET", ("session:3", REDACTED, REDACTED)),
        ("GET", ("session:1",)),
    ]
    assert [call.redacted for call in calls] == [True, False, True, True, False]
    assert SECRET not in repr(calls)
    assert plain.get("session:1") == SECRET.encode()


def test_the_error_of_a_redacted_call_is_its_class_only(
    recording_app: Flask, plain: redis.Redis, client_module: ModuleType, no_acl_user: None
) -> None:
    recording_app.config["REDIS_RECORD_REDACT_KEYS"] = ["session:*"]
    ext = Redis(recording_app)
    plain.mset({"session:1": "a string", "other": "a string"})

    def work() -> None:
        with pytest.raises(client_module.ResponseError, match="WRONGTYPE"):
            ext.lpush("session:1", SECRET)
        with pytest.raises(client_module.ResponseError, match="no-such-rule"):
            ext.execute_command("ACL SETUSER", "alice", f">{SECRET}", "no-such-rule")
        with pytest.raises(client_module.ResponseError, match="WRONGTYPE"):
            ext.lpush("other", "x")

    calls = recorded(recording_app, work)
    assert [(call.command, call.error) for call in calls[:2]] == [
        ("LPUSH", "ResponseError"), ("ACL SETUSER", "ResponseError"),
    ]  # fmt: skip
    assert calls[2].error is not None and calls[2].error.startswith("ResponseError: WRONGTYPE")
    assert SECRET not in repr(calls)


def test_a_secret_appears_nowhere(
    secured_app: Flask, secured_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    secured_app.config.update(
        REDIS_RECORD_REDACT_KEYS="session:*", REDIS_SERVER_TIMING=True,
        REDIS_SLOW_LOG_THRESHOLD=0,
    )  # fmt: skip
    ext = Redis(secured_app)

    def work() -> None:
        ext.execute_command("AUTH", SECRET)
        ext.execute_command("AUTH", "default", SECRET)
        ext.execute_command("HELLO", 3, "AUTH", "default", SECRET)
        ext.config_set("masterauth", SECRET)
        ext.execute_command("ACL SETUSER", "alice", "on", f">{SECRET}", "~*", "+@all")
        ext.execute_command("ACL DELUSER", "alice")
        ext.set("session:1", SECRET)
        ext.mset({"plain": "shown", "session:2": SECRET})
        ext.pipeline().set("session:3", SECRET).execute_command("AUTH", SECRET).execute()

    try:
        with caplog.at_level(logging.WARNING, "flask_redis.slow"):
            calls, response = run(secured_app, work)
    finally:
        client = secured_server.client()
        client.config_set("masterauth", "")
        client.close()
    assert len(calls) == 10
    assert len([record for record in caplog.records if record.name == "flask_redis.slow"]) == 9
    assert SECRET not in repr(calls)
    assert SECRET not in caplog.text
    assert SECRET not in str(response.headers)
    assert response.headers["Server-Timing"].endswith('desc="10 calls"')


# --- Stack ------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", [True, False])
def test_record_stack_keeps_the_callers_stack(recording_app: Flask, stack: bool) -> None:
    recording_app.config["REDIS_RECORD_STACK"] = stack
    ext = Redis(recording_app)
    line: list[int] = []

    def work() -> None:
        line.append(next_line())
        ext.get("k")

    (call,) = recorded(recording_app, work)
    assert call.location == f"{HERE}:{line[0]}"
    if not stack:
        assert call.stack is None
        return
    assert isinstance(call.stack, tuple)
    assert call.stack[-1] == f"{HERE}:{line[0]} in work"
    assert call.stack[-2].startswith(f"{RUN}:") and call.stack[-2].endswith(" in view")
    assert not any("flask_redis" in frame for frame in call.stack)


# --- Outside a request, and requests inside requests --------------------------------------


@pytest.mark.parametrize("context", ["app-context", "none"])
def test_outside_a_request_nothing_is_recorded(
    recording_app: Flask, ext: Redis, plain: redis.Redis, context: str
) -> None:
    if context == "app-context":
        with recording_app.app_context():
            assert ext.set("a", 1) is True
            assert get_recorded_calls() == []
    else:
        assert ext.set("a", 1) is True
        assert get_recorded_calls() == []
    assert plain.get("a") == b"1"
    assert commands(recorded(recording_app, lambda: ext.get("a"))) == [("GET", ("a",))]


def test_a_request_inside_a_request_keeps_the_outer_calls(recording_app: Flask, ext: Redis) -> None:
    captured: dict[str, RecordedCalls] = {}

    @recording_app.route("/inner")
    def inner() -> str:
        ext.set("inner", 1)
        captured["inner"] = get_recorded_calls()
        return ""

    @recording_app.route("/outer")
    def outer() -> str:
        ext.get("before")
        assert recording_app.test_client().get("/inner").status_code == 200
        ext.get("after")
        captured["outer"] = get_recorded_calls()
        return ""

    assert recording_app.test_client().get("/outer").status_code == 200
    assert commands(captured["inner"]) == [("SET", ("inner", "1"))]
    assert commands(captured["outer"]) == [("GET", ("before",)), ("GET", ("after",))]
    assert get_recorded_calls() == []


def test_a_request_context_pushed_inside_a_request_keeps_the_outer_calls(
    recording_app: Flask, ext: Redis
) -> None:
    def work() -> None:
        ext.get("before")
        with recording_app.test_request_context("/elsewhere"):
            pass
        ext.get("after")

    calls = recorded(recording_app, work)
    assert commands(calls) == [("GET", ("before",)), ("GET", ("after",))]


def test_a_failing_teardown_of_the_app_leaves_no_stale_calls(
    recording_app: Flask, ext: Redis
) -> None:
    captured: list[RecordedCalls] = []

    @recording_app.route("/work/<int:n>")
    def work(n: int) -> str:
        ext.get(f"in-{n}")
        captured.append(get_recorded_calls())
        return ""

    @recording_app.teardown_request  # registered after the extension's: runs before it
    def failing(error: BaseException | None) -> None:
        if request.path != "/work/4":
            raise RuntimeError("teardown failed")

    client = recording_app.test_client()
    for n in range(1, 4):
        with pytest.raises(RuntimeError, match="teardown failed"):
            client.get(f"/work/{n}")
    ext.get("outside")  # in the same thread, outside any request
    assert get_recorded_calls() == []
    assert client.get("/work/4").status_code == 200
    assert [commands(calls) for calls in captured] == [[("GET", (f"in-{n}",))] for n in range(1, 5)]
    # No request holds on to the calls of the ones before it.
    ended = weakref.ref(captured[0])
    captured.clear()
    gc.collect()
    assert ended() is None


# --- Server-Timing ------------------------------------------------------------------------


def test_server_timing_has_an_entry_per_prefix(
    recording_app: Flask, redis_server: RedisServer
) -> None:
    recording_app.config.update(
        REDIS_SERVER_TIMING=True, CACHE_HOST="127.0.0.1", CACHE_PORT=redis_server.port,
        CACHE_METRICS=False, CACHE_RECORD_CALLS=True, CACHE_SERVER_TIMING=True,
    )  # fmt: skip
    ext, cache = Redis(recording_app), Redis(recording_app, "CACHE")

    def work() -> None:
        ext.set("a", 1)
        ext.get("a")
        cache.get("a")

    calls, response = run(recording_app, work)
    entries = response.headers.getlist("Server-Timing")
    matches = [SERVER_TIMING.fullmatch(entry) for entry in entries]
    assert all(matches), entries
    found = {match["prefix"]: match for match in matches if match}
    assert sorted(found) == ["cache", "redis"]
    assert found["redis"]["n"] == "2" and found["cache"]["n"] == "1"
    assert [entry.endswith('desc="1 call"') for entry in entries] == [
        match is found["cache"] for match in matches
    ]  # fmt: skip
    for prefix in ("REDIS", "CACHE"):
        recorded_ms = sum(call.duration for call in calls if call.prefix == prefix) * 1000
        assert float(found[prefix.lower()]["dur"]) == pytest.approx(recorded_ms, abs=0.001)


def test_server_timing_leaves_out_prefixes_that_did_not_ask_for_it(
    recording_app: Flask, redis_server: RedisServer
) -> None:
    recording_app.config.update(
        REDIS_SERVER_TIMING=True, CACHE_HOST="127.0.0.1", CACHE_PORT=redis_server.port,
        CACHE_METRICS=False, CACHE_RECORD_CALLS=True,
    )  # fmt: skip
    ext, cache = Redis(recording_app), Redis(recording_app, "CACHE")

    def work() -> None:
        ext.get("a")
        cache.get("a")

    calls, response = run(recording_app, work)
    assert [call.prefix for call in calls] == ["REDIS", "CACHE"]
    entries = response.headers.getlist("Server-Timing")
    assert [entry.split(";")[0] for entry in entries] == ["redis-redis"]


@pytest.mark.parametrize(("record", "cap", "stored"), [(False, 1000, 0), (True, 1, 1)])
def test_server_timing_counts_calls_that_are_not_stored(
    recording_app: Flask, record: bool, cap: int, stored: int
) -> None:
    recording_app.config.update(
        REDIS_RECORD_CALLS=record, REDIS_RECORD_CALLS_MAX=cap, REDIS_SERVER_TIMING=True
    )
    ext = Redis(recording_app)

    def work() -> None:
        for _ in range(3):
            ext.get("a")

    calls, response = run(recording_app, work)
    assert len(calls) == stored
    match = SERVER_TIMING.fullmatch(response.headers["Server-Timing"])
    assert match is not None
    assert (match["prefix"], match["n"]) == ("redis", "3")
    assert float(match["dur"]) > 0


@pytest.fixture()
def thread_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every observed round trip take exactly 1 ms, in whichever thread."""
    ticks = threading.local()

    def tick() -> float:
        ticks.now = getattr(ticks, "now", 0) + 1
        return float(ticks.now) / 1000

    monkeypatch.setattr(flask_redis._instrument, "perf_counter", tick)


class Yielding(str):
    """A prefix that lets the other threads run each time it is hashed, as a key: where a
    figure kept by prefix is read, then written, the interpreter may switch threads between
    the two (a free-threaded one runs them at once); with this prefix it does."""

    def __hash__(self) -> int:
        time.sleep(0)
        return str.__hash__(self)


@copied
@pytest.mark.usefixtures("thread_clock")
def test_threads_of_a_request_have_each_call_counted_once(recording_app: Flask, how: str) -> None:
    threads, pipelines, each, cap = 4, 5, 100, 500
    recording_app.config.update(REDIS_RECORD_CALLS_MAX=cap, REDIS_SERVER_TIMING=True)
    ext = Redis(recording_app)
    (recorder,) = flask_redis._recording._requests.members(recording_app)
    recorder.prefix = Yielding(recorder.prefix)

    def work() -> None:  # pipelines of many commands, then single ones
        for _ in range(pipelines):
            with ext.pipeline(transaction=False) as pipe:
                for _ in range(each):
                    pipe.get("a")
                pipe.execute()
            ext.get("a")

    calls, response = run(recording_app, lambda: in_threads(how, work, threads))
    made = threads * pipelines * (each + 1)
    assert (len(calls), calls.counts, calls.dropped) == (cap, {"REDIS": cap}, {"REDIS": made - cap})
    match = SERVER_TIMING.fullmatch(response.headers["Server-Timing"])
    assert match is not None
    assert (match["n"], match["dur"]) == (str(made), f"{threads * pipelines * 2}.000")
    assert calls.pipelines == threads * pipelines
    ids = itertools.groupby(sorted(call.pipeline for call in calls if call.pipeline))
    assert all(len(list(same)) <= each for _id, same in ids)


def test_no_server_timing_by_default(recording_app: Flask, ext: Redis) -> None:
    calls, response = run(recording_app, lambda: ext.get("a"))
    assert len(calls) == 1
    assert "Server-Timing" not in response.headers


# --- Slow log -----------------------------------------------------------------------------


def test_a_zero_threshold_logs_each_call_with_its_caller_and_endpoint(
    recording_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    recording_app.config.update(
        REDIS_RECORD_CALLS=False, REDIS_SLOW_LOG_THRESHOLD=0,
        REDIS_RECORD_REDACT_KEYS=["session:*"],
    )  # fmt: skip
    ext = Redis(recording_app)
    lines: list[int] = []

    def work() -> None:
        lines.append(next_line())
        ext.set("session:1", SECRET)
        lines.append(next_line())
        ext.get("session:1")
        lines.append(next_line())
        ext.pipeline().get("a").get("b").execute()

    with caplog.at_level(logging.WARNING, "flask_redis.slow"):
        calls = recorded(recording_app, work)
    assert calls == []
    assert [record.name for record in caplog.records] == ["flask_redis.slow"] * 3
    shown = ["REDIS SET session:1 ***", "REDIS GET session:1", "REDIS MULTI (2 commands)"]
    for record, text, line in zip(caplog.records, shown, lines):
        assert record.levelno == logging.WARNING
        pattern = rf"slow Redis call: {re.escape(text)} took \d+\.\d ms"
        pattern += rf" \(caller {HERE}:{line}, endpoint work\)"
        assert re.fullmatch(pattern, record.getMessage()), record.getMessage()
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    ("key", "escaped"),
    [
        ("a\nslow Redis call: forged", "a\\nslow Redis call: forged"),
        ("a\r\n\x1b[31mred\x1b[0m", "a\\r\\n\\x1b[31mred\\x1b[0m"),
        ("a\u2028b\u2029c\x85d", "a\\u2028b\\u2029c\\x85d"),
        ("\x00\x7f\u200e", "\\x00\\x7f\\u200e"),
    ],
    ids=["newline", "ansi", "unicode-line-breaks", "control"],
)
def test_a_slow_log_record_is_one_line_whatever_the_call_holds(
    recording_app: Flask, caplog: pytest.LogCaptureFixture, key: str, escaped: str
) -> None:
    recording_app.config.update(REDIS_SLOW_LOG_THRESHOLD=0, REDIS_RECORD_CALLS=False)
    ext = Redis(recording_app)

    with caplog.at_level(logging.WARNING, "flask_redis.slow"):
        recorded(recording_app, lambda: ext.mget(key, key))

    (record,) = caplog.records
    message = record.getMessage()
    assert message.isprintable(), repr(message)
    assert len(f"{message}\n".splitlines()) == 1
    assert message.startswith(f"slow Redis call: REDIS MGET {escaped} {escaped} took ")
    assert len(caplog.text.splitlines()) == 1


def test_the_slow_log_outside_a_request_names_no_endpoint(
    recording_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    recording_app.config["REDIS_SLOW_LOG_THRESHOLD"] = 0
    ext = Redis(recording_app)
    with caplog.at_level(logging.WARNING, "flask_redis.slow"):
        ext.get("a")
    (record,) = caplog.records
    assert record.getMessage().endswith(", endpoint none)")


def test_a_high_threshold_logs_nothing(
    recording_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    recording_app.config["REDIS_SLOW_LOG_THRESHOLD"] = 60
    ext = Redis(recording_app)

    def work() -> None:
        for _ in range(3):
            ext.get("a")

    with caplog.at_level(logging.DEBUG, "flask_redis.slow"):
        calls = recorded(recording_app, work)
    assert len(calls) == 3
    assert caplog.records == []


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("REDIS_SLOW_LOG_THRESHOLD", "soon", ValueError),
        ("REDIS_SLOW_LOG_THRESHOLD", -1, ValueError),
        ("REDIS_RECORD_CALLS_MAX", "many", ValueError),
        ("REDIS_RECORD_CALLS_MAX", -1, ValueError),
        ("REDIS_RECORD_REDACT_KEYS", 123, TypeError),
        ("REDIS_RECORD_REDACT_KEYS", ["session:*", 1], TypeError),
        ("REDIS_RECORD_CALLS", "maybe", ValueError),
        ("REDIS_RECORD_STACK", "deep", ValueError),
        ("REDIS_SERVER_TIMING", "sometimes", ValueError),
    ],
)
def test_a_bad_setting_raises_naming_its_key(
    recording_app: Flask, key: str, value: object, error: type[Exception]
) -> None:
    recording_app.config[key] = value
    with pytest.raises(error, match=key):
        Redis(recording_app)


# --- With metrics -------------------------------------------------------------------------


def test_metrics_and_recording_both_observe_each_call(recording_app: Flask) -> None:
    registry = CollectorRegistry()
    recording_app.config.update(REDIS_METRICS=True, REDIS_METRICS_REGISTRY=registry)
    ext = Redis(recording_app)
    line: list[int] = []

    def work() -> None:
        ext.set("a", 1)
        line.append(next_line())
        ext.get("a")
        ext.pipeline().get("a").get("b").execute()

    calls = recorded(recording_app, work)
    assert [(call.command, call.pipeline) for call in calls] == [
        ("SET", None), ("GET", None), ("GET", 1), ("GET", 1),
    ]  # fmt: skip
    assert calls[1].location == f"{HERE}:{line[0]}"

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"prefix": "redis", **labels})

    assert sample("flask_redis_commands_total", command="SET") == 1
    assert sample("flask_redis_commands_total", command="GET") == 3
    assert sample("flask_redis_request_commands_sum", endpoint="work") == 4


def test_the_recorder_stores_each_field_of_a_call_by_its_name() -> None:
    """The recorder stores plain tuples, cheaper than named ones: each is of the fields of
    ``_Pending`` in its order, by local variables named as the fields, and a recorded call is
    made of its fields by name."""
    source = textwrap.dedent(inspect.getsource(flask_redis._recording.PrefixRecorder._add))
    (stored,) = [
        node.args[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "append"
    ]
    assert isinstance(stored, ast.Tuple)
    names = [element.id if isinstance(element, ast.Name) else None for element in stored.elts]
    fields = flask_redis._recording._Pending._fields
    assert names == list(fields)
    assert set(fields) == {field.name for field in dataclasses.fields(RecordedCall)}


#: Arguments of every kind, some of them too long or too many to take the short way.
ANY_ARGUMENTS = st.lists(
    st.one_of(
        st.text(max_size=ARGUMENT_LIMIT + 2),
        st.just("v" * (ARGUMENT_LIMIT + 1)),
        st.integers(),
        st.integers(min_value=10**ARGUMENT_LIMIT),
        st.floats(),
        st.booleans(),
        st.binary(max_size=3),
        st.just(Markup("<b>")),
    ),
    max_size=ARGUMENTS_LIMIT + 2,
)


@settings(database=None, max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["GET", "set", b"MSET", "CLIENT SETNAME", "client list", "Del"]),
    args=ANY_ARGUMENTS,
    redact_keys=st.sampled_from([(), ("k*",)]),
)
def test_the_short_way_of_displaying_a_command_gives_what_the_long_way_gives(
    name: str | bytes, args: list[Any], redact_keys: tuple[str, ...]
) -> None:
    command = (name, *args)
    long_way = flask_redis._display._displayed(command, redact_keys, ARGUMENTS_LIMIT)
    assert name in flask_redis._display._plain_names  # the next call may take the short way

    text, shown, left_out, redacted, exact = displayed(command, redact_keys, ARGUMENTS_LIMIT)

    assert (text, *as_text(shown, exact), left_out, redacted) == (
        long_way[0], long_way[1], long_way[4], long_way[2], long_way[3]
    )  # fmt: skip


# -- Client-side cache -----------------------------------------------------------------------
# redis-py 5.1 and newer serve reads from a cache of the client's (RESP3, Redis 7.4 and newer).
# Each test is single-threaded: redis-py 8.2's cache can hang when threads share a client.

CacheApps = Callable[..., Flask]


@pytest.fixture()
def cache_apps(cache_server: ClientCacheServer) -> Iterator[CacheApps]:
    """Make apps whose ``REDIS`` prefix is redis-py's client of ``cache_server`` with a
    client-side cache, calls recorded; ``config`` is added. The server is emptied first."""
    from redis.cache import CacheConfig

    with cache_server.client() as plain:
        plain.flushall()
    apps: list[Flask] = []

    def make(**config: Any) -> Flask:
        app = Flask(__name__, root_path=str(Path(__file__).parent))
        app.config.update(
            REDIS_CLASS=redis.Redis, REDIS_HOST="127.0.0.1", REDIS_PORT=cache_server.port,
            REDIS_PROTOCOL=3, REDIS_CACHE_CONFIG=CacheConfig(), REDIS_DECODE_RESPONSES=True,
            REDIS_RECORD_CALLS=True, REDIS_METRICS=False,
        )  # fmt: skip
        app.config.update(config)
        Redis(app)
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_clients(app)
    served_from_cache()  # a note no recorder took is none of the next test's


def cached_flags(calls: Sequence[RecordedCall]) -> list[tuple[str, bool]]:
    return [(call.command, call.cached) for call in calls]


def unencodable_set(client: Any) -> None:
    """A command that fails before it is sent: no reply is read, nothing noted."""
    with pytest.raises(redis.DataError):
        client.set("k", {"not": "a value"})


@pytest.mark.one_kind
def test_the_second_read_of_a_key_is_recorded_as_served_from_the_client_side_cache(
    cache_apps: CacheApps,
) -> None:
    app = cache_apps()
    ext = app.extensions["redis"]["REDIS"]

    def work() -> None:
        ext.set("k", "v")
        assert ext.get("k") == "v"
        assert ext.get("k") == "v"
        ext.mget("k", "missing")
        ext.mget("k", "missing")
        with ext.pipeline(transaction=False) as pipe:
            pipe.get("k")
            pipe.get("k")
            pipe.execute()
        ext.set("k", "w")

    calls = recorded(app, work)

    assert cached_flags(calls) == [
        ("SET", False), ("GET", False), ("GET", True), ("MGET", False), ("MGET", True),
        ("GET", False), ("GET", False), ("SET", False),
    ]  # fmt: skip
    assert (calls[2].hits, calls[2].misses) == (1, 0)  # a hit of the cache reads the same
    assert calls[2].duration > 0
    assert served_from_cache() is False  # each note was taken


@pytest.mark.one_kind
def test_a_read_served_outside_a_request_marks_no_call_of_the_next_request(
    cache_apps: CacheApps,
) -> None:
    app = cache_apps()
    ext = app.extensions["redis"]["REDIS"]
    with app.app_context():
        ext.set("k", "v")
        ext.get("k")
        ext.get("k")  # served locally, outside a request: the recorder takes its note too

    calls = recorded(app, lambda: unencodable_set(ext))

    assert cached_flags(calls) == [("SET", False)]
    assert calls[0].error is not None


@pytest.mark.one_kind
def test_a_client_without_a_cache_never_marks_its_calls(
    cache_apps: CacheApps, cache_server: ClientCacheServer
) -> None:
    from redis.cache import CacheConfig

    app = cache_apps(REDIS_CACHE_CONFIG=None)
    ext = app.extensions["redis"]["REDIS"]
    noting = redis.Redis(port=cache_server.port, protocol=3, cache_config=CacheConfig())
    try:
        observe_cache(noting, note=True)
        noting.set("k", "v")
        noting.get("k")
        noting.get("k")  # served locally: a note no recorder of the app takes

        def work() -> None:
            ext.get("k")
            ext.get("k")
            unencodable_set(ext)

        calls = recorded(app, work)
    finally:
        noting.close()

    assert cached_flags(calls) == [("GET", False), ("GET", False), ("SET", False)]


@pytest.mark.one_kind
def test_a_hit_of_a_client_whose_calls_are_not_recorded_marks_no_recorded_call(
    cache_apps: CacheApps, cache_server: ClientCacheServer
) -> None:
    from redis.cache import CacheConfig

    app = cache_apps(
        CACHE_CLASS=redis.Redis, CACHE_HOST="127.0.0.1", CACHE_PORT=cache_server.port,
        CACHE_PROTOCOL=3, CACHE_CACHE_CONFIG=CacheConfig(), CACHE_RECORD_CALLS=False,
        CACHE_METRICS=False, CACHE_SLOW_LOG_THRESHOLD=60.0,  # observed without notes
    )  # fmt: skip
    Redis(app, "CACHE")
    ext, other = app.extensions["redis"]["REDIS"], app.extensions["redis"]["CACHE"]

    def work() -> None:
        other.set("k", "v")
        other.get("k")
        other.get("k")  # served locally, noted for no recorder
        unencodable_set(ext)
        ext.get("k")
        other.get("k")
        ext.get("k")  # served locally, after another client's hit

    calls = recorded(app, work)

    assert cached_flags(calls) == [("SET", False), ("GET", False), ("GET", True)]
    cache = other.connection_pool.cache
    assert cache is not None and cache.size == 1  # the other client's reads were cached
