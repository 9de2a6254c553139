"""Prometheus metrics of the instrumented client: per prefix, per command, per request."""

from __future__ import annotations

import bisect
import gc
import itertools
import logging
import math
import os
import threading
import tracemalloc
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
import redis
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY, CollectorRegistry, Histogram

import flask_redis._instrument
import flask_redis._metrics
import flask_redis._tallies
from flask_redis import Redis
from flask_redis._libraries import ClientLibrary

from .conftest import close_clients
from .recorded import (
    copied,
    in_copied_context,
    in_threads,
    log_failures_anew,
    uncountable_pool,
)
from .samples import (
    COMMANDS,
    DURATION,
    ERRORS,
    POOL,
    POOL_USAGE,
    REQUEST_COMMANDS,
    REQUEST_DURATION,
    Samples,
    checked_out,
)  # fmt: skip
from .servers import RedisServer, free_port

#: The wall time of every round trip under the :func:`fake_clock` fixture.
ROUND_TRIP = 0.003
#: What the scrape logs when it cannot read the pools of prefix REDIS.
UNREADABLE_POOLS = (
    "flask_redis: reading the connection pools of prefix 'redis' for the pool gauges failed;"
    " the metrics are served with the gauges' last values"
)


@pytest.fixture()
def metrics_app(
    app: Flask, registry: CollectorRegistry, redis_server: RedisServer
) -> Iterator[Flask]:
    """:func:`app` with metrics of ``REDIS`` (database 0) and ``CACHE`` (database 1) kept in
    :func:`registry`. The connections of its clients are closed afterwards: left to the
    garbage collector, a socket may go before its connection closes it, which warns (a
    ResourceWarning) in whatever test collects it."""
    app.config.update(
        REDIS_METRICS_REGISTRY=registry,
        CACHE_HOST="127.0.0.1",
        CACHE_PORT=redis_server.port,
        CACHE_DB=1,
        CACHE_METRICS_REGISTRY=registry,
    )
    yield app
    close_clients(app)


@pytest.fixture()
def ext(metrics_app: Flask) -> Redis:
    return Redis(metrics_app)


@pytest.fixture()
def cache(metrics_app: Flask) -> Redis:
    return Redis(metrics_app, "CACHE")


@pytest.fixture()
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every observed round trip take exactly :data:`ROUND_TRIP` seconds."""
    ticks = itertools.count()
    monkeypatch.setattr(flask_redis._instrument, "perf_counter", lambda: next(ticks) * ROUND_TRIP)


@pytest.fixture()
def observer_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the metrics observer raise, with its once-per-process log not yet written."""

    def fail(*args: Any) -> None:
        raise RuntimeError("observer failed")

    monkeypatch.setattr(flask_redis._metrics.PrefixMetrics, "observe", fail)
    log_failures_anew(monkeypatch)


def get(app: Flask, path: str) -> int:
    """The status code of a GET of ``path`` from ``app``."""
    return app.test_client().get(path).status_code


def run(app: Flask, in_request: bool, work: Callable[[], Any]) -> None:
    """Call ``work`` inside a request of ``app`` (at endpoint ``work``), or outside one."""
    if not in_request:
        work()
        return

    def view() -> str:
        work()
        return ""

    app.add_url_rule("/work", "work", view)
    assert get(app, "/work") == 200


where = pytest.mark.parametrize("in_request", [False, True], ids=["outside", "in-request"])


@settings(max_examples=100, deadline=None)
@given(
    seconds=st.lists(
        st.one_of(
            st.sampled_from(flask_redis._tallies.DURATION_BUCKETS),
            st.floats(0, 0.002), st.floats(0, 10),
        ),
        min_size=1, max_size=12,
    ),
    in_request=st.booleans(),
)  # fmt: skip
def test_each_round_trip_falls_in_the_bucket_prometheus_client_puts_it_in(
    redis_server: RedisServer, seconds: list[float], in_request: bool
) -> None:
    registry = CollectorRegistry()
    app = Flask(__name__)
    app.config.update(REDIS_PORT=redis_server.port, REDIS_METRICS_REGISTRY=registry)
    ext = Redis(app)
    seconds *= 2  # the first round trip of a command is tallied apart from the others
    # Each round trip starts at 0 and ends after its given seconds.
    clock = iter([tick for each in seconds for tick in (0.0, each)])
    expected = Histogram("expected", "", buckets=flask_redis._tallies.DURATION_BUCKETS,
                         registry=CollectorRegistry())  # fmt: skip
    # Not the monkeypatch fixture, which hypothesis does not reset between examples.
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(flask_redis._instrument, "perf_counter", lambda: next(clock))
        try:
            with app.test_request_context() if in_request else nullcontext():
                for each in seconds:
                    ext.get("k")
                    expected.observe(each)
        finally:
            ext.connection.close()
    buckets = Samples(registry).matching(f"{DURATION}_bucket", command="GET")
    assert {dict(labels)["le"]: count for labels, count in buckets.items()} == {
        sample.labels["le"]: sample.value
        for sample in list(expected.collect())[0].samples if sample.name == "expected_bucket"
    }  # fmt: skip


def test_two_prefixes_in_one_request_are_counted_apart(
    metrics_app: Flask, ext: Redis, cache: Redis, samples: Samples, redis_server: RedisServer
) -> None:
    @metrics_app.route("/both")
    def both() -> str:
        ext.set("a", 1)
        ext.get("a")
        cache.incr("n")
        return ""

    assert get(metrics_app, "/both") == 200
    assert redis_server.client(db=1).get("n") == b"1"
    assert (samples.commands("SET"), samples.commands("GET")) == (1, 1)
    assert (samples.round_trips("SET"), samples.round_trips("GET")) == (1, 1)
    assert samples.commands("INCRBY", "cache") == 1
    assert samples.round_trips("INCRBY", "cache") == 1
    assert samples.commands("INCRBY") is None
    assert samples.request_commands("both") == (2, 1)
    assert samples.request_commands("both", "cache") == (1, 1)
    assert samples.requests("both") == samples.requests("both", "cache") == 1


def test_a_request_is_observed_only_for_the_prefixes_it_used(
    metrics_app: Flask, ext: Redis, cache: Redis, samples: Samples
) -> None:
    @metrics_app.route("/redis-only")
    def redis_only() -> str:
        ext.get("a")
        return ""

    @metrics_app.route("/no-redis")
    def no_redis() -> str:
        return ""

    for path in ("/redis-only", "/no-redis", "/no-redis"):
        assert get(metrics_app, path) == 200
    assert samples.request_commands("redis_only") == (1, 1)
    assert samples.request_commands("redis_only", "cache") == (None, None)
    assert samples.requests("redis_only", "cache") is None
    assert samples.matching(f"{REQUEST_COMMANDS}_count", endpoint="no_redis") == {}
    assert samples.matching(f"{REQUEST_DURATION}_count", endpoint="no_redis") == {}


def test_each_endpoint_has_its_own_request_figures(
    metrics_app: Flask, ext: Redis, cache: Redis, samples: Samples
) -> None:
    @metrics_app.route("/one")
    def one() -> str:
        ext.get("a")
        return ""

    @metrics_app.route("/three")
    def three() -> str:
        ext.mget("a", "b")
        ext.get("a")
        ext.exists("a")
        return ""

    for path in ("/one", "/three", "/three"):
        assert get(metrics_app, path) == 200
    assert samples.request_commands("one") == (1, 1)
    assert samples.request_commands("three") == (6, 2)
    assert samples.requests("one") == 1
    assert samples.requests("three") == 2
    assert samples.commands("GET") == 3
    assert samples(f"{REQUEST_COMMANDS}_bucket", prefix="redis", endpoint="three", le="2.0") == 0
    assert samples(f"{REQUEST_COMMANDS}_bucket", prefix="redis", endpoint="three", le="5.0") == 2


def test_a_request_without_endpoint_is_labelled_none(
    metrics_app: Flask, ext: Redis, cache: Redis, samples: Samples
) -> None:
    metrics_app.before_request(lambda: ext.get("seen") and None)
    assert get(metrics_app, "/no-such-page") == 404
    assert samples.request_commands("none") == (1, 1)
    assert samples.request_commands("none", "cache") == (None, None)


def test_request_duration_is_the_sum_of_its_round_trips(
    metrics_app: Flask, ext: Redis, cache: Redis, samples: Samples
) -> None:
    @metrics_app.route("/busy")
    def busy() -> str:
        ext.set("a", 1)
        ext.get("a")
        with ext.pipeline() as pipe:
            pipe.incr("a").get("a").execute()
        cache.get("b")
        return ""

    assert get(metrics_app, "/busy") == 200
    for prefix in ("redis", "cache"):
        round_trips = samples.matching(f"{DURATION}_sum", prefix=prefix).values()
        request_sum = samples(f"{REQUEST_DURATION}_sum", prefix=prefix, endpoint="busy")
        assert request_sum is not None and request_sum > 0
        assert request_sum == pytest.approx(sum(round_trips))


@pytest.mark.usefixtures("fake_clock")
@where
def test_duration_buckets_are_those_of_each_round_trip(
    metrics_app: Flask, ext: Redis, samples: Samples, in_request: bool
) -> None:
    def work() -> None:
        ext.set("a", 1)
        ext.get("a")
        ext.get("a")

    run(metrics_app, in_request, work)
    for command, count in (("SET", 1), ("GET", 2)):
        labels = {"prefix": "redis", "command": command}
        assert samples(f"{DURATION}_bucket", le="0.0025", **labels) == 0
        assert samples(f"{DURATION}_bucket", le="0.005", **labels) == count
        assert samples(f"{DURATION}_bucket", le="+Inf", **labels) == count
        assert samples(f"{DURATION}_sum", **labels) == pytest.approx(count * ROUND_TRIP)
    if in_request:
        labels = {"prefix": "redis", "endpoint": "work"}
        assert samples(f"{REQUEST_DURATION}_sum", **labels) == pytest.approx(3 * ROUND_TRIP)
        assert samples(f"{REQUEST_DURATION}_bucket", le="0.005", **labels) == 0
        assert samples(f"{REQUEST_DURATION}_bucket", le="0.01", **labels) == 1


@where
@pytest.mark.parametrize(("transaction", "round_trip"), [(False, "PIPELINE"), (True, "MULTI")])
def test_a_pipeline_is_one_round_trip_of_counted_commands(
    metrics_app: Flask,
    ext: Redis,
    samples: Samples,
    in_request: bool,
    transaction: bool,
    round_trip: str,
) -> None:
    def work() -> None:
        with ext.pipeline(transaction=transaction) as pipe:
            assert pipe.set("a", 1).incr("a").get("a").execute() == [True, 2, b"2"]

    run(metrics_app, in_request, work)
    assert samples.round_trips(round_trip) == 1
    assert samples.commands(round_trip) is None
    assert [samples.commands(name) for name in ("SET", "INCRBY", "GET")] == [1, 1, 1]
    assert [samples.round_trips(name) for name in ("SET", "INCRBY", "GET")] == [None] * 3
    assert samples.commands("EXEC") is None
    if in_request:
        assert samples.request_commands("work") == (3, 1)


@where
def test_a_watched_transaction_counts_watch_and_its_reads(
    metrics_app: Flask, ext: Redis, samples: Samples, plain: redis.Redis, in_request: bool
) -> None:
    def increment(pipe: Any) -> None:
        value = int(pipe.get("counter") or 0)
        pipe.multi()
        pipe.set("counter", value + 1)

    run(metrics_app, in_request, lambda: ext.transaction(increment, "counter"))
    assert plain.get("counter") == b"1"
    assert (samples.commands("WATCH"), samples.round_trips("WATCH")) == (1, 1)
    assert (samples.commands("GET"), samples.round_trips("GET")) == (1, 1)
    assert (samples.commands("SET"), samples.round_trips("SET")) == (1, None)
    assert (samples.commands("MULTI"), samples.round_trips("MULTI")) == (None, 1)
    if in_request:
        assert samples.request_commands("work") == (3, 1)


@where
def test_an_empty_pipeline_observes_nothing(
    metrics_app: Flask, ext: Redis, samples: Samples, in_request: bool
) -> None:
    run(metrics_app, in_request, lambda: ext.pipeline().execute())
    assert samples.matching(f"{DURATION}_count") == {}
    assert samples.matching(COMMANDS) == {}
    assert samples.matching(f"{REQUEST_COMMANDS}_count") == {}  # no round trip, no figure


@where
def test_a_wrong_type_error_reaches_the_caller_and_is_counted(
    metrics_app: Flask, ext: Redis, samples: Samples, client_module: ModuleType, in_request: bool
) -> None:
    def work() -> None:
        ext.set("s", "x")
        with pytest.raises(client_module.ResponseError, match="WRONGTYPE") as info:
            ext.lpush("s", 1)
        assert type(info.value) is client_module.ResponseError

    run(metrics_app, in_request, work)
    assert samples.errors("LPUSH", "ResponseError") == 1
    assert samples.errors("SET", "ResponseError") is None
    assert (samples.commands("LPUSH"), samples.round_trips("LPUSH")) == (1, 1)


@where
def test_a_failed_command_of_a_pipeline_is_counted_under_its_name(
    metrics_app: Flask, ext: Redis, samples: Samples, client_module: ModuleType, in_request: bool
) -> None:
    def work() -> None:
        with ext.pipeline(transaction=False) as pipe:
            replies = pipe.set("s", "x").lpush("s", 1).get("s").execute(raise_on_error=False)
        assert replies[0] is True and replies[2] == b"x"
        assert type(replies[1]) is client_module.ResponseError

    run(metrics_app, in_request, work)
    assert samples.errors("LPUSH", "ResponseError") == 1
    assert samples.matching(ERRORS, command="PIPELINE") == {}
    assert samples.round_trips("PIPELINE") == 1


@pytest.mark.parametrize(("transaction", "round_trip"), [(False, "PIPELINE"), (True, "MULTI")])
def test_an_error_raised_by_execute_is_counted_under_the_round_trip(
    ext: Redis, samples: Samples, client_module: ModuleType, transaction: bool, round_trip: str
) -> None:
    ext.set("s", "x")
    with ext.pipeline(transaction=transaction) as pipe:
        pipe.lpush("s", 1).get("s")
        with pytest.raises(client_module.ResponseError):
            pipe.execute()
    assert samples.errors(round_trip, "ResponseError") == 1
    assert samples.errors("LPUSH", "ResponseError") is None
    assert samples.round_trips(round_trip) == 1


@where
def test_a_connection_error_reaches_the_caller_and_is_counted(
    metrics_app: Flask, samples: Samples, client_module: ModuleType, in_request: bool
) -> None:
    retry = client_module.retry.Retry(client_module.backoff.NoBackoff(), 0)
    metrics_app.config.update(
        REDIS_PORT=free_port(), REDIS_SOCKET_CONNECT_TIMEOUT=0.5, REDIS_RETRY=retry
    )
    ext = Redis(metrics_app)

    def work() -> None:
        with pytest.raises(client_module.ConnectionError):
            ext.get("k")

    run(metrics_app, in_request, work)
    assert samples.errors("GET", "ConnectionError") == 1
    assert samples.round_trips("GET") == 1


@pytest.mark.parametrize("context", ["none", "app"], ids=lambda name: f"{name}-context")
def test_outside_a_request_each_round_trip_is_recorded_at_once(
    metrics_app: Flask, ext: Redis, samples: Samples, context: str
) -> None:
    contexts: dict[str, Callable[[], AbstractContextManager[Any]]] = {
        "none": nullcontext,
        "app": metrics_app.app_context,
    }
    with contexts[context]():
        ext.set("a", 1)
        assert samples.commands("SET") == 1
        assert samples.round_trips("SET") == 1
    assert samples.matching(f"{REQUEST_COMMANDS}_count") == {}


def serve_while_scraped(
    app: Flask, samples: Samples, path: str, clients: int, requests: int
) -> None:
    """GET ``path`` from ``app`` ``requests`` times in each of ``clients`` threads at once,
    while another thread collects the metrics over and over."""

    def serve() -> None:
        client = app.test_client()
        for _ in range(requests):
            assert client.get(path).status_code == 200

    done = threading.Event()

    def scrape() -> None:  # the figures are read while the requests run
        while not done.is_set():
            samples.request_commands("none")

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda _: serve(), range(clients)))
    finally:
        done.set()
        scraper.join()


def test_requests_in_many_threads_with_scrapes_between_are_counted_exactly(
    metrics_app: Flask, ext: Redis, samples: Samples
) -> None:
    threads, each = 8, 40

    @metrics_app.route("/two")
    def two() -> str:
        ext.get("a")
        ext.get("b")
        return ""

    serve_while_scraped(metrics_app, samples, "/two", threads, each)
    requests = threads * each
    assert samples.request_commands("two") == (2 * requests, requests)
    assert samples.commands("GET") == 2 * requests
    assert samples(f"{REQUEST_COMMANDS}_bucket", prefix="redis", endpoint="two", le="2.0") == (
        requests
    )


@copied
def test_a_request_that_hands_commands_to_threads_is_one_request(
    metrics_app: Flask, ext: Redis, samples: Samples, how: str
) -> None:
    threads, each, requests = 4, 10, 3

    def gets() -> None:
        for _ in range(each):
            ext.get("a")

    @metrics_app.route("/fan")
    def fan() -> str:
        in_threads(how, gets, threads)
        ext.get("a")  # after theirs: the request's first round trip was in a thread
        return ""

    for _ in range(requests):
        assert get(metrics_app, "/fan") == 200
    commands = threads * each + 1
    assert samples.request_commands("fan") == (requests * commands, requests)
    assert samples.requests("fan") == requests
    labels = {"prefix": "redis", "endpoint": "fan"}
    assert samples(f"{REQUEST_COMMANDS}_bucket", le="20.0", **labels) == 0
    assert samples(f"{REQUEST_COMMANDS}_bucket", le="50.0", **labels) == requests
    assert samples.commands("GET") == requests * commands


@copied
def test_requests_that_hand_commands_to_threads_are_counted_exactly_while_scraped(
    metrics_app: Flask, ext: Redis, samples: Samples, how: str
) -> None:
    clients, requests, threads, each = 3, 10, 3, 5

    def gets() -> None:
        for _ in range(each):
            ext.get("a")

    @metrics_app.route("/fan")
    def fan() -> str:
        ext.get("a")  # first: its request is open until it ends, whatever its threads do
        in_threads(how, gets, threads)
        return ""

    serve_while_scraped(metrics_app, samples, "/fan", clients, requests)
    served, commands = clients * requests, threads * each + 1
    assert samples.request_commands("fan") == (served * commands, served)
    labels = {"prefix": "redis", "endpoint": "fan"}
    assert samples(f"{REQUEST_COMMANDS}_bucket", le="10.0", **labels) == 0
    assert samples(f"{REQUEST_COMMANDS}_bucket", le="20.0", **labels) == served
    assert samples.commands("GET") == served * commands


@copied
def test_a_thread_that_outlives_its_request_adds_no_request(
    metrics_app: Flask, ext: Redis, samples: Samples, how: str
) -> None:
    in_request, released = threading.Event(), threading.Event()
    threads: list[threading.Thread] = []

    def outlive() -> None:
        ext.get("a")
        in_request.set()
        assert released.wait(10)
        ext.get("b")  # the response has been sent
        ext.get("b")

    @metrics_app.route("/spawn")
    def spawn() -> str:
        ext.get("a")
        threads.append(threading.Thread(target=in_copied_context(how, outlive)))
        threads[0].start()
        assert in_request.wait(10)
        return ""

    assert get(metrics_app, "/spawn") == 200
    try:
        if how == "request-context":  # the request lasts while the thread's copy is pushed
            assert samples.requests("spawn") is None
        else:  # the context the thread runs in was popped with the response
            assert samples.request_commands("spawn") == (2, 1)
    finally:
        released.set()
        threads[0].join()
    assert samples.commands("GET") == 4
    assert samples.request_commands("spawn") == (4 if how == "request-context" else 2, 1)


def test_figures_of_requests_wait_in_bounded_records_when_nothing_collects(
    metrics_app: Flask, ext: Redis, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flask_redis._metrics, "_OPENED", 10)

    @metrics_app.route("/work")
    def work() -> str:
        ext.get("a")
        return ""

    client = metrics_app.test_client()
    for _ in range(35):
        assert client.get("/work").status_code == 200
    prefix_metrics = flask_redis._metrics.metrics_for(registry).for_prefix("REDIS")
    assert len(prefix_metrics._open) <= 11
    assert len(prefix_metrics._local.thread.active) == 1  # the last request's context only
    assert Samples(registry).request_commands("work") == (35, 35)


def test_an_app_teardown_that_fails_leaves_the_figures_exact(
    metrics_app: Flask, ext: Redis, samples: Samples
) -> None:
    @metrics_app.route("/work")
    def work() -> str:
        ext.get("a")
        return ""

    @metrics_app.teardown_request
    def failing(error: BaseException | None) -> None:
        raise RuntimeError("teardown failed")

    client = metrics_app.test_client()
    for _ in range(3):
        with pytest.raises(RuntimeError, match="teardown failed"):
            client.get("/work")
    ext.get("b")  # outside a request, in the same thread
    assert samples.request_commands("work") == (3, 3)
    assert samples.commands("GET") == 4


def test_a_request_context_pushed_by_hand_is_a_request_when_it_ends(
    metrics_app: Flask, ext: Redis, samples: Samples
) -> None:
    with metrics_app.test_request_context("/no-such-page"):
        ext.set("a", 1)
        ext.get("a")
        assert (samples.commands("SET"), samples.commands("GET")) == (1, 1)
        assert samples.request_commands("none") == (None, None)  # not over yet
    assert samples.request_commands("none") == (2, 1)


def test_round_trips_of_many_threads_outside_requests_are_all_counted(
    ext: Redis, samples: Samples, registry: CollectorRegistry
) -> None:
    threads, each = 8, 150
    client = ext.connection

    def work() -> None:
        for _ in range(each):
            client.get("a")
        client.pipeline(transaction=False).get("a").get("b").execute()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: work(), range(threads)))
    assert samples.commands("GET") == threads * (each + 2)
    assert samples.round_trips("GET") == threads * each
    assert samples.round_trips("PIPELINE") == threads
    assert samples(f"{DURATION}_bucket", prefix="redis", command="GET", le="+Inf") == (
        threads * each
    )


def test_outside_requests_round_trips_wait_for_a_collect_in_bounded_records(
    ext: Redis, registry: CollectorRegistry, client_module: ModuleType
) -> None:
    prefix_metrics = flask_redis._metrics.metrics_for(registry).for_prefix("REDIS")

    def counted() -> float:  # the metric's own values, without what is still tallied
        return sum(
            sample.value for metric in prefix_metrics.metrics.commands.collect()
            for sample in metric.samples if sample.name == COMMANDS
        )  # fmt: skip

    names = flask_redis._tallies.RECORD_NAMES + 44
    for number in range(names):  # names built at run time: kept by label past the bound
        with pytest.raises(client_module.ResponseError):
            ext.execute_command(f"NOSUCHCMD{number}")
    ext.get("a")
    assert counted() == 0
    assert len(prefix_metrics._local.thread.records) <= flask_redis._tallies.RECORD_NAMES + 2
    samples = Samples(registry)
    assert (samples.commands("OTHER"), samples.commands("GET")) == (names, 1)
    assert counted() == names + 1


def test_threads_that_ended_are_counted_and_forgotten(
    ext: Redis, registry: CollectorRegistry
) -> None:
    prefix_metrics = flask_redis._metrics.metrics_for(registry).for_prefix("REDIS")
    threads = [threading.Thread(target=ext.connection.get, args=("a",)) for _ in range(100)]
    for thread in threads:  # one after the other: a hundred threads, each ended
        thread.start()
        thread.join()
    # Nothing collected the metrics, yet the records of ended threads do not pile up:
    # each thread took over those of the one before.
    assert len(prefix_metrics._threads) == 1
    assert Samples(registry).commands("GET") == 100
    assert prefix_metrics._threads == []


def test_threads_running_at_once_never_share_records(
    ext: Redis, registry: CollectorRegistry
) -> None:
    prefix_metrics = flask_redis._metrics.metrics_for(registry).for_prefix("REDIS")
    started, release = threading.Barrier(9), threading.Event()

    def get_and_wait() -> None:
        ext.connection.get("a")
        started.wait(10)
        release.wait(10)
        ext.connection.get("a")

    threads = [threading.Thread(target=get_and_wait) for _ in range(8)]
    for thread in threads:
        thread.start()
    started.wait(10)  # all eight made a round trip, and are alive
    assert len({id(each) for each in prefix_metrics._threads}) == 8
    assert len({each.thread for each in prefix_metrics._threads}) == 8
    release.set()
    for thread in threads:
        thread.join()
    assert Samples(registry).commands("GET") == 16


def test_requests_in_a_thread_each_count_once_when_threads_take_over_records(
    metrics_app: Flask, ext: Redis, samples: Samples
) -> None:
    """A thread per request, as Werkzeug's server and asgiref run them: each request's
    figures are its own, though its thread's records go on in the next thread."""

    def request(gets: int) -> None:
        with metrics_app.test_request_context("/"):
            for _ in range(gets):
                ext.connection.get("a")

    for gets in (1, 2, 3, 4):
        thread = threading.Thread(target=request, args=(gets,))
        thread.start()
        thread.join()
    assert samples.commands("GET") == 10
    assert samples.requests("none") == 4
    assert samples.request_commands("none") == (10, 4)


@where
def test_an_unknown_command_is_labelled_other(
    metrics_app: Flask, ext: Redis, samples: Samples, client_module: ModuleType, in_request: bool
) -> None:
    def work() -> None:
        with pytest.raises(client_module.ResponseError):
            ext.execute_command("NOSUCHCMD", "x")

    run(metrics_app, in_request, work)
    assert samples.commands("OTHER") == 1
    assert samples.round_trips("OTHER") == 1
    assert samples.errors("OTHER", "ResponseError") == 1
    assert samples.commands("NOSUCHCMD") is None


def test_a_command_named_in_one_string_is_labelled_as_redis_py_sends_it(
    ext: Redis, samples: Samples
) -> None:
    for name in ("GET k", "\tget  k ", b"get k", "CLIENT GETNAME"):
        ext.execute_command(name)
    assert samples.commands("GET") == 3
    assert samples.commands("CLIENT") == 1
    assert samples.commands("OTHER") is None


@where
def test_commands_named_in_one_long_string_leave_no_memory_behind(
    metrics_app: Flask, ext: Redis, samples: Samples, in_request: bool
) -> None:
    commands, size = 300, 20_000

    def work() -> None:  # each a distinct string, split by redis-py: SET k <20 kB>
        for number in range(commands):
            ext.execute_command(f"SET k {number:06d}{'v' * size}")

    samples.commands("SET")  # the caches and records hold the short names already
    gc.collect()
    tracing = tracemalloc.is_tracing()  # already, for the whole run: left on
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run(metrics_app, in_request, work)
        assert samples.commands("SET") == commands
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        if not tracing:
            tracemalloc.stop()
    # Before: the label cache and the records held each string, 6 MB; the name is enough.
    assert kept < 1_000_000, kept


@pytest.mark.parametrize("shared", [True, False], ids=["shared-registry", "default-registry"])
def test_many_apps_and_prefixes_share_a_registry(redis_server: RedisServer, shared: bool) -> None:
    registry = CollectorRegistry() if shared else REGISTRY
    before = Samples(registry).request_commands("none", "cache")[1] or 0
    for _ in range(5):
        app = Flask(__name__, root_path=str(Path(__file__).parent))
        for prefix in ("REDIS", "CACHE"):
            app.config.update({f"{prefix}_HOST": "127.0.0.1", f"{prefix}_PORT": redis_server.port})
            if shared:
                app.config[f"{prefix}_METRICS_REGISTRY"] = registry
            cache = Redis(app, prefix)
        app.before_request(lambda cache=cache: cache.ping() and None)
        assert get(app, "/") == 404
        close_clients(app)
    assert Samples(registry).request_commands("none", "cache")[1] == before + 5


@pytest.mark.parametrize("value", [False, "false"])
def test_metrics_off_gives_the_configured_class_and_records_nothing(
    metrics_app: Flask, cache: Redis, samples: Samples, library: ClientLibrary, value: object
) -> None:
    metrics_app.config["REDIS_METRICS"] = value
    ext = Redis(metrics_app)
    assert type(ext.connection) is library.client
    run(metrics_app, True, lambda: ext.set("a", 1))
    assert "redis" not in samples.prefixes()
    assert samples.prefixes() <= {"cache"}


def test_metrics_on_gives_a_subclass_named_as_the_configured_class(
    ext: Redis, client_module: ModuleType, library: ClientLibrary
) -> None:
    made = type(ext.connection)
    assert issubclass(made, library.client) and made is not library.client
    assert (made.__name__, made.__module__) == (library.client.__name__, library.client.__module__)
    with ext.pipeline() as pipe:
        assert isinstance(pipe, client_module.client.Pipeline)
        assert type(pipe) is not client_module.client.Pipeline


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("REDIS_METRICS", "maybe", ValueError),
        ("REDIS_METRICS_PATH", "metrics", ValueError),
        ("REDIS_METRICS_REGISTRY", object(), TypeError),
    ],
)
def test_a_bad_metrics_setting_names_its_key(
    metrics_app: Flask, key: str, value: object, error: type[Exception]
) -> None:
    metrics_app.config[key] = value
    with pytest.raises(error, match=key):
        Redis(metrics_app)


@pytest.mark.usefixtures("observer_fails")
@where
def test_a_failing_observer_is_logged_once_and_commands_still_work(
    metrics_app: Flask,
    ext: Redis,
    caplog: pytest.LogCaptureFixture,
    client_module: ModuleType,
    in_request: bool,
) -> None:
    caplog.set_level(logging.ERROR, logger="flask_redis")

    def work() -> None:
        assert ext.set("k", "v") is True
        assert ext.get("k") == b"v"
        assert ext.pipeline().incr("n").get("n").execute() == [1, b"1"]
        with pytest.raises(client_module.ResponseError):
            ext.execute_command("NOSUCHCMD")

    run(metrics_app, in_request, work)
    records = [record for record in caplog.records if record.name == "flask_redis"]
    assert [record.getMessage() for record in records] == [
        "flask_redis: the observer observer_fails.<locals>.fail of prefix 'redis' failed;"
        " the Redis command it observed did not"
    ]
    assert records[0].exc_info is not None and records[0].exc_info[0] is RuntimeError


def test_pool_gauge_after_a_request_shows_the_idle_connection(
    metrics_app: Flask, ext: Redis, samples: Samples
) -> None:
    run(metrics_app, True, lambda: ext.get("a"))
    assert samples(POOL, prefix="redis", state="in_use") == 0
    idle = samples(POOL, prefix="redis", state="idle")
    assert idle is not None and idle >= 1


def test_pool_gauge_is_read_at_the_scrape_outside_requests_too(
    metrics_app: Flask, ext: Redis, samples: Samples
) -> None:
    ext.get("a")  # no request at all
    assert samples(POOL, prefix="redis", state="idle") == 1
    pool = ext.connection.connection_pool
    connection = checked_out(pool)  # held: in use
    try:
        assert samples(POOL, prefix="redis", state="in_use") == 1
        assert samples(POOL, prefix="redis", state="idle") == 0
    finally:
        pool.release(connection)


@pytest.mark.parametrize(
    "blocking", [False, True], ids=["ConnectionPool", "BlockingConnectionPool"]
)
def test_pool_usage_is_the_share_of_max_connections_in_use(
    metrics_app: Flask,
    redis_server: RedisServer,
    samples: Samples,
    client_module: ModuleType,
    blocking: bool,
) -> None:
    if blocking:
        metrics_app.config["REDIS_CONNECTION_POOL"] = client_module.BlockingConnectionPool(
            host="127.0.0.1", port=redis_server.port, max_connections=4
        )
    else:
        metrics_app.config["REDIS_MAX_CONNECTIONS"] = 4
    pool = Redis(metrics_app).connection.connection_pool
    assert isinstance(pool, client_module.BlockingConnectionPool) is blocking
    held = [checked_out(pool) for _ in range(3)]
    try:
        assert samples(POOL_USAGE, prefix="redis") == 0.75
        pool.release(held.pop())
        assert samples(POOL_USAGE, prefix="redis") == 0.5
    finally:
        for connection in held:
            pool.release(connection)
    assert samples(POOL_USAGE, prefix="redis") == 0


def test_pool_usage_follows_redis_pys_default_limit(ext: Redis, samples: Samples) -> None:
    pool = ext.connection.connection_pool
    connection = checked_out(pool)
    try:  # redis-py's default limit: 2**31 connections up to 7.x, 100 since 8.0
        assert samples(POOL_USAGE, prefix="redis") == 1 / pool.max_connections
    finally:
        pool.release(connection)


def test_a_pool_shared_by_two_apps_of_one_prefix_is_counted_once(
    metrics_app: Flask, redis_server: RedisServer, samples: Samples, client_module: ModuleType
) -> None:
    pool = client_module.ConnectionPool(host="127.0.0.1", port=redis_server.port)
    other = Flask(__name__, root_path=metrics_app.root_path)
    for app in (metrics_app, other):
        app.config.update(
            REDIS_CONNECTION_POOL=pool,
            REDIS_METRICS_REGISTRY=metrics_app.config["REDIS_METRICS_REGISTRY"],
        )
        assert Redis(app).connection.connection_pool is pool
    held = [checked_out(pool) for _ in range(3)]
    try:
        assert samples(POOL, prefix="redis", state="in_use") == 3
        assert samples(POOL, prefix="redis", state="idle") == 0
    finally:
        for connection in held:
            pool.release(connection)
    assert samples(POOL, prefix="redis", state="idle") == 3
    pool.disconnect()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_worker_shows_none_of_its_parents_connections(
    ext: Redis, samples: Samples
) -> None:
    assert ext.ping() is True  # the parent keeps an idle connection
    assert samples(POOL, prefix="redis", state="idle") == 1
    pid = os.fork()
    if pid == 0:  # the child, as a gunicorn worker forked after the app made a call
        ok = samples(POOL, prefix="redis", state="idle") == 0
        ok = ok and ext.ping() is True and samples(POOL, prefix="redis", state="idle") == 1
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert status == 0  # the child exited with 0


def test_pools_that_cannot_be_read_do_not_fail_the_scrape(
    metrics_app: Flask,
    ext: Redis,
    samples: Samples,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ext.get("a")
    prefix_metrics = flask_redis._metrics.metrics_for(
        metrics_app.config["REDIS_METRICS_REGISTRY"]
    ).for_prefix("REDIS")

    def unreadable() -> list[Any]:
        raise RuntimeError("no pools today")

    prefix_metrics.pools[metrics_app] = unreadable
    log_failures_anew(monkeypatch)
    with caplog.at_level(logging.ERROR, "flask_redis"):
        assert samples.commands("GET") == 1  # the scrape goes on
        assert samples.commands("GET") == 1  # and the next: logged once
    assert [record.getMessage() for record in caplog.records] == [UNREADABLE_POOLS]
    assert "no pools today" in caplog.text


def test_a_pool_that_cannot_be_counted_is_logged_once_naming_its_prefix(
    redis_server: RedisServer,
    registry: CollectorRegistry,
    client_module: ModuleType,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = uncountable_pool(client_module.ConnectionPool, host="127.0.0.1", port=redis_server.port)
    app = Flask(__name__)
    app.config.update(REDIS_CONNECTION_POOL=pool, REDIS_METRICS_REGISTRY=registry)
    ext = Redis(app)
    log_failures_anew(monkeypatch)
    samples = Samples(registry)
    try:
        assert ext.get("a") is None
        assert samples(POOL, prefix="redis", state="idle") == 1
        pool.broken = True
        with caplog.at_level(logging.ERROR, "flask_redis"):
            assert samples.commands("GET") == 1  # the scrape goes on
            assert samples(POOL, prefix="redis", state="idle") == 1  # as it was last read
        pool.broken = False
        assert ext.get("a") is None  # the command never knew
    finally:
        pool.disconnect()
    assert [record.getMessage() for record in caplog.records] == [UNREADABLE_POOLS]
    assert "the connections cannot be counted" in caplog.text


#: Round trip times over the bounds of the duration buckets: each bound, the floats on
#: either side of it, and the ends.
EDGES = sorted(
    {0.0, 10.0, float("inf")}
    | {
        edge
        for bound in flask_redis._tallies.DURATION_BUCKETS
        for edge in (math.nextafter(bound, 0.0), bound, math.nextafter(bound, 1.0))
    }
)


def test_bucket_is_the_first_whose_bound_is_not_below() -> None:
    bounds = flask_redis._tallies.BOUNDS
    assert [flask_redis._tallies.bucket(each) for each in EDGES] == [
        bisect.bisect_left(bounds, each) for each in EDGES
    ]


def test_the_observer_tallies_as_tally_does() -> None:
    """The metrics observer inlines :func:`~flask_redis._tallies.tally` for a command
    tallied before: both give the same records, over the bounds of the buckets."""
    prefix_metrics = flask_redis._metrics.metrics_for(CollectorRegistry()).for_prefix("REDIS")
    expected: dict[Any, Any] = {}
    for seconds in EDGES:  # the first is tallied by tally(), the others inline
        prefix_metrics.observe(("GET", "k"), seconds, None, None, None)
        flask_redis._tallies.tally(expected, ("GET", "k"), seconds, None)
    assert prefix_metrics._local.thread.records == expected


def test_publish_is_counted_and_subscribing_times_nothing(ext: Redis, samples: Samples) -> None:
    pubsub = ext.pubsub()
    try:
        pubsub.subscribe("ch")
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        assert ext.publish("ch", "m") == 1
        assert pubsub.get_message(timeout=5)["data"] == b"m"
        assert [pubsub.get_message(timeout=0.2) for _ in range(2)] == [None, None]
    finally:
        pubsub.close()
    assert samples.commands("PUBLISH") == 1
    assert samples.matching(f"{DURATION}_count") == {
        (("command", "PUBLISH"), ("prefix", "redis")): 1
    }


@pytest.mark.parametrize(
    "config", [{"REDIS_DECODE_RESPONSES": True}, {"REDIS_PROTOCOL": 3}], ids=["decoded", "resp3"]
)
def test_decoded_and_resp3_clients_are_counted(
    metrics_app: Flask, samples: Samples, client_module: ModuleType, config: dict[str, Any]
) -> None:
    metrics_app.config.update(config)
    ext = Redis(metrics_app)

    def work() -> None:
        ext.hset("h", "f", "v")
        assert ext.hgetall("h") in ({"f": "v"}, {b"f": b"v"})
        with ext.pipeline() as pipe:
            replies = pipe.set("s", "x").lpush("s", 1).execute(raise_on_error=False)
        assert type(replies[1]) is client_module.ResponseError

    run(metrics_app, True, work)
    assert [samples.commands(name) for name in ("HSET", "HGETALL", "SET", "LPUSH")] == [1] * 4
    assert samples.commands("HELLO") is None
    assert samples.round_trips("MULTI") == 1
    assert samples.errors("LPUSH", "ResponseError") == 1
    assert samples.request_commands("work") == (4, 1)


def test_a_request_inside_another_keeps_the_outer_figures(
    metrics_app: Flask, ext: Redis, samples: Samples
) -> None:
    @metrics_app.route("/inner")
    def inner() -> str:
        ext.get("a")
        return ""

    @metrics_app.route("/outer")
    def outer() -> str:
        ext.set("a", 1)
        assert get(metrics_app, "/inner") == 200
        ext.get("a")
        return ""

    assert get(metrics_app, "/outer") == 200
    assert samples.request_commands("inner") == (1, 1)
    assert (samples.commands("SET"), samples.commands("GET")) == (1, 2)
    assert samples.request_commands("outer") == (2, 1)


def test_a_request_context_pushed_inside_a_request_keeps_the_figures(
    metrics_app: Flask, ext: Redis, samples: Samples
) -> None:
    @metrics_app.route("/outer")
    def outer() -> str:
        ext.set("a", 1)
        with metrics_app.test_request_context("/elsewhere"):
            pass
        ext.get("a")
        return ""

    assert get(metrics_app, "/outer") == 200
    assert (samples.commands("SET"), samples.commands("GET")) == (1, 1)
    assert samples.request_commands("outer") == (2, 1)


def test_a_registry_no_longer_used_is_freed(redis_server: RedisServer) -> None:
    registry = CollectorRegistry()
    app = Flask(__name__, root_path=str(Path(__file__).parent))
    app.config.update(
        REDIS_HOST="127.0.0.1", REDIS_PORT=redis_server.port, REDIS_METRICS_REGISTRY=registry
    )
    ext = Redis(app)
    ext.ping()
    close_clients(app)  # else collecting the app leaves its socket unclosed: a ResourceWarning
    freed = weakref.ref(registry)
    del app, registry, ext
    gc.collect()
    assert freed() is None
