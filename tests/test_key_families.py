"""Metrics per key family (``PREFIX_METRICS_KEY_FAMILIES``): commands, time and payload
bytes by the family of each command's first key, with bounded label values."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
from flask import Flask
from prometheus_client import CollectorRegistry

from flask_redis import Redis, UnreadKeyWarning
from flask_redis._config import read_config
from flask_redis._instrument import observer_of
from flask_redis._key_families import first_key, reply_bytes, sent_bytes, setup_key_families
from flask_redis._metrics import PrefixMetrics

from .conftest import Closing, observed_app
from .samples import Samples
from .servers import RedisServer

COMMANDS = "flask_redis_key_family_commands_total"
SECONDS = "flask_redis_key_family_seconds_total"
BYTES = "flask_redis_key_family_bytes_total"
FAMILIES = {
    "session": "session:*",
    "user": ["user:*:profile", "user:*:cart"],
    "all_users": "user:*",
}


def families_app(
    server: RedisServer, registry: CollectorRegistry, closing: Closing, families: Any = FAMILIES,
    **config: Any,
) -> tuple[Flask, Any]:  # fmt: skip
    app = observed_app(server.url, registry, REDIS_METRICS_KEY_FAMILIES=families)
    app.config.update(config)
    Redis(app)
    closing(app)
    return app, app.extensions["redis"]["REDIS"]


def by_family(samples: Samples, name: str = COMMANDS, **labels: str) -> dict[str, float]:
    """The samples of ``name`` per family."""
    return {
        dict(found)["family"]: value for found, value in samples.matching(name, **labels).items()
    }


# -- Which key, which family ----------------------------------------------------------------


def test_commands_count_under_the_first_family_whose_glob_matches(
    redis_server: RedisServer, registry: CollectorRegistry, samples: Samples, closing: Closing
) -> None:
    _app, client = families_app(redis_server, registry, closing)
    client.set("session:1", "a")
    client.get("session:1")
    client.get("user:7:profile")  # user and all_users both match: user is first
    client.get("user:7:cart")
    client.get("user:7:other")  # only all_users
    client.get("cart:1")  # no family
    client.ping()  # no key
    client.info()
    assert by_family(samples) == {
        "session": 2, "user": 2, "all_users": 1, "other": 1, "none": 2,
    }  # fmt: skip
    seconds = by_family(samples, SECONDS)
    assert set(seconds) == {"session", "user", "all_users", "other", "none"}
    assert all(value > 0 for value in seconds.values())


def test_a_pipelines_commands_count_each_under_its_family_sharing_its_time(
    redis_server: RedisServer, registry: CollectorRegistry, samples: Samples, closing: Closing
) -> None:
    _app, client = families_app(redis_server, registry, closing)
    for transaction in (False, True):
        pipe = client.pipeline(transaction=transaction)
        pipe.set("session:p", "x").get("session:p").get("nope").echo("hi")
        assert pipe.execute() == [True, "x", None, "hi"]
    assert by_family(samples) == {"session": 4, "other": 2, "none": 2}
    seconds = by_family(samples, SECONDS)
    assert seconds["session"] == pytest.approx(2 * seconds["other"])
    assert seconds["none"] == pytest.approx(seconds["other"])


def test_bytes_are_the_payload_sent_and_received_per_family(
    redis_server: RedisServer, registry: CollectorRegistry, samples: Samples, closing: Closing
) -> None:
    _app, client = families_app(redis_server, registry, closing)
    value = "v" * 10_000
    client.set("session:big", value)
    assert by_family(samples, BYTES, direction="sent")["session"] == len("SETsession:big") + 10_000
    assert client.get("session:big") == value
    # The reply as the client returns it: the SET's OK is True, no string.
    assert by_family(samples, BYTES, direction="received") == {"session": 10_000}
    client.hset("session:h", mapping={"f": "é"})  # é: 2 bytes in UTF-8
    before = by_family(samples, BYTES, direction="received")["session"]
    assert client.hgetall("session:h") == {"f": "é"}
    assert by_family(samples, BYTES, direction="received")["session"] == before + 3


@pytest.mark.parametrize(
    ("command", "family"),
    [
        (("GET session:1",), "session"),  # named with its key in one string, as redis-py sends
        (("get", "session:1"), "session"),  # lower case
        ((b"gEt", b"session:1"), "session"),
        (("GET", "session:\n1"), "session"),  # a newline in the key
        (("GET", "session:*?[x]"), "session"),  # glob characters in the key match literally
        (("GET", "sess[i]on:1"), "other"),
        (("GET", "session:" + "x" * 1_000_000), "session"),  # a huge key
        (("GET", "x" * 1_000_000), "other"),
        (("EVAL", "return 1", 1, "session:e"), "session"),
        (("EVAL", "return 1", 0), "none"),
        (("PUBLISH", "session:c", "m"), "none"),  # a channel is no key
    ],
)
def test_the_worst_forms_of_commands_and_keys_find_their_family(
    redis_server: RedisServer,
    registry: CollectorRegistry,
    samples: Samples,
    closing: Closing,
    command: tuple[Any, ...],
    family: str,
) -> None:
    _app, client = families_app(redis_server, registry, closing)
    client.execute_command(*command)
    assert by_family(samples) == {family: 1}


def test_invalid_utf8_keys_match_as_utf8_with_each_bad_byte_a_character(
    redis_server: RedisServer, registry: CollectorRegistry, samples: Samples, closing: Closing
) -> None:
    families = {"bin": "bin:?", "text": "text:*", "exact": "x\xff"}
    _app, client = families_app(
        redis_server, registry, closing, families, REDIS_DECODE_RESPONSES=False
    )
    client.set(b"bin:\xff", b"\xfe\xfd")  # one invalid byte: one character
    client.get(b"bin:\xff")
    client.get(b"bin:\xc3\xa9")  # valid UTF-8: one character too
    client.get(b"bin:\xff\xff")  # two characters
    client.get(b"text:\x80\x00\n")
    client.get(b"x\xff")  # an invalid byte is no Latin-1 character
    client.get("x\xff")  # the text key is
    assert by_family(samples) == {"bin": 3, "text": 1, "other": 2, "exact": 1}
    assert by_family(samples, BYTES, direction="received")["bin"] == 2


@pytest.mark.parametrize(
    "command",
    [
        ("GET", "k1"), ("SET", "k1", "v"), ("HSET", "k1", "f", "v"), ("MSET", "k1", "v", "k2", "v"),
        ("DEL", "k1", "k2"), ("EVAL", "return 1", "2", "k1", "k2", "a"),
        ("EVALSHA", "a" * 40, "1", "k1"), ("XREAD", "COUNT", "1", "STREAMS", "k1", "k2", "0", "0"),
        ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "k1", ">"), ("BITOP", "AND", "k1", "k2"),
        ("OBJECT", "ENCODING", "k1"), ("MEMORY", "USAGE", "k1"),
        ("MIGRATE", "h", "1", "k1", "0", "5"), ("MIGRATE", "h", "1", "", "0", "5", "KEYS", "k1"),
        ("ZUNION", "2", "k1", "k2"), ("ZUNIONSTORE", "d", "2", "k1", "k2"),
        ("LMPOP", "2", "k1", "k2", "LEFT"), ("BLMPOP", "0", "1", "k1", "LEFT"),
        ("SORT", "k1"), ("RENAME", "k1", "k2"), ("XGROUP", "CREATE", "k1", "g", "$"),
        ("XINFO", "STREAM", "k1"), ("GEORADIUS", "k1", "0", "0", "1", "km"),
        ("ZINTERCARD", "1", "k1"), ("SINTERCARD", "2", "k1", "k2"), ("COPY", "k1", "k2"),
        ("PING",), ("ECHO", "k1"), ("PUBLISH", "k1", "m"), ("INFO",), ("DBSIZE",),
        ("SCRIPT", "FLUSH"), ("CONFIG", "GET", "k1"), ("KEYS", "k1"), ("SCAN", "0"),
        ("TIME",), ("CLIENT", "LIST"), ("FUNCTION", "LIST"), ("WAIT", "0", "0"),
    ],
)  # fmt: skip
def test_the_first_key_is_the_servers_first_key(
    redis_server: RedisServer, command: tuple[str, ...]
) -> None:
    client = redis.Redis(port=redis_server.port)
    try:
        info = client.execute_command("COMMAND INFO", command[0])  # type: ignore[no-untyped-call]
        if info in ([None], [], {}):
            pytest.skip(f"{command[0]} is not a command of this server")
        try:
            keys = client.execute_command("COMMAND GETKEYS", *command)  # type: ignore[no-untyped-call]
        except redis.ResponseError:  # the server finds no key in the command
            keys = []
    finally:
        client.close()
    found = [key.decode() if isinstance(key, bytes) else key for key in keys]
    if command[0] == "ZUNIONSTORE":  # Redis 6.2 lists the destination last, Valkey first
        assert first_key(command) == "d" and "d" in found
    else:
        assert first_key(command) == (found[0] if found else None)


# -- The bound, and what is paid --------------------------------------------------------------


def test_a_million_distinct_keys_make_no_more_labels_than_families_and_two(
    redis_server: RedisServer, registry: CollectorRegistry, samples: Samples, closing: Closing
) -> None:
    app, client = families_app(redis_server, registry, closing)
    pipe = client.pipeline(transaction=False)
    for index in range(10_000):  # real round trips...
        pipe.get(f"session:{index}" if index % 2 else f"k{index}\n\xff")
    pipe.execute()
    config = read_config(app.config)
    observe = setup_key_families(app, config)  # ...and a million more handed to the observer
    assert observe is not None
    for index in range(1_000_000):
        observe(("GET", f"{index}:{index % 7}"), 0.0, None, None, None)
    families = set(by_family(samples))
    assert families <= {*FAMILIES, "other", "none"}
    assert by_family(samples)["other"] == 5_000 + 1_000_000
    labels = {dict(found)["family"] for name in (COMMANDS, SECONDS, BYTES)
              for found in samples.matching(name)}  # fmt: skip
    assert len(labels) <= len(FAMILIES) + 2


def test_without_the_setting_no_observer_is_added(
    redis_server: RedisServer, registry: CollectorRegistry, samples: Samples, closing: Closing
) -> None:
    app = observed_app(redis_server.url, registry)
    app.config["REDIS_RECORD_CALLS"] = False
    Redis(app)
    closing(app)
    client = app.extensions["redis"]["REDIS"]
    config = read_config(app.config)
    assert config.key_families is None
    assert setup_key_families(app, config) is None
    client.get("session:1")
    assert observer_of(client).__func__ is PrefixMetrics.observe  # type: ignore[union-attr]
    assert by_family(samples) == {}
    assert registry.get_sample_value(COMMANDS, {"prefix": "redis", "family": "other"}) is None


def test_commands_of_many_threads_add_up(
    redis_server: RedisServer, registry: CollectorRegistry, samples: Samples, closing: Closing
) -> None:
    _app, client = families_app(redis_server, registry, closing)

    def work() -> None:
        for index in range(50):
            client.get(f"session:{index}")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    by_family(samples)  # a collection while they run
    for thread in threads:
        thread.join()
    assert by_family(samples) == {"session": 400}
    assert by_family(samples) == {"session": 400}  # added once


# -- The payload, counted ---------------------------------------------------------------------


def test_sent_bytes_count_words_as_redis_py_encodes_them() -> None:
    assert sent_bytes(("SET", "k", "é", 12, 1.5, b"\x00\xff", memoryview(b"abc"))) == (
        3 + 1 + 2 + 2 + 3 + 2 + 3
    )


def test_reply_bytes_count_strings_at_any_depth_and_nothing_else() -> None:
    nested: Any = "ab"
    for _ in range(100_000):  # deeper than any recursion limit
        nested = [nested]
    assert reply_bytes(nested) == 2
    assert reply_bytes({b"k": [b"v", {"x"}], "n": 5, "e": ValueError("no")}) == 5
    assert reply_bytes(None) == reply_bytes(7) == reply_bytes(True) == 0


# -- The setting, checked ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("session:*", TypeError),
        (["session:*"], TypeError),
        ({"": "a:*"}, ValueError),
        ({"a b": "a:*"}, ValueError),
        ({"x" * 65: "a:*"}, ValueError),
        ({"é": "a:*"}, ValueError),
        ({1: "a:*"}, ValueError),
        ({"other": "a:*"}, ValueError),
        ({"NONE": "a:*"}, ValueError),
        ({"a": 1}, TypeError),
        ({"a": []}, TypeError),
        ({"a": ["a:*", b"b:*"]}, TypeError),
        ({"a": {"a:*"}}, TypeError),
        ({f"f{index}": "a:*" for index in range(101)}, ValueError),
    ],
)
def test_a_wrong_setting_is_an_error_naming_the_key(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="^REDIS_METRICS_KEY_FAMILIES "):
        read_config({"REDIS_METRICS_KEY_FAMILIES": value})


def test_the_setting_keeps_its_order_and_accepts_the_most_families() -> None:
    families = {f"f.{index}:x-y_z": [f"{index}:*"] for index in range(100)}
    config = read_config({"REDIS_METRICS_KEY_FAMILIES": families})
    assert config.key_families == tuple((name, tuple(globs)) for name, globs in families.items())
    assert read_config({"REDIS_METRICS_KEY_FAMILIES": {}}).key_families is None


def test_the_setting_with_the_metrics_off_warns_that_nothing_reads_it() -> None:
    with pytest.warns(
        UnreadKeyWarning, match="REDIS_METRICS_KEY_FAMILIES is set, but REDIS_METRICS is off"
    ):
        config = read_config({"REDIS_METRICS": False, "REDIS_METRICS_KEY_FAMILIES": FAMILIES})
    assert config.key_families is None
