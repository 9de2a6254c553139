"""What happens to the connections and pools of a client, reported by ``_connections``:
opened, closed and why, waits, exhaustion, retries, on real servers, sync and asyncio."""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import sys
import threading
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from prometheus_client import CollectorRegistry

from flask_redis import Redis
from flask_redis._connections import (
    CLOSE_REASONS,
    close_reason,
    instrument_client,
    retried_command,
)
from flask_redis._instrument import forget_failure
from flask_redis._libraries import ClientLibrary

from .conftest import SECRET, Closing
from .servers import ClusterNodes, RedisServer, SentinelSet
from .waiting import wait_for


class Recorder:
    """The events a test is told, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()

    def _add(self, *call: Any) -> None:
        with self.lock:
            self.calls.append(call)

    def opened(self, connection: Any, seconds: float) -> None:
        self._add("opened", seconds)

    def closing(self, connection: Any, reason: str) -> None:
        self._add("closing", reason)

    def waited(self, seconds: float) -> None:
        self._add("waited", seconds)

    def exhausted(self) -> None:
        self._add("exhausted")

    def retried(self, command: str | bytes | None) -> None:
        self._add("retried", command)

    def of(self, event: str) -> list[Any]:
        """The argument of each call of ``event``."""
        return [call[1] if len(call) > 1 else None for call in self.calls if call[0] == event]

    def events(self) -> list[tuple[Any, ...]]:
        """The calls, with the seconds left out."""
        return [call[:2] if call[0] in ("closing", "retried") else call[:1] for call in self.calls]


def _module(client_module: ModuleType, name: str) -> ModuleType:
    return importlib.import_module(f"{client_module.__name__}.{name}")


def _retry(client_module: ModuleType, retries: int) -> Any:
    backoff = _module(client_module, "backoff").NoBackoff()
    return _module(client_module, "retry").Retry(backoff, retries)


def _client(client_module: ModuleType, server: RedisServer, **kwargs: Any) -> Any:
    host, port = server.address
    return client_module.StrictRedis(host=host, port=port, **kwargs)


def _checkout(pool: Any) -> Any:
    """A connection out of ``pool``, sync; redis-py 5 wants a command name."""
    try:
        return pool.get_connection()
    except TypeError:  # pragma: no cover - redis-py 5
        return pool.get_connection("PING")


async def _checkout_async(pool: Any) -> Any:
    try:
        return await pool.get_connection()
    except TypeError:  # pragma: no cover - redis-py 5
        return await pool.get_connection("PING")


def _kill(server: RedisServer, client_id: int) -> None:
    """Have the server close the connection ``client_id``, as an operator would."""
    killer = server.client()
    try:
        assert killer.client_kill_filter(_id=str(client_id)) == 1
    finally:
        killer.close()


def test_the_close_reasons_tell_timeouts_lost_connections_and_other_errors(
    client_module: ModuleType,
) -> None:
    assert close_reason(None) == "closed"
    assert close_reason(client_module.TimeoutError()) == "timeout"
    assert close_reason(TimeoutError()) == "timeout"
    assert close_reason(asyncio.TimeoutError()) == "timeout"
    assert close_reason(client_module.ConnectionError()) == "connection_error"
    assert close_reason(ConnectionResetError()) == "connection_error"
    assert close_reason(client_module.AuthenticationError()) == "error"
    assert close_reason(client_module.ResponseError()) == "error"
    assert close_reason(ValueError()) == "error"
    assert set(CLOSE_REASONS) == {"closed", "timeout", "connection_error", "error"}


def test_a_connection_opened_reports_its_time_authentication_included(
    client_module: ModuleType, secured_server: RedisServer, closing: Closing
) -> None:
    events = Recorder()
    client = closing(_client(client_module, secured_server, password=SECRET))
    instrument_client(client, events)
    client.ping()
    client.ping()
    assert events.events() == [("opened",)]
    assert events.of("opened")[0] > 0


def test_a_wrong_password_opens_nothing_and_closes_the_socket_for_an_error(
    client_module: ModuleType, secured_server: RedisServer, closing: Closing
) -> None:
    events = Recorder()
    client = closing(
        _client(client_module, secured_server, password="wrong", retry=_retry(client_module, 0))
    )
    instrument_client(client, events)
    with pytest.raises(client_module.AuthenticationError):
        client.ping()
    assert events.events() == [("closing", "error")]


def test_a_connection_the_server_killed_closes_for_a_connection_error_then_opens_again(
    client_module: ModuleType, redis_server: RedisServer, closing: Closing
) -> None:
    events = Recorder()
    client = closing(_client(client_module, redis_server, retry=_retry(client_module, 0)))
    instrument_client(client, events)
    _kill(redis_server, client.client_id())
    # The pool finds the connection closed at checkout, or the command finds it then.
    try:
        client.get("k")
    except client_module.ConnectionError:
        pass
    assert client.get("k") is None
    assert events.events() == [("opened",), ("closing", "connection_error"), ("opened",)]


def test_closing_the_client_closes_its_connections_with_no_error(
    client_module: ModuleType, redis_server: RedisServer
) -> None:
    events = Recorder()
    client = _client(client_module, redis_server)
    instrument_client(client, events)
    client.ping()
    client.close()
    client.connection_pool.disconnect()  # redis-py 5 leaves a given pool open
    assert events.events() == [("opened",), ("closing", "closed")]


def test_a_socket_timeout_closes_the_connection_for_a_timeout(
    client_module: ModuleType, redis_server: RedisServer, closing: Closing
) -> None:
    events = Recorder()
    client = closing(
        _client(client_module, redis_server, socket_timeout=0.2, retry=_retry(client_module, 0))
    )
    instrument_client(client, events)
    with pytest.raises(client_module.TimeoutError):
        client.blpop(["nothing-here"], timeout=2)
    assert events.events() == [("opened",), ("closing", "timeout")]


def test_a_full_pool_reports_its_exhaustion_and_the_caller_gets_the_same_error(
    client_module: ModuleType, redis_server: RedisServer, closing: Closing
) -> None:
    host, port = redis_server.address
    errors = []
    for instrumented in (False, True):
        events = Recorder()
        pool = closing(client_module.ConnectionPool(host=host, port=port, max_connections=1))
        client = client_module.StrictRedis(connection_pool=pool)
        if instrumented:
            instrument_client(client, events)
        held = _checkout(pool)
        with pytest.raises(client_module.ConnectionError) as raised:
            client.get("k")
        errors.append((type(raised.value), raised.value.args))
        pool.release(held)
        assert client.get("k") is None
    assert errors[0] == errors[1]
    assert events.events() == [("opened",), ("exhausted",)]


def test_a_blocking_pool_reports_a_wait_that_timed_out_as_exhausted(
    client_module: ModuleType, redis_server: RedisServer, closing: Closing
) -> None:
    events = Recorder()
    host, port = redis_server.address
    pool = closing(
        client_module.BlockingConnectionPool(host=host, port=port, max_connections=1, timeout=0.2)
    )
    client = client_module.StrictRedis(connection_pool=pool)
    instrument_client(client, events)
    assert client.get("k") is None  # a free connection: no wait
    held = _checkout(pool)
    with pytest.raises(client_module.ConnectionError):
        client.get("k")
    pool.release(held)
    assert events.events() == [("opened",), ("waited",), ("exhausted",)]
    assert events.of("waited")[0] >= 0.19


def test_a_blocking_pool_reports_a_wait_that_got_a_connection(
    client_module: ModuleType, redis_server: RedisServer, closing: Closing
) -> None:
    events = Recorder()
    host, port = redis_server.address
    pool = closing(
        client_module.BlockingConnectionPool(host=host, port=port, max_connections=1, timeout=5)
    )
    client = client_module.StrictRedis(connection_pool=pool)
    instrument_client(client, events)
    held = _checkout(pool)
    timer = threading.Timer(0.1, pool.release, [held])
    timer.start()
    assert client.get("k") is None
    timer.join()
    assert events.events() == [("opened",), ("waited",)]
    assert 0.08 <= events.of("waited")[0] < 2


def _kill_when_blocked(server: RedisServer, client_id: int) -> threading.Thread:
    """Kill the connection ``client_id`` once it blocks in BLPOP, from another thread: it
    fails in the middle of a command, not at checkout, where the pool would find it closed."""

    def kill() -> None:
        watcher = server.client()
        try:
            wait_for(
                lambda: any(
                    c["id"] == str(client_id) and c["cmd"] == "blpop" for c in watcher.client_list()
                ),
                "the client blocks in BLPOP",
            )
            watcher.client_kill_filter(_id=str(client_id))
        finally:
            watcher.close()

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


def _retrying(client_module: ModuleType, server: RedisServer, events: Recorder) -> Any:
    client = _client(
        client_module,
        server,
        retry=_retry(client_module, 3),
        retry_on_error=[client_module.ConnectionError],
    )
    instrument_client(client, events)
    return client


def test_a_retried_command_is_reported_once_by_its_name(
    client_module: ModuleType, redis_server: RedisServer, closing: Closing
) -> None:
    events = Recorder()
    client = closing(_retrying(client_module, redis_server, events))
    killer = _kill_when_blocked(redis_server, client.client_id())
    assert client.blpop(["nothing-here"], timeout=1) is None
    killer.join()
    assert events.events() == [
        ("opened",),
        ("closing", "connection_error"),
        ("retried", "BLPOP"),
        ("opened",),
    ]
    client.ping()
    assert events.of("retried") == ["BLPOP"]  # a command that does not fail is not retried


def test_a_retried_pipeline_is_reported_as_a_pipeline_each_time(
    client_module: ModuleType, redis_server: RedisServer, closing: Closing
) -> None:
    events = Recorder()
    client = closing(
        _client(
            client_module,
            redis_server,
            socket_timeout=0.2,
            retry=_retry(client_module, 2),
            retry_on_error=[client_module.TimeoutError],  # redis-py 5 retries pipelines so only
        )
    )
    instrument_client(client, events)
    pipe = client.pipeline(transaction=False)
    pipe.blpop(["nothing-here"], timeout=1)
    with pytest.raises(client_module.TimeoutError):
        pipe.execute()
    assert events.of("retried") == ["PIPELINE", "PIPELINE"]  # not for the last failure
    assert events.of("closing") == ["timeout"] * 3


@pytest.mark.parametrize("transaction", [False, True])
def test_the_command_of_a_retried_pipeline_is_pipeline_or_multi(
    client_module: ModuleType, redis_server: RedisServer, closing: Closing, transaction: bool
) -> None:
    client = closing(_client(client_module, redis_server))
    pipe = client.pipeline(transaction=transaction)

    def execute(self: Any) -> Any:  # a pipeline's execute() as a retry finds it above
        return retried_command(sys._getframe())

    assert execute(pipe) == ("MULTI" if transaction else "PIPELINE")
    assert retried_command(sys._getframe()) is None  # no command above: cannot be told


def _attributes_in_a_dict(thing: Any, attribute: str) -> bool:
    """Whether CPython holds the attributes of ``thing`` (one of them ``attribute``) in a
    dict, rather than in the compact layout it reads fast (3.11 and later)."""
    return any(isinstance(each, dict) and attribute in each for each in gc.get_referents(thing))


_FAST_LAYOUT = pytest.mark.skipif(
    sys.implementation.name != "cpython" or sys.version_info < (3, 11),
    reason="before 3.11, or on another interpreter, attributes are in a dict anyway",
)
_POOLS = pytest.mark.parametrize(
    "blocking", [False, True], ids=["ConnectionPool", "BlockingConnectionPool"]
)


@_FAST_LAYOUT
@_POOLS
def test_a_pool_and_its_queue_keep_the_layout_the_interpreter_reads_fast(
    client_module: ModuleType, redis_server: RedisServer, closing: Closing, blocking: bool
) -> None:
    host, port = redis_server.address
    pool_class = client_module.BlockingConnectionPool if blocking else client_module.ConnectionPool
    pool = pool_class(host=host, port=port)
    client = closing(client_module.StrictRedis(connection_pool=pool))
    assert not _attributes_in_a_dict(pool, "connection_class")  # as redis-py made it
    instrument_client(client, Recorder())
    client.ping()
    assert not _attributes_in_a_dict(pool, "connection_class")
    if blocking:
        assert not _attributes_in_a_dict(pool.pool, "mutex")
    pool.__class__ = type("Subclass", (pool_class,), {})  # what the hooks are not
    assert _attributes_in_a_dict(pool, "connection_class")


@_FAST_LAYOUT
@_POOLS
@pytest.mark.parametrize("metrics", [False, True], ids=["no metrics", "metrics"])
def test_the_extension_leaves_the_pool_of_its_client_in_that_layout(
    client_module: ModuleType,
    redis_server: RedisServer,
    closing: Closing,
    blocking: bool,
    metrics: bool,
) -> None:
    host, port = redis_server.address
    pool_class = client_module.BlockingConnectionPool if blocking else client_module.ConnectionPool
    pool = pool_class(host=host, port=port)
    app = Flask(__name__)
    app.config.update(REDIS_CLASS=client_module.StrictRedis, REDIS_CONNECTION_POOL=pool,
                      REDIS_METRICS=metrics,
                      REDIS_METRICS_REGISTRY=CollectorRegistry())  # fmt: skip
    client = closing(Redis(app).connection)
    client.ping()
    assert not _attributes_in_a_dict(pool, "connection_class")
    if blocking:
        assert not _attributes_in_a_dict(pool.pool, "mutex")


def test_the_methods_each_command_calls_stay_the_librarys_own(
    client_module: ModuleType, redis_server: RedisServer, closing: Closing
) -> None:
    events = Recorder()
    client = closing(_client(client_module, redis_server))
    pool = client.connection_pool
    pool_class, connection_class = type(pool), pool.connection_class
    instrument_client(client, events)
    client.ping()
    connection = _checkout(pool)
    pool.release(connection)
    # The pool keeps its class: a class assigned to it would slow each checkout.
    assert type(pool) is pool_class
    assert [name for name in vars(pool) if name in dir(pool_class)] == ["make_connection"]
    assert type(connection).__bases__ == (connection_class,)
    for method in ("connect", "send_command", "send_packed_command", "read_response"):
        assert getattr(type(connection), method) is getattr(connection_class, method)
    backoff: Any = connection.retry._backoff
    assert set(vars(type(backoff))) & {"reset", "compute"} == {"compute"}
    base_backoff: Any = type(backoff).__bases__[0]
    assert type(backoff).reset is base_backoff.reset
    assert type(connection.retry) in (
        _module(client_module, "retry").Retry,
        getattr(_module(client_module, "asyncio.retry"), "Retry", None),
    )


def test_a_pool_shared_by_two_clients_reports_to_the_first_events_only(
    client_module: ModuleType, redis_server: RedisServer, closing: Closing
) -> None:
    first, second = Recorder(), Recorder()
    host, port = redis_server.address
    pool = closing(client_module.ConnectionPool(host=host, port=port))
    one = client_module.StrictRedis(connection_pool=pool)
    two = client_module.StrictRedis(connection_pool=pool)
    instrument_client(one, first)
    pool_class = type(pool)
    instrument_client(two, second)
    assert type(pool) is pool_class  # instrumented once
    two.ping()
    assert first.events() == [("opened",)]
    assert second.events() == []


def test_events_that_fail_are_logged_once_and_the_commands_go_on(
    client_module: ModuleType,
    redis_server: RedisServer,
    closing: Closing,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(Recorder):
        def _add(self, *call: Any) -> None:
            raise RuntimeError("boom")

    forget_failure(f"the connection events {Failing.__qualname__}")
    client = closing(_client(client_module, redis_server, retry=_retry(client_module, 0)))
    instrument_client(client, Failing())
    with caplog.at_level(logging.ERROR, logger="flask_redis"):
        for _ in range(2):
            _kill(redis_server, client.client_id())
            try:
                client.get("k")
            except client_module.ConnectionError:
                pass
    failures = [r for r in caplog.records if "Failing failed" in r.getMessage()]
    assert len(failures) == 1


def test_a_sentinel_master_client_reports_its_connections(
    library: ClientLibrary, sentinel_set: SentinelSet, closing: Closing
) -> None:
    events = Recorder()
    sentinel_set.restore()
    sentinel = closing(library.sentinel(sentinel_set.sentinels, socket_timeout=5))
    master = closing(sentinel.master_for("mymaster"))
    instrument_client(master, events)
    master.ping()
    master.close()
    master.connection_pool.disconnect()
    assert events.events() == [("opened",), ("closing", "closed")]


def test_a_cluster_client_reports_the_connections_of_its_nodes_made_later_too(
    library: ClientLibrary, redis_cluster_nodes: ClusterNodes, closing: Closing
) -> None:
    events = Recorder()
    redis_cluster_nodes.settle()
    nodes = [library.cluster_node(host, port) for host, port in redis_cluster_nodes.startup_nodes]
    client = closing(library.cluster(startup_nodes=nodes))
    instrument_client(client, events)
    for key in ("a", "b", "c", "d", "e"):
        client.get(key)
    opened = len(events.of("opened"))
    assert opened >= 1
    manager = client.nodes_manager
    host, port = redis_cluster_nodes.startup_nodes[0]
    made = getattr(manager, f"create_{library.name}_node")(host=host, port=port)
    made.ping()
    assert len(events.of("opened")) == opened + 1
    made.close()
    made.connection_pool.disconnect()
    assert events.of("closing")[-1] == "closed"


# asyncio -------------------------------------------------------------------------------


def _async_module(client_module: ModuleType) -> ModuleType:
    return _module(client_module, "asyncio")


def test_an_async_connection_reports_opened_killed_and_closed(
    client_module: ModuleType, secured_server: RedisServer
) -> None:
    aio = _async_module(client_module)
    events = Recorder()

    async def main() -> None:
        host, port = secured_server.address
        client = aio.StrictRedis(host=host, port=port, password=SECRET)
        instrument_client(client, events)
        client_id = await client.client_id()
        killer = secured_server.client(password=SECRET)
        killer.client_kill_filter(_id=str(client_id))
        killer.close()
        try:  # found closed at checkout, or by the command
            await client.get("k")
        except client_module.ConnectionError:
            pass
        assert await client.get("k") is None
        await client.aclose() if hasattr(client, "aclose") else await client.close()

    asyncio.run(main())
    # redis-py 6 and later retry the command by default: the GET is then retried.
    assert events.of("retried") in ([], ["GET"])
    assert [call for call in events.events() if call[0] != "retried"] == [
        ("opened",),
        ("closing", "connection_error"),
        ("opened",),
        ("closing", "closed"),
    ]
    assert all(seconds > 0 for seconds in events.of("opened"))


@_FAST_LAYOUT
@_POOLS
def test_an_async_pool_and_its_waiting_keep_the_layout_the_interpreter_reads_fast(
    client_module: ModuleType, redis_server: RedisServer, blocking: bool
) -> None:
    aio = _async_module(client_module)
    host, port = redis_server.address
    pool = (aio.BlockingConnectionPool if blocking else aio.ConnectionPool)(host=host, port=port)
    client = aio.StrictRedis(connection_pool=pool)
    instrument_client(client, Recorder())

    async def main() -> None:
        await client.ping()
        await pool.disconnect()

    asyncio.run(main())
    assert not _attributes_in_a_dict(pool, "connection_class")
    if blocking:  # it waits on a condition (redis-py 6 and later) or a queue
        waiting = getattr(pool, "_condition", None) or pool.pool
        attribute = "_waiters" if hasattr(waiting, "wait_for") else "_maxsize"
        assert not _attributes_in_a_dict(waiting, attribute)


def test_a_full_async_pool_reports_its_exhaustion(
    client_module: ModuleType, redis_server: RedisServer
) -> None:
    aio = _async_module(client_module)
    events = Recorder()

    async def main() -> None:
        host, port = redis_server.address
        pool = aio.ConnectionPool(host=host, port=port, max_connections=1)
        client = aio.StrictRedis(connection_pool=pool)
        instrument_client(client, events)
        held = await _checkout_async(pool)
        with pytest.raises(client_module.ConnectionError):
            await client.get("k")
        await pool.release(held)
        assert await client.get("k") is None
        await pool.disconnect()

    asyncio.run(main())
    assert events.events() == [("opened",), ("exhausted",), ("closing", "closed")]


@pytest.mark.parametrize("released_after", [None, 0.1])
def test_an_async_blocking_pool_reports_its_waits(
    client_module: ModuleType, redis_server: RedisServer, released_after: float | None
) -> None:
    aio = _async_module(client_module)
    events = Recorder()

    async def main() -> None:
        host, port = redis_server.address
        pool = aio.BlockingConnectionPool(host=host, port=port, max_connections=1, timeout=0.3)
        client = aio.StrictRedis(connection_pool=pool)
        instrument_client(client, events)
        held = await _checkout_async(pool)
        if released_after is None:
            with pytest.raises(client_module.ConnectionError):
                await client.get("k")
            await pool.release(held)
        else:
            asyncio.get_running_loop().call_later(
                released_after, lambda: asyncio.ensure_future(pool.release(held))
            )
            assert await client.get("k") is None
        await pool.disconnect()

    asyncio.run(main())
    waited = events.of("waited")
    assert len(waited) == 1
    if released_after is None:
        assert waited[0] >= 0.29
        assert events.of("exhausted") == [None]
    else:
        assert 0.08 <= waited[0] < 0.29
        assert events.of("exhausted") == []


def test_an_async_cluster_node_reports_its_connections_and_its_exhaustion(
    client_module: ModuleType, redis_cluster_nodes: ClusterNodes
) -> None:
    aio_cluster = _module(client_module, "asyncio.cluster")
    cluster_class = getattr(aio_cluster, "RedisCluster", None) or aio_cluster.ValkeyCluster
    events = Recorder()

    async def main() -> None:
        redis_cluster_nodes.settle()
        host, port = redis_cluster_nodes.startup_nodes[0]
        client = cluster_class(host=host, port=port, max_connections=1)
        instrument_client(client, events)
        for key in ("a", "b", "c"):
            await client.get(key)
        node = client.get_default_node()
        held = node.acquire_connection() if not node._free else node._free.popleft()
        with pytest.raises(client_module.ConnectionError):
            node.acquire_connection()
        node._free.append(held)
        await client.aclose() if hasattr(client, "aclose") else await client.close()

    asyncio.run(main())
    assert len(events.of("opened")) >= 1
    assert events.of("exhausted") == [None]
    assert set(events.of("closing")) == {"closed"}
