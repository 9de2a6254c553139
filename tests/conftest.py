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

    from .recorded import AppFactory  # which imports this module
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


@pytest.fixture()
def quiet_app(app: Flask) -> Iterator[Flask]:
    """:func:`app` without metrics; the connections of its clients are closed afterwards."""
    app.config["REDIS_METRICS"] = False
    yield app
    # Else the app's reference cycles leave each socket to the garbage collector, which
    # may finalize it before its connection closes it: a ResourceWarning, so an error.
    for client in app.extensions.get("redis", {}).values():
        client.close()
        client.connection_pool.disconnect()


@pytest.fixture()
def recording_app(quiet_app: Flask) -> Flask:
    """:func:`quiet_app` recording the calls of ``REDIS``."""
    quiet_app.config["REDIS_RECORD_CALLS"] = True
    return quiet_app


@pytest.fixture()
def restored(plain: redis.Redis) -> Iterator[None]:
    """Undo what the commands of :data:`tests.recorded.SECRET_FORMS` change on the
    session's server."""
    yield
    plain.config_set("masterauth", "")
    plain.acl_deluser("alice")


@pytest.fixture()
def make_app(redis_server: RedisServer, plain: redis.Redis) -> Iterator[AppFactory]:
    """Make toolbar apps on :func:`redis_server` (databases 0 and 1), with extra config.

    Only for the modules that skip themselves without Flask-DebugToolbar.
    """
    from flask_debugtoolbar import DebugToolbarExtension

    from flask_redis import Redis

    from .recorded import ToolbarApp

    apps: list[Flask] = []

    def make(**config: Any) -> ToolbarApp:
        app = Flask(__name__, root_path=str(Path(__file__).parent))
        app.debug = True  # before Redis(app): recording is on when the app debugs
        app.config.update(
            SECRET_KEY="test-secret-key",
            DEBUG_TB_INTERCEPT_REDIRECTS=False,
            REDIS_HOST="127.0.0.1",
            REDIS_PORT=redis_server.port,
            REDIS_DECODE_RESPONSES=True,
            CACHE_HOST="127.0.0.1",
            CACHE_PORT=redis_server.port,
            CACHE_DB=1,
            REDIS_METRICS=False,
            CACHE_METRICS=False,
        )
        app.config.update(config)
        db, cache = Redis(app), Redis(app, "CACHE")
        DebugToolbarExtension(app)
        app.config["DEBUG_TB_PANELS"] += ("flask_redis_panel.RedisPanel",)
        apps.append(app)
        return ToolbarApp(app, db, cache)

    yield make
    for app in apps:
        for client in app.extensions["redis"].values():
            client.close()
            client.connection_pool.disconnect()
