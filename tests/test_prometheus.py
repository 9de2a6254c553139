"""Every PromQL query of ``examples/prometheus/queries.yml``, run by a real Prometheus.

The showcase (``examples/comments.py``) runs under gunicorn with several sync workers in
multiprocess mode, on the suite's redis-server; a real Prometheus scrapes its ``/metrics``
every second. The module sends known traffic (the front page, a comment, the tour with its
failing command, the stats) in rounds, then asks Prometheus's HTTP API for each query of
the file and checks the answer against what the traffic implies. A query added to the file
is run too, and fails until :data:`EXPECTATIONS` says what it should give.

Without ``prometheus`` and ``promtool`` on ``PATH`` the queries are skipped, unless ``CI``
is set: CI installs them (Debian's package ``prometheus``), so there they must run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode

import pytest

from .gunicorn_server import Gunicorn, get, start_gunicorn
from .servers import RedisServer, free_port
from .waiting import wait_for

pytestmark = [pytest.mark.one_kind, pytest.mark.tool]

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
QUERIES_FILE = EXAMPLES / "prometheus" / "queries.yml"

WORKERS = 2
#: Rounds of traffic, the first before Prometheus starts; each sends every page
#: :data:`PER_ROUND` times, concurrently.
ROUNDS = 4
PER_ROUND = 2
ROUND_PAUSE = 0.5
SCRAPE_INTERVAL = "1s"
#: Scrapes of ``up`` to wait for once the traffic has been scraped.
SCRAPES_AFTER = 3
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
SETTLE_TIMEOUT = 30.0
HTTP_TIMEOUT = 10.0
ATTEMPTS = 3
#: What Prometheus logs when its port is taken (it takes seconds more to exit).
LISTEN_ERROR = "Unable to start web listener"
#: The largest finite bucket of the duration histograms (``flask_redis._metrics``).
LARGEST_BUCKET = 2.5

PROMETHEUS_CONFIG = """\
global:
  scrape_interval: {interval}
  scrape_timeout: {interval}
  evaluation_interval: {interval}
scrape_configs:
  - job_name: showcase
    metrics_path: /metrics
    static_configs:
      - targets: ["{target}"]
"""


class Page(NamedTuple):
    """A request of the traffic, the endpoint that serves it and the status it answers."""

    method: str
    path: str
    endpoint: str
    status: int


PAGES = (
    Page("GET", "/", "comments.index", 200),
    Page("POST", "/", "comments.add_comment", 303),
    Page("GET", "/tour", "comments.tour", 200),
    Page("GET", "/stats", "comments.stats", 200),
)
#: The commands one request of each endpoint sends, by prefix and command, those of
#: pipelines and transactions included (see examples/comments.py).
COMMANDS: dict[str, dict[str, dict[str, int]]] = {
    "comments.index": {"cache": {"INCRBY": 1}, "redis": {"LRANGE": 1}},
    "comments.add_comment": {"redis": {"LPUSH": 1}},
    # 8 SETs in a pipeline, 3 GETs and 6 more in a loop, INCRBY and EXPIRE in a
    # transaction, and an LPUSH that fails; the cache keeps the tour's views.
    "comments.tour": {
        "redis": {"SET": 8, "GET": 9, "INCRBY": 1, "EXPIRE": 1, "LPUSH": 1},
        "cache": {"SET": 1},
    },
    "comments.stats": {"redis": {"LLEN": 1}, "cache": {"GET": 1}},
}
#: The round trips of each endpoint, by prefix: a pipeline or a transaction is one.
ROUND_TRIPS: dict[str, dict[str, set[str]]] = {
    "comments.index": {"cache": {"INCRBY"}, "redis": {"LRANGE"}},
    "comments.add_comment": {"redis": {"LPUSH"}},
    "comments.tour": {"redis": {"PIPELINE", "GET", "MULTI", "LPUSH"}, "cache": {"SET"}},
    "comments.stats": {"redis": {"LLEN"}, "cache": {"GET"}},
}
#: The failing command of the tour: (prefix, command, error).
TOUR_ERROR = ("redis", "LPUSH", "ResponseError")
PREFIXES = {"redis", "cache"}
#: (endpoint, prefix) of every request that used the prefix.
USED = {(endpoint, prefix) for endpoint, commands in COMMANDS.items() for prefix in commands}


def _load_queries() -> dict[str, str]:
    """The PromQL of each query of queries.yml, by name."""
    queries = yaml.safe_load(QUERIES_FILE.read_text(encoding="utf-8"))["queries"]
    return {query["name"]: query["expr"] for query in queries}


QUERIES = _load_queries()


# -- What each query must give ----------------------------------------------------------


class Sample(NamedTuple):
    """One series of an instant vector: its labels and its value."""

    labels: dict[str, str]
    value: float


def by(samples: list[Sample], *names: str) -> dict[tuple[str, ...], float]:
    """The values of ``samples`` by their labels ``names``, which must be all they have."""
    values: dict[tuple[str, ...], float] = {}
    for sample in samples:
        assert set(sample.labels) == set(names), sample.labels
        key = tuple(sample.labels[name] for name in names)
        assert key not in values, f"two series for {key}"
        values[key] = sample.value
    return values


def _every_prefix_p99(samples: list[Sample]) -> None:
    values = by(samples, "prefix")
    assert set(values) == {(prefix,) for prefix in PREFIXES}
    assert all(0 < value <= LARGEST_BUCKET for value in values.values()), values


def _every_round_trip_p99(samples: list[Sample]) -> None:
    values = by(samples, "prefix", "command")
    assert set(values) == {
        (prefix, command)
        for trips in ROUND_TRIPS.values() for prefix, commands in trips.items()
        for command in commands
    }  # fmt: skip
    assert all(0 < value <= LARGEST_BUCKET for value in values.values()), values


def _sent_per_page_set() -> dict[tuple[str, str], int]:
    """The commands one request of each page sends, by prefix and command."""
    sent: dict[tuple[str, str], int] = {}
    for commands in COMMANDS.values():
        for prefix, counts in commands.items():
            for command, count in counts.items():
                sent[prefix, command] = sent.get((prefix, command), 0) + count
    return sent


def _every_command_sent(samples: list[Sample]) -> None:
    values = by(samples, "prefix", "command")
    sent = _sent_per_page_set()
    # Pipelines and transactions are counted by their commands, never as PIPELINE or MULTI.
    assert set(values) == set(sent)
    # Every page is requested as often, and every series starts from the same whole first
    # round (see scraped): the rates are in the proportions of the pages' commands.
    unit = values["redis", "LRANGE"] / sent["redis", "LRANGE"]
    assert unit > 0
    assert values == pytest.approx({key: count * unit for key, count in sent.items()}, rel=1e-9)


def _the_tours_errors_share(samples: list[Sample]) -> None:
    # Only the redis prefix has errors: the cache has no error series to divide.
    values = by(samples, "prefix")
    prefix = TOUR_ERROR[0]
    assert set(values) == {(prefix,)}
    # One failure per tour, over the prefix's commands of all pages, which are requested
    # as often as the tour: exact, as the rates are in proportion (see above).
    sent = sum(count for (other, _), count in _sent_per_page_set().items() if other == prefix)
    assert 0 < values[prefix,] <= 1
    assert values[prefix,] == pytest.approx(1 / sent, rel=1e-9)


def _the_tours_errors(samples: list[Sample]) -> None:
    values = by(samples, "prefix", "command", "error")
    assert set(values) == {TOUR_ERROR}
    assert values[TOUR_ERROR] > 0


def _time_per_request(samples: list[Sample]) -> None:
    values = by(samples, "endpoint", "prefix")
    assert set(values) == USED
    assert all(0 < value < HTTP_TIMEOUT for value in values.values()), values


def _time_per_second(samples: list[Sample]) -> None:
    values = by(samples, "endpoint", "prefix")
    assert set(values) == USED
    assert all(value > 0 for value in values.values()), values


def _exact_commands_per_request(samples: list[Sample]) -> None:
    # Each request of an endpoint sends the same commands: the ratio of the rates of the
    # histogram's _sum and _count, scraped together, is exact.
    values = by(samples, "endpoint", "prefix")
    expected = {
        (endpoint, prefix): float(sum(counts.values()))
        for endpoint, commands in COMMANDS.items() for prefix, counts in commands.items()
    }  # fmt: skip
    assert values == pytest.approx(expected, rel=1e-9)


def _share_of_request_time(samples: list[Sample]) -> None:
    values = by(samples, "endpoint", "prefix")
    assert set(values) == USED
    assert all(value > 0 for value in values.values()), values
    # A request's round trips are part of its time, one after the other: the shares of an
    # endpoint's prefixes add up to 1 at most.
    for endpoint in COMMANDS:
        total = sum(value for (other, _prefix), value in values.items() if other == endpoint)
        assert total <= 1, (endpoint, values)


def _idle_connections_of_every_worker(samples: list[Sample]) -> None:
    values = by(samples, "prefix", "state")
    assert set(values) == {(prefix, state) for prefix in PREFIXES for state in ("in_use", "idle")}
    for prefix in PREFIXES:
        # Between requests a sync worker holds one idle connection per prefix it used, and
        # every worker served pages of both prefixes.
        assert values[prefix, "in_use"] == 0
        assert values[prefix, "idle"] == WORKERS


def _pools_idle(samples: list[Sample]) -> None:
    values = by(samples, "prefix")
    assert set(values) == {(prefix,) for prefix in PREFIXES}
    assert all(0 <= value <= 1 for value in values.values()), values
    # No request runs once the traffic is over: no connection is in use in any pool.
    assert set(values.values()) == {0}


#: The check of each query of queries.yml, by name: a query without one fails.
EXPECTATIONS: dict[str, Callable[[list[Sample]], None]] = {
    "command_p99": _every_prefix_p99,
    "command_p99_by_command": _every_round_trip_p99,
    "commands_rate": _every_command_sent,
    "error_ratio": _the_tours_errors_share,
    "errors_rate": _the_tours_errors,
    "request_time_avg": _time_per_request,
    "request_time_rate": _time_per_second,
    "request_commands_avg": _exact_commands_per_request,
    "request_time_share": _share_of_request_time,
    "pool_connections": _idle_connections_of_every_worker,
    "pool_usage": _pools_idle,
}


# -- Prometheus -------------------------------------------------------------------------


@dataclass
class Prometheus:
    """A running Prometheus: its address, process and log."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        """What Prometheus logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """The ``data`` of an answer of the HTTP API, which must be a success without
        warnings."""
        url = f"{self.url}/api/v1/{path}" + (f"?{urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:
                body: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as error:  # a bad query: 400 or 422, with the reason
            body = json.load(error)
            error.close()
        assert body["status"] == "success", body
        assert not body.get("warnings"), body["warnings"]
        data: dict[str, Any] = body["data"]
        return data

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """The instant vector of ``expr``, at ``at`` (a Unix time) or now."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = self.api("query", **params)
        assert data["resultType"] == "vector", data
        return [Sample(series["metric"], float(series["value"][1])) for series in data["result"]]

    def stop(self) -> None:
        """SIGTERM, and SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)


def _binaries() -> tuple[str, str]:
    """``prometheus`` and ``promtool`` from ``PATH``; skip without them, fail under CI."""
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus is None or promtool is None:
        reason = "prometheus or promtool is not on PATH (Debian: apt install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI is set: CI installs them")
        pytest.skip(reason)
    return prometheus, promtool


def start_prometheus(directory: Path, target: str) -> Prometheus:
    """Start Prometheus scraping ``target`` (``host:port``) every second, on a free port
    of 127.0.0.1 with a storage folder in ``directory``; wait until it is ready.

    Its config is checked with ``promtool check config`` first. A port that was free can
    be taken before Prometheus binds it, so one that exits first is tried again.
    """
    prometheus, promtool = _binaries()
    config = directory / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG.format(interval=SCRAPE_INTERVAL, target=target))
    check = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    log = directory / "prometheus.log"
    for attempt in range(ATTEMPTS):
        port = free_port()
        log = directory / f"prometheus-{attempt}.log"
        command = [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / f'data-{attempt}'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, cwd=directory, stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        server = Prometheus(f"http://127.0.0.1:{port}", process, log)
        if _ready(server):
            return server
    pytest.fail(f"Prometheus did not start in {ATTEMPTS} attempts:\n{log.read_text()}")


def _ready(server: Prometheus) -> bool:
    """Whether ``server`` answers ``/-/ready``; ``False`` if it could not listen.

    :raises TimeoutError: it neither answered nor exited within :data:`START_TIMEOUT`.
    """

    def outcome() -> str | None:
        if server.process.poll() is not None or LISTEN_ERROR in server.log_text():
            return "exited"
        try:
            with urllib.request.urlopen(server.url + "/-/ready", timeout=1) as reply:
                if reply.status == 200:
                    return "ready"
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet, or 503 while it starts
        return None

    try:
        found = wait_for(
            outcome, "Prometheus to be ready", START_TIMEOUT, interval=0.1, detail=server.log_text
        )
    except TimeoutError:
        server.stop()
        raise
    if found == "exited":
        server.stop()
    return found == "ready"


def log_tail(server: Prometheus) -> str:
    """The end of what ``server`` logged, for a message."""
    return server.log_text()[-3000:]


# -- The traffic ------------------------------------------------------------------------


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    """Hand a redirect back as the response instead of following it."""

    def http_error_303(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        return fp


_opener = urllib.request.build_opener(_KeepRedirects)


def send(url: str, page: Page, number: int) -> int:
    """Send ``page``'s request to the app at ``url``; its status."""
    data = urlencode({"comment": f"comment {number}"}).encode() if page.method == "POST" else None
    request = urllib.request.Request(url + page.path, data=data, method=page.method)
    with _opener.open(request, timeout=HTTP_TIMEOUT) as response:
        response.read()
        return int(response.status)


def send_round(url: str, round_number: int) -> None:
    """Every page :data:`PER_ROUND` times, concurrently, so that every worker serves some."""
    requests = [page for page in PAGES for _ in range(PER_ROUND)]
    with ThreadPoolExecutor(max_workers=2 * WORKERS) as pool:
        statuses = list(pool.map(
            lambda item: send(url, item[1], round_number * 100 + item[0]), enumerate(requests)
        ))  # fmt: skip
    assert statuses == [page.status for page in requests]


def counted(samples: list[Sample], rounds: int) -> bool:
    """Whether ``samples`` of the number of requests by endpoint and prefix have every
    request of ``rounds`` rounds."""
    return by(samples, "endpoint", "prefix") == dict.fromkeys(USED, rounds * PER_ROUND)


def app_counts(gunicorn: Gunicorn) -> list[Sample]:
    """The requests of each endpoint and prefix, as the app's ``/metrics`` has them now."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = get(gunicorn.url + "/metrics")
    assert status == 200
    return [
        Sample(sample.labels, sample.value)
        for family in text_string_to_metric_families(text) for sample in family.samples
        if sample.name == "flask_redis_request_commands_count"
    ]  # fmt: skip


def prometheus_counts(server: Prometheus) -> list[Sample]:
    """The requests of each endpoint and prefix, as Prometheus's latest scrape has them."""
    return server.query("sum by (endpoint, prefix) (flask_redis_request_commands_count)")


def scrapes(server: Prometheus) -> int:
    """How many times Prometheus has scraped the app in the last 5 minutes."""
    samples = server.query("count_over_time(up[5m])")
    return int(samples[0].value) if samples else 0


@dataclass
class Scraped:
    """Prometheus once it has scraped all the traffic, and when to evaluate the queries."""

    prometheus: Prometheus
    gunicorn: Gunicorn
    at: float


@pytest.fixture(scope="module")
def scraped(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scraped]:
    """The showcase under gunicorn, scraped by Prometheus, after all of the traffic."""
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("gunicorn does not run on Windows")
    pytest.importorskip("gunicorn")
    pytest.importorskip("prometheus_client")
    _binaries()
    client = redis_server.client()
    client.flushall()  # databases 0 and 1: no key of another test in the pages' way
    client.close()

    directory = tmp_path_factory.mktemp("prometheus")
    app = f"comments:create_app(redis_url={redis_server.url!r}, debug=False)"
    gunicorn = start_gunicorn(
        directory, app, workers=WORKERS, ready_path="/metrics", chdir=EXAMPLES
    )
    try:
        # The first round before Prometheus starts, until every worker has written it: the
        # first sample of every series is then that round, whole, and rate() sees all the
        # series grow by the same rounds (else one series could start from half a round,
        # the workers writing their metrics a second apart, and a ratio be off).
        send_round(gunicorn.url, 0)
        wait_for(
            lambda: counted(app_counts(gunicorn), 1),
            "every worker to write the first round",
            SETTLE_TIMEOUT,
            interval=0.1,
            detail=lambda: f"the app counts {app_counts(gunicorn)}",
        )
        prometheus = start_prometheus(directory, gunicorn.url.removeprefix("http://"))
        try:
            yield _send_traffic(gunicorn, prometheus)
        finally:
            prometheus.stop()
    finally:
        gunicorn.stop()


def _send_traffic(gunicorn: Gunicorn, prometheus: Prometheus) -> Scraped:
    """The other rounds, once Prometheus has scraped the first; when it has them all, and
    :data:`SCRAPES_AFTER` scrapes more, the time to evaluate the queries at."""

    def target_up() -> bool:
        targets = prometheus.api("targets")["activeTargets"]
        return [target["health"] for target in targets] == ["up"]

    def wait_on_prometheus(check: Callable[[], bool], what: str) -> None:
        wait_for(check, what, SETTLE_TIMEOUT, interval=0.2, detail=lambda: log_tail(prometheus))

    wait_on_prometheus(target_up, "the app's target to be up")
    wait_on_prometheus(lambda: counted(prometheus_counts(prometheus), 1), "a first scrape")
    for round_number in range(1, ROUNDS):
        time.sleep(ROUND_PAUSE)
        send_round(gunicorn.url, round_number)
    wanted = scrapes(prometheus) + SCRAPES_AFTER
    wait_on_prometheus(
        lambda: counted(prometheus_counts(prometheus), ROUNDS) and scrapes(prometheus) >= wanted,
        f"the traffic scraped, and {SCRAPES_AFTER} scrapes more",
    )
    return Scraped(prometheus, gunicorn, time.time())


# -- The tests --------------------------------------------------------------------------


def test_every_query_of_the_file_has_an_expectation_and_no_other() -> None:
    # Without Prometheus too: a new query fails here until EXPECTATIONS has its check.
    assert QUERIES, f"no query in {QUERIES_FILE}"
    assert sorted(set(QUERIES) - set(EXPECTATIONS)) == [], "queries without an expectation"
    assert sorted(set(EXPECTATIONS) - set(QUERIES)) == [], "expectations of queries gone"


@pytest.mark.parametrize("name", list(QUERIES))
def test_query_gives_what_the_traffic_implies(name: str, scraped: Scraped) -> None:
    if name not in EXPECTATIONS:
        pytest.fail(f"{name} of {QUERIES_FILE.name} has no expectation: add one to EXPECTATIONS")
    samples = scraped.prometheus.query(QUERIES[name], at=scraped.at)
    assert samples, f"{name} gave no series"
    # NaN (0/0, a rate of a single sample) or infinity would be a query that answers
    # nothing useful; every query of the file gives plain numbers.
    assert all(math.isfinite(sample.value) for sample in samples), samples
    EXPECTATIONS[name](samples)


def test_the_app_timed_each_request_of_the_traffic_and_no_scrape(scraped: Scraped) -> None:
    # The readiness checks and Prometheus's scrapes request /metrics too: not timed.
    requests = scraped.prometheus.query(
        "sum by (endpoint, method, status) (flask_http_request_duration_seconds_count)",
        at=scraped.at,
    )
    assert by(requests, "endpoint", "method", "status") == {
        (page.endpoint, page.method, str(page.status)): ROUNDS * PER_ROUND for page in PAGES
    }
