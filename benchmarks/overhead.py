"""What the instrumented client costs, against plain redis-py measured in the same run.

1. Client CPU added per command: both clients on an in-memory redis-py connection (no
   socket), in alternating rounds; the minimum of many rounds is the figure.
2. The ratio over loopback, on a real redis-server: GET, and a pipeline of 100 SET.
3. The time of one ``/metrics`` scrape with 10 prefixes x 50 commands, and the time per
   exposed line of plain prometheus-client counters, for scale.
4. Recording: traced memory over 100,000 recorded calls in one request (the cap holds).
5. The debug toolbar panel: rendering 1000 recorded calls of 100 KB values.
6. With ``--instructions`` (needs valgrind): the instructions added per command, counted
   by callgrind. Unlike times, these counts repeat exactly on a busy machine.

Run from the project root: ``python benchmarks/overhead.py [--rounds N] [--instructions]``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from time import perf_counter
from typing import Any

import redis
from flask import Flask
from flask.signals import request_started
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_redis import Redis, get_recorded_calls  # noqa: E402
from flask_redis.instrument import observe  # noqa: E402
from flask_redis.exposition import serve_metrics  # noqa: E402
from flask_redis.metrics import COMMANDS, DURATION_BUCKETS, metrics_for  # noqa: E402
from tests.servers import RedisServer  # noqa: E402


class MemoryConnection(redis.Connection):
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


def in_request(app: Flask, client: Redis, n: int, work: Callable[[Redis], Any]) -> Callable[[], float]:
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

    def pipeline_of_100(client: Redis) -> Any:
        with client.connection.pipeline(transaction=False) as pipe:
            for i in range(100):
                pipe.set(f"key:{i}", i)
            return pipe.execute()

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
    from flask_redis_panel.panel import render
    from flask_redis_panel._model import Snapshot

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
)


def count(case: str, n: int) -> None:
    """Run ``n`` GETs of ``case`` on an in-memory connection (the child of --instructions)."""
    memory = redis.ConnectionPool(connection_class=MemoryConnection)
    app, clients = app_with({"BENCH": {
        "CONNECTION_POOL": memory, "METRICS": case.startswith(("metrics", "timing")),
        "METRICS_REGISTRY": CollectorRegistry(), "RECORD_CALLS": case.startswith("recording"),
        "RECORD_CALLS_MAX": n,
    }})  # fmt: skip
    client = clients["BENCH"].connection
    if case.startswith("timing only"):  # the floor of the subclass design
        observe(client, lambda *args: None)
    client.get("key")  # the first command connects
    with app.test_request_context():
        if case.endswith("in a request"):
            request_started.send(app)
        for _ in range(n):
            client.get("key")


def instructions(n: int = 2000) -> dict[str, float]:
    """Instructions per GET of each case: callgrind's totals for n and for 0 GETs."""
    totals: dict[str, float] = {}
    for case in COUNT_CASES:
        counts = []
        for calls in (0, n):
            result = subprocess.run(
                ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                 sys.executable, __file__, "--count", case, str(calls)],
                capture_output=True, text=True, check=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict layouts each run
            )  # fmt: skip
            found = re.search(r"Collected : (\d+)", result.stderr)
            assert found, result.stderr
            counts.append(int(found.group(1)))
        totals[case] = (counts[1] - counts[0]) / n
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="alternating rounds per case")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per command with valgrind")
    parser.add_argument("--count", nargs=2, metavar=("CASE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count:
        count(args.count[0], int(args.count[1]))
        return
    print(f"Python {platform.python_version()}, redis-py {version('redis')},"
          f" prometheus-client {version('prometheus-client')}, Flask {version('flask')}")
    print(f"{platform.machine()}, {platform.processor() or 'unknown processor'}; rounds: {args.rounds}\n")

    cpu = dict(cpu_per_command(args.rounds))
    print("1. Client CPU per GET, in-memory connection (minimum of the rounds)")
    for name, seconds in cpu.items():
        print(f"   {name:34} {seconds * 1e6:8.2f} us")
    for case in ("timing only, outside a request", "metrics, outside a request",
                 "metrics, in a request",
                 "recording, in a request", "metrics + recording, in a request"):  # fmt: skip
        base = cpu["plain, outside a request" if "outside" in case else "plain, in a request"]
        added = cpu[case] - base
        print(f"   added: {case:34} {added * 1e6:8.2f} us  ({added / base:.1%} of plain)")

    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder)).start()
        try:
            wire = dict(loopback(args.rounds, server))
        finally:
            server.stop()
    print("\n2. Loopback, real redis-server (minimum of the rounds)")
    for case in ("GET", "pipeline of 100 SET"):
        plain, metrics = wire[f"{case} plain"], wire[f"{case} metrics"]
        print(f"   {case:20} plain {plain * 1e6:8.1f} us  metrics {metrics * 1e6:8.1f} us"
              f"  ratio {metrics / plain:.3f}")  # fmt: skip

    lines, view, packed, generic, per_line = scrape(args.rounds)
    print(f"\n3. One /metrics scrape, 10 prefixes x 50 commands: {lines} lines")
    print(f"   the served view           {view * 1e3:6.1f} ms  ({view / lines * 1e6:.2f} us a line)")
    print(f"   the same, gzipped         {packed * 1e3:6.1f} ms")
    print(f"   generate_latest, for scale {generic * 1e3:6.1f} ms"
          f"  ({generic / lines * 1e6:.2f} us a line; plain counters: {per_line * 1e6:.2f} us)")

    after_10k, after_100k, kept = recording_memory()
    print("\n4. Recording, 100,000 GETs in one request (default cap)")
    print(f"   traced memory after 10,000: {after_10k / 1024:.0f} KiB, after 100,000:"
          f" {after_100k / 1024:.0f} KiB; records kept: {kept}")

    seconds, size = panel_rendering(min(args.rounds, 10))
    print("\n5. Debug toolbar panel, 1000 recorded SETs of 100 KB values")
    print(f"   rendered in {seconds * 1e3:.1f} ms (minimum of the rounds), {size / 1e6:.2f} MB of HTML")

    if args.instructions:
        if not shutil.which("valgrind"):
            sys.exit("--instructions needs valgrind")
        counted = instructions()
        plain = counted["plain"]
        print("\n6. Instructions per GET, in-memory connection (callgrind)")
        for case, value in counted.items():
            print(f"   {case:34} {value:10.0f}  +{(value - plain) / plain:.1%}")


if __name__ == "__main__":
    main()
