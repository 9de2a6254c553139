"""An app is garbage collected once the last reference to it is dropped, whatever its
prefixes observe: with metrics (in a registry of its own or in prometheus-client's),
recording, Sentinel or Cluster, its clients and connection pools go with it, and so does
the thread that watches a Sentinel service for failovers. What its round trips tallied
stays in the metrics: it is the prefix's, not the app's."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from prometheus_client import REGISTRY, CollectorRegistry
from redis.cluster import RedisCluster

from flask_redis import Redis, get_recorded_calls
from flask_redis._libraries import ClientLibrary

from .conftest import close_clients
from .samples import POOL, Samples
from .servers import ClusterNodes, RedisServer, SentinelSet
from .waiting import wait_for

#: Weak references to what must go with a dropped app, by name.
Refs = dict[str, "weakref.ReferenceType[Any]"]


def new_app(prefix: str = "REDIS", **config: Any) -> tuple[Flask, Redis]:
    """An app with ``config`` and its extension of ``prefix``, whose view ``work`` sends
    two GETs."""
    app = Flask(__name__, root_path=str(Path(__file__).parent))
    app.config.update(TESTING=True, **config)
    ext = Redis(app, prefix)

    @app.route("/work")
    def work() -> str:
        ext.get("a")
        ext.get("b")
        return ""

    return app, ext


def used(app: Flask, ext: Redis) -> None:
    """Send round trips through ``ext``: two GETs in a request of endpoint ``work``, a PING
    in a request context pushed by hand, a SET outside any request."""
    assert app.test_client().get("/work").status_code == 200
    with app.test_request_context():
        ext.ping()
    ext.set("c", "1")


def refs_of(app: Flask, ext: Redis, library: ClientLibrary) -> Refs:
    """Weak references to ``app``, its client of ``ext``'s prefix and the client's pools
    (those of a cluster client's nodes found under ``library``'s attribute)."""
    client = ext.connection
    refs: Refs = {"app": weakref.ref(app), "client": weakref.ref(client)}
    if hasattr(client, "get_nodes"):  # a cluster client: a pool per node
        for node in client.get_nodes():
            node_client = getattr(node, library.node_client_attribute)
            if node_client is not None:
                pool = node_client.connection_pool
                refs[f"pool of {node.name}"] = weakref.ref(pool)
    else:
        refs["pool"] = weakref.ref(client.connection_pool)
    replicas = app.extensions.get("redis_replicas", {})
    if ext.config_prefix in replicas:
        refs["replica pool"] = weakref.ref(replicas[ext.config_prefix].connection_pool)
    return refs


def alive(refs: Refs) -> list[str]:
    """What of ``refs`` a full garbage collection leaves alive."""
    gc.collect()
    return [name for name, ref in refs.items() if ref() is not None]


def dropped(app: Flask, ext: Redis, library: ClientLibrary) -> Refs:
    """:func:`refs_of` ``app``, once its clients' connections are closed: what a test keeps
    of an app it lets go of."""
    refs = refs_of(app, ext, library)
    close_clients(app)
    return refs


def test_an_app_with_metrics_in_its_own_registry_is_collected_and_its_tallies_stay(
    redis_server: RedisServer,
    plain: redis.Redis,
    registry: CollectorRegistry,
    library: ClientLibrary,
) -> None:
    samples = Samples(registry)
    config: dict[str, Any] = {"REDIS_PORT": redis_server.port, "REDIS_METRICS_REGISTRY": registry}
    kept, kept_ext = new_app(**config)  # another app of the prefix, in the same registry
    kept_ext.ping()

    def drop() -> Refs:
        app, ext = new_app(**config)
        used(app, ext)
        assert samples(POOL, prefix="redis", state="idle") == 2  # one connection each
        used(app, ext)  # tallied after the collection: still pending when the app goes
        return dropped(app, ext, library)

    refs = drop()
    assert alive(refs) == []
    assert samples.commands("GET") == 4
    assert samples.commands("PING") == 3  # the kept app's one included
    assert samples.commands("SET") == 2
    assert samples.request_commands("work") == (4, 2)
    assert samples.request_commands("none") == (2, 2)  # the contexts pushed by hand
    # The pools of the dropped app are no longer counted; those of the kept app are.
    assert samples(POOL, prefix="redis", state="idle") == 1
    close_clients(kept)


def test_an_app_with_metrics_in_the_default_registry_is_collected_and_its_tallies_stay(
    redis_server: RedisServer, plain: redis.Redis, library: ClientLibrary
) -> None:
    # A prefix of this test's own: the default registry is the whole process's.
    samples = Samples(REGISTRY)
    before = {
        "GET": samples.commands("GET", "lifetime") or 0,
        "work": samples.request_commands("work", "lifetime")[1] or 0,
    }

    def drop() -> Refs:
        app, ext = new_app("LIFETIME", LIFETIME_PORT=redis_server.port)
        used(app, ext)
        assert samples(POOL, prefix="lifetime", state="idle") == 1
        used(app, ext)
        return dropped(app, ext, library)

    refs = drop()
    assert alive(refs) == []
    assert samples.commands("GET", "lifetime") == before["GET"] + 4
    assert samples.request_commands("work", "lifetime")[1] == before["work"] + 2
    assert samples(POOL, prefix="lifetime", state="idle") == 0


def test_an_app_that_records_calls_is_collected_and_its_tallies_stay(
    redis_server: RedisServer,
    plain: redis.Redis,
    registry: CollectorRegistry,
    library: ClientLibrary,
) -> None:
    samples = Samples(registry)
    seen: list[str] = []

    def drop() -> Refs:
        app, ext = new_app(
            REDIS_PORT=redis_server.port,
            REDIS_METRICS_REGISTRY=registry,
            REDIS_RECORD_CALLS=True,
            REDIS_SERVER_TIMING=True,
            REDIS_SLOW_LOG_THRESHOLD=60.0,
        )

        @app.route("/panel")
        def panel() -> str:
            ext.get("a")
            seen.extend(call.command for call in get_recorded_calls())
            return ""

        response = app.test_client().get("/panel")
        assert response.status_code == 200
        assert response.headers["Server-Timing"].startswith("redis-redis;")
        used(app, ext)
        return dropped(app, ext, library)

    refs = drop()
    assert alive(refs) == []
    assert seen == ["GET"]
    assert samples.commands("GET") == 3
    assert samples.request_commands("panel") == (1, 1)


def test_an_app_whose_teardown_failed_is_collected_with_recording_on(
    redis_server: RedisServer, plain: redis.Redis, library: ClientLibrary
) -> None:
    # The failing teardown runs before the recording's own, which never runs: the calls
    # of the request stay the current ones of the thread until its next request.
    def drop() -> Refs:
        app, ext = new_app(
            REDIS_PORT=redis_server.port, REDIS_METRICS=False, REDIS_RECORD_CALLS=True
        )

        @app.teardown_request
        def fails(error: BaseException | None) -> None:
            raise RuntimeError("teardown failed")

        with pytest.raises(RuntimeError, match="teardown failed"):
            app.test_client().get("/work")
        return dropped(app, ext, library)

    refs = drop()
    assert alive(refs) == []


def test_an_app_with_a_sentinel_prefix_is_collected_and_its_watch_ends(
    sentinel_set: SentinelSet,
    sentinel_master: redis.Redis,
    registry: CollectorRegistry,
    library: ClientLibrary,
) -> None:
    samples = Samples(registry)
    watches: list[threading.Thread] = []

    def drop() -> Refs:
        before = set(threading.enumerate())
        app, ext = new_app(REDIS_URL=sentinel_set.url, REDIS_METRICS_REGISTRY=registry)
        used(app, ext)  # the watch starts with the first connection to the master
        ext.replica.get("a")
        watches.extend(
            thread
            for thread in threading.enumerate()
            if thread not in before and thread.name.startswith("flask-redis-sentinel-")
        )
        return dropped(app, ext, library)

    refs = drop()
    assert len(watches) == 1 and watches[0].is_alive()
    assert alive(refs) == []
    wait_for(lambda: not watches[0].is_alive(), "the watch to end with its app", 5)
    assert samples.commands("GET") == 3  # the replica's included
    assert samples.commands("SET") == 1
    assert samples.request_commands("work") == (2, 1)


def test_an_app_with_a_cluster_prefix_is_collected_and_its_tallies_stay(
    redis_cluster_nodes: ClusterNodes,
    cluster_client: RedisCluster,
    registry: CollectorRegistry,
    library: ClientLibrary,
) -> None:
    samples = Samples(registry)

    def drop() -> Refs:
        app, ext = new_app(REDIS_URL=redis_cluster_nodes.url, REDIS_METRICS_REGISTRY=registry)
        used(app, ext)
        assert (samples(POOL, prefix="redis", state="idle") or 0) > 0
        ext.set("d", "2")
        refs = dropped(app, ext, library)
        assert any(name.startswith("pool of ") for name in refs)
        return refs

    refs = drop()
    assert alive(refs) == []
    assert samples.commands("GET") == 2
    assert samples.commands("SET") == 2
    assert samples.request_commands("work") == (2, 1)
    assert samples(POOL, prefix="redis", state="idle") == 0
