"""What the instrumented client costs, against plain redis-py measured in the same run.

1. Client CPU added per command: both clients on an in-memory redis-py connection (no
   socket), in alternating rounds; the minimum of many rounds is the figure.
2. The ratio over loopback, on a real redis-server: GET, and a pipeline of 100 SET.
3. The time of one ``/metrics`` scrape with 10 prefixes x 50 commands, and the time per
   exposed line of plain prometheus-client counters, for scale.
4. Recording: traced memory over 100,000 recorded calls in one request (the cap holds).
5. The debug toolbar panel: rendering 1000 recorded calls of 100 KB values.
6. With ``--instructions`` (needs valgrind): the instructions added per command, counted
   by callgrind. Unlike times, these counts repeat within 0.2% on a busy machine.
7. Redis Cluster, client CPU per GET: a ``RedisCluster`` of three in-memory nodes (no
   socket), plain and instrumented, as in 1; and a cluster pipeline of 100 SET.
8. Redis Cluster over loopback: three real redis-server masters; GET, and a cluster
   pipeline of 100 SET.
9. With ``--instructions``: the instructions added per GET, and per pipeline of 100 SET,
   of the cluster client on the in-memory nodes.
10. Per whole request: a WSGI call of a Flask app whose view makes 0, 1, 3 or 10 GETs on
    the in-memory connection, plain, with metrics, with metrics and recording, and, for
    scale, with redis-client-kit's instrumented client and with prometheus-flask-exporter;
    in time and, with ``--instructions``, in callgrind instructions.
11. valkey-py as the client (``PREFIX_CLASS = "valkey.Valkey"``), client CPU per GET: plain
    valkey-py and instrumented on an in-memory valkey-py connection, as in 1.
12. valkey-py over loopback, on a real valkey-server: GET, and a pipeline of 100 SET.
13. With ``--instructions``: the instructions added per GET of valkey-py, as in 6.
14. With ``--instructions``: the asyncio client (``Redis.async_connection``), on an
    in-memory ``redis.asyncio`` connection: the instructions per awaited GET, plain, with
    metrics and recording, and, for scale, with redis-client-kit's asyncio client; and per
    whole request of an ``async def`` view making 0, 1 or 10 awaited GETs.

Run from the project root:
``python benchmarks/overhead.py [--rounds N] [--instructions]
[--only server|cluster|request|valkey|async] [--multiprocess]``.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import importlib.util
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from importlib.metadata import version
from pathlib import Path
from time import perf_counter
from typing import Any

import redis
import redis.asyncio
from flask import Flask
from flask.signals import request_started
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from redis.cluster import ClusterNode, RedisCluster
from werkzeug.test import EnvironBuilder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import flask_redis
from flask_redis import Redis, get_recorded_calls
from flask_redis._exposition import serve_metrics
from flask_redis._instrument import observe
from flask_redis._labels import COMMANDS
from flask_redis._metrics import metrics_for
from flask_redis._tallies import DURATION_BUCKETS
from tests.servers import ClientCacheServer, ClusterNodes, RedisServer, ServerUnavailable


class _InMemory:
    """A connection that sends nothing and always reads the same reply."""

    def connect(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        pass

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        return b"value"

    def can_read(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def disconnect(self, *args: Any, **kwargs: Any) -> None:
        pass


class MemoryConnection(_InMemory, redis.Connection):
    """A redis-py connection that sends nothing and always reads the same reply."""


class MemoryAsyncConnection(redis.asyncio.Connection):
    """A redis.asyncio connection that sends nothing and always reads the same reply: each
    of its coroutines returns at once, without giving the event loop a turn."""

    async def connect(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        return b"value"

    async def can_read_destructive(self) -> bool:
        return False

    async def can_read(self) -> bool:
        return False

    async def disconnect(self, *args: Any, **kwargs: Any) -> None:
        pass


def memory_async(client: Any) -> Any:
    """``client``, an asyncio client that has made no connection yet, with its pool set to
    make :class:`MemoryAsyncConnection` (the asyncio client takes no pool of the config)."""
    pool = client.connection_pool
    if pool.connection_class is not MemoryAsyncConnection:
        pool.connection_class = MemoryAsyncConnection
    return client


def memory_valkey_pool() -> Any:
    """A valkey-py pool of connections that send nothing and always read the same reply."""
    import valkey

    class MemoryValkeyConnection(_InMemory, valkey.Connection):
        pass

    return valkey.ConnectionPool(connection_class=MemoryValkeyConnection)


#: The masters of the in-memory cluster; the slots are split evenly between them.
MEMORY_CLUSTER = (("127.0.0.1", 7000), ("127.0.0.1", 7001), ("127.0.0.1", 7002))
#: What redis-server 6.2 answers to COMMAND for GET and SET: redis-py's cluster client
#: reads the key positions of each command from it.
COMMAND_REPLY = [
    [b"get", 2, [b"readonly", b"fast"], 1, 1, 1, [b"@read", b"@string", b"@fast"]],
    [b"set", -3, [b"write", b"denyoom"], 1, 1, 1, [b"@write", b"@string", b"@slow"]],
]  # fmt: skip


def slot_map() -> list[list[Any]]:
    """The reply to CLUSTER SLOTS: ``[first, last, [host, port, id]]`` for each master."""
    total, masters = 16384, len(MEMORY_CLUSTER)
    return [
        [number * total // masters, (number + 1) * total // masters - 1,
         [host.encode(), port, f"{number + 1:040x}".encode()]]
        for number, (host, port) in enumerate(MEMORY_CLUSTER)
    ]  # fmt: skip


#: The fixed replies of the in-memory cluster's connections, by command.
CLUSTER_REPLIES: dict[str, Callable[[], Any]] = {
    "GET": lambda: b"value",
    "SET": lambda: b"OK",
    "COMMAND": lambda: COMMAND_REPLY,
    "CLUSTER SLOTS": slot_map,
}


def cluster_reply(args: tuple[Any, ...]) -> Any:
    """The reply of the in-memory cluster to the command ``args``."""
    answer = CLUSTER_REPLIES.get(args[0])
    if answer is None:  # not as redis-py spells the commands it sends here
        words = [str(arg).upper() for arg in args[:2]]
        answer = CLUSTER_REPLIES.get(words[0]) or CLUSTER_REPLIES.get(" ".join(words))
    if answer is None:
        raise NotImplementedError(f"the in-memory cluster does not answer {args!r}")
    return answer()


class MemoryClusterConnection(redis.Connection):
    """A cluster node's connection that sends nothing: it packs each command as redis-py
    does, and reads the fixed reply of the in-memory cluster to it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._replies: deque[Any] = deque()

    def connect(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        self._replies.append(cluster_reply(args))
        super().send_command(*args, **kwargs)  # type: ignore[no-untyped-call]

    def pack_commands(self, commands: Any) -> Any:
        commands = list(commands)
        self._replies.extend(cluster_reply(tuple(args)) for args in commands)
        return super().pack_commands(commands)  # type: ignore[no-untyped-call]

    def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        pass

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        return self._replies.popleft()

    def can_read(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def disconnect(self, *args: Any, **kwargs: Any) -> None:
        self._replies.clear()


class MemoryRedisCluster(RedisCluster):
    """``RedisCluster`` whose nodes use :class:`MemoryClusterConnection`.

    redis-py hands ``connection_class`` on to the nodes' pools only for a client made from
    a URL, so the first startup node is given as one too; a command takes the path of
    ``RedisCluster``, which this class does not override.
    """

    def __init__(self, startup_nodes: list[ClusterNode], **kwargs: Any) -> None:
        first = startup_nodes[0]
        kwargs.setdefault("url", f"redis://{first.host}:{first.port}")
        kwargs["connection_class"] = MemoryClusterConnection
        super().__init__(startup_nodes=startup_nodes, **kwargs)


def memory_cluster(**settings: Any) -> dict[str, Any]:
    """The config keys (prefix left out) of a client of the in-memory cluster."""
    startup = ",".join(f"{host}:{port}" for host, port in MEMORY_CLUSTER[:2])
    return {"CLUSTER": startup, "CLASS": MemoryRedisCluster, **settings}


@contextmanager
def no_sockets() -> Iterator[None]:
    """Opening a socket raises inside: the in-memory clients must never open one."""
    opened = socket.socket

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an in-memory client opened a socket")

    socket.socket = refuse  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        socket.socket = opened  # type: ignore[misc]


def check_memory_cluster(client: Any) -> None:
    """Raise unless ``client`` talks to the in-memory cluster only: every node's pool
    makes :class:`MemoryClusterConnection`, and a GET and a pipeline open no socket."""
    nodes = client.get_nodes()
    assert len(nodes) == len(MEMORY_CLUSTER), nodes
    for node in nodes:
        pool = node.redis_connection.connection_pool
        assert pool.connection_class is MemoryClusterConnection, pool
    with no_sockets():
        assert client.get("key") == b"value"
        with client.pipeline(transaction=False) as pipe:
            for number in range(10):  # keys on every node
                pipe.set(f"key:{number}", number)
            assert pipe.execute() == [True] * 10


def best(rounds: int, cases: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Run every case once per round, in alternating order; the minimum of each."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases.items())
    for _ in range(rounds):
        for name, case in order:
            times[name].append(case())
        order.reverse()  # a case's place in the round biases its time: alternate it
    return {name: min(values) for name, values in times.items()}


def timed_loop(call: Callable[[], Any], n: int) -> Callable[[], float]:
    """A case: seconds per call of ``call``, over ``n`` calls."""

    def case() -> float:
        gc.disable()
        try:
            start = perf_counter()
            for _ in range(n):
                call()
            return (perf_counter() - start) / n
        finally:
            gc.enable()

    return case


def app_with(prefixes: dict[str, dict[str, Any]]) -> tuple[Flask, dict[str, Redis]]:
    app = Flask(__name__)
    for prefix, settings in prefixes.items():
        app.config.update({f"{prefix}_{key}": value for key, value in settings.items()})
    return app, {prefix: Redis(app, prefix) for prefix in prefixes}


def in_request(
    app: Flask, client: Redis, n: int, work: Callable[[Redis], Any]
) -> Callable[[], float]:
    """A case: one request that runs ``work`` ``n`` times; seconds per run, teardown included."""
    view_name = f"bench_{id(client)}_{id(work)}"
    app.add_url_rule(f"/{view_name}", view_name, lambda: str([work(client) for _ in range(n)][:0]))
    test_client = app.test_client()

    def case() -> float:
        gc.disable()
        try:
            start = perf_counter()
            test_client.get(f"/{view_name}")
            return (perf_counter() - start) / n
        finally:
            gc.enable()

    return case


def cpu_per_command(rounds: int) -> list[tuple[str, float]]:
    n = 2000
    memory = lambda: redis.ConnectionPool(connection_class=MemoryConnection)  # noqa: E731
    recording = {"RECORD_CALLS": True, "RECORD_CALLS_MAX": n}  # every call recorded
    app, clients = app_with({
        "PLAIN": {"CONNECTION_POOL": memory(), "METRICS": False},
        "TIMING": {"CONNECTION_POOL": memory(), "METRICS_REGISTRY": CollectorRegistry()},
        "METRICS": {"CONNECTION_POOL": memory(), "METRICS_REGISTRY": CollectorRegistry()},
        "RECORDING": {"CONNECTION_POOL": memory(), "METRICS": False, **recording},
        "BOTH": {"CONNECTION_POOL": memory(), "METRICS_REGISTRY": CollectorRegistry(),
                 **recording},
    })  # fmt: skip
    plain, instrumented = clients["PLAIN"], clients["METRICS"]
    observe(clients["TIMING"].connection, lambda *args: None)  # the floor of the design
    get = lambda c: c.connection.get("key")  # noqa: E731

    # prometheus-client's own observe + inc, on cached children: the floor of a design that
    # calls it per command.
    registry = CollectorRegistry()
    histogram = Histogram("h", "h", ["p", "c"], buckets=DURATION_BUCKETS, registry=registry)
    counter = Counter("c", "c", ["p", "c"], registry=registry)
    h, c = histogram.labels("redis", "GET"), counter.labels("redis", "GET")

    def prometheus_call() -> None:
        h.observe(0.0002)
        c.inc()

    result = best(rounds, {
        "plain, outside a request": timed_loop(lambda: get(plain), n),
        "timing only, outside a request": timed_loop(lambda: get(clients["TIMING"]), n),
        "metrics, outside a request": timed_loop(lambda: get(instrumented), n),
        "plain, in a request": in_request(app, plain, n, get),
        "metrics, in a request": in_request(app, instrumented, n, get),
        "recording, in a request": in_request(app, clients["RECORDING"], n, get),
        "metrics + recording, in a request": in_request(app, clients["BOTH"], n, get),
        "prometheus observe + inc alone": timed_loop(prometheus_call, n),
    })  # fmt: skip
    return list(result.items())


def loopback(rounds: int, server: RedisServer) -> list[tuple[str, float]]:
    app, clients = app_with({
        "PLAIN": {"PORT": server.port, "METRICS": False},
        "METRICS": {"PORT": server.port, "METRICS_REGISTRY": CollectorRegistry()},
    })  # fmt: skip

    return plain_and_metrics(rounds, app, clients)


def plain_and_metrics(
    rounds: int, app: Flask, clients: dict[str, Redis]
) -> list[tuple[str, float]]:
    """GET and a pipeline of 100 SET through the ``PLAIN`` and ``METRICS`` clients of
    ``app``, in requests: the best time of each."""
    get = lambda c: c.connection.get("key")  # noqa: E731
    gets = {
        "GET plain": in_request(app, clients["PLAIN"], 500, get),
        "GET metrics": in_request(app, clients["METRICS"], 500, get),
    }
    pipelines = {
        "pipeline of 100 SET plain": in_request(app, clients["PLAIN"], 20, pipeline_of_100),
        "pipeline of 100 SET metrics": in_request(app, clients["METRICS"], 20, pipeline_of_100),
    }
    # Each pair alternates by itself: a case's place among more cases biases its time.
    return [*best(rounds, gets).items(), *best(rounds, pipelines).items()]


def pipeline_of_100(client: Redis) -> Any:
    """A pipeline (without a transaction) of 100 SET, executed."""
    with client.connection.pipeline(transaction=False) as pipe:
        for i in range(100):
            pipe.set(f"key:{i}", i)
        return pipe.execute()


Times = list[tuple[str, float]]


def cluster_cpu_per_command(rounds: int) -> tuple[Times, Times]:
    """Client CPU of a cluster client on the in-memory cluster: per GET, and per pipeline
    of 100 SET (keys on every node)."""
    n = 2000
    with no_sockets():
        app, clients = app_with({
            "PLAIN": memory_cluster(METRICS=False),
            "TIMING": memory_cluster(METRICS_REGISTRY=CollectorRegistry()),
            "METRICS": memory_cluster(METRICS_REGISTRY=CollectorRegistry()),
        })  # fmt: skip
    assert type(clients["PLAIN"].connection) is MemoryRedisCluster
    assert type(clients["METRICS"].connection) is not MemoryRedisCluster
    for client in clients.values():
        check_memory_cluster(client.connection)
    plain, instrumented = clients["PLAIN"], clients["METRICS"]
    observe(clients["TIMING"].connection, lambda *args: None)  # the floor of the design
    get = lambda c: c.connection.get("key")  # noqa: E731
    gets = {
        "plain, outside a request": timed_loop(lambda: get(plain), n),
        "timing only, outside a request": timed_loop(lambda: get(clients["TIMING"]), n),
        "metrics, outside a request": timed_loop(lambda: get(instrumented), n),
        "plain, in a request": in_request(app, plain, n, get),
        "metrics, in a request": in_request(app, instrumented, n, get),
    }
    pipelines = {
        "pipeline of 100 SET plain": in_request(app, plain, 20, pipeline_of_100),
        "pipeline of 100 SET metrics": in_request(app, instrumented, 20, pipeline_of_100),
    }
    # The pipelines alternate by themselves, as over loopback.
    return list(best(rounds, gets).items()), list(best(rounds, pipelines).items())


def cluster_loopback(rounds: int, cluster: ClusterNodes) -> list[tuple[str, float]]:
    """GET and a pipeline of 100 SET on a real cluster, plain and with metrics."""
    startup = ",".join(f"{host}:{port}" for host, port in cluster.startup_nodes)
    app, clients = app_with({
        "PLAIN": {"CLUSTER": startup, "METRICS": False},
        "METRICS": {"CLUSTER": startup, "METRICS_REGISTRY": CollectorRegistry()},
    })  # fmt: skip
    assert type(clients["PLAIN"].connection) is RedisCluster
    try:
        return plain_and_metrics(rounds, app, clients)
    finally:
        for client in clients.values():
            client.connection.close()


def fastest(rounds: int, call: Callable[[], Any]) -> float:
    times = []
    for _ in range(rounds):
        start = perf_counter()
        call()
        times.append(perf_counter() - start)
    return min(times)


def scrape(rounds: int) -> tuple[int, float, float, float, float]:
    """One scrape of 10 prefixes x 50 commands: its lines, the seconds of a GET of the
    served ``/metrics`` view, plain and gzipped (as Prometheus asks for it), and of
    prometheus-client's ``generate_latest`` of the same registry; and, for scale, the
    seconds per line of a registry of plain counters."""
    registry = CollectorRegistry()
    metrics = metrics_for(registry)
    for index in range(10):
        observe = metrics.for_prefix(f"PREFIX{index}").observe
        for name in sorted(COMMANDS)[:50]:
            observe((name, "key"), 0.0003, None, None, None)
    app = Flask(__name__)
    serve_metrics(app, "/metrics", registry)
    client = app.test_client()
    served = client.get("/metrics").get_data()
    lines = len(served.splitlines())
    assert lines == len(generate_latest(registry).splitlines())
    reference = CollectorRegistry()
    counter = Counter("reference", "Plain counters.", ["a", "b"], registry=reference)
    for index in range(lines // 2):  # a counter child exposes _total and _created
        counter.labels(str(index % 10), str(index)).inc()
    per_line = fastest(rounds, lambda: generate_latest(reference)) / (lines // 2 * 2)
    view = fastest(rounds, lambda: client.get("/metrics").get_data())
    gzip = {"Accept-Encoding": "gzip"}
    packed = fastest(rounds, lambda: client.get("/metrics", headers=gzip).get_data())
    return lines, view, packed, fastest(rounds, lambda: generate_latest(registry)), per_line


def recording_memory() -> tuple[int, int, int]:
    """Traced memory after 10,000 and after 100,000 recorded GETs in one request (the
    default cap of 1000 records holds), and the records kept."""
    import tracemalloc

    memory = redis.ConnectionPool(connection_class=MemoryConnection)
    app, clients = app_with({"BENCH": {"CONNECTION_POOL": memory, "RECORD_CALLS": True}})
    client = clients["BENCH"].connection
    sizes: list[int] = []

    @app.route("/memory")
    def many_calls() -> str:
        tracemalloc.start()
        for total in (10_000, 100_000):
            while client_calls[0] < total:
                client.get("key")
                client_calls[0] += 1
            sizes.append(tracemalloc.get_traced_memory()[0])
        tracemalloc.stop()
        kept.append(len(get_recorded_calls()))
        return ""

    client_calls, kept = [0], []
    app.test_client().get("/memory")
    return sizes[0], sizes[1], kept[0]


def panel_rendering(rounds: int) -> tuple[float, int]:
    """Seconds to render the debug toolbar panel for 1000 recorded SETs of 100 KB values
    (snapshot, analysis and HTML), and the size of the HTML."""
    from flask_redis_panel._model import Snapshot
    from flask_redis_panel.panel import render

    memory = redis.ConnectionPool(connection_class=MemoryConnection)
    app, clients = app_with({"BENCH": {"CONNECTION_POOL": memory, "RECORD_CALLS": True}})
    client = clients["BENCH"].connection
    value = "v" * 100_000
    results: list[tuple[float, int]] = []

    @app.route("/panel")
    def panel() -> str:
        for number in range(1000):
            client.set(f"big:{number % 10}", value)
        times, html = [], ""
        for _ in range(rounds):
            start = perf_counter()
            html = render(Snapshot.take())
            times.append(perf_counter() - start)
        results.append((min(times), len(html.encode())))
        return ""

    app.test_client().get("/panel")
    return results[0]


# Instruction counts: this script runs itself under callgrind with --count CASE N.
COUNT_CASES = (
    "plain",
    "timing only (observer does nothing)",
    "metrics, outside a request",
    "metrics, in a request",
    "recording, in a request",
    "key families, in a request",
    "no metrics (the extension's client)",
)
#: The families of the "key families" case (PREFIX_METRICS_KEY_FAMILIES, with metrics on):
#: the benchmark's key is of the second.
KEY_FAMILIES = {"session": "session:*", "key": ["k*", "keys:*"], "user": "user:*"}
#: The same for a cluster client of the in-memory cluster: each is "cluster " + the case.
CLUSTER_COUNT_CASES = tuple(f"cluster {case}" for case in COUNT_CASES[:4])
#: The same for valkey-py's client on an in-memory valkey-py connection: "valkey " + the case.
VALKEY_COUNT_CASES = tuple(f"valkey {case}" for case in COUNT_CASES[:4])
#: Pipelines of 100 SET instead of GETs: "cluster pipeline " + the case.
CLUSTER_PIPELINE_CASES = (
    "cluster pipeline plain",
    "cluster pipeline timing only (observer does nothing)",
    "cluster pipeline metrics, in a request",
)


def count(case: str, n: int) -> None:
    """Run ``n`` GETs (or pipelines, or requests) of ``case`` on an in-memory connection
    (the child of --instructions)."""
    if case.startswith("request "):
        _, column, gets, client, library = case.split()
        count_requests(column, int(gets), n, client, library)
        return
    if case.startswith("async request "):
        _, _, column, gets = case.split()
        count_async_requests(column, int(gets), n)
        return
    if case.startswith("async "):
        count_async(case[len("async ") :], n)
        return
    if case.startswith("connections "):
        count_connections(case, n)
        return
    cluster, valkey = case.startswith("cluster "), case.startswith("valkey ")
    kind = case.split(" ", 1)[1] if cluster or valkey else case
    pipeline = kind.startswith("pipeline ")
    kind = kind[len("pipeline ") :] if pipeline else kind
    settings = {
        "METRICS": kind.startswith(("metrics", "timing", "key families")),
        "METRICS_REGISTRY": CollectorRegistry(),
        "RECORD_CALLS": kind.startswith("recording"),
        "RECORD_CALLS_MAX": n,
    }
    if kind.startswith("key families"):
        settings["METRICS_KEY_FAMILIES"] = KEY_FAMILIES
    if cluster:
        random.seed(0)  # redis-py shuffles the startup nodes: the same order in each run
        app, clients = app_with({"BENCH": memory_cluster(**settings)})
    elif valkey:
        settings.update(CLASS="valkey.Valkey", CONNECTION_POOL=memory_valkey_pool())
        app, clients = app_with({"BENCH": settings})
    else:
        memory = redis.ConnectionPool(connection_class=MemoryConnection)
        app, clients = app_with({"BENCH": {"CONNECTION_POOL": memory, **settings}})
    client = clients["BENCH"].connection
    if case == "plain":  # redis-py alone, on a pool the extension never saw
        client = redis.Redis(
            connection_pool=redis.ConnectionPool(connection_class=MemoryConnection)
        )
    if kind.startswith("timing only"):  # the floor of the subclass design
        observe(client, lambda *args: None)
    client.get("key")  # the first command connects
    if pipeline:
        pipeline_of_100(clients["BENCH"])
    # A full collection of the objects made so far would fall in one run and not in
    # another: only the objects the counted calls make are left to the collector.
    gc.collect()
    gc.freeze()
    with app.test_request_context():
        if kind.endswith("in a request"):
            request_started.send(app)
        if pipeline:
            for _ in range(n):
                pipeline_of_100(clients["BENCH"])
            return
        for _ in range(n):
            client.get("key")


def callgrind(case: str, calls: int) -> int:
    """The instructions callgrind counts in a run of ``--count case calls``, which must
    import the same ``flask_redis`` as this process.

    ``calls`` is written with a fixed width: the length of the command line moves where the
    interpreter puts its objects, and with it the cost of its start by up to a few hundred
    thousand instructions, which a run of none would not take off.
    """
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, __file__, "--count", case, f"{calls:06d}"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict layouts each run
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", result.stderr)
    assert found, result.stderr
    imported = result.stdout.strip()
    here = flask_redis.__file__
    assert imported == here, (
        f"the counted run imported flask_redis from {imported}, this one from {here}"
    )
    return int(found.group(1))


def instructions(cases: tuple[str, ...], n: int = 2000) -> dict[str, float]:
    """Instructions per GET (or pipeline) of each case: callgrind's totals for n and for 0."""
    totals: dict[str, float] = {}
    for case in cases:
        counts = [callgrind(case, calls) for calls in (0, n)]
        totals[case] = (counts[1] - counts[0]) / n
    return totals


def print_instructions(counted: dict[str, float], plain: str, strip: str = "") -> None:
    """Each case's instructions per GET, and what it adds to those of ``plain``."""
    base = counted[plain]
    for case, value in counted.items():
        print(f"   {case[len(strip) :]:34} {value:10.0f}  {(value - base) / base:+.1%}")


def print_added(times: dict[str, float], cases: tuple[str, ...]) -> None:
    """What each case adds to plain redis-py, in and outside a request as the case is."""
    for case in cases:
        base = times["plain, outside a request" if "outside" in case else "plain, in a request"]
        added = times[case] - base
        print(f"   added: {case:34} {added * 1e6:8.2f} us  ({added / base:.1%} of plain)")


def print_ratios(times: dict[str, float]) -> None:
    """Plain and metrics of GET and of a pipeline of 100 SET, and their ratio."""
    for case in ("GET", "pipeline of 100 SET"):
        plain, metrics = times[f"{case} plain"], times[f"{case} metrics"]
        print(f"   {case:20} plain {plain * 1e6:8.1f} us  metrics {metrics * 1e6:8.1f} us"
              f"  ratio {metrics / plain:.3f}")  # fmt: skip


def server_sections(args: argparse.Namespace) -> None:
    """Sections 1 to 6: one server."""
    cpu = dict(cpu_per_command(args.rounds))
    print("1. Client CPU per GET, in-memory connection (minimum of the rounds)")
    for name, seconds in cpu.items():
        print(f"   {name:34} {seconds * 1e6:8.2f} us")
    print_added(cpu, ("timing only, outside a request", "metrics, outside a request",
                      "metrics, in a request",
                      "recording, in a request", "metrics + recording, in a request"))  # fmt: skip

    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder)).start()
        try:
            wire = dict(loopback(args.rounds, server))
        finally:
            server.stop()
    print("\n2. Loopback, real redis-server (minimum of the rounds)")
    print_ratios(wire)

    lines, view, packed, generic, per_line = scrape(args.rounds)
    print(f"\n3. One /metrics scrape, 10 prefixes x 50 commands: {lines} lines")
    print(
        f"   the served view           {view * 1e3:6.1f} ms  ({view / lines * 1e6:.2f} us a line)"
    )
    print(f"   the same, gzipped         {packed * 1e3:6.1f} ms")
    print(
        f"   generate_latest, for scale {generic * 1e3:6.1f} ms"
        f"  ({generic / lines * 1e6:.2f} us a line; plain counters: {per_line * 1e6:.2f} us)"
    )

    after_10k, after_100k, kept = recording_memory()
    print("\n4. Recording, 100,000 GETs in one request (default cap)")
    print(
        f"   traced memory after 10,000: {after_10k / 1024:.0f} KiB, after 100,000:"
        f" {after_100k / 1024:.0f} KiB; records kept: {kept}"
    )

    seconds, size = panel_rendering(min(args.rounds, 10))
    print("\n5. Debug toolbar panel, 1000 recorded SETs of 100 KB values")
    rendered = f"{seconds * 1e3:.1f} ms (minimum of the rounds), {size / 1e6:.2f} MB of HTML"
    print(f"   rendered in {rendered}")

    if args.instructions:
        print("\n6. Instructions per GET, in-memory connection (callgrind)")
        print_instructions(instructions(COUNT_CASES), "plain")


def cluster_sections(args: argparse.Namespace) -> None:
    """Sections 7 to 9: Redis Cluster."""
    gets, pipelines = map(dict, cluster_cpu_per_command(args.rounds))
    masters = len(MEMORY_CLUSTER)
    print(f"7. Cluster: client CPU per GET, {masters} in-memory nodes (minimum of the rounds)")
    for name, seconds in gets.items():
        print(f"   {name:34} {seconds * 1e6:8.2f} us")
    print_added(gets, ("timing only, outside a request", "metrics, outside a request",
                       "metrics, in a request"))  # fmt: skip
    plain = pipelines["pipeline of 100 SET plain"]
    metrics = pipelines["pipeline of 100 SET metrics"]
    print(f"   pipeline of 100 SET, in a request: plain {plain * 1e6:8.1f} us  metrics"
          f" {metrics * 1e6:8.1f} us  added {(metrics - plain) * 1e6:.1f} us"
          f" ({(metrics - plain) / plain:.1%})")  # fmt: skip

    with tempfile.TemporaryDirectory() as folder:
        cluster = ClusterNodes(Path(folder), masters=3, replicas=0).start()
        try:
            wire = dict(cluster_loopback(args.rounds, cluster))
        finally:
            cluster.stop()
    print("\n8. Cluster: loopback, 3 real redis-server masters (minimum of the rounds)")
    print_ratios(wire)

    if args.instructions:
        print(f"\n9. Cluster: instructions per GET, {masters} in-memory nodes (callgrind)")
        print_instructions(instructions(CLUSTER_COUNT_CASES), "cluster plain", "cluster ")
        print("   per pipeline of 100 SET (100 pipelines counted)")
        pipelines = instructions(CLUSTER_PIPELINE_CASES, 100)
        print_instructions(pipelines, "cluster pipeline plain", "cluster pipeline ")


# Section 10: whole requests.
#: The GETs a request's view makes, one row each.
REQUEST_GETS = (0, 1, 3, 10)
#: The columns: the app's set-up. The last two are other packages, for scale.
REQUEST_COLUMNS = (
    "plain", "metrics", "metrics+recording", "redis-client-kit", "prometheus-flask-exporter",
)  # fmt: skip
#: The module each column needs beyond this project's test environment.
PEER_MODULES = {
    "redis-client-kit": "redis_client_kit.metrics",
    "prometheus-flask-exporter": "prometheus_flask_exporter",
}
PEERS_INSTALL = "pip install redis-client-kit prometheus-flask-exporter"
#: Requests per case in a round of section 10, and counted by callgrind.
REQUESTS_TIMED = 100
REQUESTS_COUNTED = 100


def installed(column: str) -> bool:
    """Whether the package that ``column`` needs is installed (the project's own are)."""
    module = PEER_MODULES.get(column)
    if module is None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # the package of a submodule is missing
        return False


@cache
def kit_client_class() -> type[Any]:
    """redis-client-kit's instrumented client, as its ``create_redis_client`` makes it when
    given metrics: ``InstrumentedRedis`` with a ``RedisMetrics`` (prometheus-client metrics
    in the default registry). It takes the connection pool only, so the extension can make
    it as ``REDIS_CLASS`` with the extension's own instrumentation off."""
    from redis_client_kit.metrics import get_redis_metrics
    from redis_client_kit.sync import InstrumentedRedis

    metrics = get_redis_metrics("flask_redis_bench")  # once per process and prefix

    class KitRedis(InstrumentedRedis):
        def __init__(self, connection_pool: redis.ConnectionPool) -> None:
            super().__init__(connection_pool=connection_pool, metrics=metrics)

    return KitRedis


def gets_view(extension: Redis, gets: int) -> Callable[[], str]:
    """A view that makes ``gets`` GETs through ``extension`` and returns a short string."""

    def view() -> str:
        client = extension.connection
        for _ in range(gets):
            client.get("key")
        return "done"

    return view


def request_app(column: str, library: str = "redis") -> Flask:
    """The app of ``column``: one ``REDIS`` client of ``library`` (``"redis"`` for redis-py,
    ``"valkey"`` for valkey-py) on an in-memory connection pool, and a view ``/N`` that
    makes N GETs for each N of :data:`REQUEST_GETS`."""
    app = Flask(__name__)
    if library == "valkey":
        import valkey

        client_class: type[Any] = valkey.Valkey
        pool = memory_valkey_pool()
    else:
        client_class = redis.Redis
        pool = redis.ConnectionPool(connection_class=MemoryConnection)
    app.config.update(REDIS_CLASS=client_class, REDIS_CONNECTION_POOL=pool, REDIS_METRICS=False)
    if column in ("metrics", "metrics+recording"):
        app.config.update(REDIS_METRICS=True, REDIS_METRICS_REGISTRY=CollectorRegistry())
    if column == "metrics+recording":
        app.config["REDIS_RECORD_CALLS"] = True
    if column == "redis-client-kit":
        app.config["REDIS_CLASS"] = kit_client_class()
    extension = Redis(app)
    made = type(extension.connection)
    instrumented = made is not app.config["REDIS_CLASS"]
    assert instrumented == column.startswith("metrics"), made
    if column == "prometheus-flask-exporter":
        from prometheus_flask_exporter import PrometheusMetrics  # type: ignore[import-untyped]

        PrometheusMetrics(app, registry=CollectorRegistry())
    for gets in REQUEST_GETS:
        app.add_url_rule(f"/{gets}", f"gets_{gets}", gets_view(extension, gets))
    return app


def make_request(app: Flask, path: str, client: str = "test-client") -> Callable[[], None]:
    """One request of ``path``: by Flask's test client (``client="test-client"``, the
    environ built, the response read, as the project's issue measured), or as a WSGI
    server makes it once it has parsed the HTTP request (``"wsgi"``: the app called with a
    fresh environ, its body read, and closed)."""
    if client == "test-client":
        test_client = app.test_client()

        def get() -> None:
            response = test_client.get(path)
            assert response.status_code == 200
            response.close()

        with no_sockets():
            for _ in range(3):  # the first requests of a view make what later ones reuse
                get()
        return get
    environ = EnvironBuilder(path=path).get_environ()
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    def call() -> None:
        body = app(dict(environ), start_response)
        try:
            for _ in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    with no_sockets():
        for _ in range(3):  # the first requests of a view make what later ones reuse
            call()
    assert statuses[-1].startswith("200"), statuses
    return call


def count_requests(column: str, gets: int, n: int, client: str, library: str) -> None:
    """Make ``n`` requests of the view with ``gets`` GETs of ``column``'s app (the child
    of --instructions); every view is called a few times first, in every run."""
    # Every column's run imports and sets up the same: the objects of the interpreter lie
    # alike, and a column that does nothing per request counts as plain does.
    if installed("redis-client-kit"):
        kit_client_class()
    if installed("prometheus-flask-exporter"):
        import prometheus_flask_exporter  # noqa: F401
    app = request_app(column, library)
    calls = {each: make_request(app, f"/{each}", client) for each in REQUEST_GETS}
    gc.collect()
    gc.freeze()
    call = calls[gets]
    registry = app.config.get("REDIS_METRICS_REGISTRY")
    with no_sockets():
        for _ in range(n):
            call()
        if registry is not None:
            # What the requests left for the scrape to add up is part of their cost: it
            # is counted, in every run, without writing the text of the scrape.
            metrics_for(registry).add_pending()


def request_times(
    rounds: int, columns: list[str], client: str, library: str
) -> dict[int, dict[str, float]]:
    """Seconds per request of each column, per number of GETs: the minimum of the rounds.
    The columns of a row alternate by themselves, as in 2."""
    apps = {column: request_app(column, library) for column in columns}
    times: dict[int, dict[str, float]] = {}
    for gets in REQUEST_GETS:
        cases = {column: timed_loop(make_request(app, f"/{gets}", client), REQUESTS_TIMED)
                 for column, app in apps.items()}  # fmt: skip
        with no_sockets():
            times[gets] = best(rounds, cases)
    return times


def request_instructions(
    columns: list[str], client: str, library: str
) -> dict[int, dict[str, float]]:
    """Instructions per request of each column, per number of GETs: callgrind's total for
    :data:`REQUESTS_COUNTED` requests minus a run of none. The runs are independent: as
    many run at once as there are processors (two at most)."""
    counts = [(0, 0), *((gets, REQUESTS_COUNTED) for gets in REQUEST_GETS)]
    jobs = [(column, gets, calls) for column in columns for gets, calls in counts]
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        totals = pool.map(
            lambda job: callgrind(f"request {job[0]} {job[1]} {client} {library}", job[2]), jobs
        )
        counted = dict(zip(jobs, totals))
    return {
        gets: {column: (counted[column, gets, REQUESTS_COUNTED] - counted[column, 0, 0])
                       / REQUESTS_COUNTED for column in columns}
        for gets in REQUEST_GETS
    }  # fmt: skip


def print_request_table(
    figures: dict[int, dict[str, float]], shown: Callable[[float], str]
) -> None:
    """One row per number of GETs: plain, then what each other column adds to it."""
    columns = list(next(iter(figures.values())))
    print("   GETs  " + "".join(f"{column:22}" for column in columns).rstrip())
    for gets, row in figures.items():
        plain = row["plain"]
        cells = [shown(plain)] + [
            f"+{shown(row[column] - plain)} ({(row[column] - plain) / plain:+.1%})"
            .replace("+-", "-") for column in columns[1:]
        ]  # fmt: skip
        print(f"   {gets:<5} " + "".join(f"{cell:22}" for cell in cells).rstrip())


def request_section(args: argparse.Namespace) -> None:
    """Section 10: whole requests."""
    columns = [column for column in REQUEST_COLUMNS if installed(column)]
    if args.library == "valkey":  # the other packages instrument redis-py only
        columns = [column for column in columns if column not in PEER_MODULES]
    how = "Flask's test client" if args.client == "test-client" else "a WSGI call of the app"
    library = "valkey-py" if args.library == "valkey" else "redis-py"
    print(f"10. Per whole request: {how}, its view making N GETs on the in-memory connection")
    print(f"   of {library}")
    print("   (request context, signals, request hooks and teardown included)")
    for column in REQUEST_COLUMNS:
        if column not in columns and args.library == "redis":
            print(f"   {column} is not installed: its column is left out ({PEERS_INSTALL})")
    peers = [f"{column} {version(column)}" for column in PEER_MODULES if column in columns]
    if peers:
        print(f"   {', '.join(peers)}")
    print(f"   time per request (minimum of the rounds, {REQUESTS_TIMED} requests a round)")
    times = request_times(args.rounds, columns, args.client, args.library)
    print_request_table(times, lambda s: f"{s * 1e6:.1f} us")
    if args.instructions:
        print(f"   instructions per request (callgrind, {REQUESTS_COUNTED} requests minus none)")
        counts = request_instructions(columns, args.client, args.library)
        print_request_table(counts, lambda n: f"{n / 1e3:.1f}k")


def valkey_clients(settings: Callable[[], dict[str, Any]]) -> tuple[Flask, dict[str, Redis]]:
    """An app with a plain (``PLAIN``) and an instrumented (``METRICS``) valkey-py client,
    each set up with the config keys (prefix left out) that ``settings()`` gives."""
    return app_with({
        "PLAIN": {"CLASS": "valkey.Valkey", "METRICS": False, **settings()},
        "METRICS": {"CLASS": "valkey.Valkey", "METRICS_REGISTRY": CollectorRegistry(),
                    **settings()},
    })  # fmt: skip


def valkey_cpu_per_command(rounds: int) -> dict[str, float]:
    """Seconds per GET of plain and instrumented valkey-py on in-memory connections."""
    n = 2000
    app, clients = valkey_clients(lambda: {"CONNECTION_POOL": memory_valkey_pool()})
    plain, instrumented = clients["PLAIN"], clients["METRICS"]
    get = lambda c: c.connection.get("key")  # noqa: E731
    return best(rounds, {
        "plain, outside a request": timed_loop(lambda: get(plain), n),
        "metrics, outside a request": timed_loop(lambda: get(instrumented), n),
        "plain, in a request": in_request(app, plain, n, get),
        "metrics, in a request": in_request(app, instrumented, n, get),
    })  # fmt: skip


def valkey_sections(args: argparse.Namespace) -> None:
    """Sections 11 to 13: valkey-py as the client."""
    if importlib.util.find_spec("valkey") is None:
        print("11-13. valkey-py is not installed (pip install valkey): sections left out")
        return
    cpu = valkey_cpu_per_command(args.rounds)
    print(f"11. valkey-py {version('valkey')}: client CPU per GET, in-memory connection")
    for name, seconds in cpu.items():
        print(f"   {name:34} {seconds * 1e6:8.2f} us")
    print_added(cpu, ("metrics, outside a request", "metrics, in a request"))

    with tempfile.TemporaryDirectory() as folder:
        try:
            server = RedisServer(Path(folder), kind="valkey").start()
        except ServerUnavailable as error:
            print(f"\n12. valkey-py over loopback: left out, {error}")
        else:
            try:
                app, clients = valkey_clients(lambda: {"PORT": server.port})
                wire = dict(plain_and_metrics(args.rounds, app, clients))
            finally:
                server.stop()
            print("\n12. valkey-py over loopback, real valkey-server (minimum of the rounds)")
            print_ratios(wire)

    if args.instructions:
        print("\n13. Instructions per GET of valkey-py, in-memory connection (callgrind)")
        print_instructions(instructions(VALKEY_COUNT_CASES), "valkey plain", strip="valkey ")


# Section 14: the asyncio client.
#: The cases per awaited GET; the last is left out when redis-client-kit is not installed.
ASYNC_COUNT_CASES = (
    "plain",
    "timing only (observer does nothing)",
    "metrics, outside a request",
    "metrics, in a request",
    "recording, in a request",
    "redis-client-kit",
)
#: The awaited GETs an ``async def`` view makes, one row each, and the columns.
ASYNC_REQUEST_GETS = (0, 1, 10)
ASYNC_REQUEST_COLUMNS = ("plain", "metrics")


def kit_async_client() -> Any:
    """redis-client-kit's asyncio ``InstrumentedRedis`` with the ``RedisMetrics`` its
    ``create_async_redis_client`` gives it, on an in-memory pool; made in the running loop."""
    from redis_client_kit.aio import InstrumentedRedis
    from redis_client_kit.metrics import get_redis_metrics

    pool = redis.asyncio.ConnectionPool(connection_class=MemoryAsyncConnection)
    return InstrumentedRedis(connection_pool=pool, metrics=get_redis_metrics("flask_redis_bench"))


def count_async(kind: str, n: int) -> None:
    """Await ``n`` GETs of the asyncio client of ``kind`` in one event loop, on an in-memory
    connection (the child of --instructions). The loop, its client and the first GET, which
    connects, are in every run, the run of none included."""
    if installed("redis-client-kit"):  # every case's run imports the same
        import redis_client_kit.aio  # noqa: F401
    app, clients = app_with({"BENCH": {
        "METRICS": kind.startswith(("metrics", "timing")),
        "METRICS_REGISTRY": CollectorRegistry(),
        "RECORD_CALLS": kind.startswith("recording"),
        "RECORD_CALLS_MAX": n,
    }})  # fmt: skip
    extension = clients["BENCH"]

    async def gets() -> None:
        if kind == "redis-client-kit":
            client = kit_async_client()
        else:
            client = memory_async(extension.async_connection)
            instrumented = type(client) is not redis.asyncio.Redis
            assert instrumented == (kind != "plain"), type(client)
            if kind.startswith("timing only"):  # the floor of the subclass design
                observe(client, lambda *args: None)
        assert await client.get("key") == b"value"  # the first command connects
        gc.collect()
        gc.freeze()
        for _ in range(n):
            await client.get("key")

    with app.test_request_context():
        if kind.endswith("in a request"):
            request_started.send(app)
        asyncio.run(gets())


def async_gets_view(extension: Redis, gets: int) -> Callable[[], Any]:
    """An ``async def`` view that takes the asyncio client of its loop, sets its pool to
    the in-memory connection (a new client per request: Flask runs each async view in a
    loop of its own), awaits ``gets`` GETs and returns a short string."""

    async def view() -> str:
        client = memory_async(extension.async_connection)
        for _ in range(gets):
            await client.get("key")
        return "done"

    return view


def async_request_app(column: str) -> Flask:
    """The app of ``column`` (``"plain"`` or ``"metrics"``), with a view ``/N`` that awaits
    N GETs for each N of :data:`ASYNC_REQUEST_GETS`."""
    app = Flask(__name__)
    app.config.update(REDIS_METRICS=column == "metrics", REDIS_METRICS_REGISTRY=CollectorRegistry())
    extension = Redis(app)
    for gets in ASYNC_REQUEST_GETS:
        app.add_url_rule(f"/{gets}", f"gets_{gets}", async_gets_view(extension, gets))
    return app


def count_async_requests(column: str, gets: int, n: int) -> None:
    """Make ``n`` requests, by Flask's test client, of the async view with ``gets`` GETs of
    ``column``'s app (the child of --instructions); every view is requested three times
    first, in every run. Asyncio's loop opens a socket pair of its own: unlike section 10,
    sockets are not refused; the in-memory connection opens none."""
    app = async_request_app(column)
    test_client = app.test_client()
    for _ in range(3):
        for each in ASYNC_REQUEST_GETS:
            response = test_client.get(f"/{each}")
            assert response.status_code == 200, response.status
            response.close()
    gc.collect()
    gc.freeze()
    for _ in range(n):
        test_client.get(f"/{gets}").close()
    registry = app.config["REDIS_METRICS_REGISTRY"]
    if column == "metrics":  # what the requests left for the scrape, as in 10
        metrics_for(registry).add_pending()


def parallel_callgrind(jobs: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """callgrind's count of each ``(case, calls)``, two runs at a time at most."""
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        return dict(zip(jobs, pool.map(lambda job: callgrind(*job), jobs)))


def async_section(args: argparse.Namespace) -> None:
    """Section 14: the asyncio client."""
    print("14. Asyncio client (Redis.async_connection), in-memory redis.asyncio connection")
    if not args.instructions:
        print("   counted in instructions only: run with --instructions")
        return
    kinds = [kind for kind in ASYNC_COUNT_CASES if installed(kind)]
    if "redis-client-kit" in kinds:
        print(f"   redis-client-kit {version('redis-client-kit')}")
    else:
        print("   redis-client-kit is not installed: its row is left out"
              " (pip install redis-client-kit)")  # fmt: skip
    n = 2000
    print(f"   instructions per awaited GET, one event loop (callgrind, {n} GETs minus none)")
    counted = parallel_callgrind([(f"async {kind}", calls) for kind in kinds for calls in (0, n)])
    per_get = {kind: (counted[f"async {kind}", n] - counted[f"async {kind}", 0]) / n
               for kind in kinds}  # fmt: skip
    print_instructions(per_get, "plain")
    print(f"   instructions per request, Flask's test client, an async def view awaiting N GETs"
          f" (callgrind, {REQUESTS_COUNTED} requests minus none)")  # fmt: skip
    counts = [(0, 0), *((gets, REQUESTS_COUNTED) for gets in ASYNC_REQUEST_GETS)]
    jobs = [(f"async request {column} {gets}", calls)
            for column in ASYNC_REQUEST_COLUMNS for gets, calls in counts]  # fmt: skip
    counted = parallel_callgrind(jobs)
    figures = {
        gets: {column: (counted[f"async request {column} {gets}", REQUESTS_COUNTED]
                        - counted[f"async request {column} 0", 0]) / REQUESTS_COUNTED
               for column in ASYNC_REQUEST_COLUMNS}
        for gets in ASYNC_REQUEST_GETS
    }  # fmt: skip
    print_request_table(figures, lambda count: f"{count / 1e3:.1f}k")


#: The servers of section 15's counted runs, whose ports the parent hands them.
_PORT_VARIABLE = "FLASK_REDIS_BENCH_PORT"
_CACHE_PORT_VARIABLE = "FLASK_REDIS_BENCH_CACHE_PORT"
#: Connections held while section 15 counts the collections.
HELD = 10


def count_connections(case: str, n: int) -> None:
    """Section 15's counted runs (``connections <what> <plain|metrics>``): ``n`` connections
    opened and closed on a real server; ``n`` GETs on an in-memory blocking pool; ``n``
    collections of the metrics with ``HELD`` connections open or none; ``n`` GETs served
    from a client-side cache (``cached``; ``counted`` is plain with the cache's counting
    alone)."""
    _, what, column = case.split()
    if what == "cached":
        count_cached(column, n)
        return
    settings: dict[str, Any] = {"METRICS": column == "metrics",
                                "METRICS_REGISTRY": CollectorRegistry()}  # fmt: skip
    if what == "blocking":
        pool = redis.BlockingConnectionPool(connection_class=MemoryConnection)
        app, clients = app_with({"BENCH": {"CONNECTION_POOL": pool, **settings}})
        client = clients["BENCH"].connection
        client.get("key")
        gc.collect()
        gc.freeze()
        with app.test_request_context():
            request_started.send(app)
            for _ in range(n):
                client.get("key")
        return
    settings.update(HOST="127.0.0.1", PORT=int(os.environ[_PORT_VARIABLE]))
    app, clients = app_with({"BENCH": settings})
    pool = clients["BENCH"].connection.connection_pool
    held = [checked_out(pool) for _ in range(HELD if what == "collect-held" else 1)]
    for connection in held:
        connection.connect()
        pool.release(connection)
    registry = settings["METRICS_REGISTRY"]
    metrics = metrics_for(registry)
    metrics.add_pending()
    gc.collect()
    gc.freeze()
    if what == "open":  # a connection opened (handshake included) and closed
        for _ in range(n):
            connection = checked_out(pool)
            pool.release(connection)
            pool.disconnect()
        if column == "metrics":
            metrics.add_pending()  # the events of the n connections, added up
        return
    for _ in range(n):  # collect-held, collect-one
        metrics.add_pending()
    pool.disconnect()


def count_cached(column: str, n: int) -> None:
    """``n`` GETs of one key that redis-py's client-side cache answers, on a real Redis
    7.4+: plain redis-py; ``counted``, plain with the cache's hits and misses counted
    (:func:`flask_redis._client_cache.observe_cache` alone); ``metrics``, the extension's
    client with metrics, which counts them too."""
    from redis.cache import CacheConfig

    from flask_redis._client_cache import observe_cache

    settings: dict[str, Any] = {
        "HOST": "127.0.0.1", "PORT": int(os.environ[_CACHE_PORT_VARIABLE]), "PROTOCOL": 3,
        "CACHE_CONFIG": CacheConfig(), "METRICS": column == "metrics",
        "METRICS_REGISTRY": CollectorRegistry(),
    }  # fmt: skip
    app, clients = app_with({"BENCH": settings})
    client = clients["BENCH"].connection
    if column == "counted":
        observe_cache(client)
    client.set("key", "value")
    client.get("key")  # a miss: the reply is cached
    gc.collect()
    gc.freeze()
    for _ in range(n):
        client.get("key")
    client.connection_pool.disconnect()


def checked_out(pool: Any) -> Any:
    """A connection of ``pool`` in use, as a command holds it."""
    try:
        return pool.get_connection()
    except TypeError:  # redis-py before 5.3 wants a command name
        return pool.get_connection("GET")


def connections_section(args: argparse.Namespace) -> None:
    """Section 15: what is paid per connection, per checkout and per collection."""
    print("15. Connections and pools, what is paid apart from the commands (callgrind)")
    if not args.instructions:
        print("   counted in instructions only: run with --instructions")
        return
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder, "plain")).start()
        os.environ[_PORT_VARIABLE] = str(server.port)
        jobs = [(f"connections {what} {column}", calls)
                for what, n in (("open", 200), ("blocking", 2000),
                                ("collect-one", 200), ("collect-held", 200))
                for column in ("plain", "metrics") for calls in (0, n)]  # fmt: skip
        try:
            cache_server: RedisServer | None = ClientCacheServer(Path(folder, "cache")).start()
        except ServerUnavailable as error:
            cache_server = None
            print(f"   GETs from a client-side cache left out: {error}")
        else:
            os.environ[_CACHE_PORT_VARIABLE] = str(cache_server.port)
            jobs += [(f"connections cached {column}", calls)
                     for column in ("plain", "counted", "metrics")
                     for calls in (0, 2000)]  # fmt: skip
        try:
            counted = parallel_callgrind(jobs)
        finally:
            server.stop()
            if cache_server is not None:
                cache_server.stop()

    def per(what: str, column: str, n: int) -> float:
        case = f"connections {what} {column}"
        return (counted[case, n] - counted[case, 0]) / n

    opened = {column: per("open", column, 200) for column in ("plain", "metrics")}
    print("   per connection opened and closed, loopback redis-server (200 minus none)")
    print_instructions(opened, "plain")
    blocking = {column: per("blocking", column, 2000) for column in ("plain", "metrics")}
    print("   per GET on a BlockingConnectionPool, in a request (2000 minus none)")
    print_instructions(blocking, "plain")
    collect = per("collect-held", "metrics", 200) - per("collect-one", "metrics", 200)
    print(f"   per connection held, per collection of the metrics: {collect / (HELD - 1):,.0f}"
          f" instructions (its bytes read from the kernel)")  # fmt: skip
    if ("connections cached plain", 0) in counted:
        cached = {column: per("cached", column, 2000)
                  for column in ("plain", "counted", "metrics")}  # fmt: skip
        print("   per GET served from a client-side cache, Redis 7.4+ (2000 minus none)")
        print_instructions(cached, "plain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="alternating rounds per case")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions per command and per request with valgrind",
    )
    parser.add_argument(
        "--only",
        choices=("server", "cluster", "request", "valkey", "async", "connections"),
        help="run only the sections of one server (1-6), of a cluster (7-9),"
        " of whole requests (10), of valkey-py (11-13), of the asyncio client (14)"
        " or of connections and pools (15)",
    )
    parser.add_argument(
        "--client",
        choices=("test-client", "wsgi"),
        default="test-client",
        help="how section 10 makes a request: Flask's test client (default),"
        " or a bare WSGI call, which costs less, so that the same addition"
        " is a larger share of it",
    )
    parser.add_argument(
        "--library",
        choices=("redis", "valkey"),
        default="redis",
        help="the client library of section 10: redis-py (default), or valkey-py, without"
        " the other packages' columns",
    )
    parser.add_argument(
        "--multiprocess",
        action="store_true",
        help="run with PROMETHEUS_MULTIPROC_DIR set, as under gunicorn with"
        " several workers: metric values live in files",
    )
    parser.add_argument("--count", nargs=2, metavar=("CASE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.multiprocess and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # prometheus-client picks where values live when it is imported: start again.
        folder = tempfile.mkdtemp(prefix="flask-redis-bench-")
        os.environ.update(PROMETHEUS_MULTIPROC_DIR=folder, FLASK_REDIS_BENCH_FOLDER=folder)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    if os.environ.get("FLASK_REDIS_BENCH_FOLDER") and not args.count:
        atexit.register(shutil.rmtree, os.environ["FLASK_REDIS_BENCH_FOLDER"], True)
    if args.count:
        count(args.count[0], int(args.count[1]))
        print(flask_redis.__file__)  # what --instructions checks
        return
    if args.instructions and not shutil.which("valgrind"):
        sys.exit("--instructions needs valgrind")
    print(
        f"Python {platform.python_version()}, redis-py {version('redis')},"
        f" prometheus-client {version('prometheus-client')}, Flask {version('flask')}"
    )
    processor = platform.processor() or "unknown processor"
    print(f"{platform.machine()}, {processor}; rounds: {args.rounds}")
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        print(
            "PROMETHEUS_MULTIPROC_DIR is set: metric values live in files, as under a"
            " multiprocess server"
        )
    print()
    sections = {
        "server": server_sections,
        "cluster": cluster_sections,
        "request": request_section,
        "valkey": valkey_sections,
        "async": async_section,
        "connections": connections_section,
    }
    for number, (name, section) in enumerate(sections.items()):
        if args.only in (None, name):
            if args.only is None and number:
                print()
            section(args)


if __name__ == "__main__":
    main()
