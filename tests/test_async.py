"""``Redis.async_connection``: an asyncio client per event loop, on a real server.

Flask runs each ``async def`` view in an event loop of its own; a script runs its own with
:func:`asyncio.run`; an ASGI server runs one for every request. The tests count the
server's connections (``CLIENT LIST``) to see that each loop's connections are reused
while it runs and closed in it when it ends.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis
from flask import Flask
from prometheus_client import CollectorRegistry

from flask_redis import Redis, get_recorded_calls
from flask_redis._instrument import instrumented_async, observe
from flask_redis._libraries import ClientLibrary

from .conftest import close_clients, observed_app
from .gunicorn_server import start_gunicorn
from .recorded import FailingObserver, log_failures_anew
from .samples import DURATION, POOL, Samples
from .servers import ClusterNodes, RedisServer, SentinelSet, free_port
from .waiting import wait_for

pytest.importorskip("asgiref")  # Flask's async views need it: the "async" extra


@pytest.fixture(autouse=True)
def _no_asyncio_error(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test after which asyncio logged an error: "Task was destroyed but it is
    pending", an exception never retrieved, a transport left open (warnings, which the
    suite turns into errors, cover the rest)."""
    yield
    gc.collect()  # finalizes what the test left behind: asyncio logs it then
    logged = [*caplog.get_records("call"), *caplog.records]
    assert [r.getMessage() for r in logged if r.name == "asyncio" and r.levelno >= 40] == []


def _connections(plain: redis.Redis) -> int:
    """The server's client connections, the plain client's own included."""
    return len(plain.client_list())


def _wait_for_connections(plain: redis.Redis, count: int) -> None:
    """Wait until the server has ``count`` connections: it sees a closed one go soon after
    the client closed it, not at once."""
    wait_for(lambda: _connections(plain) == count, f"the server to have {count} connections")


@pytest.fixture()
def async_app(app: Flask, registry: CollectorRegistry) -> Iterator[Flask]:
    """:func:`app` with metrics in :func:`registry` and calls recorded, and three views
    that use the asyncio client: one command, a pipeline, and an error."""
    app.config.update(REDIS_METRICS_REGISTRY=registry, REDIS_RECORD_CALLS=True)
    ext = Redis(app)

    @app.get("/count")
    async def count() -> dict[str, Any]:
        value = await ext.async_connection.incr("count")
        return {"value": value, "calls": [call.command for call in get_recorded_calls()]}

    @app.get("/pipeline")
    async def pipeline() -> dict[str, Any]:
        async with ext.async_connection.pipeline(transaction=True) as pipe:
            pipe.set("key", "value").get("key")
            _ok, value = await pipe.execute()
        return {"value": value.decode(), "calls": [c.command for c in get_recorded_calls()]}

    @app.get("/error")
    async def error() -> str:
        await ext.async_connection.set("text", "x")
        try:
            await ext.async_connection.lpush("text", "y")
        except Exception as error:  # redis-py's or valkey-py's ResponseError
            return type(error).__name__
        return "no error"

    yield app


def test_async_views_count_record_and_close_their_connections(
    async_app: Flask, plain: redis.Redis, samples: Samples
) -> None:
    start = _connections(plain)
    client = async_app.test_client()
    for number in range(1, 201):
        reply = client.get("/count").get_json()
        assert reply == {"value": number, "calls": ["INCRBY"]}
    # Each view ran in a loop of its own, whose connection was closed as it ended.
    _wait_for_connections(plain, start)
    assert async_app.extensions["redis_asyncio"]["REDIS"].__len__() == 0
    assert samples.commands("INCRBY") == 200
    assert samples.requests("count") == 200


def test_a_pipeline_of_an_async_view_is_one_observed_round_trip(
    async_app: Flask, samples: Samples
) -> None:
    reply = async_app.test_client().get("/pipeline").get_json()
    assert reply == {"value": "value", "calls": ["SET", "GET"]}
    assert samples.round_trips("MULTI") == 1
    assert samples.commands("SET") == 1
    assert samples.commands("GET") == 1


def test_an_error_in_an_async_view_reaches_the_caller_and_is_counted(
    async_app: Flask, samples: Samples
) -> None:
    assert async_app.test_client().get("/error").get_data(as_text=True) == "ResponseError"
    assert samples.errors("LPUSH", "ResponseError") == 1


def test_an_async_publish_is_counted_and_subscribing_times_nothing(
    app: Flask, registry: CollectorRegistry
) -> None:
    """As for the sync client: publishing is a command, listening is not a round trip."""
    app.config.update(REDIS_METRICS_REGISTRY=registry)
    ext, samples = Redis(app), Samples(registry)

    async def main() -> list[Any]:
        client = ext.async_connection
        async with client.pubsub() as pubsub:
            await pubsub.subscribe("ch")
            confirmed = await pubsub.get_message(timeout=5)
            assert await client.publish("ch", "m") == 1
            message = await pubsub.get_message(timeout=5)
            rest = [await pubsub.get_message(timeout=0.2) for _ in range(2)]
            await pubsub.unsubscribe()
        return [confirmed["type"], message["data"], rest]

    with app.app_context():
        assert asyncio.run(main()) == ["subscribe", b"m", [None, None]]
    assert samples.commands("PUBLISH") == 1
    assert samples.matching(DURATION + "_count") == {
        (("command", "PUBLISH"), ("prefix", "redis")): 1
    }


def _pool_gauges(samples: Samples) -> tuple[float | None, float | None]:
    """The pool gauges of the ``REDIS`` prefix: connections in use, idle."""
    return tuple(samples(POOL, prefix="redis", state=state) for state in ("in_use", "idle"))  # type: ignore[return-value]


def test_the_pool_gauges_count_the_connections_of_each_loops_client(
    app: Flask, registry: CollectorRegistry
) -> None:
    app.config.update(REDIS_METRICS_REGISTRY=registry)
    ext, samples = Redis(app), Samples(registry)
    ext.ping()  # the sync client's connection: idle from now on

    async def hold_three() -> tuple[Any, Any]:
        client = ext.async_connection

        async def hold() -> None:  # BLPOP of a key no one pushes: in use for a second
            await client.blpop("nothing:pushed", timeout=1)

        tasks = [asyncio.ensure_future(hold()) for _ in range(3)]
        deadline = asyncio.get_running_loop().time() + 10
        while _pool_gauges(samples)[0] != 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        held = _pool_gauges(samples)
        await asyncio.gather(*tasks)
        return held, _pool_gauges(samples)

    held, released = asyncio.run(hold_three())
    assert held == (3, 1)  # the loop's three, and the sync client's one idle
    assert released == (0, 4)
    # The loop ended: its client is closed and forgotten, its pool no longer counted.
    assert _pool_gauges(samples) == (0, 1)


def test_a_script_runs_the_client_in_its_own_loop_and_closes_it(
    app: Flask, plain: redis.Redis
) -> None:
    ext = Redis(app)
    start = _connections(plain)

    async def main() -> Any:
        await ext.async_connection.set("script", "yes")
        # The same client for the whole loop, and one connection for commands in sequence.
        assert ext.async_connection is ext.async_connection
        assert _connections(plain) == start + 1
        return await ext.async_connection.get("script")

    with app.app_context():
        for _ in range(3):
            assert asyncio.run(main()) == b"yes"
            _wait_for_connections(plain, start)


def test_one_long_lived_loop_reuses_its_pool_for_every_task(app: Flask, plain: redis.Redis) -> None:
    """As under an ASGI server: one loop serves every request, concurrently."""
    ext = Redis(app)
    start = _connections(plain)
    seen = []

    async def request(number: int) -> None:
        client = ext.async_connection
        seen.append(client)
        await client.set(f"task:{number}", number)
        assert await client.get(f"task:{number}") == str(number).encode()

    async def serve() -> None:
        for _ in range(10):
            await asyncio.gather(*(request(number) for number in range(8)))
        # 8 tasks at once: at most 8 connections, kept for the next requests.
        assert start < _connections(plain) <= start + 8

    with app.app_context():
        asyncio.run(serve())
    assert len({id(client) for client in seen}) == 1
    _wait_for_connections(plain, start)


def test_threads_running_loops_at_once_each_get_a_client_of_their_own(
    app: Flask, plain: redis.Redis
) -> None:
    ext = Redis(app)
    start = _connections(plain)
    errors: list[BaseException] = []
    clients: list[Any] = []

    async def work(thread: int) -> None:
        clients.append(ext.async_connection)
        for number in range(50):
            await ext.async_connection.set(f"thread:{thread}", number)
        assert await ext.async_connection.get(f"thread:{thread}") == b"49"

    def run(thread: int) -> None:
        try:
            with app.app_context():
                asyncio.run(work(thread))
        except BaseException as error:  # re-raised by the test below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(thread,)) for thread in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len({id(client) for client in clients}) == 8
    _wait_for_connections(plain, start)


def test_a_command_cancelled_midway_leaves_the_client_usable(
    app: Flask, plain: redis.Redis, registry: CollectorRegistry, samples: Samples
) -> None:
    app.config["REDIS_METRICS_REGISTRY"] = registry
    ext = Redis(app)

    async def main() -> Any:
        client = ext.async_connection
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.blpop("empty", timeout=5), 0.2)
        await client.rpush("empty", "late")  # the cancelled BLPOP must not take it
        await client.set("after", "ok")
        return await client.get("after"), await client.lrange("empty", 0, -1)

    with app.app_context():
        assert asyncio.run(main()) == (b"ok", [b"late"])
    assert samples.errors("BLPOP", "CancelledError") == 1


#: Seconds a callback holds the loop in the timing test: far above a loopback round trip.
HOLD = 0.3


@pytest.mark.parametrize("held", ["before", "after"])
def test_under_gather_a_command_is_timed_from_its_sending_to_its_reply(
    app: Flask, held: str
) -> None:
    """The time of an awaited command is the wall time of its await: from when its task
    sends it to when the loop hands the task its reply. A loop held before the commands
    are sent is not in their time; held while their replies are on the way, it is (the
    loop learns of a reply only when it polls its sockets)."""
    ext = Redis(app)
    times: list[float] = []

    async def main() -> None:
        client = ext.async_connection
        await client.ping()  # connects: the GETs below find connections or open them
        observe(client, lambda command, seconds, *_: times.append(seconds))
        loop = asyncio.get_running_loop()
        gets = [client.get(f"key:{number}") for number in range(20)]
        if held == "before":  # runs before the tasks' first steps, which send the GETs
            loop.call_soon(time.sleep, HOLD)
            await asyncio.gather(*gets)
        else:  # runs after the tasks sent their GETs, before their replies are read
            tasks = [asyncio.ensure_future(get) for get in gets]
            await asyncio.sleep(0)  # each task sends its GET, then awaits its reply
            time.sleep(HOLD)
            await asyncio.gather(*tasks)

    with app.app_context():
        asyncio.run(main())
    assert len(times) == 20
    if held == "before":
        assert max(times) < HOLD
    else:
        assert min(times) >= HOLD


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_never_uses_the_client_of_a_loop_of_its_parent(
    app: Flask, tmp_path: Path
) -> None:
    """A process forked while a loop of the parent's runs in another thread, as an ASGI
    server's, with a client connected: the child's loops make clients of their own, on
    connections of their own, and the parent's client goes on."""
    ext = Redis(app)
    report = tmp_path / "child"
    ready, done = threading.Event(), threading.Event()
    parent: dict[str, Any] = {}

    async def serve() -> None:
        client = ext.async_connection
        parent["id"] = await client.client_id()
        ready.set()
        while not done.is_set():
            await asyncio.sleep(0.01)
        parent["after"] = (await client.client_id(), await client.get("child"))

    def run() -> None:
        with app.app_context():
            asyncio.run(serve())

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert ready.wait(10)
        pid = os.fork()
        if pid == 0:  # the child: report, and leave at once, whatever happens
            code = 1
            try:

                async def work() -> int:
                    await ext.async_connection.set("child", "yes")
                    return int(await ext.async_connection.client_id())

                with app.app_context():
                    report.write_text(str(asyncio.run(work())))
                code = 0
            except BaseException as error:
                report.write_text(repr(error))
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        done.set()
        thread.join(10)
    assert os.waitstatus_to_exitcode(status) == 0, report.read_text()
    assert int(report.read_text()) != parent["id"]  # a connection of the child's own
    assert parent["after"] == (parent["id"], b"yes")  # the parent's goes on


def test_outside_a_loop_the_async_client_says_where_to_use_it(app: Flask) -> None:
    ext = Redis(app)
    with app.app_context(), pytest.raises(RuntimeError, match="async def"):
        ext.async_connection  # noqa: B018


def test_a_setting_the_async_client_cannot_take_is_named(
    app: Flask, redis_server: RedisServer, client_module: ModuleType
) -> None:
    pool = client_module.ConnectionPool(host="127.0.0.1", port=redis_server.port)
    app.config["REDIS_CONNECTION_POOL"] = pool
    ext = Redis(app)

    async def main() -> None:
        ext.async_connection  # noqa: B018

    with app.app_context(), pytest.raises(ValueError, match="REDIS_CONNECTION_POOL"):
        asyncio.run(main())
    pool.disconnect()


class PeakConnections:
    """The most connections the server had while the block ran, sampled every 10 ms by a
    client of its own (counted: the samples include it, and so does :attr:`before`)."""

    def __init__(self, server: RedisServer) -> None:
        self.client = server.client(socket_timeout=5)
        self.before = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, len(self.client.client_list()))

    def __enter__(self) -> PeakConnections:
        self.before = len(self.client.client_list())
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.close()


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


def _load(url: str, requests: int = 1000, at_once: int = 8) -> list[int]:
    """GET ``url`` ``requests`` times, ``at_once`` at a time: the values of the replies."""
    with ThreadPoolExecutor(at_once) as pool:
        replies = list(pool.map(lambda _: _get(url), range(requests)))
    assert {status for status, _body in replies} == {200}
    return sorted(json.loads(body)["value"] for _status, body in replies)


def test_under_a_threaded_wsgi_server_each_request_closes_its_loops_connections(
    async_app: Flask, plain: redis.Redis, samples: Samples, redis_server: RedisServer
) -> None:
    """Werkzeug's threaded server: Flask runs each async view in a loop of its own."""
    from werkzeug.serving import make_server

    start = _connections(plain)
    server = make_server("127.0.0.1", free_port(), async_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        with PeakConnections(redis_server) as connections:
            values = _load(f"http://127.0.0.1:{server.port}/count")
    finally:
        server.shutdown()
        thread.join(30)
        server.server_close()
    assert values == list(range(1, 1001))
    # 8 requests at once, each view's loop with one connection while it runs, and each
    # thread's last view's, closed as its loop ended, until the server has seen it go.
    assert connections.before < connections.peak <= connections.before + 16
    assert len(async_app.extensions["redis_asyncio"]["REDIS"]) == 0
    _wait_for_connections(plain, start)
    assert samples.commands("INCRBY") == 1000
    assert samples.requests("count") == 1000


@pytest.mark.parametrize("preload", [False, True])
def test_under_gunicorn_each_worker_serves_async_views_in_loops_of_its_own(
    redis_server: RedisServer, plain: redis.Redis, tmp_path: Path, preload: bool
) -> None:
    """gunicorn's sync workers, forked from a master that loaded the app (``--preload``)
    or not: each async view runs in a loop of its own, in a worker of its own."""
    start = _connections(plain)
    server = start_gunicorn(
        tmp_path,
        "tests.gunicorn_app:app",
        workers=2,
        env={
            "FLASK_REDIS_TEST_PORT": str(redis_server.port),
            "FLASK_REDIS_TEST_WRITE_INTERVAL": "0.2",
        },
        preload=preload,
    )
    try:
        # Each worker pings as it loads the app, and keeps that connection: counted before.
        warmed: list[int] = []
        wait_for(lambda: _workers_answered(server.url, warmed), "both workers to answer")
        with PeakConnections(redis_server) as connections, ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _: _get(server.url + "/async-work"), range(1000)))
        assert {status for status, _body in replies} == {200}
        # Two sync workers, a request at a time each: a view's connection each, and the
        # last view's, closed as its loop ended, until the server has seen it go.
        assert connections.before < connections.peak <= connections.before + 4
        assert len({body for _status, body in replies}) == 2  # both workers served
        assert plain.get("mp:async") == b"1000"

        incrby = 1000 + sum(warmed)  # the views', and the warm-up's pipelines'

        def counted() -> bool:
            status, text = _get(server.url + "/metrics")
            sample = f'flask_redis_commands_total{{command="INCRBY",prefix="redis"}} {incrby}.0'
            return status == 200 and sample in text.decode()

        wait_for(counted, "the workers' INCRBY to be counted", detail=server.log_text)
    finally:
        server.stop()
    _wait_for_connections(plain, start)


def _workers_answered(url: str, made: list[int]) -> bool:
    """Whether both workers answered ``/work`` (which holds a worker 20 ms, and sends an
    INCRBY) when asked 8 times at once; ``made`` counts the requests."""
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: _get(url + "/work"), range(8)))
    made.append(len(replies))
    return len({body for _status, body in replies}) == 2


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_under_an_asgi_server_one_loop_serves_every_request(
    async_app: Flask, plain: redis.Redis, samples: Samples, loop: str, redis_server: RedisServer
) -> None:
    """uvicorn, with the app wrapped in asgiref's WsgiToAsgi, on asyncio's loop and on
    uvloop's: Flask runs the async views in the server's own loop, so one client and its
    pool serve them all."""
    uvicorn = pytest.importorskip("uvicorn")
    pytest.importorskip(loop)
    from asgiref.wsgi import WsgiToAsgi

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            WsgiToAsgi(async_app), host="127.0.0.1", port=port, log_level="warning", loop=loop
        )
    )
    thread = threading.Thread(target=server.run)
    start = _connections(plain)
    thread.start()
    try:
        wait_for(lambda: server.started, "uvicorn to start")
        with PeakConnections(redis_server) as connections:
            assert _load(f"http://127.0.0.1:{port}/count") == list(range(1, 1001))
        # 8 requests at once: at most 8 connections, kept between requests.
        assert connections.before < connections.peak <= connections.before + 8
        assert start < _connections(plain) <= start + 8
        assert len(async_app.extensions["redis_asyncio"]["REDIS"]) == 1
    finally:
        server.should_exit = True
        thread.join(30)
    _wait_for_connections(plain, start)  # closed in the loop as uvicorn ended it
    assert samples.commands("INCRBY") == 1000
    assert samples.requests("count") == 1000


def _views(app: Flask, keys: list[str]) -> Redis:
    """Set up ``app``'s ``REDIS`` prefix and a view, ``/keys``, that writes ``keys`` one by
    one and reads them back in one pipeline, through the asyncio client."""
    ext = Redis(app)

    @app.get("/keys")
    async def write_and_read() -> dict[str, Any]:
        for key in keys:
            await ext.async_connection.set(key, key)
        async with ext.async_connection.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.get(key)
            values = await pipe.execute()
        name = await ext.async_connection.client_getname()
        return {"values": values, "name": name}  # decoded: observed_app decodes replies

    return ext


#: The name of the app's connections in the Sentinel and Cluster tests: the sentinels and
#: nodes also talk to each other, at moments of their own.
NAME = "flask-redis-async"


def test_a_sentinel_prefix_gives_an_async_client_of_the_master(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis, registry: CollectorRegistry
) -> None:
    app = observed_app(
        sentinel_set.url,
        registry,
        REDIS_CLIENT_NAME=NAME,
        REDIS_SENTINEL_KWARGS={"client_name": NAME},
        REDIS_SENTINEL_WATCH=False,  # its connections are the sync client's
    )
    master = sentinel_set.server_at(sentinel_set.master_address())
    servers = [master, *(s for s in sentinel_set.sentinel_servers if s.running)]
    # Each view's loop closes its connections, to the master and to the sentinels.
    _check_views_close_their_connections(app, servers, keys=5, views=20)


def test_a_sentinel_prefix_gives_an_async_client_of_the_replicas(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis, registry: CollectorRegistry
) -> None:
    app = observed_app(sentinel_set.url, registry, REDIS_CLIENT_NAME=NAME)
    ext = Redis(app)
    replica = sentinel_set.server_at(sentinel_set.replica.address)

    @app.get("/read")
    async def read() -> dict[str, Any]:
        await ext.async_connection.set("greeting", "hello")
        await ext.async_connection.wait(1, 5000)  # on the replica too
        role = await ext.async_replica.execute_command("ROLE")
        return {
            "value": await ext.async_replica.get("greeting"),
            "role": role[0],
            "calls": [call.command for call in get_recorded_calls()],
        }

    start = named_connections(replica)
    try:
        reply = app.test_client().get("/read").get_json()
        assert reply == {
            "value": "hello",
            "role": "slave",
            "calls": ["SET", "WAIT", "ROLE", "GET"],
        }
        samples = Samples(registry)
        assert (samples.commands("SET"), samples.commands("GET")) == (1, 1)
        # The view's loop closed its connection to the replica.
        wait_for(lambda: named_connections(replica) == start, "the replica's connection to close")
    finally:
        close_clients(app)


def test_only_a_sentinel_prefix_has_an_async_client_of_the_replicas(app: Flask) -> None:
    ext = Redis(app)

    async def main() -> None:
        with pytest.raises(AttributeError, match=r"only a prefix that uses Sentinel"):
            ext.async_replica  # noqa: B018 - reading the attribute raises

    with app.app_context():
        asyncio.run(main())


def test_a_cluster_prefix_gives_an_async_cluster_client(
    redis_cluster_nodes: ClusterNodes, cluster_client: Any, registry: CollectorRegistry
) -> None:
    app = observed_app(redis_cluster_nodes.url, registry, REDIS_CLIENT_NAME=NAME)
    # 12 keys: over every master.
    _check_views_close_their_connections(app, redis_cluster_nodes.nodes, keys=12, views=10)


def test_the_pool_gauges_count_the_connections_of_an_async_cluster_client(
    redis_cluster_nodes: ClusterNodes, cluster_client: Any, registry: CollectorRegistry
) -> None:
    app = observed_app(redis_cluster_nodes.url, registry, REDIS_CLIENT_NAME=NAME)
    ext, samples = Redis(app), Samples(registry)
    servers = redis_cluster_nodes.nodes

    def named() -> int:
        return sum(named_connections(server) for server in servers)

    # The sync client's: its pools may keep a connection that is not open.
    before, named_before = _pool_gauges(samples), named()

    def opened() -> tuple[Any, int]:
        in_use, idle = _pool_gauges(samples)
        return (in_use, idle - before[1]), named() - named_before  # type: ignore[operator]

    async def spread() -> None:
        for number in range(12):  # over every master
            await ext.async_connection.set(f"key:{number}", number)
        # The connections the gauges count are those the servers see, all idle now.
        wait_for(lambda: opened()[0] == (0, opened()[1]), "the gauges to count them",
                 detail=lambda: repr(opened()))  # fmt: skip
        assert opened()[1] >= len(servers) // 2  # one per master at least

    try:
        with app.app_context():
            asyncio.run(spread())
        # The loop ended: its client was closed and forgotten.
        assert _pool_gauges(samples) == before
    finally:
        close_clients(app)


def _check_views_close_their_connections(
    app: Flask, servers: list[Any], keys: int, views: int
) -> None:
    """Serve ``views`` times the view of :func:`_views` with ``keys`` keys, then check that
    the app's connections to ``servers`` are back to those of its sync client, and that
    each command and pipeline was counted once."""
    names = [f"key:{number}" for number in range(keys)]
    _views(app, names)
    start = [named_connections(server) for server in servers]  # the sync client's
    try:
        client = app.test_client()
        for _ in range(views):
            assert client.get("/keys").get_json() == {"values": names, "name": NAME}
        wait_for(
            lambda: [named_connections(server) for server in servers] == start,
            "the connections of the async views to close",
        )
        samples = Samples(app.config["REDIS_METRICS_REGISTRY"])
        assert samples.commands("SET") == keys * views
        assert samples.round_trips("PIPELINE") == views
        assert samples.commands("GET") == keys * views
    finally:
        close_clients(app)


def named_connections(server: RedisServer) -> int:
    """The connections to ``server`` named :data:`NAME`."""
    with server.client(socket_timeout=2) as client:
        return sum(1 for each in client.client_list() if each.get("name") == NAME)


@pytest.mark.parametrize("args", [("SET", "k", "v"), ("NOSUCHCMD", "k")], ids=["ok", "error"])
def test_an_async_command_observes_and_reports_as_a_watched_pipeline_does(
    redis_server: RedisServer,
    library: ClientLibrary,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
) -> None:
    """The asyncio client's ``execute_command`` inlines what its pipeline's round trips
    call (``_timed_async``), once watching: both hand the round trip to the observer and
    log its failure alike."""

    async def outcome(through_pipeline: bool) -> tuple[Any, ...]:
        log_failures_anew(monkeypatch)
        caplog.clear()
        client = instrumented_async(library.asyncio_client)(port=redis_server.port)
        observer = FailingObserver()
        observe(client, observer)
        try:
            with caplog.at_level(logging.ERROR, "flask_redis"):
                try:
                    if through_pipeline:
                        async with client.pipeline() as pipe:
                            await pipe.watch("w")
                            await pipe.execute_command(*args)
                            reply = await pipe.execute_command(*args)  # not logged again
                    else:
                        await client.execute_command(*args)
                        reply = await client.execute_command(*args)
                except Exception as error:  # the error reaches the caller as it is
                    reply = type(error)
        finally:
            await (getattr(client, "aclose", None) or client.close)()  # redis-py 5.0: close
        command, observed, raised, commands, timed = observer.seen[-1]
        seen = (command, observed, type(raised), commands, timed)
        logged = [(record.getMessage(), record.exc_info) for record in caplog.records]
        return reply, seen, [(message, info and info[0]) for message, info in logged]

    assert asyncio.run(outcome(False)) == asyncio.run(outcome(True))
    reply, _seen, logged = asyncio.run(outcome(False))
    assert reply is True or issubclass(reply, Exception)
    assert [message for message, _info in logged] == [
        "flask_redis: the observer FailingObserver failed; the Redis command it observed did not"
    ]
