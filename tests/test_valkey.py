"""valkey-py as the client: ``PREFIX_CLASS = "valkey.Valkey"`` or a ``valkey://`` URL, with the
same keys, checks, metrics, recording, redaction, Server-Timing and slow log as redis-py,
on one server, Sentinel and a Cluster. The tests that use a server run against each kind
of server picked (valkey-py talks to Redis as well as to Valkey)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

pytest.importorskip("valkey", reason="valkey-py is not installed: pip install valkey")
pytest.importorskip("prometheus_client")

import valkey
import valkey.backoff
import valkey.cluster
import valkey.exceptions
import valkey.retry
import valkey.sentinel
from prometheus_client import CollectorRegistry

from flask_redis import Redis, UnreadKeyWarning
from flask_redis import _failover as failover
from flask_redis import _libraries as libraries
from flask_redis._checks import _CHECKS
from flask_redis._config import read_config
from flask_redis._keys import arguments, client_arguments
from flask_redis._libraries import library_of
from flask_redis._topology import CLUSTER, SENTINEL, SERVER

from .conftest import SECRET, close_clients, observed_app
from .recorded import recorded, run
from .samples import Samples
from .servers import ClusterNodes, RedisServer, SentinelSet, key_in_slot
from .waiting import wait_for

pytestmark = pytest.mark.one_library

HERE = Path(__file__).name


def url_of(server: RedisServer, scheme: str = "valkey") -> str:
    return f"{scheme}://127.0.0.1:{server.port}"


# -- Which class: PREFIX_CLASS, else the URL's scheme -----------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"REDIS_URL": "valkey://h:1/2"}, valkey.Valkey),
        ({"REDIS_URL": "VALKEYS://h"}, valkey.Valkey),
        ({"REDIS_URL": "valkey+sentinel://h:1/service"}, valkey.Valkey),
        ({"REDIS_URL": "valkeys+cluster://h:1"}, valkey.cluster.ValkeyCluster),
        ({"REDIS_CLASS": "valkey.Valkey"}, valkey.Valkey),
        ({"REDIS_CLASS": valkey.Valkey, "REDIS_URL": "redis://h"}, valkey.Valkey),
        ({"REDIS_CLASS": "valkey.ValkeyCluster", "REDIS_CLUSTER": "h:1"},
         valkey.cluster.ValkeyCluster),
        ({"REDIS_CLASS": "valkey.Valkey", "REDIS_SENTINELS": "h:1",
          "REDIS_SENTINEL_MASTER": "s"}, valkey.Valkey),
        # PREFIX_CLASS says otherwise: the scheme is only redis:// under another name.
        ({"REDIS_CLASS": "redis.Redis", "REDIS_URL": "valkey://h"}, redis.Redis),
        ({"REDIS_URL": "redis://h"}, redis.Redis),
    ],
)  # fmt: skip
def test_the_class_is_prefix_class_else_the_one_the_scheme_picks(
    config: dict[str, Any], expected: type[Any]
) -> None:
    read = read_config(config)
    assert read.client_class is expected
    assert read.library is library_of(expected)


@pytest.mark.parametrize(
    ("url", "kwargs", "mode"),
    [
        ("valkey://:pw@h:1/2", {"host": "h", "port": 1, "db": 2, "password": "pw"}, SERVER),
        ("valkeys://h", {"host": "h", "ssl": True}, SERVER),
        ("valkey+sentinel://h:1,g:2/s/3", {"db": 3}, SENTINEL),
        ("valkeys+sentinel://h/s", {"ssl": True}, SENTINEL),
        ("valkey+cluster://h:1", {}, CLUSTER),
        ("valkeys+cluster://h:1", {"ssl": True}, CLUSTER),
    ],
)
def test_valkey_urls_read_as_their_redis_forms(url: str, kwargs: dict[str, Any], mode: str) -> None:
    read = read_config({"REDIS_URL": url})
    assert (read.mode, read.kwargs) == (mode, kwargs)
    twin = read_config({"REDIS_URL": "redis" + url[len("valkey") :]})
    assert (twin.mode, twin.kwargs, twin.addresses, twin.service) == (
        read.mode, read.kwargs, read.addresses, read.service
    )  # fmt: skip


def valkey_arguments() -> list[str]:
    """Every argument of valkey-py's clients that some topology takes as a key."""
    names = [*arguments(SERVER, valkey.Valkey), *arguments(SENTINEL, valkey.Valkey),
             *arguments(CLUSTER, valkey.cluster.ValkeyCluster)]  # fmt: skip
    return list(dict.fromkeys(names))


def test_every_argument_of_valkey_py_is_a_key_and_has_a_check() -> None:
    names = client_arguments(valkey.Valkey)
    assert {"valkey_connect_func", "cache_enabled", "cache_max_size", "host"} <= set(names)
    assert "redis_connect_func" not in names
    for name in valkey_arguments():
        assert name in _CHECKS, f"{name}: no check in flask_redis._checks._CHECKS"


def test_valkey_only_keys_are_read_and_converted_from_text() -> None:
    def connect(connection: Any) -> None:
        connection.on_connect()

    read = read_config({
        "REDIS_CLASS": "valkey.Valkey", "REDIS_VALKEY_CONNECT_FUNC": connect,
        "REDIS_CACHE_ENABLED": "yes", "REDIS_PROTOCOL": "3", "REDIS_CACHE_MAX_SIZE": "50",
        "REDIS_CACHE_POLICY": "lfu",
    })  # fmt: skip
    assert read.kwargs == {
        "valkey_connect_func": connect, "protocol": 3, "cache_enabled": True,
        "cache_max_size": 50, "cache_policy": "lfu",
    }  # fmt: skip


def test_a_key_of_redis_py_only_is_unread_with_a_valkey_client() -> None:
    with pytest.warns(UnreadKeyWarning, match="REDIS_REDIS_CONNECT_FUNC is set, but"):
        read_config({"REDIS_URL": "valkey://h", "REDIS_REDIS_CONNECT_FUNC": print})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("REDIS_RETRY", redis.retry.Retry(redis.backoff.NoBackoff(), 1),  # type: ignore[no-untyped-call]
         "REDIS_RETRY must be an instance of valkey.retry.Retry, got a value of type Retry"),
        ("REDIS_CONNECTION_POOL", redis.ConnectionPool(),
         "REDIS_CONNECTION_POOL must be an instance of valkey.connection.ConnectionPool"),
        ("REDIS_CACHE_POLICY", "fifo", "REDIS_CACHE_POLICY must be 'lru', 'lfu' or 'random'"),
        ("REDIS_CACHE_ENABLED", True, "REDIS_CACHE_ENABLED needs REDIS_PROTOCOL = 3"),
        ("REDIS_CACHE_DENY_LIST", "GET", "REDIS_CACHE_DENY_LIST must be a list of command"),
    ],
)  # fmt: skip
def test_values_are_checked_against_valkey_py_s_classes(key: str, value: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        read_config({"REDIS_CLASS": "valkey.Valkey", key: value})


def test_valkey_py_s_own_classes_are_accepted() -> None:
    retry = valkey.retry.Retry(valkey.backoff.NoBackoff(), 1)
    pool = valkey.ConnectionPool(host="127.0.0.1", port=1)
    read = read_config({"REDIS_URL": "valkey://h", "REDIS_RETRY": retry})
    assert read.kwargs["retry"] is retry
    read = read_config({"REDIS_CLASS": "valkey.Valkey", "REDIS_CONNECTION_POOL": pool})
    assert read.kwargs["connection_pool"] is pool
    with pytest.raises(TypeError, match="REDIS_RETRY must be an instance of redis.retry"):
        read_config({"REDIS_URL": "redis://h", "REDIS_RETRY": retry})


def test_classes_of_the_wrong_topology_name_valkey_py_s_classes() -> None:
    with pytest.raises(TypeError, match="REDIS_CLASS must be valkey.cluster.ValkeyCluster or a"
                                        " subclass of it with REDIS_CLUSTER, got"
                                        " valkey.client.Valkey"):  # fmt: skip
        read_config({"REDIS_CLASS": "valkey.Valkey", "REDIS_CLUSTER": "h:1"})
    with pytest.raises(TypeError, match="REDIS_CLASS must be valkey.Valkey or a subclass of it"
                                        " with REDIS_SENTINELS"):  # fmt: skip
        read_config({"REDIS_CLASS": "valkey.ValkeyCluster", "REDIS_SENTINELS": "h:1",
                     "REDIS_SENTINEL_MASTER": "s"})  # fmt: skip
    with pytest.raises(ValueError, match="REDIS_SENTINEL_KWARGS has 'valkey_connect_f', which"
                                         " is not an argument of valkey.Valkey"):  # fmt: skip
        read_config({"REDIS_URL": "valkey+sentinel://h/s",
                     "REDIS_SENTINEL_KWARGS": {"valkey_connect_f": print}})  # fmt: skip


@pytest.mark.parametrize(
    "url",
    [f"valkey://Us3rMark:{SECRET}@H0stMark:port/0", f"valkeys://:{SECRET}@H0stMark/Pa7hMark",
     f"valkey+sentinel://:{SECRET}@H0stMark:1", f"valkey+cluster://:{SECRET}@H0stMark:1/2",
     f"valkey://:{SECRET}@H0stMark,g", f"valkey://:{SECRET}@H0stMark/0?Qu3ryMark=blue",
     f"valkeys://:{SECRET}@H0stMark/0?socket_timeout=Qu3ryMark"],
)  # fmt: skip
def test_url_errors_show_no_part_of_a_valkey_url(url: str) -> None:
    with pytest.raises((ValueError, TypeError)) as raised:
        read_config({"REDIS_URL": url})
    text = str(raised.value)
    assert text.startswith("REDIS_URL ")
    for part in (SECRET, "Us3rMark", "H0stMark", "Pa7hMark", "Qu3ryMark"):
        assert part not in text


@pytest.fixture()
def no_valkey(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """valkey-py as if it were not installed."""
    for name in [name for name in sys.modules if name == "valkey" or name.startswith("valkey.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "valkey", None)  # import valkey raises ImportError
    libraries.client_library.cache_clear()
    yield
    libraries.client_library.cache_clear()


@pytest.mark.parametrize(
    ("config", "key"),
    [({"REDIS_URL": f"valkey://:{SECRET}@H0stMark"}, "REDIS_URL"),
     ({"CACHE_URL": f"valkeys+cluster://:{SECRET}@H0stMark:1"}, "CACHE_URL"),
     ({"CACHE_URL": f"VALKEY+Us3rMark://:{SECRET}@H0stMark:1"}, "CACHE_URL")],
)  # fmt: skip
def test_without_valkey_py_a_valkey_url_is_an_error_naming_the_key(
    no_valkey: None, config: dict[str, Any], key: str
) -> None:
    with pytest.raises(ValueError) as raised:
        read_config(config, key.split("_")[0])
    text = str(raised.value)
    assert text.startswith(f"{key} has a valkey scheme, which asks for valkey-py, but it is"
                           " not installed: pip install valkey")  # fmt: skip
    for part in (SECRET, "H0stMark", "Us3rMark", "us3rmark", "//"):
        assert part not in text
    # redis-py prefixes are not affected
    assert read_config({"REDIS_URL": "redis://h"}).client_class is redis.Redis


def test_without_valkey_py_a_valkey_class_path_names_the_key(no_valkey: None) -> None:
    with pytest.raises(ValueError, match="REDIS_CLASS .*'valkey.Valkey' does not import:"
                                         " ModuleNotFoundError: pip install valkey$"):  # fmt: skip
        read_config({"REDIS_CLASS": "valkey.Valkey"})


def test_reading_a_redis_prefix_does_not_import_valkey_py() -> None:
    code = (
        "import sys; from flask_redis._config import read_config;"
        " read_config({'REDIS_URL': 'redis://h', 'REDIS_CLASS': 'redis.Redis'});"
        " assert 'valkey' not in sys.modules, 'valkey imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- On a server -------------------------------------------------------------------------------


@pytest.fixture()
def app(
    redis_server: RedisServer, registry: CollectorRegistry, plain: redis.Redis
) -> Iterator[Flask]:
    """An app whose ``REDIS`` prefix is valkey-py's client of :func:`redis_server`, with
    metrics, recording, Server-Timing and the slow log."""
    app = observed_app(
        url_of(redis_server), registry, REDIS_SERVER_TIMING=True, REDIS_SLOW_LOG_THRESHOLD=0,
        REDIS_METRICS_PATH="/metrics",
    )  # fmt: skip
    yield app
    close_clients(app)


@pytest.fixture()
def ext(app: Flask) -> Redis:
    return Redis(app)


def test_the_client_is_an_instrumented_valkey_client(ext: Redis) -> None:
    client = ext.connection
    assert isinstance(client, valkey.Valkey) and not isinstance(client, redis.Redis)
    assert type(client) is not valkey.Valkey  # the timing subclass
    assert type(client).__name__ == "Valkey"
    assert ext.set("k", "v") is True and ext.get("k") == "v"


def test_off_means_free_with_valkey_py_too(redis_server: RedisServer) -> None:
    app = Flask(__name__)
    app.config.update(REDIS_URL=url_of(redis_server), REDIS_METRICS=False)
    ext = Redis(app)
    assert type(ext.connection) is valkey.Valkey
    assert ext.ping() is True
    close_clients(app)


def test_commands_are_counted_timed_and_recorded(app: Flask, ext: Redis, samples: Samples) -> None:
    def work() -> None:
        ext.set("k", "v")
        ext.get("k")
        ext.get("missing")

    calls, response = run(app, work)
    assert [(call.command, call.args) for call in calls] == [
        ("SET", ("k", "v")), ("GET", ("k",)), ("GET", ("missing",))
    ]  # fmt: skip
    assert [call.location.split(":")[0] for call in calls if call.location] == [HERE] * 3
    assert [samples.commands(name) for name in ("SET", "GET")] == [1, 2]
    assert samples.round_trips("GET") == 2
    assert samples.request_commands("work") == (3, 1)
    assert response.headers["Server-Timing"].startswith("redis-redis;dur=")
    assert response.headers["Server-Timing"].endswith('desc="3 calls"')


def test_errors_are_counted_by_class_and_reach_the_caller(
    app: Flask, ext: Redis, samples: Samples
) -> None:
    ext.set("s", "x")
    caught: list[BaseException] = []

    def work() -> None:
        try:
            ext.lpush("s", "y")
        except valkey.exceptions.ResponseError as error:
            caught.append(error)

    calls = recorded(app, work)
    assert len(caught) == 1 and type(caught[0]) is valkey.exceptions.ResponseError
    assert samples.errors("LPUSH", "ResponseError") == 1
    assert calls[0].error is not None and calls[0].error.startswith("ResponseError: WRONGTYPE")


def test_a_pipeline_and_a_transaction_are_one_round_trip_each(
    app: Flask, ext: Redis, samples: Samples
) -> None:
    def work() -> None:
        with ext.pipeline(transaction=False) as pipe:
            assert pipe.set("a", 1).incr("a").execute() == [True, 2]
        with ext.pipeline() as pipe:
            assert pipe.incr("a").get("a").execute() == [3, "3"]

    calls = recorded(app, work)
    assert samples.round_trips("PIPELINE") == 1 and samples.round_trips("MULTI") == 1
    assert [samples.commands(name) for name in ("SET", "INCRBY", "GET")] == [1, 2, 1]
    assert [(call.command, call.pipeline, call.transaction) for call in calls] == [
        ("SET", 1, False), ("INCRBY", 1, False), ("INCRBY", 2, True), ("GET", 2, True)
    ]  # fmt: skip


def test_a_watched_transaction_times_watch_and_its_reads(
    app: Flask, ext: Redis, samples: Samples
) -> None:
    def increment(pipe: Any) -> None:
        value = int(pipe.get("counter") or 0)
        pipe.multi()
        pipe.set("counter", value + 1)

    recorded(app, lambda: ext.transaction(increment, "counter"))
    assert (samples.round_trips("WATCH"), samples.round_trips("GET")) == (1, 1)
    assert (samples.commands("SET"), samples.round_trips("MULTI")) == (1, 1)
    assert ext.get("counter") == "1"


def test_secrets_are_redacted_everywhere(
    app: Flask, ext: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    def work() -> None:
        ext.execute_command("ACL SETUSER", "valkey-alice", "on", f">{SECRET}", "~*", "+@all")
        ext.execute_command("ACL DELUSER", "valkey-alice")
        try:
            ext.execute_command("AUTH", "nobody", SECRET)
        except valkey.exceptions.ValkeyError:
            pass

    with caplog.at_level(logging.WARNING, "flask_redis.slow"):
        calls, response = run(app, work)
    assert len(calls) == 3
    assert SECRET not in repr(calls) and SECRET not in caplog.text
    assert SECRET not in str(response.headers)
    assert len([r for r in caplog.records if r.name == "flask_redis.slow"]) == 3


def test_the_metrics_page_shows_the_valkey_client_s_commands(app: Flask, ext: Redis) -> None:
    ext.get("k")
    page = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'flask_redis_commands_total{prefix="redis",command="GET"} 1.0' in page
    assert 'flask_redis_pool_connections{prefix="redis",state="idle"} 1.0' in page


# -- Sentinel and Cluster ------------------------------------------------------------------------


def test_sentinel_with_valkey_py(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis, registry: CollectorRegistry,
    samples: Samples,
) -> None:  # fmt: skip
    url = "valkey+sentinel://" + sentinel_set.url.partition("://")[2]
    app = observed_app(url, registry)
    ext = Redis(app)
    try:
        assert isinstance(ext.connection, valkey.Valkey)
        assert isinstance(ext.connection.connection_pool, valkey.sentinel.SentinelConnectionPool)
        replies: list[Any] = []

        def work() -> None:
            replies.extend([ext.set("where", "sentinel"), ext.get("where")])
            sentinel_master.wait(1, 5000)  # not recorded: a plain client
            replies.append(ext.replica.get("where"))

        calls = recorded(app, work)
        assert replies == [True, "sentinel", "sentinel"]
        master, replica = sentinel_set.master_address(), sentinel_set.replica.address
        assert [call.node for call in calls] == [
            f"{master[0]}:{master[1]}", f"{master[0]}:{master[1]}",
            f"{replica[0]}:{replica[1]} (replica)",
        ]  # fmt: skip
        assert sentinel_master.get("where") == b"sentinel"
        assert samples.commands("SET") == 1 and samples.commands("GET") == 2
        # The failover watch listens to valkey-py's sentinels: the pool follows a failover
        # before any command is sent.
        pool = ext.connection.connection_pool
        [watch] = [each for each in failover._watches if each._pool() is pool]
        new = sentinel_set.failover(settle=False)
        wait_for(lambda: pool.master_address == new, f"the pool to move to {new}", 10)
        sentinel_set.restore()
        assert ext.get("where") == "sentinel"
    finally:
        for each in list(failover._watches):
            if each._pool() is ext.connection.connection_pool:
                each.stop()
        close_clients(app)


def test_cluster_with_valkey_py(
    redis_cluster_nodes: ClusterNodes, registry: CollectorRegistry, samples: Samples,
    cluster_client: Any,
) -> None:  # fmt: skip
    url = "valkey+cluster://" + redis_cluster_nodes.url.partition("://")[2]
    app = observed_app(url, registry, REDIS_METRICS_PATH="/metrics")
    ext = Redis(app)
    key = key_in_slot(9000)
    owner = redis_cluster_nodes.node_for_slot(9000)
    try:
        assert isinstance(ext.connection, valkey.cluster.ValkeyCluster)

        def work() -> None:
            ext.set(key, "cluster")
            ext.get(key)
            with ext.pipeline() as pipe:
                pipe.incr(key_in_slot(1, "n")).incr(key_in_slot(16000, "n")).execute()

        calls = recorded(app, work)
        assert [(call.command, call.node) for call in calls[:2]] == [
            ("SET", f"127.0.0.1:{owner.port}"), ("GET", f"127.0.0.1:{owner.port}")
        ]  # fmt: skip
        assert [call.pipeline for call in calls[2:]] == [1, 1]
        assert samples.round_trips("PIPELINE") == 1 and samples.commands("INCRBY") == 2
        page = app.test_client().get("/metrics").get_data(as_text=True)
        pools = [line for line in page.splitlines()
                 if line.startswith("flask_redis_pool_connections{")]  # fmt: skip
        assert pools and sum(float(line.split()[-1]) for line in pools) >= 3  # a node each
    finally:
        close_clients(app)
        ext.connection.close()


# -- flask redis ping / info -------------------------------------------------------------------


def invoke(app: Flask, *args: str) -> Any:
    from flask_redis._cli import redis_group

    return app.test_cli_runner().invoke(redis_group, list(args))


def test_the_cli_pings_and_describes_a_valkey_py_prefix_without_its_password(
    secured_server: RedisServer, server_kind: str
) -> None:
    app = Flask(__name__)
    app.config.update(
        REDIS_URL=f"valkey://:{SECRET}@127.0.0.1:{secured_server.port}/3", REDIS_METRICS=False
    )
    Redis(app)
    try:
        pinged = invoke(app, "ping", "--json")
        described = invoke(app, "info", "--json")
        wrong = Flask(__name__)
        wrong.config.update(REDIS_URL=f"valkey://:wrong-{SECRET}@127.0.0.1:{secured_server.port}",
                            REDIS_METRICS=False)  # fmt: skip
        Redis(wrong)
        refused = invoke(wrong, "ping")
        close_clients(wrong)
    finally:
        close_clients(app)
    assert pinged.exit_code == 0, pinged.output
    [prefix] = json.loads(pinged.output)["prefixes"]
    assert (prefix["mode"], prefix["db"], prefix["ok"]) == ("standalone", 3, True)
    assert prefix["servers"][0]["pings"] == 3
    [prefix] = json.loads(described.output)["prefixes"]
    assert prefix["client"]["class"] == "valkey.client.Valkey"
    assert prefix["servers"][0]["version"]
    assert refused.exit_code == 1
    assert "AuthenticationError" in refused.output  # valkey-py's, caught and shown
    for output in (pinged.output, described.output, refused.output):
        assert SECRET not in output


def test_the_cli_reaches_sentinel_and_cluster_prefixes_of_valkey_py(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis,
    redis_cluster_nodes: ClusterNodes, cluster_client: Any,
) -> None:  # fmt: skip
    app = Flask(__name__)
    app.config.update(
        REDIS_URL="valkey+sentinel://" + sentinel_set.url.partition("://")[2],
        CACHE_URL="valkey+cluster://" + redis_cluster_nodes.url.partition("://")[2],
        REDIS_METRICS=False, CACHE_METRICS=False, REDIS_SENTINEL_WATCH=False,
    )  # fmt: skip
    Redis(app)
    Redis(app, "CACHE")
    try:
        pinged = invoke(app, "ping", "--json")
        described = invoke(app, "info", "--json")
    finally:
        close_clients(app)
        app.extensions["redis"]["CACHE"].close()
    assert pinged.exit_code == 0, pinged.output
    sentinel, cluster = json.loads(pinged.output)["prefixes"]
    master = sentinel_set.master.address
    assert (sentinel["mode"], sentinel["service"]) == ("sentinel", "mymaster")
    assert [s["address"] for s in sentinel["servers"]] == [f"127.0.0.1:{master[1]}"]
    assert cluster["mode"] == "cluster"
    assert sorted(s["address"] for s in cluster["servers"]) == sorted(
        f"127.0.0.1:{node.port}" for node in redis_cluster_nodes.masters
    )
    assert all(s["ok"] for s in [*sentinel["servers"], *cluster["servers"]])
    sentinel, cluster = json.loads(described.output)["prefixes"]
    assert sentinel["client"]["class"] == "valkey.client.Valkey"
    assert cluster["client"]["class"] == "valkey.cluster.ValkeyCluster"
    # A pool per node the client knows: the primaries at least (valkey-py 6.2 learns no
    # replica from Valkey 9's CLUSTER SLOTS, as redis-py 5.0 learns none from Redis 7's).
    assert len(cluster["client"]["pools"]) >= 3
