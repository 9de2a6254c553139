"""What the instrumented client costs, against plain redis-py measured in the same run.

1. Client CPU added per command: both clients on an in-memory redis-py connection (no
   socket), in alternating rounds; the minimum of many rounds is the figure.
2. The ratio over loopback, on a real redis-server: GET, and a pipeline of 100 SET.
3. The time of one ``/metrics`` scrape with 10 prefixes x 50 commands.

Run from the project root: ``python benchmarks/overhead.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from typing import Any

import prometheus_client
import redis
from flask import Flask
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_redis import Redis  # noqa: E402
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
    """Run every case once per round, alternating; the minimum of each."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            times[name].append(case())
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
    memory = lambda: redis.ConnectionPool(connection_class=MemoryConnection)  # noqa: E731
    app, clients = app_with({
        "PLAIN": {"CONNECTION_POOL": memory(), "METRICS": False},
        "METRICS": {"CONNECTION_POOL": memory(), "METRICS_REGISTRY": CollectorRegistry()},
    })  # fmt: skip
    plain, instrumented = clients["PLAIN"], clients["METRICS"]
    n = 2000
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
        "metrics, outside a request": timed_loop(lambda: get(instrumented), n),
        "plain, in a request": in_request(app, plain, n, get),
        "metrics, in a request": in_request(app, instrumented, n, get),
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
    return list(best(rounds, {
        "GET plain": in_request(app, clients["PLAIN"], 500, get),
        "GET metrics": in_request(app, clients["METRICS"], 500, get),
        "pipeline of 100 SET plain": in_request(app, clients["PLAIN"], 20, pipeline_of_100),
        "pipeline of 100 SET metrics": in_request(app, clients["METRICS"], 20, pipeline_of_100),
    }).items())  # fmt: skip


def scrape(rounds: int) -> float:
    registry = CollectorRegistry()
    metrics = metrics_for(registry)
    commands = sorted(COMMANDS)[:50]
    for index in range(10):
        observe = metrics.for_prefix(f"PREFIX{index}").observe
        for name in commands:
            observe((name, "key"), 0.0003, None, None, None)
            observe((name, "key"), 0.0003, None, ValueError(), None)
    times = []
    for _ in range(rounds):
        start = perf_counter()
        generate_latest(registry)
        times.append(perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="alternating rounds per case")
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, redis-py {redis.__version__},"
          f" prometheus-client {getattr(prometheus_client, '__version__', '')}".rstrip(", "))  # fmt: skip
    print(f"{platform.machine()}, {platform.processor() or 'unknown processor'}; rounds: {args.rounds}\n")

    cpu = dict(cpu_per_command(args.rounds))
    print("1. Client CPU per GET, in-memory connection (minimum of the rounds)")
    for name, seconds in cpu.items():
        print(f"   {name:34} {seconds * 1e6:8.2f} us")
    for where in ("outside a request", "in a request"):
        added = cpu[f"metrics, {where}"] - cpu[f"plain, {where}"]
        print(f"   added by metrics, {where:17} {added * 1e6:8.2f} us"
              f"  ({added / cpu[f'plain, {where}']:.1%} of plain redis-py's GET)")  # fmt: skip

    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder)).start()
        try:
            wire = dict(loopback(max(5, args.rounds // 3), server))
        finally:
            server.stop()
    print("\n2. Loopback, real redis-server (minimum of the rounds)")
    for case in ("GET", "pipeline of 100 SET"):
        plain, metrics = wire[f"{case} plain"], wire[f"{case} metrics"]
        print(f"   {case:20} plain {plain * 1e6:8.1f} us  metrics {metrics * 1e6:8.1f} us"
              f"  ratio {metrics / plain:.3f}")  # fmt: skip

    print("\n3. One /metrics scrape, 10 prefixes x 50 commands")
    print(f"   generate_latest {scrape(args.rounds) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
