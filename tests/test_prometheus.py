"""Every PromQL query of ``examples/prometheus/queries.yml``, run by a real Prometheus.

The showcase (``examples/comments.py``) runs under gunicorn with several sync workers in
multiprocess mode, on the suite's redis-server, with the pages of
:mod:`tests.incident_pages` that make Redis hurt (an exhausted pool, a wait for a
connection, killed connections and a retry, a 100 kB value, a client-side cache on a Redis
7.4+ server when there is one); a real Prometheus scrapes its ``/metrics`` every second.
The module sends known traffic (the front page, a comment, the tour with its failing
command, the stats, each incident page) in rounds, then asks Prometheus's HTTP API for each query of
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

from . import incident_pages as incident
from .gunicorn_server import Gunicorn, get, start_gunicorn
from .servers import (
    ClientCacheServer,
    RedisServer,
    ServerUnavailable,
    client_cache_binary,
    free_port,
)
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


def _cache_unavailable() -> str | None:
    """Why the client-side cache cannot be tested here, ``None`` if it can."""
    try:
        import redis.cache  # noqa: F401  # redis-py 5.1 and later
    except ImportError:
        return "redis-py caches on the client from 5.1 on"
    try:
        client_cache_binary()
    except ServerUnavailable as error:
        return str(error)
    return None


#: Why the client-side cache's page and queries are left out, if they are.
CACHE_UNAVAILABLE = _cache_unavailable()
CACHE_QUERIES = {"client_cache_hit_ratio", "client_cache_evictions_rate", "client_cache_entries"}

PAGES = (
    Page("GET", "/", "comments.index", 200),
    Page("POST", "/", "comments.add_comment", 303),
    Page("GET", "/tour", "comments.tour", 200),
    Page("GET", "/stats", "comments.stats", 200),
    Page("GET", "/incident/exhausted", "incident.exhausted", 200),
    Page("GET", "/incident/wait", "incident.wait", 200),
    Page("GET", "/incident/bulk", "incident.bulk", 200),
    *([] if CACHE_UNAVAILABLE else [Page("GET", "/incident/cached", "incident.cached", 200)]),
)
#: The pages sent one at a time, after the others of the round: the operator of
#: ``/incident/killed`` finds the BLPOP to kill by the client's name.
ONE_AT_A_TIME = (Page("GET", "/incident/killed", "incident.killed", 200),)
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
    # A WATCH holds the only connection: a GET refused, then sent again.
    "incident.exhausted": {"tight": {"WATCH": 1, "GET": 2}},
    "incident.wait": {"queue": {"WATCH": 1, "GET": 1}},
    # The BLPOP killed and retried is one command; so is the PING on a killed connection.
    "incident.killed": {"retry": {"BLPOP": 1, "PING": 1}},
    "incident.bulk": {"bulk": {"SET": 1, "GET": 1, "EVALSHA": 1}},
    **({} if CACHE_UNAVAILABLE else {"incident.cached": {"cached": {"MSET": 1, "GET": 4}}}),
}
#: The commands of the above that a view's plain thread sends (no copy of its context):
#: the WATCH that holds the connection, the BLPOP that the operator kills.
OUTSIDE = {("incident.wait", "queue"): 1, ("incident.killed", "retry"): 1}
#: The round trips of each endpoint, by prefix: a pipeline or a transaction is one.
ROUND_TRIPS: dict[str, dict[str, set[str]]] = {
    "comments.index": {"cache": {"INCRBY"}, "redis": {"LRANGE"}},
    "comments.add_comment": {"redis": {"LPUSH"}},
    "comments.tour": {"redis": {"PIPELINE", "GET", "MULTI", "LPUSH"}, "cache": {"SET"}},
    "comments.stats": {"redis": {"LLEN"}, "cache": {"GET"}},
    **{
        endpoint: {prefix: set(counts) for prefix, counts in commands.items()}
        for endpoint, commands in COMMANDS.items() if endpoint.startswith("incident.")
    },
}  # fmt: skip
REFUSED = incident.REFUSED
#: The failed commands of one request of each page that has one: (prefix, command, error,
#: code). The tour's LPUSH on a string, the refused checkout, the EVALSHA of no script.
ERRORS = {
    ("redis", "LPUSH", "ResponseError", "WRONGTYPE"),
    ("tight", "GET", REFUSED, "none"),
    ("bulk", "EVALSHA", "NoScriptError", "NOSCRIPT"),
}
SHOWCASE_PREFIXES = {"redis", "cache"}
INCIDENT_PREFIXES = set(incident.PREFIXES) | (
    set() if CACHE_UNAVAILABLE else {incident.CACHED_PREFIX}
)
PREFIXES = SHOWCASE_PREFIXES | INCIDENT_PREFIXES
ALL_PAGES = PAGES + ONE_AT_A_TIME
#: The requests of each page in the window of the queries: every round but the first.
IN_WINDOW = (ROUNDS - 1) * PER_ROUND
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


def _every_prefix_p99(samples: list[Sample], unit: float) -> None:
    values = by(samples, "prefix")
    assert set(values) == {(prefix,) for prefix in PREFIXES}
    assert all(0 < value <= LARGEST_BUCKET for value in values.values()), values


def _every_round_trip_p99(samples: list[Sample], unit: float) -> None:
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


def _every_command_sent(samples: list[Sample], unit: float) -> None:
    values = by(samples, "prefix", "command")
    sent = _sent_per_page_set()
    # Pipelines and transactions are counted by their commands, never as PIPELINE or MULTI.
    assert set(values) == set(sent)
    # Every page is requested as often, and every series starts from the same whole first
    # round (see scraped): the rates are in the proportions of the pages' commands.
    unit = values["redis", "LRANGE"] / sent["redis", "LRANGE"]
    assert unit > 0
    assert values == pytest.approx({key: count * unit for key, count in sent.items()}, rel=1e-9)


def _errors_share(samples: list[Sample], unit: float) -> None:
    # Only the prefixes with a failing command have errors to divide.
    values = by(samples, "prefix")
    assert set(values) == {(prefix,) for prefix, *_ in ERRORS}
    # One failure per request of its page, over the prefix's commands of all pages, which
    # are requested as often: exact, as the rates are in proportion (see above).
    sent = _sent_per_page_set()
    for prefix, *_ in ERRORS:
        commands = sum(count for (other, _), count in sent.items() if other == prefix)
        assert values[prefix,] == pytest.approx(1 / commands, rel=1e-9), prefix


def _every_failed_command(samples: list[Sample], unit: float) -> None:
    values = by(samples, "prefix", "command", "error")
    assert values == pytest.approx({error[:3]: unit for error in ERRORS}, rel=1e-9)


def _every_error_code(samples: list[Sample], unit: float) -> None:
    # WRONGTYPE and NOSCRIPT, the server's; none for the refused checkout, no reply.
    values = by(samples, "prefix", "error", "code")
    expected = {(prefix, error, code): unit for prefix, _, error, code in ERRORS}
    assert values == pytest.approx(expected, rel=1e-9)


def _time_per_request(samples: list[Sample], unit: float) -> None:
    values = by(samples, "endpoint", "prefix")
    assert set(values) == USED
    assert all(0 < value < HTTP_TIMEOUT for value in values.values()), values


def _time_per_second(samples: list[Sample], unit: float) -> None:
    values = by(samples, "endpoint", "prefix")
    assert set(values) == USED
    assert all(value > 0 for value in values.values()), values


def _exact_commands_per_request(samples: list[Sample], unit: float) -> None:
    # Each request of an endpoint sends the same commands: the ratio of the rates of the
    # histogram's _sum and _count, scraped together, is exact.
    # The commands of a plain thread that a view starts are no part of its request.
    values = by(samples, "endpoint", "prefix")
    expected = {
        (endpoint, prefix): float(sum(counts.values()) - OUTSIDE.get((endpoint, prefix), 0))
        for endpoint, commands in COMMANDS.items() for prefix, counts in commands.items()
    }  # fmt: skip
    assert values == pytest.approx(expected, rel=1e-9)


def _share_of_request_time(samples: list[Sample], unit: float) -> None:
    values = by(samples, "endpoint", "prefix")
    assert set(values) == USED
    assert all(value > 0 for value in values.values()), values
    # A request's round trips are part of its time, one after the other: the shares of an
    # endpoint's prefixes add up to 1 at most.
    for endpoint in COMMANDS:
        total = sum(value for (other, _prefix), value in values.items() if other == endpoint)
        assert total <= 1, (endpoint, values)


def _idle_connections_of_every_worker(samples: list[Sample], unit: float) -> None:
    values = by(samples, "prefix", "state")
    assert set(values) == {(prefix, state) for prefix in PREFIXES for state in ("in_use", "idle")}
    for prefix in PREFIXES:
        # Between requests a sync worker holds one idle connection per prefix it used;
        # every worker served pages of the showcase's prefixes, some worker each page of
        # the incidents (/incident/killed ends with a new connection of its own).
        assert values[prefix, "in_use"] == 0
        if prefix in SHOWCASE_PREFIXES:
            assert values[prefix, "idle"] == WORKERS
        else:
            assert 1 <= values[prefix, "idle"] <= WORKERS, prefix


def _pools_idle(samples: list[Sample], unit: float) -> None:
    values = by(samples, "prefix")
    assert set(values) == {(prefix,) for prefix in PREFIXES}
    assert all(0 <= value <= 1 for value in values.values()), values
    # No request runs once the traffic is over: no connection is in use in any pool.
    assert set(values.values()) == {0}


def _only(values: dict[tuple[str, ...], float], expected: dict[tuple[str, ...], float]) -> None:
    """``values`` are ``expected``'s, and 0 for the other keys."""
    assert set(expected) <= set(values), (expected, values)
    others = {key: value for key, value in values.items() if key not in expected}
    assert set(others.values()) <= {0}, others
    assert {key: values[key] for key in expected} == pytest.approx(expected, rel=1e-9)


def _every_prefix(samples: list[Sample]) -> dict[tuple[str, ...], float]:
    # Every prefix has the series from its first connection on, at 0 until it counts.
    values = by(samples, "prefix")
    assert set(values) == {(prefix,) for prefix in PREFIXES}
    return values


def _the_queue_waits(samples: list[Sample], unit: float) -> None:
    # One wait per request of /incident/wait; a checkout that finds a connection is none.
    _only(_every_prefix(samples), {("queue",): unit})


def _the_queue_wait_p99(samples: list[Sample], unit: float) -> None:
    # The wait lasts the HOLD seconds (0.2 s) of the thread that holds the connection:
    # the bucket up to 0.25 s (or the next one, on a busy machine). A prefix that never
    # waited has no quantile: NaN, 0/0.
    values = _every_prefix(samples)
    assert incident.HOLD * 0.5 < values["queue",] <= 0.5, values
    assert all(math.isnan(value) for key, value in values.items() if key != ("queue",)), values


def _the_tight_pool_refuses(samples: list[Sample], unit: float) -> None:
    _only(_every_prefix(samples), {("tight",): unit})


#: The connections a prefix may open in the window beside its pages' own: each worker's
#: first of the prefix, if it served none of its pages in the first round.
FIRST_CONNECTIONS = WORKERS / IN_WINDOW


def _connections_opened(samples: list[Sample], unit: float) -> None:
    # /incident/killed opens two a request: after the killed BLPOP, and after the killed
    # idle connection. The others keep theirs.
    values = _every_prefix(samples)
    assert 2 * unit * (1 - 1e-9) <= values["retry",] <= (2 + FIRST_CONNECTIONS) * unit * 1.000001
    for key, value in values.items():
        if key != ("retry",):
            assert 0 <= value <= FIRST_CONNECTIONS * unit * 1.000001, (key, values)


def _connection_create_p99(samples: list[Sample], unit: float) -> None:
    # On loopback a connection opens well under the largest bucket; a prefix that opened
    # none in the window has NaN.
    values = _every_prefix(samples)
    assert 0 < values["retry",] <= LARGEST_BUCKET, values
    assert all(math.isnan(value) or 0 < value <= LARGEST_BUCKET for value in values.values())


def _connections_per_command(samples: list[Sample], unit: float) -> None:
    # retry: 2 connections for its 2 commands a request, BLPOP and PING.
    values = _every_prefix(samples)
    sent = _sent_per_page_set()
    for (prefix,), value in values.items():
        commands = sum(count for (other, _), count in sent.items() if other == prefix)
        opened = 2 if prefix == "retry" else 0
        low, high = opened / commands, (opened + FIRST_CONNECTIONS) / commands
        assert low * (1 - 1e-9) <= value <= high * 1.000001, (prefix, values)


def _killed_connections_closed(samples: list[Sample], unit: float) -> None:
    # The two that the operator killed a request, found closed by the server; nothing
    # else closed a connection: no timeout, no error, no reset.
    values = by(samples, "prefix", "reason")
    reasons = ("closed", "timeout", "connection_error", "error")
    assert set(values) == {(prefix, reason) for prefix in PREFIXES for reason in reasons}
    _only(values, {("retry", "connection_error"): 2 * unit})


def _the_killed_blpop_retried(samples: list[Sample], unit: float) -> None:
    # One retry a request: the killed BLPOP, sent again; the PING's connection was found
    # dead at checkout and replaced before the command, no retry.
    assert by(samples, "prefix", "command") == pytest.approx({("retry", "BLPOP"): unit}, rel=1e-9)


def _bytes_on_the_wire(samples: list[Sample], unit: float) -> None:
    values = by(samples, "prefix", "direction")
    assert set(values) == {(prefix, way) for prefix in PREFIXES for way in ("sent", "received")}
    # The 100 kB value, sent by SET and received by GET, with a few bytes of commands and
    # framing; the bytes are read once a second, so the window may hold some of the
    # first round's too: up to a request more of each.
    for direction in ("sent", "received"):
        per_request = values["bulk", direction] / unit
        assert incident.BULK_SIZE <= per_request <= 2 * incident.BULK_SIZE, (direction, values)
    # A client-side cache's connections too (proxies of the connections they wrap).
    for (prefix, direction), value in values.items():
        if prefix != incident.CACHED_PREFIX or not CACHE_UNAVAILABLE:
            assert value > 0, (prefix, direction, values)


def _half_of_the_reads_hit(samples: list[Sample], unit: float) -> None:
    # 4 GETs a request: the first key's first misses, its 2 others hit; the second misses.
    assert by(samples, "prefix") == pytest.approx({(incident.CACHED_PREFIX,): 0.5}, rel=1e-9)


def _each_miss_evicts(samples: list[Sample], unit: float) -> None:
    # The cache holds one entry: each miss evicts the one before, but a process's first;
    # no key the page reads is written meanwhile: nothing is invalidated.
    values = by(samples, "prefix", "reason")
    assert set(values) == {
        (incident.CACHED_PREFIX, "full"),
        (incident.CACHED_PREFIX, "invalidation"),
    }
    assert values[incident.CACHED_PREFIX, "invalidation"] == 0
    # Seen up to 6% over 2 a request: the series starts at the first collection of a
    # process, later than the requests' series, and Prometheus extrapolates its rate over
    # another span.
    evictions = values[incident.CACHED_PREFIX, "full"] / unit
    assert 2 - FIRST_CONNECTIONS - 1e-9 <= evictions <= 2 * (1 + 1 / IN_WINDOW), values


def _one_entry_per_worker(samples: list[Sample], unit: float) -> None:
    values = by(samples, "prefix")
    assert set(values) == {(incident.CACHED_PREFIX,)}
    assert 1 <= values[incident.CACHED_PREFIX,] <= WORKERS, values


#: The key family commands of a request of /incident/bulk: SET and GET of incident:bulk,
#: an EVALSHA without a key.
FAMILY_COMMANDS = {("bulk", incident.BULK_FAMILY): 2, ("bulk", "none"): 1}
#: Their payload: the words sent (SET, the key, the value; GET and the key; EVALSHA, the
#: 40 digits and 0), and the strings received (the value; SET's OK is a bool, no string).
KEY = len("incident:bulk")
FAMILY_BYTES = {
    ("bulk", incident.BULK_FAMILY, "sent"): 3 + KEY + incident.BULK_SIZE + 3 + KEY,
    ("bulk", incident.BULK_FAMILY, "received"): incident.BULK_SIZE,
    ("bulk", "none", "sent"): 7 + 40 + 1,
    ("bulk", "none", "received"): 0,
}


def _family_commands(samples: list[Sample], unit: float) -> None:
    # Only the prefix with key families has a value.
    expected = {key: count * unit for key, count in FAMILY_COMMANDS.items()}
    assert by(samples, "prefix", "family") == pytest.approx(expected, rel=1e-9)


def _family_time_shares(samples: list[Sample], unit: float) -> None:
    values = by(samples, "prefix", "family")
    assert set(values) == set(FAMILY_COMMANDS)
    assert all(0 < value < 1 for value in values.values()), values
    assert sum(values.values()) == pytest.approx(1, rel=1e-9)


def _family_top_time(samples: list[Sample], unit: float) -> None:
    # Two families, fewer than five: both.
    values = by(samples, "prefix", "family")
    assert set(values) == set(FAMILY_COMMANDS)
    assert all(value > 0 for value in values.values()), values


def _family_command_time(samples: list[Sample], unit: float) -> None:
    values = by(samples, "prefix", "family")
    assert set(values) == set(FAMILY_COMMANDS)
    assert all(0 < value < HTTP_TIMEOUT for value in values.values()), values


def _family_bytes(samples: list[Sample], unit: float) -> None:
    # Payload, counted per command: exact.
    expected = {key: count * unit for key, count in FAMILY_BYTES.items()}
    assert by(samples, "prefix", "family", "direction") == pytest.approx(expected, rel=1e-9)


#: The check of each query of queries.yml, by name: a query without one fails. Each gets
#: the query's samples, and the rate of one request of each page (every page is sent as
#: often), as Prometheus computes it over the same window.
EXPECTATIONS: dict[str, Callable[[list[Sample], float], None]] = {
    "command_p99": _every_prefix_p99,
    "command_p99_by_command": _every_round_trip_p99,
    "commands_rate": _every_command_sent,
    "error_ratio": _errors_share,
    "errors_rate": _every_failed_command,
    "request_time_avg": _time_per_request,
    "request_time_rate": _time_per_second,
    "request_commands_avg": _exact_commands_per_request,
    "request_time_share": _share_of_request_time,
    "pool_connections": _idle_connections_of_every_worker,
    "pool_usage": _pools_idle,
    "errors_by_code_rate": _every_error_code,
    "pool_waits_rate": _the_queue_waits,
    "pool_wait_p99": _the_queue_wait_p99,
    "pool_exhausted_rate": _the_tight_pool_refuses,
    "connections_opened_rate": _connections_opened,
    "connection_create_p99": _connection_create_p99,
    "connections_opened_per_command": _connections_per_command,
    "connections_closed_rate": _killed_connections_closed,
    "retries_rate": _the_killed_blpop_retried,
    "network_bytes_rate": _bytes_on_the_wire,
    "client_cache_hit_ratio": _half_of_the_reads_hit,
    "client_cache_evictions_rate": _each_miss_evicts,
    "client_cache_entries": _one_entry_per_worker,
    "key_family_commands_rate": _family_commands,
    "key_family_time_share": _family_time_shares,
    "key_family_top_time": _family_top_time,
    "key_family_command_time_avg": _family_command_time,
    "key_family_bytes_rate": _family_bytes,
}
#: The queries whose prefixes without observations give NaN (a quantile of no values).
NAN_ALLOWED = {"pool_wait_p99", "connection_create_p99"}


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
    """Every page :data:`PER_ROUND` times, concurrently, so that every worker serves some;
    then those of :data:`ONE_AT_A_TIME`, one after the other."""
    requests = [page for page in PAGES for _ in range(PER_ROUND)]
    with ThreadPoolExecutor(max_workers=2 * WORKERS) as pool:
        statuses = list(pool.map(
            lambda item: send(url, item[1], round_number * 100 + item[0]), enumerate(requests)
        ))  # fmt: skip
    assert statuses == [page.status for page in requests]
    for page in ONE_AT_A_TIME:
        for number in range(PER_ROUND):
            assert send(url, page, round_number * 100 + number) == page.status


#: Counters of events that happen once per request of a page, by the labels of the series.
EVENTS = {
    "flask_redis_pool_wait_duration_seconds_count": {"prefix": "queue"},
    "flask_redis_pool_exhausted_total": {"prefix": "tight"},
    "flask_redis_retries_total": {"prefix": "retry", "command": "BLPOP"},
}


def events_counted(values: dict[str, float], rounds: int) -> bool:
    """Whether ``values`` of the :data:`EVENTS` counters have every request of ``rounds``
    rounds: events are added to the metrics a second after the request that made them."""
    return all(values.get(name) == rounds * PER_ROUND for name in EVENTS)


def app_events(gunicorn: Gunicorn) -> dict[str, float]:
    """The :data:`EVENTS` counters, as the app's ``/metrics`` has them now."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = get(gunicorn.url + "/metrics")
    assert status == 200
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
        if sample.name in EVENTS and sample.labels == EVENTS[sample.name]
    }  # fmt: skip


def prometheus_events(server: Prometheus) -> dict[str, float]:
    """The :data:`EVENTS` counters, as Prometheus's latest scrape has them."""
    values = {}
    for name, labels in EVENTS.items():
        matchers = ",".join(f'{label}="{value}"' for label, value in labels.items())
        samples = server.query(f"sum({name}{{{matchers}}})")
        if samples:
            values[name] = samples[0].value
    return values


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
def cache_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClientCacheServer | None]:
    """A Redis 7.4+ server for the client-side cache's page, ``None`` without one."""
    if CACHE_UNAVAILABLE:
        yield None
        return
    server = ClientCacheServer(Path(tmp_path_factory.mktemp("client-cache")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def scraped(
    redis_server: RedisServer,
    cache_server: ClientCacheServer | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scraped]:
    """The showcase and its incident pages under gunicorn, scraped by Prometheus, after
    all of the traffic."""
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("gunicorn does not run on Windows")
    pytest.importorskip("gunicorn")
    pytest.importorskip("prometheus_client")
    _binaries()
    client = redis_server.client()
    client.flushall()  # databases 0 to 2: no key of another test in the pages' way
    client.close()

    directory = tmp_path_factory.mktemp("prometheus")
    cached_url = None if cache_server is None else cache_server.url
    app = (
        f"tests.incident_pages:showcase(redis_url={redis_server.url!r}, cached_url={cached_url!r})"
    )
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
            lambda: counted(app_counts(gunicorn), 1) and events_counted(app_events(gunicorn), 1),
            "every worker to write the first round",
            SETTLE_TIMEOUT,
            interval=0.1,
            detail=lambda: f"the app counts {app_counts(gunicorn)}, {app_events(gunicorn)}",
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
        lambda: (
            counted(prometheus_counts(prometheus), ROUNDS)
            and events_counted(prometheus_events(prometheus), ROUNDS)
            and scrapes(prometheus) >= wanted
        ),
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
    if name in CACHE_QUERIES and CACHE_UNAVAILABLE:
        pytest.skip(f"no client-side cache to query: {CACHE_UNAVAILABLE}")
    samples = scraped.prometheus.query(QUERIES[name], at=scraped.at)
    assert samples, f"{name} gave no series"
    # NaN (0/0, a rate of a single sample) or infinity would be a query that answers
    # nothing useful; every query of the file gives plain numbers, but a quantile of a
    # prefix that observed nothing (NaN), which its check tells apart.
    values = [sample.value for sample in samples]
    assert all(
        math.isfinite(value) or name in NAN_ALLOWED and math.isnan(value) for value in values
    )
    # One request of a page, per second: every page is requested as often.
    rate = 'sum(rate(flask_http_request_duration_seconds_count{endpoint="comments.index"}[5m]))'
    unit = scraped.prometheus.query(rate, at=scraped.at)[0].value
    assert unit > 0
    EXPECTATIONS[name](samples, unit)


def test_the_app_timed_each_request_of_the_traffic_and_no_scrape(scraped: Scraped) -> None:
    # The readiness checks and Prometheus's scrapes request /metrics too: not timed.
    requests = scraped.prometheus.query(
        "sum by (endpoint, method, status) (flask_http_request_duration_seconds_count)",
        at=scraped.at,
    )
    assert by(requests, "endpoint", "method", "status") == {
        (page.endpoint, page.method, str(page.status)): ROUNDS * PER_ROUND for page in ALL_PAGES
    }
