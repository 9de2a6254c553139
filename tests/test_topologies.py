"""One app with a prefix on one server, one on Sentinel and one on a Cluster: each its own
client, metrics and panel rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from prometheus_client import CollectorRegistry
from redis.cluster import RedisCluster

from flask_redis import Redis
from flask_redis._libraries import ClientLibrary

from .conftest import close_clients
from .recorded import read_page
from .servers import ClusterNodes, RedisServer, SentinelSet, key_in_slot

pytest.importorskip("flask_debugtoolbar")

from flask_debugtoolbar import DebugToolbarExtension


@pytest.fixture()
def three_modes(
    redis_server: RedisServer,
    plain: redis.Redis,
    sentinel_set: SentinelSet,
    sentinel_master: redis.Redis,
    redis_cluster_nodes: ClusterNodes,
    cluster_client: RedisCluster,
) -> Iterator[Flask]:
    """A debugging app with the toolbar: ``REDIS`` on one server, ``SESSIONS`` on the
    Sentinel set, ``CACHE`` on the cluster."""
    app = Flask(__name__, root_path=str(Path(__file__).parent))
    app.debug = True
    registry = CollectorRegistry()
    app.config.update(
        SECRET_KEY="test-secret-key",
        DEBUG_TB_INTERCEPT_REDIRECTS=False,
        REDIS_URL=redis_server.url,
        SESSIONS_SENTINELS=sentinel_set.sentinels,
        SESSIONS_SENTINEL_MASTER=sentinel_set.service,
        CACHE_CLUSTER=",".join(
            f"{host}:{port}" for host, port in redis_cluster_nodes.startup_nodes
        ),
        **{f"{prefix}_METRICS_REGISTRY": registry for prefix in ("REDIS", "SESSIONS", "CACHE")},
    )
    app.extensions["test_registry"] = registry
    yield app
    close_clients(app)


def test_prefixes_of_three_modes_on_one_app_each_keep_their_own(
    three_modes: Flask, redis_server: RedisServer, sentinel_set: SentinelSet,
    redis_cluster_nodes: ClusterNodes, library: ClientLibrary,
) -> None:  # fmt: skip
    db, sessions, cache = Redis(three_modes), Redis(), Redis()
    sessions.init_app(three_modes, "SESSIONS")
    cache.init_app(three_modes, "CACHE")
    DebugToolbarExtension(three_modes)
    three_modes.config["DEBUG_TB_PANELS"] += ("flask_redis_panel.RedisPanel",)
    key = key_in_slot(9000)

    @three_modes.route("/")
    def index() -> str:
        db.set("where", "server")
        sessions.set("where", "sentinel")
        cache.set(key, "cluster")
        cache.get(key)
        return "<!doctype html><html><body><p>The page</p></body></html>"

    response = three_modes.test_client().get("/")
    assert response.status_code == 200
    assert redis_server.get("where") == b"server"
    assert sentinel_set.master.get("where") == b"sentinel"
    assert isinstance(three_modes.extensions["redis"]["CACHE"], library.cluster)

    page = read_page(response.text)
    prefixes = {line[0].split()[0]: line[0] for line in page.summary}
    assert prefixes == {
        "REDIS": "REDIS",
        "SESSIONS": "SESSIONS Sentinel, service mymaster",
        "CACHE": "CACHE Cluster",
    }
    master = sentinel_set.master_address()
    owner = redis_cluster_nodes.node_for_slot(9000)
    nodes = [(row.cells[1], row.command) for row in page.rows]
    assert nodes == [
        ("REDIS", "SET"),
        (f"SESSIONS {master[0]}:{master[1]}", "SET"),
        (f"CACHE 127.0.0.1:{owner.port}", "SET"),
        (f"CACHE 127.0.0.1:{owner.port}", "GET hit"),
    ]

    registry: CollectorRegistry = three_modes.extensions["test_registry"]
    for prefix, count in (("redis", 1), ("sessions", 1), ("cache", 2)):
        labels = {"prefix": prefix, "endpoint": "index"}
        assert registry.get_sample_value("flask_redis_request_commands_sum", labels) == count
