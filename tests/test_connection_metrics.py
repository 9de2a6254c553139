"""The metrics of a prefix's connections and pools, through the extension, against real
servers: connections opened and closed, pool waits and refusals, retries, bytes, and the
``code`` label of a failed command."""

from __future__ import annotations

import asyncio
import threading
import time
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from prometheus_client import CollectorRegistry

from flask_redis import Redis
from flask_redis._connections import CLOSE_REASONS
from flask_redis._metrics import metrics_for

from .conftest import Closing
from .samples import Samples, checked_out
from .servers import RedisServer
from .waiting import wait_for

CREATED = "flask_redis_connection_create_duration_seconds"
CLOSED = "flask_redis_connections_closed_total"
WAITED = "flask_redis_pool_wait_duration_seconds"
EXHAUSTED = "flask_redis_pool_exhausted_total"
RETRIES = "flask_redis_retries_total"
NETWORK = "flask_redis_network_bytes_total"
BIG = 100_000


@pytest.fixture()
def samples(app: Flask, registry: CollectorRegistry) -> Samples:
    """The samples of the metrics of :func:`app`'s ``REDIS`` prefix, kept in ``registry``."""
    app.config.update(REDIS_METRICS_REGISTRY=registry)
    return Samples(registry)


def opened(samples: Samples) -> float | None:
    return samples(f"{CREATED}_count", prefix="redis")


def closed(samples: Samples, reason: str) -> float | None:
    return samples(CLOSED, prefix="redis", reason=reason)


def network(samples: Samples, direction: str) -> float:
    return samples(NETWORK, prefix="redis", direction=direction) or 0.0


def kill(server: RedisServer, client_id: int) -> None:
    """Have the server close the connection ``client_id``, as an operator would."""
    killer = server.client()
    try:
        assert killer.client_kill_filter(_id=str(client_id)) == 1
    finally:
        killer.close()


def test_a_prefix_shows_its_connection_series_at_zero_once_it_is_used(
    app: Flask, samples: Samples, client_module: ModuleType
) -> None:
    redis = Redis(app)
    assert opened(samples) is None  # not used yet: no series (no file per process)
    redis.connection_pool.release(checked_out(redis.connection_pool))
    assert opened(samples) == 1
    assert samples(f"{WAITED}_count", prefix="redis") == 0
    assert samples(EXHAUSTED, prefix="redis") == 0
    assert {reason: closed(samples, reason) for reason in CLOSE_REASONS} == dict.fromkeys(
        CLOSE_REASONS, 0.0
    )
    # The handshake's bytes (CLIENT SETINFO, ...), on the connection that the pool holds.
    assert network(samples, "sent") > 0
    assert network(samples, "received") > 0


def test_a_connection_opened_is_counted_with_the_time_its_handshake_took(
    app: Flask, samples: Samples, secured_server: RedisServer
) -> None:
    app.config.update(REDIS_PORT=secured_server.port, REDIS_PASSWORD=secured_server.password)
    redis = Redis(app)
    assert redis.ping() is True
    assert redis.ping() is True  # the same connection: nothing opened
    assert opened(samples) == 1
    seconds = samples(f"{CREATED}_sum", prefix="redis")
    assert seconds is not None and 0 < seconds < 5


def test_a_connection_the_server_killed_is_counted_closed_then_opened_again(
    app: Flask, samples: Samples, redis_server: RedisServer
) -> None:
    redis = Redis(app)
    redis.set("k", "v")
    kill(redis_server, redis.client_id())
    assert redis.get("k") == b"v"  # the pool finds the connection closed, and reconnects
    assert closed(samples, "connection_error") == 1
    assert opened(samples) == 2


def test_closing_the_client_counts_each_connection_closed_once(
    app: Flask, samples: Samples, client_module: ModuleType
) -> None:
    redis = Redis(app)
    held = checked_out(redis.connection_pool)  # a second connection, in use
    held.connect()
    redis.ping()
    redis.connection_pool.release(held)
    redis.connection_pool.disconnect()
    redis.connection_pool.disconnect()  # closed already: not counted again
    assert closed(samples, "closed") == 2
    assert opened(samples) == 2


def test_a_full_pool_is_counted_exhausted_and_its_error_reaches_the_caller(
    app: Flask, samples: Samples, client_module: ModuleType
) -> None:
    app.config.update(REDIS_MAX_CONNECTIONS=1)
    redis = Redis(app)
    held = checked_out(redis.connection_pool)
    try:
        with pytest.raises(client_module.ConnectionError) as caught:
            redis.get("k")
    finally:
        redis.connection_pool.release(held)
    assert samples(EXHAUSTED, prefix="redis") == 1
    assert samples.errors("GET", type(caught.value).__name__, code="none") == 1
    assert samples(f"{WAITED}_count", prefix="redis") == 0  # it did not wait: refused
    assert redis.get("k") is None  # the connection back: served


def test_a_blocking_pool_counts_each_wait_and_the_one_that_timed_out(
    app: Flask, samples: Samples, redis_server: RedisServer, client_module: ModuleType
) -> None:
    pool = client_module.BlockingConnectionPool(
        host="127.0.0.1", port=redis_server.port, max_connections=1, timeout=0.2
    )
    app.config.update(REDIS_CONNECTION_POOL=pool)
    redis = Redis(app)
    held = checked_out(pool)
    try:
        with pytest.raises(client_module.ConnectionError):
            redis.get("k")
        assert samples(EXHAUSTED, prefix="redis") == 1
        # Given back by another thread 0.1 s later: this checkout waits, and gets it.
        threading.Timer(0.1, pool.release, [held]).start()
        assert redis.get("k") is None
    finally:
        pool.disconnect()
    assert samples(f"{WAITED}_count", prefix="redis") == 2
    waited = samples(f"{WAITED}_sum", prefix="redis")
    assert waited is not None and 0.25 <= waited < 5
    assert samples(EXHAUSTED, prefix="redis") == 1


def test_a_retried_command_is_counted_by_its_name(
    app: Flask, samples: Samples, redis_server: RedisServer, client_module: ModuleType
) -> None:
    backoff = client_module.backoff.NoBackoff()
    app.config.update(
        REDIS_RETRY=client_module.retry.Retry(backoff, 3),
        REDIS_RETRY_ON_ERROR=[client_module.ConnectionError],
    )
    redis = Redis(app)
    client_id = redis.client_id()

    def kill_when_blocked() -> None:
        watcher = redis_server.client()
        try:
            wait_for(
                lambda: any(
                    each["id"] == str(client_id) and each["cmd"] == "blpop"
                    for each in watcher.client_list()
                ),
                "the client blocks in BLPOP",
            )
            watcher.client_kill_filter(_id=str(client_id))
        finally:
            watcher.close()

    killer = threading.Thread(target=kill_when_blocked)
    killer.start()
    assert redis.blpop(["nothing-here"], timeout=1) is None  # retried: no error
    killer.join()
    assert samples(RETRIES, prefix="redis", command="BLPOP") == 1
    assert closed(samples, "connection_error") == 1
    assert samples.errors("BLPOP", "ConnectionError") is None


def test_bytes_are_counted_once_each_while_open_and_when_closed(
    app: Flask, samples: Samples
) -> None:
    redis = Redis(app)
    redis.set("big", b"x" * BIG)
    sent = network(samples, "sent")  # read from the open connection's socket
    assert BIG <= sent < 2 * BIG
    assert redis.get("big") == b"x" * BIG
    received = network(samples, "received")
    assert BIG <= received < 2 * BIG
    assert network(samples, "sent") - sent < 100  # the GET's own bytes only
    network_before_ping = network(samples, "sent"), network(samples, "received")
    redis.ping()  # bytes that no collection reads before the close does
    redis.connection_pool.disconnect()
    final = network(samples, "sent"), network(samples, "received")
    assert final[0] > network_before_ping[0] and final[1] > network_before_ping[1]
    assert (network(samples, "sent"), network(samples, "received")) == final  # once each


def test_a_failed_command_is_labelled_with_the_prefix_of_the_servers_reply(
    app: Flask, samples: Samples, client_module: ModuleType
) -> None:
    redis = Redis(app)
    redis.rpush("list", "a")
    with pytest.raises(client_module.ResponseError):
        redis.get("list")
    assert samples.errors("GET", "ResponseError", code="WRONGTYPE") == 1
    with pytest.raises(client_module.ResponseError):
        redis.execute_command("NO-SUCH-COMMAND")
    assert samples.errors("OTHER", "ResponseError", code="ERR") == 1


def test_a_pipelines_failed_commands_are_labelled_each_with_its_code(
    app: Flask, samples: Samples
) -> None:
    redis = Redis(app)
    redis.rpush("list", "a")
    pipe = redis.pipeline(transaction=False)
    pipe.get("list").set("k", "v").incr("k")
    replies = pipe.execute(raise_on_error=False)
    assert replies[1] is True
    assert samples.errors("GET", "ResponseError", code="WRONGTYPE") == 1
    assert samples.errors("INCRBY", "ResponseError", code="ERR") == 1


def test_an_async_views_connection_is_counted_opened_and_closed_with_its_loop(
    app: Flask, samples: Samples
) -> None:
    pytest.importorskip("asgiref")
    redis = Redis(app)

    @app.route("/ping")
    async def ping() -> str:
        return str(await redis.async_connection.ping())

    for _ in range(3):  # a loop per request: a connection each, closed as the loop ends
        assert app.test_client().get("/ping").get_data(as_text=True) == "True"
    assert opened(samples) == 3
    wait_for(lambda: closed(samples, "closed") == 3, "each loop's connection closed")


def test_many_events_while_nothing_collects_are_added_in_bulk(
    app: Flask, registry: CollectorRegistry
) -> None:
    app.config.update(REDIS_METRICS_REGISTRY=registry)
    Redis(app)
    metrics = metrics_for(registry)
    events = metrics.for_prefix("REDIS").connections
    for _ in range(5000):
        events.exhausted()
    # Added by the events themselves, without a collection: the queue stays short.
    child = metrics.pool_exhausted.labels("redis")
    assert child._value.get() >= 4096


def test_an_asyncio_pool_that_is_full_is_counted_exhausted(
    app: Flask, samples: Samples, client_module: ModuleType, closing: Closing
) -> None:
    app.config.update(REDIS_MAX_CONNECTIONS=1)
    redis = Redis(app)

    async def work() -> Any:
        client = redis.async_connection
        blocked = asyncio.ensure_future(client.blpop(["nothing-here"], timeout=1))
        await asyncio.sleep(0.2)
        try:
            with pytest.raises(client_module.ConnectionError):
                await client.get("k")
        finally:
            await blocked
        return await client.get("k")

    with app.app_context():
        started = time.perf_counter()
        assert asyncio.run(work()) is None
        assert time.perf_counter() - started < 5
    assert samples(EXHAUSTED, prefix="redis") == 1
