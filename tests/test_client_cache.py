"""The figures of redis-py's client-side cache (``_client_cache``), against a real Redis
7.4 or later: hits, misses, evictions, size, and the note the recorder reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from prometheus_client import CollectorRegistry

from flask_redis import Redis
from flask_redis._client_cache import (
    CacheFigures,
    cache_figures,
    observe_cache,
    served_from_cache,
)
from flask_redis._pools import pool_connections
from flask_redis._sockets import unread_bytes

from .conftest import ServerPool
from .servers import ClientCacheClusterServer, ClientCacheServer, ClusterNodes
from .waiting import wait_for

cache_module = pytest.importorskip(
    "redis.cache", reason="redis-py before 5.1 has no client-side cache"
)
CacheConfig: Any = cache_module.CacheConfig

pytestmark = [pytest.mark.server, pytest.mark.one_kind]


@pytest.fixture()
def cached(cache_server: ClientCacheServer) -> Iterator[Any]:
    """A client of ``cache_server`` that caches its reads, observed and noting."""
    with cache_server.client() as plain:
        plain.flushall()
    client = redis.Redis(port=cache_server.port, protocol=3, cache_config=CacheConfig())
    observe_cache(client, note=True)
    yield client
    client.close()


def figures(client: Any) -> CacheFigures | None:
    return cache_figures([client.connection_pool])


def test_a_second_read_of_a_key_is_a_hit(cached: Any) -> None:
    cached.set("k", "v")
    assert cached.get("k") == b"v"
    assert cached.get("k") == b"v"
    assert figures(cached) == CacheFigures(hits=1, misses=1, evictions=0, invalidations=0, size=1)


def test_a_write_of_another_client_invalidates_and_the_next_read_misses(
    cached: Any, cache_server: ClientCacheServer
) -> None:
    cached.set("k", "v")
    cached.get("k")
    cached.get("k")
    with cache_server.client() as other:
        other.set("k", "w")
    # The invalidation is read before the next command is sent, once it has arrived: until
    # then, a read is served the old value from the cache.
    reads: list[Any] = []
    wait_for(lambda: reads.append(cached.get("k")) or reads[-1] == b"w",
             "the invalidated read to reach the server")  # fmt: skip
    found = figures(cached)
    assert found is not None
    assert (found.hits, found.misses, found.size) == (1 + reads.count(b"v"), 2, 1)
    # The entry went because the server invalidated its key: no room was made.
    assert (found.invalidations, found.evictions) == (1, 0)


def test_a_full_cache_counts_an_eviction(cache_server: ClientCacheServer) -> None:
    client = redis.Redis(port=cache_server.port, protocol=3, cache_config=CacheConfig(max_size=2))
    try:
        observe_cache(client)
        client.mset({"a": 1, "b": 2, "c": 3})
        for key in ("a", "b", "c"):
            client.get(key)
        assert figures(client) == CacheFigures(
            hits=0, misses=3, evictions=1, invalidations=0, size=2
        )
    finally:
        client.close()


def test_served_from_cache_tells_a_hit_from_a_miss_and_is_cleared(cached: Any) -> None:
    cached.set("k", "v")
    cached.get("k")
    assert served_from_cache() is False
    cached.get("k")
    assert served_from_cache() is True
    assert served_from_cache() is False
    cached.get("k")
    cached.set("k", "v")  # a command that is not cached clears the note
    assert served_from_cache() is False


def test_a_client_observed_without_note_notes_nothing(cache_server: ClientCacheServer) -> None:
    client = redis.Redis(port=cache_server.port, protocol=3, cache_config=CacheConfig())
    try:
        observe_cache(client)
        client.set("k", "v")
        client.get("k")
        client.get("k")
        assert served_from_cache() is False
        assert figures(client) == CacheFigures(
            hits=1, misses=1, evictions=0, invalidations=0, size=1
        )
    finally:
        client.close()


def test_connections_made_before_observing_count_and_twice_observed_counts_once(
    cache_server: ClientCacheServer,
) -> None:
    client = redis.Redis(port=cache_server.port, protocol=3, cache_config=CacheConfig())
    try:
        client.set("k", "v")
        client.get("k")  # on a connection made before observing: not counted
        observe_cache(client)
        observe_cache(client, note=True)
        client.get("k")
        assert figures(client) == CacheFigures(
            hits=1, misses=0, evictions=0, invalidations=0, size=1
        )
        assert served_from_cache() is True
    finally:
        client.close()


def test_one_cache_shared_by_two_clients_is_summed_once(cache_server: ClientCacheServer) -> None:
    first = redis.Redis(port=cache_server.port, protocol=3, cache_config=CacheConfig())
    cache = first.connection_pool.cache
    second = redis.Redis(port=cache_server.port, protocol=3, cache=cache)
    try:
        observe_cache(first)
        observe_cache(second)
        first.set("k", "v")
        first.get("k")
        second.get("k")
        pools = [first.connection_pool, second.connection_pool]
        assert cache_figures(pools) == CacheFigures(
            hits=1, misses=1, evictions=0, invalidations=0, size=1
        )
    finally:
        first.close()
        second.close()


def test_a_client_without_cache_has_no_figures_and_keeps_its_classes(
    cache_server: ClientCacheServer,
) -> None:
    client = redis.Redis(port=cache_server.port, protocol=3)
    try:
        client.get("k")
        classes = (type(client.connection_pool), type(client.connection_pool.get_connection()))
        observe_cache(client, note=True)
        assert figures(client) is None
        assert cache_figures([]) is None
        connection = client.connection_pool.get_connection()
        assert (type(client.connection_pool), type(connection)) == classes
        assert classes == (redis.ConnectionPool, redis.Connection)
    finally:
        client.close()


def test_every_read_is_counted_once_as_a_hit_or_a_miss(cache_server: ClientCacheServer) -> None:
    # One thread: with several threads sharing one cached client, redis-py 8.2 itself can
    # hang (a thread spins reading a connection's socket for ever; reproduced with plain
    # redis-py, nothing of this project loaded), so no test can share one.
    client = redis.Redis(port=cache_server.port, protocol=3, cache_config=CacheConfig())
    reads, keys = 300, [f"k{n}" for n in range(7)]
    try:
        observe_cache(client)
        client.mset({key: key for key in keys})
        for n in range(reads):
            assert client.get(keys[n % len(keys)]) == keys[n % len(keys)].encode()
        found = figures(client)
        assert found is not None
        assert (found.hits, found.misses) == (reads - len(keys), len(keys))
        assert found.size == len(keys)
    finally:
        client.close()


def test_the_bytes_of_a_cached_clients_connections_are_read_through_their_proxies(
    cached: Any,
) -> None:
    cached.set("big", b"x" * 10_000)
    assert cached.get("big") == b"x" * 10_000
    (proxy,) = pool_connections(cached.connection_pool)
    sent, received = unread_bytes(proxy)
    assert sent >= 10_000 and received >= 10_000
    # The figures are the wrapped connection's, which reads them again as it closes.
    assert unread_bytes(proxy._conn) == (0, 0)


@pytest.fixture(scope="module")
def cache_cluster(server_pool: ServerPool, cache_server: ClientCacheServer) -> ClusterNodes:
    """A Cluster of three Redis 7.4+ masters (skipped as ``cache_server`` is)."""
    return server_pool.get("client-cache-cluster", "redis", lambda folder: ClusterNodes(
        folder, replicas=0, node_class=ClientCacheClusterServer).start())  # fmt: skip


#: Keys on all three masters of a cluster.
CLUSTER_KEYS = [f"cached-{number}" for number in range(12)]


@pytest.mark.cluster
def test_a_cluster_clients_reads_are_counted_over_all_its_nodes(
    cache_cluster: ClusterNodes,
) -> None:
    host, port = cache_cluster.startup_nodes[0]
    client = redis.RedisCluster(host=host, port=port, protocol=3, cache_config=CacheConfig())
    try:
        observe_cache(client)
        assert len({client.get_node_from_key(key).name for key in CLUSTER_KEYS}) == 3
        for key in CLUSTER_KEYS:
            client.set(key, "v")
            assert client.get(key) == b"v"  # a miss
            assert client.get(key) == b"v"  # a hit
        pools = [node.redis_connection.connection_pool for node in client.get_nodes()]
        found = cache_figures(pools)
        assert found is not None
        keys = len(CLUSTER_KEYS)
        assert (found.hits, found.misses) == (keys, keys)
        # The nodes share one cache, counted once. (redis-py empties it as a connection to
        # another node opens: the first keys' entries may be gone.)
        assert len({id(pool.cache) for pool in pools}) == 1
        assert found.size == pools[0].cache.size > 0
    finally:
        client.close()


@pytest.mark.cluster
def test_a_cluster_prefix_has_the_cache_metrics_of_all_its_nodes(
    cache_cluster: ClusterNodes,
) -> None:
    registry = CollectorRegistry()
    app = Flask(__name__)
    app.config.update(REDIS_URL=cache_cluster.url, REDIS_PROTOCOL=3,
                      REDIS_CACHE_CONFIG=CacheConfig(),
                      REDIS_METRICS_REGISTRY=registry)  # fmt: skip
    client = Redis(app).connection
    try:
        for key in CLUSTER_KEYS:
            client.get(key)  # a miss
            client.get(key)  # a hit

        def requests(result: str) -> float | None:
            labels = {"prefix": "redis", "result": result}
            return registry.get_sample_value("flask_redis_client_cache_requests_total", labels)

        assert (requests("hit"), requests("miss")) == (len(CLUSTER_KEYS), len(CLUSTER_KEYS))
        entries = registry.get_sample_value("flask_redis_client_cache_entries", {"prefix": "redis"})
        assert entries == client.nodes_manager._cache.size > 0  # one cache, counted once
    finally:
        client.close()
