"""The watch that follows a Sentinel service to its new master as soon as it is announced."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from pathlib import Path

import pytest
import redis
from flask import Flask

from flask_redis import Redis
from flask_redis import _failover as failover
from flask_redis._failover import MasterWatch
from flask_redis._libraries import client_library

from .conftest import Closing, close_clients
from .servers import SentinelSet, free_port
from .waiting import wait_for


def watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("flask-redis-sentinel-")]


def no_watch_threads() -> bool:
    """Whether no watch is running, once the clients nothing refers to are collected."""
    gc.collect()  # a client in a reference cycle waits for the collector
    return not watch_threads()


#: How long a watch may take to start, move or end, in seconds.
WATCH_TIMEOUT = 5.0


def sentinel_app(sentinel_set: SentinelSet, **config: object) -> Flask:
    app = Flask(__name__, root_path=str(Path(__file__).parent))
    app.config.update(REDIS_URL=sentinel_set.url, REDIS_METRICS=False, **config)
    return app


def test_a_watch_starts_with_the_client_and_ends_with_it(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis
) -> None:
    wait_for(no_watch_threads, "the watches of earlier tests to end", WATCH_TIMEOUT)
    app = sentinel_app(sentinel_set)
    Redis(app).set("k", "v")
    assert [t.name for t in watch_threads()] == ["flask-redis-sentinel-mymaster"]
    close_clients(app)
    del app
    wait_for(no_watch_threads, "the watch to end with its client", WATCH_TIMEOUT)


def test_an_app_that_sends_nothing_starts_no_watch(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis
) -> None:
    # As a `flask` command that loads the app and never talks to Redis.
    wait_for(no_watch_threads, "the watches of earlier tests to end", WATCH_TIMEOUT)
    app = sentinel_app(sentinel_set)
    redis_ext = Redis(app)
    time.sleep(0.2)
    assert watch_threads() == []
    redis_ext.set("k", "v")  # the first connection to the master starts it
    assert [t.name for t in watch_threads()] == ["flask-redis-sentinel-mymaster"]
    close_clients(app)


def test_the_watch_can_be_turned_off(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis
) -> None:
    wait_for(no_watch_threads, "the watches of earlier tests to end", WATCH_TIMEOUT)
    app = sentinel_app(sentinel_set, REDIS_SENTINEL_WATCH="off")
    Redis(app).set("k", "v")
    assert watch_threads() == []
    close_clients(app)


def test_the_pool_moves_to_the_announced_master_before_any_command(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis
) -> None:
    app = sentinel_app(sentinel_set)
    redis_ext = Redis(app)
    redis_ext.set("k", "v")  # a connection to the master, idle in the pool
    pool = redis_ext.connection.connection_pool
    new = sentinel_set.failover(settle=False)
    # No command was sent: the watch alone moved the pool and closed the idle connection.
    wait_for(lambda: pool.master_address == new, f"the pool to move to {new}", WATCH_TIMEOUT)
    assert all(connection._sock is None for connection in pool._available_connections)
    sentinel_set.restore()
    close_clients(app)


@pytest.mark.parametrize("name", ["redis", "valkey"])
def test_an_unreachable_sentinel_is_logged_once_and_tried_again(
    caplog: pytest.LogCaptureFixture, name: str, closing: Closing
) -> None:
    pytest.importorskip(name)
    sentinel_class = client_library(name).sentinel
    sentinel = closing(sentinel_class([("127.0.0.1", free_port())], socket_timeout=0.2))
    client = closing(sentinel.master_for("nowhere"))
    with caplog.at_level(logging.WARNING, "flask_redis"):
        watch = MasterWatch(sentinel, "nowhere", client.connection_pool).start()
        try:
            # The library's clients of the sentinels retry for a few seconds before they fail.
            wait_for(lambda: caplog.records, "a warning of the watch", 15)
            assert watch._thread is not None and watch._thread.is_alive()  # it tries again
        finally:
            watch.stop()
    messages = [record.getMessage() for record in caplog.records]
    host, port = sentinel.sentinels[0].connection_pool.connection_kwargs["host"], port_of(sentinel)
    assert messages == [
        f"flask_redis: cannot listen to sentinel {host}:{port} of 'nowhere' for failovers"
        " (ConnectionError); trying again"
    ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_worker_has_a_watch_of_its_own(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis
) -> None:
    app = sentinel_app(sentinel_set)
    redis_ext = Redis(app)
    redis_ext.set("k", "v")
    pool = redis_ext.connection.connection_pool
    watch = next(w for w in failover._watches if w._pool() is pool)
    pid = os.fork()
    if pid == 0:  # the child, as a gunicorn worker forked after the app was set up
        thread = watch._thread
        ok = (
            thread is not None and thread.is_alive() and thread.ident != threading.get_ident()
            and redis_ext.get("k") == b"v"
        )  # fmt: skip
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    close_clients(app)
    assert status == 0  # the child exited with 0


def port_of(sentinel: object) -> int:
    return int(sentinel.sentinels[0].connection_pool.connection_kwargs["port"])  # type: ignore[attr-defined]


ADDRESS_A, ADDRESS_B = ("10.0.0.1", 6379), ("10.0.0.2", 6379)


@pytest.mark.parametrize(
    ("reports", "chosen"),
    [
        ([], None),
        # The newest configuration wins, whatever the number of sentinels behind it.
        ([("s1", (3, ADDRESS_A)), ("s2", (3, ADDRESS_A)), ("s3", (4, ADDRESS_B))], "s3"),
        # At the same epoch, the address that most sentinels report.
        ([("s1", (0, ADDRESS_B)), ("s2", (0, ADDRESS_A)), ("s3", (0, ADDRESS_A))], "s2"),
        ([("s1", (2, ADDRESS_A))], "s1"),
    ],
)
def test_the_newest_configuration_is_followed_then_the_most_sentinels(
    reports: list[tuple[str, tuple[int, tuple[str, int]]]], chosen: str | None
) -> None:
    found = failover.newest((name, failover.MasterReport(*report)) for name, report in reports)
    assert (found[0] if found else None) == chosen


def test_a_frozen_sentinel_is_left_and_listened_to_again_once_it_thaws(
    sentinel_set: SentinelSet,
    sentinel_master: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(failover, "PING_SECONDS", 0.5)
    monkeypatch.setattr(failover, "MAX_RETRY_SECONDS", 1.0)
    # Those of earlier tests would log too.
    wait_for(no_watch_threads, "the watches of earlier tests to end", WATCH_TIMEOUT)
    app = sentinel_app(sentinel_set)
    redis_ext = Redis(app)
    redis_ext.set("k", "v")
    pool = redis_ext.connection.connection_pool
    watch = next(w for w in failover._watches if w._pool() is pool)
    first = sentinel_set.sentinel_servers[0]
    subscription = next(s for s in watch._subscriptions if port_of_client(s.sentinel) == first.port)
    wait_for(lambda: subscription.pubsub is not None, "the subscription", WATCH_TIMEOUT)
    with caplog.at_level(logging.WARNING, "flask_redis"):
        first.freeze()
        try:
            # Its PING goes unanswered: the watch closes the subscription and says so.
            wait_for(lambda: subscription.pubsub is None, "the subscription to close", 5)
            wait_for(lambda: caplog.records, "a warning of the watch", 5)
            assert watch._thread is not None and watch._thread.is_alive()
        finally:
            first.thaw()
        wait_for(lambda: subscription.pubsub is not None, "the subscription again", 10)
    assert [record.getMessage() for record in caplog.records] == [
        f"flask_redis: cannot listen to sentinel 127.0.0.1:{first.port} of 'mymaster' for"
        " failovers (TimeoutError); trying again"
    ]
    close_clients(app)


def port_of_client(client: redis.Redis) -> int:
    return int(client.connection_pool.connection_kwargs["port"])
