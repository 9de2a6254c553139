"""A prefix that uses Redis Sentinel, against a real master, replica and three sentinels:
the client, its replica client, their metrics and recorded calls, and real failovers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
import redis
from flask import Flask
from prometheus_client import CollectorRegistry

from flask_redis import Redis, get_recorded_calls

from .conftest import close_clients, observed_app
from .samples import ERRORS, POOL, Samples
from .servers import Address, RedisServer, SentinelServer, SentinelSet


@pytest.fixture()
def sentinel_app(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis, registry: CollectorRegistry
) -> Iterator[Flask]:
    """An app whose ``REDIS`` prefix is the set's service, the master flushed, with metrics
    in ``registry`` and calls recorded."""
    app = observed_app(sentinel_set.url, registry, REDIS_SOCKET_TIMEOUT=2)
    yield app
    close_clients(app)


def shown(address: Address) -> str:
    return f"{address[0]}:{address[1]}"


def test_master_and_replica_clients_are_instrumented_under_the_prefix(
    sentinel_app: Flask, sentinel_set: SentinelSet, samples: Samples
) -> None:
    redis_ext = Redis(sentinel_app)
    seen: dict[str, Any] = {}

    @sentinel_app.route("/work")
    def work() -> str:
        redis_ext.set("greeting", "hello")
        redis_ext.wait(1, 5000)  # on the replica before it is read there
        seen["master"] = redis_ext.get("greeting")
        seen["replica"] = redis_ext.replica.get("greeting")
        with redis_ext.pipeline() as pipe:
            seen["pipeline"] = pipe.incr("visits").get("greeting").execute()
        seen["calls"] = list(get_recorded_calls())
        seen["modes"] = get_recorded_calls().modes
        return "ok"

    assert sentinel_app.test_client().get("/work").status_code == 200
    assert (seen["master"], seen["replica"], seen["pipeline"]) == ("hello", "hello", [1, "hello"])
    assert samples.commands("GET") == 3
    assert samples.commands("SET") == 1
    assert samples.commands("INCRBY") == 1
    assert samples.round_trips("MULTI") == 1
    assert samples.request_commands("work")[0] == 6
    master = shown(sentinel_set.master_address())
    replica = shown(sentinel_set.replica.address)
    assert [(call.command, call.node) for call in seen["calls"]] == [
        ("SET", master), ("WAIT", master), ("GET", master), ("GET", f"{replica} (replica)"),
        ("INCRBY", master), ("GET", master),
    ]  # fmt: skip
    assert seen["modes"] == {"REDIS": "Sentinel, service mymaster"}
    # Both clients' pools are in the gauge: one connection each.
    assert samples(POOL, prefix="redis", state="idle") == 2


def test_keys_configure_the_master_connections_and_the_sentinels(
    sentinel_app: Flask, sentinel_set: SentinelSet
) -> None:
    del sentinel_app.config["REDIS_URL"]
    sentinel_app.config.update(
        REDIS_SENTINELS=",".join(shown(address) for address in sentinel_set.sentinels),
        REDIS_SENTINEL_MASTER="mymaster",
        REDIS_SENTINEL_KWARGS={"socket_timeout": "1.5", "client_name": "watcher"},
        REDIS_CLIENT_NAME="shop",
        REDIS_DB="3",
    )
    redis_ext = Redis(sentinel_app)
    redis_ext.set("k", "v")
    assert sentinel_set.master.get("k", db=3) == b"v"
    assert redis_ext.client_getname() == "shop"
    pool = redis_ext.connection.connection_pool
    sentinel = pool.sentinel_manager.sentinels[0]
    assert sentinel.connection_pool.connection_kwargs["socket_timeout"] == 1.5
    assert sentinel.client_getname() == "watcher"


def test_replica_of_a_prefix_without_sentinel_is_a_clear_error(app: Flask) -> None:
    redis_ext = Redis(app)
    with pytest.raises(AttributeError, match=r"no replica client: only a prefix that uses"
                                             r" Sentinel \(REDIS_SENTINELS\) has one"):  # fmt: skip
        redis_ext.replica  # noqa: B018 - reading the attribute raises


@dataclass
class Writes:
    """What an app saw while it wrote through a failover: replies, errors and their times
    (seconds of :func:`time.monotonic`)."""

    #: Key -> (value, when acknowledged).
    acknowledged: dict[str, tuple[str, float]] = field(default_factory=dict)
    failed: list[float] = field(default_factory=list)
    errors: set[str] = field(default_factory=set)
    started: float = 0.0
    #: When every sentinel reported the new master.
    announced: float = 0.0

    @property
    def error_seconds(self) -> float:
        """From the first failed write to the last one."""
        return self.failed[-1] - self.failed[0] if self.failed else 0.0


def failover_thread(
    fail: Callable[[], Address], writes: Writes
) -> tuple[threading.Thread, dict[str, Any]]:
    """A thread that runs ``fail()`` and notes in ``writes`` when it returned, and what it
    returned (``"master"``) or raised (``"error"``), once it has."""
    outcome: dict[str, Any] = {}

    def failover() -> None:
        try:
            outcome["master"] = fail()
            writes.announced = time.monotonic()
        except BaseException as error:  # pragma: no cover - reported by the caller
            outcome["error"] = error

    return threading.Thread(target=failover, daemon=True), outcome


def write_through(app: Flask, fail: Callable[[], Address], after: float = 1.5) -> Writes:
    """Write through ``app``'s ``/write`` view in a loop while ``fail()`` fails the master
    over in another thread, and for ``after`` seconds once it returned."""
    writes = Writes()
    thread, outcome = failover_thread(fail, writes)
    client = app.test_client()
    deadline = time.monotonic() + 60

    def write(number: int) -> None:
        reply = client.post(f"/write/{number}")
        now = time.monotonic()
        if reply.status_code == 200:
            writes.acknowledged[f"w:{number}"] = (str(number), now)
            return
        assert reply.status_code == 503
        writes.failed.append(now)
        writes.errors.add(reply.get_data(as_text=True))
        time.sleep(0.01)

    for number in range(20):  # before the failover
        write(number)
    assert not writes.failed
    writes.started = time.monotonic()
    thread.start()
    while time.monotonic() < deadline and (
        not writes.announced or time.monotonic() < writes.announced + after
    ):
        number += 1
        write(number)
    thread.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert writes.announced, "the failover did not end"
    return writes


def failover_app(sentinel_app: Flask, client_module: ModuleType) -> Redis:
    """A ``/write/<n>`` view that sets ``w:<n>``; a Redis error (of ``client_module``, the
    client library's module) is a 503 naming it."""
    redis_ext = Redis(sentinel_app)

    @sentinel_app.post("/write/<int:number>")
    def write(number: int) -> str:
        redis_ext.set(f"w:{number}", number)
        return "ok"

    @sentinel_app.errorhandler(client_module.RedisError)
    def redis_error(error: Exception) -> tuple[str, int]:
        return type(error).__name__, 503

    return redis_ext


@pytest.mark.parametrize("how", ["SENTINEL FAILOVER", "master killed"])
def test_app_keeps_writing_through_a_real_failover(
    how: str,
    sentinel_app: Flask,
    sentinel_set: SentinelSet,
    samples: Samples,
    client_module: ModuleType,
) -> None:
    redis_ext = failover_app(sentinel_app, client_module)
    old = sentinel_set.master_address()
    if how == "SENTINEL FAILOVER":  # the old master goes on, as a master, for a while
        writes = write_through(sentinel_app, lambda: sentinel_set.failover(settle=False))
    else:
        writes = write_through(sentinel_app, sentinel_set.kill_master)
    check_writes(how, redis_ext, sentinel_set, writes, old, samples)


@pytest.mark.parametrize("fault", ["frozen", "killed"])
def test_the_app_follows_a_failover_whichever_sentinel_fails(
    fault: str,
    sentinel_app: Flask,
    sentinel_set: SentinelSet,
    samples: Samples,
    client_module: ModuleType,
) -> None:
    # The first sentinel listed answered first: the one a watch would listen to alone.
    redis_ext = failover_app(sentinel_app, client_module)
    old = sentinel_set.master_address()
    first = sentinel_set.sentinel_servers[0]

    def fail() -> Address:
        if fault == "frozen":
            first.freeze()
        else:
            first.kill()
        return sentinel_set.failover(settle=False, through=1)

    writes = write_through(sentinel_app, fail)
    check_writes(f"first sentinel {fault}", redis_ext, sentinel_set, writes, old, samples)


def test_a_sentinel_that_reports_another_master_is_outvoted(
    sentinel_set: SentinelSet,
    sentinel_master: redis.Redis,
    registry: CollectorRegistry,
    samples: Samples,
    client_module: ModuleType,
    server_kind: str,
    tmp_path: Path,
) -> None:
    # A sentinel listed first that monitors another server under the same name: alone,
    # the client would write to that server, and never hear of the failover.
    stray = RedisServer(tmp_path / "stray", kind=server_kind).start()
    liar = SentinelServer(tmp_path / "liar", "mymaster", stray.port, quorum=1, kind=server_kind)
    liar.start()
    hosts = ",".join(shown(address) for address in [liar.address, *sentinel_set.sentinels])
    app = observed_app(f"redis+sentinel://{hosts}/mymaster", registry, REDIS_SOCKET_TIMEOUT=2)
    try:
        redis_ext = failover_app(app, client_module)
        old = sentinel_set.master_address()
        writes = write_through(app, lambda: sentinel_set.failover(settle=False))
        check_writes("a lying sentinel", redis_ext, sentinel_set, writes, old, samples)
        with stray.client() as client:
            assert client.dbsize() == 0
    finally:
        close_clients(app)
        liar.stop()
        stray.stop()


def check_writes(
    how: str,
    redis_ext: Redis,
    sentinel_set: SentinelSet,
    writes: Writes,
    old: Address,
    samples: Samples,
) -> None:
    """Check what ``writes`` saw of a failover away from ``old``, restore the set, and
    print the figures."""
    new = sentinel_set.master_address()
    assert new != old
    # Each failed request got a Redis error, and its SET is counted as one.
    assert sum(samples.matching(ERRORS).values()) == len(writes.failed)
    assert writes.errors <= {"ConnectionError", "MasterNotFoundError", "TimeoutError"}
    with sentinel_set.server_at(new).client(decode_responses=True) as master:
        keys = list(writes.acknowledged)
        stored = dict(zip(keys, master.mget(keys)))
    sentinel_set.restore()
    assert redis_ext.connection.connection_pool.get_master_address() == new
    # Never a wrong answer: a write is stored with its value, or lost in the failover.
    assert all(stored[key] in (value, None) for key, (value, _) in writes.acknowledged.items())
    # Lost: only writes the old master acknowledged after the failover began and before
    # the sentinels announced the new master, whom the client then follows at once.
    lost = [when for key, (_, when) in writes.acknowledged.items() if stored[key] is None]
    outside = [round(when - writes.announced, 3) for when in lost
               if not writes.started <= when < writes.announced + 0.5]  # fmt: skip
    assert outside == [], (
        f"{len(outside)} of {len(lost)} lost writes were acknowledged outside the failover,"
        f" at these seconds after its announcement"
    )
    after = [key for key, (_, when) in writes.acknowledged.items()
             if when >= writes.announced + 0.5]  # fmt: skip
    assert len(after) >= 20
    window = f"{lost[-1] - lost[0]:.2f} s" if lost else "none"
    print(
        f"\n{how}: {len(writes.failed)} failed writes over {writes.error_seconds:.2f} s"
        f" ({', '.join(sorted(writes.errors)) or 'no error'}); {len(writes.acknowledged)}"
        f" acknowledged, {len(lost)} lost, written over {window} before the announcement"
    )
