"""A prefix that uses Redis Cluster, against a real cluster of three masters and three
replicas: the client, its metrics and its recorded calls, also while a slot moves."""

from __future__ import annotations

import importlib.metadata
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import redis
from flask import Flask
from prometheus_client import CollectorRegistry
from redis.cluster import RedisCluster

from flask_redis import Redis, get_recorded_calls
from flask_redis._libraries import ClientLibrary

from .conftest import close_clients, observed_app
from .samples import ERRORS, POOL, POOL_USAGE, Samples, checked_out
from .servers import ClusterNodes, key_in_slot


@pytest.fixture()
def cluster_app(
    redis_cluster_nodes: ClusterNodes, cluster_client: RedisCluster, registry: CollectorRegistry
) -> Iterator[Flask]:
    """An app whose ``REDIS`` prefix is the cluster, every master flushed, with metrics in
    ``registry`` and calls recorded."""
    app = observed_app(redis_cluster_nodes.url, registry)
    yield app
    close_clients(app)


def address(node: Any) -> str:
    return f"127.0.0.1:{node.port}"


def test_cluster_client_is_instrumented_and_counts_each_command_once(
    cluster_app: Flask, redis_cluster_nodes: ClusterNodes, samples: Samples, library: ClientLibrary
) -> None:
    redis_ext = Redis(cluster_app)
    assert isinstance(redis_ext.connection, library.cluster)
    keys = [key_in_slot(slot) for slot in (0, 8000, 16000)]  # one on each master
    seen: dict[str, Any] = {}

    @cluster_app.route("/work")
    def work() -> str:
        for key in keys:
            redis_ext.set(key, key)
        seen["values"] = [redis_ext.get(key) for key in keys]
        pipe = redis_ext.pipeline()
        for number in range(100):
            pipe.set(f"p:{number}", number)  # over every master
        seen["pipeline"] = pipe.execute()
        seen["calls"] = list(get_recorded_calls())
        seen["modes"] = dict(get_recorded_calls().modes)
        return "ok"

    assert cluster_app.test_client().get("/work").status_code == 200
    assert seen["values"] == keys
    assert seen["pipeline"] == [True] * 100
    assert samples.commands("SET") == 103
    assert samples.commands("GET") == 3
    assert samples.round_trips("GET") == 3
    assert samples.round_trips("PIPELINE") == 1
    assert samples.request_commands("work")[0] == 106
    assert samples.errors("GET", "ResponseError") is None

    calls = seen["calls"]
    assert [call.command for call in calls[:6]] == ["SET"] * 3 + ["GET"] * 3
    for call, key in zip(calls[3:6], keys):
        owner = redis_cluster_nodes.node_for_slot(redis.crc.key_slot(key.encode()))
        assert call.node == address(owner)  # the master of the key's slot answered
    pipeline_nodes = set(calls[-1].node.split(", "))
    assert pipeline_nodes == {address(node) for node in redis_cluster_nodes.masters}
    assert seen["modes"] == {"REDIS": "Cluster"}


def test_cluster_transaction_and_watch_are_observed(
    cluster_app: Flask, samples: Samples, library: ClientLibrary
) -> None:
    redis_ext = Redis(cluster_app)
    client = redis_ext.connection
    if not hasattr(client.pipeline(), "_execution_strategy"):
        release = importlib.metadata.version(library.name)
        pytest.skip(f"{library.project} {release} has no cluster transactions")
    key = key_in_slot(42, "balance")
    client.set(key, 10)
    with client.pipeline(transaction=True) as pipe:
        pipe.watch(key)
        balance = int(pipe.get(key))  # sent at once, between WATCH and MULTI
        pipe.multi()
        pipe.set(key, balance - 3)
        pipe.incr(key_in_slot(42, "spent"), 3)
        assert pipe.execute()[1] == 3  # the SET's reply differs between redis-py releases
    assert client.get(key) == "7"
    assert samples.round_trips("MULTI") == 1
    assert samples.commands("WATCH") == 1
    assert samples.commands("GET") == 2
    assert samples.commands("SET") == 2
    assert samples.commands("INCRBY") == 1


def test_cluster_errors_reach_the_caller_and_are_counted(
    cluster_app: Flask, samples: Samples, client_module: ModuleType
) -> None:
    redis_ext = Redis(cluster_app)
    redis_ext.rpush("list", 1)
    with pytest.raises(client_module.ResponseError, match="WRONGTYPE"):
        redis_ext.get("list")
    assert samples.errors("GET", "ResponseError") == 1


def test_keys_reach_every_node_client(cluster_app: Flask, library: ClientLibrary) -> None:
    cluster_app.config.update(REDIS_SOCKET_TIMEOUT="2.5", REDIS_CLIENT_NAME="shop",
                              REDIS_REINITIALIZE_STEPS="3")  # fmt: skip
    client = Redis(cluster_app).connection
    client.ping(target_nodes=library.cluster.ALL_NODES)
    assert client.reinitialize_steps == 3
    for node in client.get_nodes():
        node_client = getattr(node, library.node_client_attribute)
        kwargs = node_client.connection_pool.connection_kwargs
        assert (kwargs["socket_timeout"], kwargs["client_name"]) == (2.5, "shop")
        assert node_client.client_getname() == "shop"


def test_replica_reads_show_the_replica(
    cluster_app: Flask,
    redis_cluster_nodes: ClusterNodes,
    cluster_client: RedisCluster,
    client_library: str,
) -> None:
    if client_library == "redis-py":
        cluster_app.config["REDIS_LOAD_BALANCING_STRATEGY"] = "random_replica"
        if redis.cluster.__dict__.get("LoadBalancingStrategy") is None:
            pytest.skip("redis-py before 5.1 has no load balancing strategy")
        reads = 1
    else:  # valkey-py reads from the primary and its replicas in turn
        cluster_app.config["REDIS_READ_FROM_REPLICAS"] = True
        reads = 2
    redis_ext = Redis(cluster_app)
    key = key_in_slot(0)
    cluster_client.set(key, "v")
    cluster_client.wait(1, 5000, target_nodes=cluster_client.get_node_from_key(key))  # type: ignore[no-untyped-call]
    nodes: list[str] = []

    @cluster_app.route("/read")
    def read() -> str:
        assert redis_ext.get(key) == "v"
        nodes.append(str(get_recorded_calls()[0].node))
        return "ok"

    for _ in range(reads):
        assert cluster_app.test_client().get("/read").status_code == 200
    primary = redis_cluster_nodes.node_for_slot(0)
    replica = next(node for node in redis_cluster_nodes.replicas
                   if node.replicates(primary))  # fmt: skip
    if client_library == "redis-py":
        assert nodes == [f"{address(replica)} (replica)"]
    else:
        assert sorted(nodes) == sorted([address(primary), f"{address(replica)} (replica)"])


def test_pool_gauge_sums_the_pools_of_every_node(
    cluster_app: Flask, samples: Samples, library: ClientLibrary
) -> None:
    redis_ext = Redis(cluster_app)

    @cluster_app.route("/")
    def index() -> str:
        for slot in (0, 8000, 16000):
            redis_ext.get(key_in_slot(slot))
        return "ok"

    cluster_app.test_client().get("/")
    node_clients = [getattr(node, library.node_client_attribute)
                    for node in redis_ext.connection.get_nodes()]  # fmt: skip
    idle = sum(
        len(client.connection_pool._available_connections)
        for client in node_clients if client is not None
    )  # fmt: skip
    assert idle >= 3
    assert samples(POOL, prefix="redis", state="idle") == idle
    assert samples(POOL, prefix="redis", state="in_use") == 0


def test_pool_usage_is_that_of_the_fullest_node(
    cluster_app: Flask, samples: Samples, library: ClientLibrary
) -> None:
    cluster_app.config["REDIS_MAX_CONNECTIONS"] = 4
    redis_ext = Redis(cluster_app)
    for slot in (0, 8000, 16000):  # a connection to each master, back in its pool
        redis_ext.get(key_in_slot(slot))
    node = redis_ext.connection.get_node_from_key(key_in_slot(0))
    pool = getattr(node, library.node_client_attribute).connection_pool
    assert pool.max_connections == 4
    held = [checked_out(pool) for _ in range(3)]
    try:  # 3 of this node's 4, not 3 of the 12 of all masters
        assert samples(POOL_USAGE, prefix="redis") == 0.75
        assert samples(POOL, prefix="redis", state="in_use") == 3
    finally:
        for connection in held:
            pool.release(connection)


def test_moved_slot_is_followed_and_counted_once(
    cluster_app: Flask, redis_cluster_nodes: ClusterNodes, samples: Samples
) -> None:
    redis_ext = Redis(cluster_app)
    slot = 1234
    key = key_in_slot(slot)
    redis_ext.set(key, "before")  # the client now knows the slot's owner
    source = redis_ext.connection.get_node_from_key(key)
    target = next(node for node in redis_cluster_nodes.masters if node.port != source.port)
    redis_cluster_nodes.migrate_slot(slot, target)  # the client is not told
    nodes: list[str] = []

    @cluster_app.route("/read")
    def read() -> str:
        assert redis_ext.get(key) == "before"
        nodes.append(str(get_recorded_calls()[0].node))
        return "ok"

    assert cluster_app.test_client().get("/read").status_code == 200
    assert nodes == [f"{source.name}, {address(target)}"]  # MOVED, then the new owner
    assert samples.commands("GET") == 1
    assert samples.errors("GET", "MovedError") is None


class SlotMover(threading.Thread):
    """Moves a slot's keys to another master a few at a time, then the slot itself."""

    def __init__(self, cluster: ClusterNodes, slot: int, target: Any) -> None:
        super().__init__(daemon=True)
        self.cluster, self.slot, self.target = cluster, slot, target
        self.migrating = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.cluster.begin_migration(self.slot, self.target)
            self.migrating.set()
            while self.cluster.move_keys(self.slot, self.target, count=5):
                threading.Event().wait(0.02)
            self.cluster.finish_migration(self.slot, self.target)
        except BaseException as error:  # pragma: no cover - reported by the test
            self.error = error
            self.migrating.set()


def test_reads_and_writes_while_a_slot_migrates_are_right_and_counted_once(
    cluster_app: Flask, redis_cluster_nodes: ClusterNodes, samples: Samples
) -> None:
    redis_ext = Redis(cluster_app)
    slot = 4321
    keys = [key_in_slot(slot, f"item{number}") for number in range(100)]
    for key in keys:
        redis_ext.set(key, 0)
    source = redis_ext.connection.get_node_from_key(keys[0])
    target = next(node for node in redis_cluster_nodes.masters if node.port != source.port)
    values = dict.fromkeys(keys, 0)
    redirected: list[str] = []

    @cluster_app.route("/bump/<int:number>")
    def bump(number: int) -> dict[str, Any]:
        key = keys[number % len(keys)]
        value = redis_ext.incr(key)
        read = int(redis_ext.get(key))
        for call in get_recorded_calls():
            if call.node and ", " in call.node:
                redirected.append(call.node)
        return {"value": value, "read": read}

    client = cluster_app.test_client()
    mover = SlotMover(redis_cluster_nodes, slot, target)
    for key in keys:  # before the move
        values[key] += 1
        assert client.get(f"/bump/{keys.index(key)}").json == {"value": values[key],
                                                                "read": values[key]}  # fmt: skip
    mover.start()
    mover.migrating.wait(10)
    requests = len(keys)
    number = 0
    started = time.monotonic()
    while mover.is_alive() or number < 2 * len(keys):
        key = keys[number % len(keys)]
        values[key] += 1
        reply = client.get(f"/bump/{number % len(keys)}")
        assert reply.status_code == 200
        assert reply.json == {"value": values[key], "read": values[key]}  # no wrong answer
        number += 1
        requests += 1
        assert number < 5000, "the migration did not end"
    moving = time.monotonic() - started
    mover.join(10)
    assert mover.error is None
    print(
        f"\nslot moved in {moving:.2f} s: {number} requests, {len(redirected)} redirected"
        " commands, 0 failed"
    )
    assert redis_cluster_nodes.node_for_slot(slot).port == target.port
    assert samples.commands("INCRBY") == requests
    assert samples.commands("GET") == requests
    assert samples.matching(ERRORS) == {}  # redirections are followed, not failed
    # A request during the move shows the redirection: the source, then the target.
    assert redirected
    assert all(node.split(", ")[-1] == address(target) for node in redirected)
