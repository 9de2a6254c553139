"""``_sockets``: the bytes a connection's TCP socket moved, as the kernel counts them, and
``_pools.pool_connections``: the connections a pool holds, read while threads use them."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Awaitable, Iterator
from types import ModuleType
from typing import Any, Callable

import pytest

from flask_redis._pools import pool_connections
from flask_redis._sockets import connection_socket, socket_bytes, unread_bytes

from .conftest import Closing
from .servers import RedisServer

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="the kernel's counts of a TCP socket are read on Linux"
)

VALUE = b"v" * 100_000


def _one_connection(client: Any) -> Any:
    """The only connection of ``client``'s pool, which made one command."""
    connections = pool_connections(client.connection_pool)
    assert len(connections) == 1
    return connections[0]


@pytest.fixture()
def client(redis_server: RedisServer, client_module: ModuleType, closing: Closing) -> Any:
    """A sync client of the test's library on the server's TCP port, connected."""
    made = closing(client_module.Redis(host="127.0.0.1", port=redis_server.port, db=5))
    made.ping()
    return made


def test_a_set_counts_the_value_as_sent_and_a_get_as_received(client: Any) -> None:
    connection = _one_connection(client)
    before = socket_bytes(connection_socket(connection))
    assert before is not None
    client.set("sockets:k", VALUE)
    after_set = socket_bytes(connection_socket(connection))
    assert after_set is not None
    assert after_set[0] - before[0] >= len(VALUE)
    assert 0 < after_set[1] - before[1] < 100  # "+OK\r\n"
    assert client.get("sockets:k") == VALUE
    after_get = socket_bytes(connection_socket(connection))
    assert after_get is not None
    assert after_get[1] - after_set[1] >= len(VALUE)
    assert 0 < after_get[0] - after_set[0] < 100


def test_unread_bytes_gives_each_byte_once(client: Any) -> None:
    connection = _one_connection(client)
    opened = unread_bytes(connection)  # everything since the socket was opened
    assert opened[0] > 0 and opened[1] > 0
    assert unread_bytes(connection) == (0, 0)
    client.set("sockets:k", VALUE)
    sent, received = unread_bytes(connection)
    assert sent >= len(VALUE) and 0 < received < 100
    assert unread_bytes(connection) == (0, 0)
    client.get("sockets:k")
    sent, received = unread_bytes(connection)
    assert 0 < sent < 100 and received >= len(VALUE)
    assert unread_bytes(connection) == (0, 0)


def test_a_reconnection_counts_the_new_socket_from_its_own_zero(
    client: Any, client_module: ModuleType, redis_server: RedisServer, closing: Closing
) -> None:
    connection = _one_connection(client)
    client.set("sockets:k", VALUE)
    assert unread_bytes(connection)[0] >= len(VALUE)
    old = connection_socket(connection)
    closing(redis_server.client()).client_kill_filter(_id=client.client_id())
    try:
        client.get("sockets:small")  # redis-py 8 retries on a new socket, 5.0 raises
    except client_module.ConnectionError:
        client.get("sockets:small")
    new = connection_socket(connection)
    assert new is not None and new is not old
    new_bytes = socket_bytes(new)
    assert new_bytes is not None
    # Far fewer bytes than the old socket had already counted: none is negative, and
    # every byte of the new socket is counted.
    assert new_bytes[0] < len(VALUE)
    assert unread_bytes(connection) == new_bytes
    assert unread_bytes(connection) == (0, 0)


def test_a_new_socket_that_moved_more_than_the_old_one_is_counted_whole(
    client: Any, client_module: ModuleType
) -> None:
    connection = _one_connection(client)
    unread_bytes(connection)
    connection.disconnect()
    client.set("sockets:k", VALUE)  # a new socket, of more bytes than the old one had
    new_bytes = socket_bytes(connection_socket(connection))
    assert new_bytes is not None and new_bytes[0] >= len(VALUE)
    assert unread_bytes(connection) == new_bytes


def test_a_closed_connection_reads_as_nothing(client: Any) -> None:
    connection = _one_connection(client)
    sock = connection_socket(connection)
    unread_bytes(connection)
    client.connection_pool.disconnect()
    assert connection_socket(connection) is None
    assert unread_bytes(connection) == (0, 0)
    assert socket_bytes(sock) is None  # the socket object outlives its descriptor
    assert socket_bytes(None) is None


def test_a_unix_socket_connection_reads_as_nothing(
    redis_server: RedisServer, client_module: ModuleType, closing: Closing
) -> None:
    unix = closing(client_module.Redis(unix_socket_path=redis_server.unix_socket))
    unix.set("sockets:k", VALUE)
    connection = _one_connection(unix)
    sock = connection_socket(connection)
    assert sock is not None and sock.family == socket.AF_UNIX
    assert socket_bytes(sock) is None
    assert unread_bytes(connection) == (0, 0)


def test_a_socket_that_is_no_socket_reads_as_nothing() -> None:
    assert socket_bytes(object()) is None
    assert socket_bytes("not a socket") is None
    assert connection_socket(object()) is None


class _Slotted:
    """A connection that keeps no attribute of its own (no ``__dict__``)."""

    __slots__ = ("_sock",)

    def __init__(self, sock: Any) -> None:
        self._sock = sock


def test_a_connection_without_a_dict_reads_as_nothing(client: Any) -> None:
    sock = connection_socket(_one_connection(client))
    assert socket_bytes(sock) is not None
    assert unread_bytes(_Slotted(sock)) == (0, 0)


def test_ssl_connections() -> None:
    pytest.skip("the test servers do not speak TLS (tests/servers.py)")


def _run(loop_name: str, coroutine: Callable[[], Awaitable[None]]) -> None:
    """Run ``coroutine()`` in a new loop of ``loop_name``: asyncio's or uvloop's."""
    if loop_name == "uvloop":
        loop = pytest.importorskip("uvloop").new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(coroutine())
    finally:
        loop.close()


async def _aclose(client: Any) -> None:
    """Close an asyncio client: ``aclose`` where the library has it (5.0 has ``close``)."""
    await getattr(client, "aclose", client.close)()


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_an_asyncio_connection_counts_its_bytes(
    redis_server: RedisServer, client_module: ModuleType, loop_name: str
) -> None:
    async def counted() -> None:
        client = client_module.asyncio.Redis(host="127.0.0.1", port=redis_server.port, db=5)
        try:
            await client.set("sockets:k", VALUE)
            (connection,) = pool_connections(client.connection_pool)
            sent, received = unread_bytes(connection)
            assert sent >= len(VALUE) and received > 0
            assert unread_bytes(connection) == (0, 0)
            assert await client.get("sockets:k") == VALUE
            sent, received = unread_bytes(connection)
            assert 0 < sent < 100 and received >= len(VALUE)
        finally:
            await _aclose(client)
        assert connection_socket(connection) is None
        assert unread_bytes(connection) == (0, 0)

    _run(loop_name, counted)


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_an_asyncio_unix_socket_connection_reads_as_nothing(
    redis_server: RedisServer, client_module: ModuleType, loop_name: str
) -> None:
    async def counted() -> None:
        client = client_module.asyncio.Redis(unix_socket_path=redis_server.unix_socket)
        try:
            await client.ping()
            (connection,) = pool_connections(client.connection_pool)
            assert unread_bytes(connection) == (0, 0)
        finally:
            await _aclose(client)

    _run(loop_name, counted)


def _hold(pool: Any, count: int) -> list[Any]:
    """``count`` connections taken out of a sync ``pool``, each connected."""
    taken = []
    for _ in range(count):
        try:
            taken.append(pool.get_connection())
        except TypeError:  # redis-py before 5.3 wants a command name
            taken.append(pool.get_connection("PING"))
    for connection in taken:
        connection.connect()
    return taken


@pytest.mark.parametrize("kind", ["ConnectionPool", "BlockingConnectionPool"])
def test_a_sync_pool_lists_its_idle_and_used_connections(
    redis_server: RedisServer, client_module: ModuleType, closing: Closing, kind: str
) -> None:
    pool = closing(getattr(client_module, kind)(host="127.0.0.1", port=redis_server.port))
    assert pool_connections(pool) == []
    taken = _hold(pool, 3)
    pool.release(taken[0])  # one idle, two in use
    assert sorted(map(id, pool_connections(pool))) == sorted(map(id, taken))
    assert all(socket_bytes(connection_socket(c)) is not None for c in taken)


def test_a_forked_copy_of_a_pool_lists_no_connection(
    redis_server: RedisServer, client_module: ModuleType, closing: Closing
) -> None:
    pool = closing(client_module.ConnectionPool(host="127.0.0.1", port=redis_server.port))
    pool.release(_hold(pool, 1)[0])
    # The pid a pool notes is the one redis-py compares to find itself in a forked child;
    # a fork of the test process is not needed to see what the child would read.
    pool.pid += 1
    try:
        assert pool_connections(pool) == []
    finally:
        pool.pid -= 1


def test_what_is_no_pool_lists_no_connection() -> None:
    assert pool_connections(object()) == []
    assert pool_connections(None) == []


@pytest.mark.parametrize("kind", ["ConnectionPool", "BlockingConnectionPool", "ClusterNode"])
def test_an_asyncio_pool_lists_its_idle_and_used_connections(
    redis_server: RedisServer, client_module: ModuleType, kind: str
) -> None:
    async def listed() -> None:
        if kind == "ClusterNode":
            pool = client_module.asyncio.cluster.ClusterNode("127.0.0.1", redis_server.port)
            # Older versions and valkey-py have no release(): a node takes its connection
            # back into _free after each command.
            take, give_back = pool.acquire_connection, getattr(pool, "release", pool._free.append)
        else:
            pool = getattr(client_module.asyncio, kind)(host="127.0.0.1", port=redis_server.port)
            take, give_back = pool.get_connection, pool.release
        try:
            assert pool_connections(pool) == []
            taken = []
            for _ in range(3):
                connection = take() if kind == "ClusterNode" else await _take(take)
                await connection.connect()
                taken.append(connection)
            await _maybe(give_back(taken[0]))
            assert sorted(map(id, pool_connections(pool))) == sorted(map(id, taken))
            assert all(unread_bytes(c)[1] > 0 for c in taken)  # the handshake's reply
        finally:
            await pool.disconnect()

    _run("asyncio", listed)


async def _take(get_connection: Callable[..., Any]) -> Any:
    """A connection of an asyncio pool: ``get_connection`` takes a command name in 5.0."""
    try:
        return await get_connection()
    except TypeError:
        return await get_connection("PING")


async def _maybe(result: Any) -> None:
    """Await ``result`` if it is awaitable (``release`` is a coroutine in some versions)."""
    if asyncio.iscoroutine(result):
        await result


@pytest.fixture()
def busy_client(
    redis_server: RedisServer, client_module: ModuleType, closing: Closing
) -> Iterator[Any]:
    """A client of a pool of up to 8 connections, with a value of 10 KB to read."""
    made = closing(
        client_module.Redis(host="127.0.0.1", port=redis_server.port, db=5, max_connections=8)
    )
    made.set("sockets:busy", b"b" * 10_000)
    yield made


def test_readings_while_8_threads_read_count_every_byte_received(busy_client: Any) -> None:
    pool = busy_client.connection_pool
    gets = 300
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(gets):
                busy_client.get("sockets:busy")
        except BaseException as error:  # handed to the test's thread
            errors.append(error)

    def read() -> int:
        received = 0
        for connection in pool_connections(pool):
            sent, got = unread_bytes(connection)
            assert sent >= 0 and got >= 0
            received += got
        return received

    received = readings = 0
    workers = [threading.Thread(target=work) for _ in range(8)]
    for worker in workers:
        worker.start()
    while any(worker.is_alive() for worker in workers):
        received += read()
        readings += 1
    for worker in workers:
        worker.join()
    received += read()  # what the last commands moved
    assert errors == []
    assert readings > 1
    assert received >= 8 * gets * 10_000


def test_readings_while_threads_disconnect_the_pool_never_fail(busy_client: Any) -> None:
    pool = busy_client.connection_pool
    deadline = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            while not deadline.is_set():
                busy_client.get("sockets:busy")
        except BaseException as error:  # handed to the test's thread
            errors.append(error)

    def disconnect() -> None:
        while not deadline.is_set():
            pool.disconnect(inuse_connections=False)

    threads = [threading.Thread(target=work) for _ in range(6)]
    threads.append(threading.Thread(target=disconnect))
    for thread in threads:
        thread.start()
    try:
        for _ in range(2000):
            for connection in pool_connections(pool):
                assert min(unread_bytes(connection)) >= 0
    finally:
        deadline.set()
        for thread in threads:
            thread.join()
    assert errors == []
