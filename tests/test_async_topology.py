"""``Redis.async_connection`` while the topology changes under it, on real servers: a
Sentinel failover during async traffic, and a Cluster slot that migrates (``-ASK``, then
``-MOVED``) while a loop reads and writes its keys."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Callable

import pytest
import redis
from flask import Flask
from prometheus_client import CollectorRegistry

from flask_redis import Redis

from .conftest import close_clients, observed_app
from .samples import ERRORS, Samples
from .servers import Address, ClusterNodes, SentinelSet, key_in_slot
from .test_async import NAME, named_connections
from .test_cluster import SlotMover
from .test_sentinel import Writes, check_writes, failover_thread, write_through

pytest.importorskip("asgiref")  # Flask's async views need it: the "async" extra

#: What a write during a failover may fail with: the old master's connection closed or
#: refusing writes (redis-py turns a ``READONLY`` of a demoted master into a
#: ``ConnectionError``), no sentinel naming a master yet, or a reply too late.
FAILOVER_ERRORS = {"ConnectionError", "MasterNotFoundError", "TimeoutError", "ReadOnlyError"}


@pytest.fixture(autouse=True)
def _no_asyncio_error(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test after which asyncio logged an error (a task destroyed while pending, an
    exception never retrieved), as ``tests/test_async.py`` does."""
    yield
    gc.collect()
    logged = [*caplog.get_records("call"), *caplog.records]
    assert [r.getMessage() for r in logged if r.name == "asyncio" and r.levelno >= 40] == []


@pytest.fixture()
def sentinel_app(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis, registry: CollectorRegistry
) -> Iterator[Flask]:
    """An app whose ``REDIS`` prefix is the set's service, the master flushed, with metrics
    in ``registry``; the set is made healthy again afterwards, as the test passes or fails."""
    app = observed_app(sentinel_set.url, registry, REDIS_SOCKET_TIMEOUT=2)
    yield app
    close_clients(app)
    sentinel_set.restore()


# -- Sentinel: one long-lived loop ---------------------------------------------------------


def write_in_one_loop(
    app: Flask,
    client_module: ModuleType,
    fail: Callable[[], Address],
    until: Callable[[Writes], bool],
) -> tuple[Writes, int]:
    """Write ``w:<n>`` = ``n`` through ``app``'s asyncio client, in one event loop (as
    under an ASGI server), while ``fail()`` fails the master over in another thread, until
    ``until(writes)`` holds.

    :returns: What the awaiting code saw, and how many writes it made.
    """
    ext = Redis(app)
    writes = Writes()
    thread, outcome = failover_thread(fail, writes)
    attempts = 0

    async def write(number: int) -> None:
        nonlocal attempts
        attempts += 1
        try:
            await ext.async_connection.set(f"w:{number}", number)
        except client_module.RedisError as error:  # it reached the awaiting code
            writes.failed.append(time.monotonic())
            writes.errors.add(type(error).__name__)
            await asyncio.sleep(0.01)
        else:
            writes.acknowledged[f"w:{number}"] = (str(number), time.monotonic())
        await asyncio.sleep(0.002)

    async def main() -> None:
        for number in range(20):  # before the failover
            await write(number)
        assert not writes.failed, writes.errors
        writes.started = time.monotonic()
        thread.start()
        deadline = time.monotonic() + 60
        number = 20
        while not until(writes):
            assert time.monotonic() < deadline, f"the writes did not end: {outcome}"
            await write(number)
            number += 1

    with app.app_context():
        asyncio.run(main())
    thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    return writes, attempts


def check_one_loop(
    writes: Writes,
    attempts: int,
    sentinel_set: SentinelSet,
    old: Address,
    samples: Samples,
    followed: float,
) -> str:
    """Check what one loop's ``writes`` saw of a failover away from ``old``: each error
    reached the caller and was counted once, each write counted once, no wrong value, and
    the writes acknowledged from ``followed`` on stored on the new master.

    :returns: The figures, to print.
    """
    new = sentinel_set.master_address()
    assert new != old
    assert writes.errors <= FAILOVER_ERRORS, writes.errors
    assert samples.commands("SET") == attempts
    assert sum(samples.matching(ERRORS).values()) == len(writes.failed)
    with sentinel_set.server_at(new).client(decode_responses=True) as master:
        keys = list(writes.acknowledged)
        stored = dict(zip(keys, master.mget(keys)))
    # Never a wrong answer: a write is stored with its value, or lost in the failover.
    assert all(stored[key] in (value, None) for key, (value, _) in writes.acknowledged.items())
    lost = sorted(when for key, (_, when) in writes.acknowledged.items() if stored[key] is None)
    late = [when - writes.announced for when in lost if when >= followed]
    assert late == [], (
        f"{len(late)} writes acknowledged {late[0]:.2f} to {late[-1]:.2f} s after the"
        f" announcement were lost ({len(lost)} lost in all)"
    )
    after = [key for key, (_, when) in writes.acknowledged.items() if when >= followed]
    assert len(after) >= 20
    lost_after = sum(1 for when in lost if when >= writes.announced)
    return (
        f"{attempts} writes, {len(writes.failed)} failed over {writes.error_seconds:.2f} s"
        f" ({', '.join(sorted(writes.errors)) or 'no error'}); {len(lost)} acknowledged and"
        f" lost, {lost_after} of them after the announcement"
    )


def test_a_connection_in_use_as_the_master_changes_is_closed_when_given_back(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis, registry: CollectorRegistry
) -> None:
    """A command in flight on the old master as the sentinels announce the new one ends
    there; its connection is closed as it is given back, and the next command goes to
    the new master."""
    app = observed_app(sentinel_set.url, registry, REDIS_SOCKET_TIMEOUT=30, REDIS_CLIENT_NAME=NAME)
    ext = Redis(app)
    old = sentinel_set.server_at(sentinel_set.master_address())

    async def main() -> tuple[bool, Any, int]:
        client = ext.async_connection
        await client.ping()  # the first connection: the watch starts
        # In use for 6 s, on the old master: the sentinels announce the new one meanwhile,
        # and demote the old one some seconds later.
        blocked = asyncio.ensure_future(client.blpop("never:pushed", timeout=6))
        await asyncio.sleep(0.1)
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: sentinel_set.failover(settle=False)
        )
        in_flight = not blocked.done()
        reply = await blocked
        await client.set("after", "1")
        for _ in range(100):  # the old master sees the close soon after it is made
            if named_connections(old) == 0:
                break
            await asyncio.sleep(0.05)
        return in_flight, reply, named_connections(old)

    try:
        with app.app_context():
            in_flight, reply, on_old = asyncio.run(main())
        assert in_flight  # the failover was announced while BLPOP waited on the old master
        assert reply is None  # it ended there: its timeout
        assert on_old == 0  # its connection was closed as it was given back
        new = sentinel_set.server_at(sentinel_set.master_address())
        assert new is not old and new.get("after") == b"1"
    finally:
        close_clients(app)
        sentinel_set.restore()


def test_a_long_lived_loop_follows_a_failover_as_soon_as_the_sentinels_announce_it(
    sentinel_app: Flask, sentinel_set: SentinelSet, samples: Samples, client_module: ModuleType
) -> None:
    old = sentinel_set.master_address()
    writes, attempts = write_in_one_loop(
        sentinel_app,
        client_module,
        lambda: sentinel_set.failover(settle=False),
        lambda writes: bool(writes.announced) and time.monotonic() > writes.announced + 1.5,
    )
    check_one_loop(writes, attempts, sentinel_set, old, samples, writes.announced + 0.5)


# -- Sentinel: an event loop per request ---------------------------------------------------


def test_async_views_write_through_a_real_failover(
    sentinel_app: Flask, sentinel_set: SentinelSet, samples: Samples, client_module: ModuleType
) -> None:
    """Flask runs each ``async def`` view in a loop of its own: each view's client asks the
    sentinels for the master, so it follows the failover as soon as they announce it."""
    redis_ext = Redis(sentinel_app)

    @sentinel_app.post("/write/<int:number>")
    async def write(number: int) -> str:
        await redis_ext.async_connection.set(f"w:{number}", number)
        return "ok"

    @sentinel_app.errorhandler(client_module.RedisError)
    def redis_error(error: Exception) -> tuple[str, int]:
        return type(error).__name__, 503

    old = sentinel_set.master_address()
    writes = write_through(sentinel_app, lambda: sentinel_set.failover(settle=False))
    requests = len(writes.acknowledged) + len(writes.failed)
    assert samples.commands("SET") == requests
    assert samples.requests("write") == requests
    # Each failed view's SET counted once as an error; writes after the announcement stored
    # on the new master; none stored with a wrong value (the set restored after).
    check_writes("async views", redis_ext, sentinel_set, writes, old, samples)


# -- Cluster: a slot migrates under one loop -----------------------------------------------


def test_one_loop_reads_and_writes_right_while_a_slot_migrates_each_command_counted_once(
    redis_cluster_nodes: ClusterNodes, cluster_client: Any, registry: CollectorRegistry
) -> None:
    """The asyncio cluster client follows ``-ASK`` for the keys already moved while the slot
    migrates, and ``-MOVED`` once it has: no error reaches the caller, every reply is right,
    and a redirected command is counted once."""
    app = observed_app(redis_cluster_nodes.url, registry)
    samples = Samples(registry)
    ext = Redis(app)
    slot = 5678
    keys = [key_in_slot(slot, f"item{number}") for number in range(100)]
    values = dict.fromkeys(keys, 0)
    counts = {"INCRBY": 0, "GET": 0}
    moved_keys: list[str] = []

    async def bump(key: str) -> None:
        values[key] += 1
        counts["INCRBY"] += 1
        assert await ext.async_connection.incr(key) == values[key]
        counts["GET"] += 1
        assert await ext.async_connection.get(key) == str(values[key])  # no wrong answer

    async def main() -> tuple[int, float]:
        for key in keys:  # before the move: the client learns the slot's owner
            await bump(key)
        source = ext.async_connection.get_node_from_key(keys[0])
        target = next(n for n in redis_cluster_nodes.masters if n.port != source.port)
        mover = SlotMover(redis_cluster_nodes, slot, target)
        mover.start()
        await asyncio.get_running_loop().run_in_executor(None, mover.migrating.wait, 30)
        started = time.monotonic()
        number = 0
        while mover.is_alive() or number < 2 * len(keys):
            await bump(keys[number % len(keys)])
            number += 1
            if number % 20 == 0:
                await asyncio.sleep(0)
            assert number < 20_000, "the migration did not end"
        moving = time.monotonic() - started
        await asyncio.get_running_loop().run_in_executor(None, mover.join, 30)
        assert mover.error is None, mover.error
        assert redis_cluster_nodes.node_for_slot(slot).port == target.port
        with target.client(decode_responses=True) as direct:
            moved_keys.extend(key for key in keys if direct.get(key) == str(values[key]))
        return number, moving

    try:
        with app.app_context():
            number, moving = asyncio.run(main())
    finally:
        close_clients(app)
    assert moved_keys == keys  # every key, with its last value, on the new owner
    assert samples.commands("INCRBY") == counts["INCRBY"]
    assert samples.commands("GET") == counts["GET"]
    assert samples.round_trips("GET") == counts["GET"]
    assert samples.matching(ERRORS) == {}  # redirections are followed, not failed
    print(f"\none loop, slot moved in {moving:.2f} s: {number} bumps, 0 failed")
