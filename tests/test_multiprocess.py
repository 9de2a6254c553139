"""The metrics of several gunicorn workers, added up through ``PROMETHEUS_MULTIPROC_DIR``.

A real gunicorn (4 sync workers) serves :mod:`tests.gunicorn_app` against the suite's
redis-server; the test sends a known number of requests and checks the exact totals that
``/metrics`` reports for all workers together. Only the gunicorn process gets
``PROMETHEUS_MULTIPROC_DIR``: the pytest process's environment is left alone, but by the
tests of a folder that is wrong, which set it with ``monkeypatch`` in this process.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest
import redis
from flask import Flask

import flask_redis._metrics
import flask_redis._multiprocess
from flask_redis import Redis

from .conftest import close_clients
from .gunicorn_server import HTTP_TIMEOUT, STOP_TIMEOUT, Gunicorn, get, start_gunicorn
from .incident_pages import BULK_FAMILY, BULK_SIZE, HOLD, REFUSED
from .recorded import log_failures_anew, uncountable_pool
from .servers import RedisServer
from .waiting import wait_for

pytest.importorskip("prometheus_client")
pytest.importorskip("gunicorn")
if sys.platform == "win32":  # pragma: no cover
    pytest.skip("gunicorn does not run on Windows", allow_module_level=True)

from prometheus_client import CollectorRegistry, values
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from flask_redis._metrics import metrics_for
from flask_redis._multiprocess import INTERVAL

pytestmark = [pytest.mark.one_kind, pytest.mark.tool]

WORKERS = 4
REQUESTS = 40
#: Requests to ``/background``, each one ECHO from a thread, outside the request.
BACKGROUND = 10
#: What one request to ``/work`` of tests/gunicorn_app.py sends, by command, the three
#: commands of its pipeline included.
WORK_COMMANDS = {"SET": 2, "GET": 1, "INCRBY": 1, "HSET": 1, "LPUSH": 1}
WORK_TOTAL = sum(WORK_COMMANDS.values())

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture()
def gunicorn(
    redis_server: RedisServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Gunicorn]:
    """gunicorn serving tests/gunicorn_app.py with 4 sync workers, stopped afterwards.

    Its workers write their metrics every second, or as often as the test's
    ``write_interval`` mark says; the app is loaded before the fork if the test has a
    ``preload`` argument that says so.
    """
    mark = request.node.get_closest_marker("write_interval")
    interval = mark.args[0] if mark else INTERVAL
    preload = bool(request.node.callspec.params.get("preload")) if hasattr(
        request.node, "callspec") else False  # fmt: skip
    server = start_gunicorn(
        tmp_path,
        "tests.gunicorn_app:app",
        workers=WORKERS,
        env={
            "FLASK_REDIS_TEST_PORT": str(redis_server.port),
            "FLASK_REDIS_TEST_WRITE_INTERVAL": str(interval),
        },
        preload=preload,
    )
    try:
        yield server
    finally:
        server.stop()


def _scrape(server: Gunicorn) -> Samples:
    status, text = get(server.url + "/metrics")
    assert status == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _scrape_when(server: Gunicorn, ready: Callable[[Samples], bool]) -> Samples:
    """The first scrape that is ``ready``, within a few of the workers' writes."""
    deadline = time.monotonic() + 5 * INTERVAL
    while True:
        samples = _scrape(server)
        if ready(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)


@pytest.mark.parametrize("preload", [False, True], ids=["loaded-by-workers", "preloaded"])
def test_workers_metrics_are_added_up(gunicorn: Gunicorn, preload: bool) -> None:
    environ_before = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    # Concurrent requests, each on a connection of its own: the route holds its worker a
    # moment, so the other workers take the rest.
    with ThreadPoolExecutor(max_workers=2 * WORKERS) as pool:
        replies = list(pool.map(lambda _: get(gunicorn.url + "/work"), range(REQUESTS)))
    assert [status for status, _pid in replies] == [200] * REQUESTS
    pids = {int(pid) for _status, pid in replies}
    assert len(pids) >= 2, f"one worker served every request: {pids}"

    # Outside a request, from a thread of the worker.
    background = [get(gunicorn.url + "/background") for _ in range(BACKGROUND)]
    assert [status for status, _pid in background] == [200] * BACKGROUND

    # The app sends a PING when it is loaded: once, in gunicorn's master, if preloaded. A
    # forked worker leaves what its parent tallied to the parent.
    pings = 1 if preload else WORKERS

    # Each process writes what it tallied within a second.
    samples = _scrape_when(gunicorn, lambda samples: (
        _value(samples, "flask_redis_commands_total", prefix="redis", command="ECHO"),
        _value(samples, "flask_redis_commands_total", prefix="redis", command="PING"),
        _value(samples, "flask_redis_request_commands_count", prefix="redis", endpoint="work"),
    ) == (BACKGROUND, pings, REQUESTS))  # fmt: skip

    def value(name: str, **labels: str) -> float | None:
        return _value(samples, name, **labels)  # the latest scrape

    for command, per_request in WORK_COMMANDS.items():
        assert value("flask_redis_commands_total", prefix="redis", command=command) == (
            per_request * REQUESTS
        ), command
    assert value("flask_redis_commands_total", prefix="redis", command="ECHO") == BACKGROUND
    assert value("flask_redis_commands_total", prefix="redis", command="PING") == pings
    # The request that started the thread made no round trip itself: it is not observed.
    assert value("flask_redis_request_commands_sum", prefix="redis", endpoint="background") is None
    # A pipeline is one round trip; its commands are counted, not the pipeline.
    assert value("flask_redis_commands_total", prefix="redis", command="PIPELINE") is None
    duration = "flask_redis_command_duration_seconds"
    assert value(duration + "_count", prefix="redis", command="PIPELINE") == REQUESTS
    assert value(duration + "_bucket", prefix="redis", command="PIPELINE", le="+Inf") == (REQUESTS)
    assert value(duration + "_count", prefix="redis", command="SET") == 2 * REQUESTS
    assert value(duration + "_count", prefix="redis", command="GET") == REQUESTS
    # The pipeline's commands are not round trips of their own.
    assert value(duration + "_count", prefix="redis", command="INCRBY") is None
    assert not [
        key for key, count in samples.items()
        if key[0] == "flask_redis_command_errors_total" and count
    ]  # fmt: skip

    request_commands = "flask_redis_request_commands"
    assert value(request_commands + "_count", prefix="redis", endpoint="work") == REQUESTS
    assert value(request_commands + "_sum", prefix="redis", endpoint="work") == (
        WORK_TOTAL * REQUESTS
    )
    assert value(request_commands + "_bucket", prefix="redis", endpoint="work", le="5.0") == 0
    assert value(request_commands + "_bucket", prefix="redis", endpoint="work", le="10.0") == (
        REQUESTS
    )
    # A request without a round trip is not observed.
    assert value(request_commands + "_count", prefix="redis", endpoint="health") is None
    request_duration = "flask_redis_request_duration_seconds"
    assert value(request_duration + "_count", prefix="redis", endpoint="work") == REQUESTS
    seconds = value(request_duration + "_sum", prefix="redis", endpoint="work")
    assert seconds is not None and 0 < seconds < REQUESTS * HTTP_TIMEOUT

    # livesum: the live workers' gauges added up. A sync worker serves one request at a
    # time (and /background joins its thread), so each worker that used Redis holds one
    # idle connection, none in use. Loaded by the workers, each of them did, for its PING;
    # preloaded, the master holds the connection of its PING, and the workers that served
    # /work or /background one each.
    pool_gauge = "flask_redis_pool_connections"
    served = pids | {int(pid) for _status, pid in background}
    holding = len(served) + 1 if preload else WORKERS
    assert value(pool_gauge, prefix="redis", state="in_use") == 0
    assert value(pool_gauge, prefix="redis", state="idle") == holding

    # A worker that exits: child_exit drops its live gauges, its counters stay.
    gone = min(pids)
    os.kill(gone, signal.SIGTERM)
    livesum_file = gunicorn.multiproc_dir / f"gauge_livesum_{gone}.db"
    wait_for(
        lambda: not livesum_file.exists(),
        f"the live gauges of worker {gone} removed at its exit",
        STOP_TIMEOUT,
        detail=gunicorn.log_text,
    )
    samples = _scrape(gunicorn)
    assert value("flask_redis_commands_total", prefix="redis", command="SET") == 2 * REQUESTS
    assert value(pool_gauge, prefix="redis", state="idle") == holding - 1

    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") == environ_before


#: Requests of each incident page that workers serve at once, and of /incident/killed,
#: which is requested one at a time.
INCIDENTS = 12
KILLED = 4


def test_the_incident_families_are_added_up_exactly(gunicorn: Gunicorn) -> None:
    pages = ["/incident/exhausted", "/incident/wait", "/incident/bulk"] * INCIDENTS
    with ThreadPoolExecutor(max_workers=2 * WORKERS) as pool:
        statuses = list(pool.map(lambda page: get(gunicorn.url + page)[0], pages))
    assert statuses == [200] * len(pages)
    assert [get(gunicorn.url + "/incident/killed")[0] for _ in range(KILLED)] == [200] * KILLED

    samples = _scrape_when(gunicorn, lambda samples: (
        _value(samples, "flask_redis_pool_exhausted_total", prefix="tight"),
        _value(samples, "flask_redis_pool_wait_duration_seconds_count", prefix="queue"),
        _value(samples, "flask_redis_retries_total", prefix="retry", command="BLPOP"),
        _value(samples, "flask_redis_key_family_commands_total", prefix="bulk", family="none"),
    ) == (INCIDENTS, INCIDENTS, KILLED, INCIDENTS))  # fmt: skip

    def value(name: str, **labels: str) -> float | None:
        return _value(samples, name, **labels)

    # Each worker's pools are its own: each request of a page has its event, once.
    assert value("flask_redis_pool_exhausted_total", prefix="tight") == INCIDENTS
    errors = "flask_redis_command_errors_total"
    assert value(errors, prefix="tight", command="GET", error=REFUSED, code="none") == INCIDENTS
    assert value(
        errors, prefix="bulk", command="EVALSHA", error="NoScriptError", code="NOSCRIPT"
    ) == (INCIDENTS)
    for prefix in ("tight", "queue", "retry", "bulk"):
        assert value("flask_redis_pool_exhausted_total", prefix=prefix) == (
            INCIDENTS if prefix == "tight" else 0
        ), prefix
    wait = "flask_redis_pool_wait_duration_seconds"
    assert value(wait + "_count", prefix="queue") == INCIDENTS
    waited = value(wait + "_sum", prefix="queue")
    assert waited is not None and INCIDENTS * HOLD * 0.9 <= waited < INCIDENTS * HTTP_TIMEOUT
    assert value(wait + "_bucket", prefix="queue", le="0.1") == 0
    assert value(wait + "_count", prefix="tight") == 0  # a ConnectionPool refuses, never waits

    # /incident/killed: the blocked BLPOP killed and retried, the idle connection killed
    # and found closed at checkout: two closed by the server, two opened, one retry.
    assert value("flask_redis_retries_total", prefix="retry", command="BLPOP") == KILLED
    closed = "flask_redis_connections_closed_total"
    for prefix in ("redis", "tight", "queue", "retry", "bulk"):
        for reason in ("closed", "timeout", "connection_error", "error"):
            expected = 2 * KILLED if (prefix, reason) == ("retry", "connection_error") else 0
            assert value(closed, prefix=prefix, reason=reason) == expected, (prefix, reason)
    opened = value("flask_redis_connection_create_duration_seconds_count", prefix="retry")
    # Beside those, each worker that served the page opened its first.
    assert opened is not None and 2 * KILLED + 1 <= opened <= 2 * KILLED + WORKERS

    # The 100 kB value: payload counted exactly per key family, and on the wire.
    families = "flask_redis_key_family_commands_total"
    assert value(families, prefix="bulk", family=BULK_FAMILY) == 2 * INCIDENTS
    assert value(families, prefix="bulk", family="none") == INCIDENTS
    key = len("incident:bulk")
    payload = {
        (BULK_FAMILY, "sent"): 3 + key + BULK_SIZE + 3 + key,
        (BULK_FAMILY, "received"): BULK_SIZE,
        ("none", "sent"): len("EVALSHA") + 40 + 1,
        ("none", "received"): 0,
    }
    for (family, direction), size in payload.items():
        assert (
            value(
                "flask_redis_key_family_bytes_total",
                prefix="bulk",
                family=family,
                direction=direction,
            )
            == INCIDENTS * size
        ), (family, direction)
    for direction in ("sent", "received"):
        moved = value("flask_redis_network_bytes_total", prefix="bulk", direction=direction)
        assert moved is not None and moved >= INCIDENTS * BULK_SIZE, direction


@pytest.mark.write_interval(3600)
def test_a_worker_that_exits_writes_what_it_tallied(gunicorn: Gunicorn) -> None:
    with ThreadPoolExecutor(max_workers=2 * WORKERS) as pool:
        replies = list(pool.map(lambda _: get(gunicorn.url + "/work"), range(REQUESTS)))
    assert [status for status, _pid in replies] == [200] * REQUESTS
    gunicorn.stop()  # long before a worker's first write: only the one at exit
    assert gunicorn.process.returncode == 0, gunicorn.log_text()

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(gunicorn.multiproc_dir))  # type: ignore[no-untyped-call]
    samples: Samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in registry.collect() for sample in family.samples
    }  # fmt: skip
    for command, per_request in WORK_COMMANDS.items():
        assert _value(samples, "flask_redis_commands_total", prefix="redis", command=command) == (
            per_request * REQUESTS
        ), command
    assert (
        _value(samples, "flask_redis_request_commands_count", prefix="redis", endpoint="work")
        == REQUESTS
    )


# -- A folder that is wrong ------------------------------------------------------------------

#: The variables that turn prometheus-client's multiprocess mode on, both read by it.
VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")
#: What every error about the folder says it must be.
REQUIREMENT = (
    "with metrics on, it must name an existing folder that every process of the server can"
    " write to, emptied before the server starts (see 'Under Gunicorn' in the metrics"
    " documentation); unset it to keep the metrics in one process"
)


@pytest.fixture()
def multiproc_dir(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], None]:
    """Set one variable of multiprocess mode in this process, and not the other."""

    def set_variable(name: str, value: str) -> None:
        for each in VARIABLES:
            monkeypatch.delenv(each, raising=False)
        monkeypatch.setenv(name, value)

    return set_variable


@pytest.fixture()
def metrics_app(app: Flask, registry: CollectorRegistry) -> Iterator[Flask]:
    """:func:`app` with metrics on, in a registry of its own, served at ``/metrics``."""
    app.config.update(REDIS_METRICS=True, REDIS_METRICS_REGISTRY=registry)
    app.config["REDIS_METRICS_PATH"] = "/metrics"
    yield app
    close_clients(app)


@pytest.mark.parametrize("name", VARIABLES)
@pytest.mark.parametrize("wrong", ["missing", "file", "under-a-file", "empty"])
def test_init_app_refuses_a_folder_that_is_not_one_naming_the_variable(
    metrics_app: Flask,
    multiproc_dir: Callable[[str, str], None],
    tmp_path: Path,
    name: str,
    wrong: str,
) -> None:
    (tmp_path / "file").write_text("not a folder")
    value = {
        "missing": str(tmp_path / "missing"),
        "file": str(tmp_path / "file"),
        "under-a-file": str(tmp_path / "file" / "prometheus"),
        "empty": "",
    }[wrong]
    multiproc_dir(name, value)
    problem = {
        "missing": f"{name} is {value!r}, which does not exist",
        "file": f"{name} is {value!r}, which is not a folder",
        "under-a-file": f"{name} is {value!r}, which does not exist",
        "empty": f"{name} is set, but empty",
    }[wrong]

    with pytest.raises(ValueError) as raised:
        Redis(metrics_app)

    assert str(raised.value) == f"{problem}: {REQUIREMENT}"
    # Raised by flask_redis itself, not from deep in prometheus-client: nothing chained.
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    assert raised.traceback[-1].path == Path(flask_redis._multiprocess.__file__)
    assert "REDIS" not in metrics_app.extensions.get("redis", {})
    assert "flask_redis_metrics" not in metrics_app.view_functions


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root writes to any folder"
)
def test_init_app_refuses_a_folder_it_cannot_write_to(
    metrics_app: Flask, multiproc_dir: Callable[[str, str], None], tmp_path: Path
) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    multiproc_dir("PROMETHEUS_MULTIPROC_DIR", str(folder))
    try:
        with pytest.raises(ValueError) as raised:
            Redis(metrics_app)
    finally:
        folder.chmod(0o755)
    assert str(raised.value) == (
        f"PROMETHEUS_MULTIPROC_DIR is {str(folder)!r}, which this process cannot write to"
        f" (Permission denied): {REQUIREMENT}"
    )


def test_init_app_takes_a_folder_it_can_write_to_and_leaves_nothing_there(
    metrics_app: Flask, multiproc_dir: Callable[[str, str], None], tmp_path: Path
) -> None:
    multiproc_dir("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    Redis(metrics_app)
    assert "REDIS" in metrics_app.extensions["redis"]
    assert list(tmp_path.iterdir()) == []  # the file that proved it writable is gone


def test_a_folder_removed_after_the_start_fails_the_scrape_saying_so(
    metrics_app: Flask, multiproc_dir: Callable[[str, str], None], tmp_path: Path
) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    multiproc_dir("PROMETHEUS_MULTIPROC_DIR", str(folder))
    Redis(metrics_app)
    assert metrics_app.test_client().get("/metrics").status_code == 200
    folder.rmdir()

    with pytest.raises(RuntimeError) as raised:  # a 500, which Flask logs, outside tests
        metrics_app.test_client().get("/metrics")

    assert str(raised.value) == (
        f"flask_redis cannot serve the metrics: PROMETHEUS_MULTIPROC_DIR is {str(folder)!r},"
        f" which does not exist; {REQUIREMENT}"
    )
    assert raised.value.__context__ is None


def test_a_folder_removed_after_the_start_is_logged_by_the_writes_once(
    metrics_app: Flask,
    registry: CollectorRegistry,
    multiproc_dir: Callable[[str, str], None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The files a process has open are still written to when their folder is gone, with
    no error from prometheus-client: its writes say so, once."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    multiproc_dir("PROMETHEUS_MULTIPROC_DIR", str(folder))
    Redis(metrics_app)
    # What the thread of a process in multiprocess mode writes, every second.
    written: weakref.WeakSet[Any] = weakref.WeakSet([metrics_for(registry)])
    monkeypatch.setattr(flask_redis._multiprocess, "_written", written)
    log_failures_anew(monkeypatch)
    with caplog.at_level(logging.ERROR, "flask_redis"):
        flask_redis._multiprocess.write()
        assert caplog.records == []
        folder.rmdir()
        flask_redis._multiprocess.write()
        flask_redis._multiprocess.write()

    assert [record.getMessage() for record in caplog.records] == [
        "flask_redis: the multiprocess file write:"
        f" PROMETHEUS_MULTIPROC_DIR is {str(folder)!r}, which does not exist:"
        f" the metrics of this process are lost; {REQUIREMENT} (pid {os.getpid()})"
    ]
    assert caplog.records[0].exc_info is None


def test_each_part_that_fails_is_logged_once_and_silences_no_other(
    app: Flask,
    registry: CollectorRegistry,
    redis_server: RedisServer,
    multiproc_dir: Callable[[str, str], None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An observer that raises, a pool that cannot be counted, a file that cannot be
    written: each is logged the first time, naming what failed, and the command goes on."""
    folder = tmp_path / "prometheus"
    folder.mkdir()
    multiproc_dir("PROMETHEUS_MULTIPROC_DIR", str(folder))
    # This process writes its metrics to files, as a worker of a multiprocess server does.
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())  # type: ignore[no-untyped-call]
    # Where the durations are written: a folder, which no write can open as a file.
    obstacle = folder / f"histogram_{os.getpid()}.db"
    obstacle.mkdir()
    # The writes of this test's metrics, by this test or by the thread that writes them.
    monkeypatch.setattr(flask_redis._multiprocess, "_written", weakref.WeakSet())
    log_failures_anew(monkeypatch)
    observe = flask_redis._metrics.PrefixMetrics.observe

    def observe_then_fail(self: Any, *args: Any) -> None:
        observe(self, *args)
        raise RuntimeError("observer bug")

    monkeypatch.setattr(flask_redis._metrics.PrefixMetrics, "observe", observe_then_fail)
    pool = uncountable_pool(redis.ConnectionPool, host="127.0.0.1", port=redis_server.port)
    app.config.update(REDIS_CONNECTION_POOL=pool, REDIS_METRICS_REGISTRY=registry)
    app.config.pop("REDIS_HOST"), app.config.pop("REDIS_PORT")
    ext = Redis(app)
    assert metrics_for(registry).multiprocess
    with caplog.at_level(logging.ERROR, "flask_redis"):
        assert ext.set("k", "v") is True  # the observer fails
        assert ext.get("k") == b"v"
        flask_redis._multiprocess.write()  # the file write fails
        obstacle.rmdir()
        pool.broken = True
        flask_redis._multiprocess.write()  # the write works, the pools cannot be read
        pool.broken = False  # redis-py itself reads what the gauges do
        assert ext.get("k") == b"v"
        pool.broken = True
        flask_redis._multiprocess.write()  # fails again, as the observer did: logged already
    pool.broken = False

    logged = {record.getMessage(): record.exc_info for record in caplog.records}
    assert len(caplog.records) == 3
    pid = os.getpid()
    assert {message: info and info[0] for message, info in logged.items()} == {
        "flask_redis: the observer test_each_part_that_fails_is_logged_once_and_silences_no"
        "_other.<locals>.observe_then_fail of prefix 'redis' failed; the Redis command it"
        " observed did not": RuntimeError,
        "flask_redis: the multiprocess file write: writing the metrics of this process to"
        f" PROMETHEUS_MULTIPROC_DIR failed (pid {pid})": IsADirectoryError,
        "flask_redis: reading the connection pools of prefix 'redis' for the pool gauges"
        " failed; the metrics are served with the gauges' last values": RuntimeError,
    }
