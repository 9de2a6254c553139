from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis
from flask import Flask
from redis.cluster import ClusterNode, RedisCluster

from .servers import ClusterNodes, RedisServer, SentinelSet

if TYPE_CHECKING:  # prometheus-client is needed by the tests of metrics only
    from prometheus_client import CollectorRegistry

    from .samples import Samples

SECRET = "s3cret-Pa55word"


def observed_app(url: str, registry: CollectorRegistry, **config: Any) -> Flask:
    """An app whose ``REDIS`` prefix is ``url``, with metrics in ``registry``, calls
    recorded and replies decoded."""
    app = Flask(__name__, root_path=str(Path(__file__).parent))
    app.config.update(
        TESTING=True,
        REDIS_URL=url,
        REDIS_METRICS_REGISTRY=registry,
        REDIS_RECORD_CALLS=True,
        REDIS_DECODE_RESPONSES=True,
        **config,
    )
    return app


def close_clients(app: Flask) -> None:
    """Close the connections of every client of ``app``'s prefixes (redis-py 5.0 leaves
    those of a Sentinel client open on ``close()``)."""
    for clients in ("redis", "redis_replicas"):
        for client in app.extensions.get(clients, {}).values():
            client.close()
            pool = getattr(client, "connection_pool", None)
            if pool is not None:
                pool.disconnect()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session, on a free loopback port and a unix socket."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def secured_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server that wants the password :data:`SECRET`."""
    server = RedisServer(tmp_path_factory.mktemp("redis-auth"), "--requirepass", SECRET).start()
    yield server
    server.stop()


@pytest.fixture()
def plain(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain redis-py client of :func:`redis_server` (database 0), every database empty."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture()
def app(redis_server: RedisServer, plain: redis.Redis) -> Flask:
    """An app whose ``REDIS_*`` keys point at :func:`redis_server`."""
    app = Flask(__name__, root_path=str(Path(__file__).parent))
    app.config.update(TESTING=True, REDIS_HOST="127.0.0.1", REDIS_PORT=redis_server.port)
    return app


@pytest.fixture()
def new_app() -> Flask:
    """An app with no Redis configuration at all."""
    return Flask(__name__, root_path=str(Path(__file__).parent))


@pytest.fixture(scope="session")
def sentinel_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSet]:
    """A real master, replica and three sentinels (service ``mymaster``) for the session."""
    sentinels = SentinelSet(tmp_path_factory.mktemp("sentinel")).start()
    yield sentinels
    sentinels.stop()


@pytest.fixture()
def sentinel_master(sentinel_set: SentinelSet) -> Iterator[redis.Redis]:
    """A plain client of :func:`sentinel_set`'s current master, every database empty.

    The set is made healthy first (:meth:`SentinelSet.restore`), should a test before
    have left a server down.
    """
    sentinel_set.restore()
    client = sentinel_set.master.client()
    client.flushall()
    client.wait(1, 5000)
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterNodes]:
    """A real Redis Cluster for the session: 3 masters with one replica each."""
    cluster = ClusterNodes(tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture()
def cluster_client(redis_cluster_nodes: ClusterNodes) -> Iterator[RedisCluster]:
    """A redis-py cluster client of :func:`redis_cluster_nodes`, every master flushed.

    Migrations a test before left half done are finished first
    (:meth:`ClusterNodes.settle`).
    """
    redis_cluster_nodes.settle()
    redis_cluster_nodes.flush()
    nodes = [
        ClusterNode(host, port)  # type: ignore[no-untyped-call]
        for host, port in redis_cluster_nodes.startup_nodes
    ]
    client = RedisCluster(startup_nodes=nodes)
    yield client
    client.close()


@pytest.fixture()
def registry() -> CollectorRegistry:
    """A registry of its own for the test's metrics."""
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


@pytest.fixture()
def samples(registry: CollectorRegistry) -> Samples:
    """The exact sample values of :func:`registry`."""
    from .samples import Samples

    return Samples(registry)
