"""The suite's own real servers: a Sentinel set and a Redis Cluster that really work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.sentinel import Sentinel

from .conftest import Closing
from .servers import ClusterNodes, ClusterServer, SentinelSet, key_in_slot

pytestmark = pytest.mark.one_library

RESERVED_PORTS = {6379, 26379}


@contextmanager
def redirected(kind: str) -> Iterator[None]:
    """Expect a plain client to be redirected: ``MOVED`` or ``ASK``. redis-py 5.0 raises
    a ResponseError with that word, later releases MovedError or AskError without it."""
    with pytest.raises(redis.ResponseError) as raised:
        yield
    error = raised.value
    assert type(error).__name__ == f"{kind.title()}Error" or str(error).startswith(f"{kind} ")


def test_sentinel_set_master_writes_are_readable_on_the_replica(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis
) -> None:
    sentinel_master.set("greeting", "hello")
    assert sentinel_master.wait(1, 5000) == 1
    with sentinel_set.replica.client() as replica:
        assert replica.get("greeting") == b"hello"
        with pytest.raises(redis.ReadOnlyError):
            replica.set("greeting", "bye")


def test_sentinels_agree_on_the_master_and_know_each_other(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis
) -> None:
    address = sentinel_set.master_address()
    assert sentinel_set.master_addresses() == [address] * 3
    assert sentinel_set.master.address == address
    assert sentinel_master.connection_pool.connection_kwargs["port"] == address[1]
    for sentinel in sentinel_set.sentinel_servers:
        state = sentinel.master_state()
        assert (state["num-other-sentinels"], state["num-slaves"]) == ("2", "1")
        assert [(r["ip"], int(r["port"])) for r in sentinel.replica_states()] == [
            sentinel_set.replica.address
        ]
    ports = [port for _, port in sentinel_set.sentinels]
    assert sentinel_set.url == (
        "redis+sentinel://" + ",".join(f"127.0.0.1:{port}" for port in ports) + "/mymaster"
    )
    all_ports = {*ports, *(node.port for node in sentinel_set.nodes)}
    assert len(all_ports) == 5 and not all_ports & RESERVED_PORTS


def test_redis_py_sentinel_client_reaches_the_master(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis, closing: Closing
) -> None:
    service = sentinel_set.service
    sentinel = closing(Sentinel(sentinel_set.sentinels, socket_timeout=2))  # type: ignore[no-untyped-call]
    master = closing(sentinel.master_for(service, socket_timeout=2))  # type: ignore[no-untyped-call]
    found = sentinel.discover_master(service)  # type: ignore[no-untyped-call]
    replicas = sentinel.discover_slaves(service)  # type: ignore[no-untyped-call]
    assert found == sentinel_set.master_address()
    assert replicas == [sentinel_set.replica.address]
    master.set("via", "sentinel")
    assert sentinel_master.get("via") == b"sentinel"


def test_failover_moves_the_master_and_a_second_one_moves_it_back(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis
) -> None:
    sentinel_master.set("written", "before")
    assert sentinel_master.wait(1, 5000) == 1
    old = sentinel_set.master_address()

    new = sentinel_set.failover()

    assert new != old
    assert sentinel_set.master_addresses() == [new] * 3
    assert sentinel_set.server_at(new).replication()["role"] == "master"
    assert sentinel_set.server_at(old).replicates(sentinel_set.server_at(new))
    with sentinel_set.server_at(new).client() as client:
        assert client.get("written") == b"before"
        client.set("written", "between")
        assert client.wait(1, 5000) == 1

    assert sentinel_set.failover() == old

    assert sentinel_set.master_addresses() == [old] * 3
    assert sentinel_set.server_at(new).replicates(sentinel_set.server_at(old))
    with sentinel_set.server_at(old).client() as client:
        assert client.get("written") == b"between"


def test_killed_master_fails_over_by_itself_and_restore_brings_it_back(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis
) -> None:
    sentinel_master.set("survives", "the crash")
    assert sentinel_master.wait(1, 5000) == 1
    old = sentinel_set.master_address()
    killed = sentinel_set.server_at(old)

    new = sentinel_set.kill_master()

    assert new != old
    assert not killed.running
    promoted = sentinel_set.server_at(new)
    assert promoted.replication()["role"] == "master"
    with promoted.client() as client:
        assert client.get("survives") == b"the crash"

    assert sentinel_set.restore() == new

    assert killed.running and killed.address == old
    assert killed.replicates(promoted)
    with killed.client() as client:
        assert client.get("survives") == b"the crash"


def test_cluster_serves_every_slot_and_every_node_agrees(
    redis_cluster_nodes: ClusterNodes,
) -> None:
    cluster = redis_cluster_nodes
    slots, replicas = cluster.topology()
    assert sorted(slots) == sorted(master.port for master in cluster.masters)
    assert sum(len(owned) for owned in slots.values()) == REDIS_CLUSTER_HASH_SLOTS
    assert set().union(*slots.values()) == set(range(REDIS_CLUSTER_HASH_SLOTS))
    assert sorted(replicas) == sorted(replica.port for replica in cluster.replicas)
    assert sorted(replicas.values()) == sorted(master.port for master in cluster.masters)
    for node in cluster.nodes:
        info = node.cluster_info()
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_assigned"] == str(REDIS_CLUSTER_HASH_SLOTS)
        assert (info["cluster_known_nodes"], info["cluster_size"]) == ("6", "3")
    ports = [port for _, port in cluster.startup_nodes]
    assert cluster.url == "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)
    assert not {node.port for node in cluster.nodes} & RESERVED_PORTS


@pytest.mark.parametrize("slot", [0, 1, 5460, 5461, 12182, 16383])
def test_key_in_slot_names_keys_of_that_slot(slot: int) -> None:
    assert key_slot(key_in_slot(slot).encode()) == slot
    assert key_slot(key_in_slot(slot, "other").encode()) == slot
    assert key_in_slot(slot) != key_in_slot(slot, "other")


def test_cluster_client_keys_land_on_the_master_owning_their_slot(
    redis_cluster_nodes: ClusterNodes, cluster_client: RedisCluster
) -> None:
    keys = [f"key-{number}" for number in range(30)]
    for key in keys:
        cluster_client.set(key, key)
    owners = {key: redis_cluster_nodes.node_for_slot(key_slot(key.encode())) for key in keys}
    masters = redis_cluster_nodes.masters
    assert {owner.port for owner in owners.values()} == {master.port for master in masters}
    for key, owner in owners.items():
        with owner.client() as client:
            assert client.get(key) == key.encode()
        other = next(master for master in masters if master is not owner)
        with other.client() as client, redirected("MOVED"):
            client.get(key)
    same_slot = [key_in_slot(99, name) for name in ("a", "b")]
    cluster_client.mset(dict.fromkeys(same_slot, "v"))
    assert cluster_client.mget(same_slot) == [b"v", b"v"]
    sizes = []
    for master in redis_cluster_nodes.masters:
        with master.client() as client:
            sizes.append(client.dbsize())
    assert sum(sizes) == len(keys) + 2


class MovingSlot(NamedTuple):
    """A slot holding :attr:`keys`, its master and another master to move it to."""

    slot: int
    source: ClusterServer
    target: ClusterServer
    keys: list[str]


@pytest.fixture()
def moving_slot(
    redis_cluster_nodes: ClusterNodes, cluster_client: RedisCluster
) -> Iterator[MovingSlot]:
    """A slot with three keys, and another master to move it to; it goes home afterwards."""
    slot = 1000
    home = redis_cluster_nodes.node_for_slot(slot)
    target = next(m for m in redis_cluster_nodes.masters if m is not home)
    keys = [key_in_slot(slot, name) for name in ("a", "b", "c")]
    for key in keys:
        cluster_client.set(key, key)
    yield MovingSlot(slot, home, target, keys)
    redis_cluster_nodes.settle()
    if redis_cluster_nodes.node_for_slot(slot) is not home:
        redis_cluster_nodes.migrate_slot(slot, home)


def test_migrate_slot_moves_the_slot_and_its_keys(
    redis_cluster_nodes: ClusterNodes,
    cluster_client: RedisCluster,
    moving_slot: MovingSlot,
) -> None:
    slot, source, target, keys = moving_slot

    redis_cluster_nodes.migrate_slot(slot, target)

    assert redis_cluster_nodes.node_for_slot(slot) is target
    assert slot in redis_cluster_nodes.topology().slots[target.port]
    with target.client() as client:
        assert client.mget(keys) == [key.encode() for key in keys]
    with source.client() as client, redirected("MOVED"):
        client.get(keys[0])
    assert cluster_client.mget(keys) == [key.encode() for key in keys]


def test_client_is_asked_to_the_target_during_a_migration(
    redis_cluster_nodes: ClusterNodes,
    cluster_client: RedisCluster,
    moving_slot: MovingSlot,
) -> None:
    slot, source, target, keys = moving_slot

    redis_cluster_nodes.begin_migration(slot, target)
    (moved,) = redis_cluster_nodes.move_keys(slot, target, count=1)
    staying = next(key for key in keys if key != moved)

    assert redis_cluster_nodes.node_for_slot(slot) is source
    with source.client() as client:
        with redirected("ASK"):
            client.get(moved)
        assert client.get(staying) == staying.encode()
    assert cluster_client.get(moved) == moved.encode()
    assert cluster_client.get(staying) == staying.encode()

    redis_cluster_nodes.finish_migration(slot, target)

    for node in redis_cluster_nodes.nodes:
        owner = next(view for view in node.cluster_nodes() if slot in view.slots)
        assert owner.port == target.port
    with target.client() as client:
        assert client.mget(keys) == [key.encode() for key in keys]
    assert cluster_client.mget(keys) == [key.encode() for key in keys]
