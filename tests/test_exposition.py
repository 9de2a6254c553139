"""The ``/metrics`` view: flask_redis's metrics written by :func:`render`, exactly what
prometheus-client writes, and the rest of the registry alongside (real server)."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from collections.abc import Iterator
from types import ModuleType

import pytest
from flask import Flask
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client import metrics as client_metrics
from prometheus_client.parser import text_string_to_metric_families

from flask_redis import Redis
from flask_redis._exposition import render
from flask_redis._metrics import metrics_for

from .servers import RedisServer

Families = dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]]


def parsed(text: str) -> Families:
    """Each family of ``text``: its type, help and samples, labels sorted."""
    return {
        family.name: (family.type, family.documentation, {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for sample in family.samples
        })
        for family in text_string_to_metric_families(text)
    }  # fmt: skip


@pytest.fixture(autouse=True)
def single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


@pytest.fixture()
def served(
    app: Flask, registry: CollectorRegistry, redis_server: RedisServer, client_module: ModuleType
) -> Flask:
    """:func:`app` serving the metrics of ``REDIS`` and ``CACHE`` at ``/metrics``."""
    app.config.update(
        REDIS_METRICS_REGISTRY=registry, REDIS_METRICS_PATH="/metrics",
        CACHE_HOST="127.0.0.1", CACHE_PORT=redis_server.port, CACHE_DB=1,
        CACHE_METRICS_REGISTRY=registry,
    )  # fmt: skip
    ext, cache = Redis(app), Redis(app, "CACHE")

    # Every kind of sample: commands, pipelines, errors, awkward endpoint names, pools.
    def work() -> str:
        ext.set("s", "x")
        ext.pipeline().get("s").lpush("s", 1).execute(raise_on_error=False)
        with pytest.raises(client_module.ResponseError):
            ext.execute_command("NOSUCHCMD")
        cache.get("s")
        return ""

    endpoints = ("work", 'quote"and\\backslash', "new\nline")
    for number, endpoint in enumerate(endpoints):
        app.add_url_rule(f"/{number}", endpoint, work)
    for number in range(len(endpoints)):
        assert app.test_client().get(f"/{number}").status_code == 200
    ext.incr("done outside a request")
    return app


def comments(text: str) -> list[str]:
    """The ``# HELP`` and ``# TYPE`` lines of ``text``, in order."""
    return [line for line in text.splitlines() if line.startswith("#")]


def scrape(app: Flask) -> str:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    return response.get_data(as_text=True)


@pytest.fixture(params=[True, False], ids=["created", "no-created"])
def created_series(request: pytest.FixtureRequest) -> Iterator[bool]:
    """With and without the ``_created`` series (prometheus-client's global setting)."""
    before = client_metrics._use_created
    client_metrics._use_created = request.param
    yield request.param
    client_metrics._use_created = before


def test_render_writes_what_prometheus_client_writes(
    served: Flask, registry: CollectorRegistry, created_series: bool
) -> None:
    metrics = metrics_for(registry)
    ours, theirs = render(metrics), generate_latest(registry).decode()
    assert parsed(ours) == parsed(theirs)
    # The same lines, in the same families: only the order of labels within a line may
    # differ (prometheus-client sorts them since 0.22; render() keeps their declared order).
    assert comments(ours) == comments(theirs)
    assert len(ours.splitlines()) == len(theirs.splitlines())
    assert ("_created{" in ours) is created_series
    endpoints = {
        dict(labels).get("endpoint")
        for _type, _help, samples in parsed(ours).values()
        for _name, labels in samples
    }
    assert {'quote"and\\backslash', "new\nline", "work"} <= endpoints


def test_render_writes_families_without_children_as_prometheus_client_does(
    app: Flask, registry: CollectorRegistry, created_series: bool
) -> None:
    app.config["REDIS_METRICS_REGISTRY"] = registry
    Redis(app).ping()  # outside a request: no errors, no request figures, no pool sample
    ours, theirs = render(metrics_for(registry)), generate_latest(registry).decode()
    assert (comments(ours), parsed(ours)) == (comments(theirs), parsed(theirs))
    assert len(ours.splitlines()) == len(theirs.splitlines())


def test_the_view_serves_each_family_once_with_the_rest_of_the_registry(
    served: Flask, registry: CollectorRegistry
) -> None:
    Counter("app_orders", "Orders placed.", registry=registry).inc(3)
    text = scrape(served)
    families = parsed(text)
    assert families["app_orders"][2][("app_orders_total", ())] == 3
    assert parsed(generate_latest(registry).decode()) == families
    for family in ("flask_redis_commands_total", "flask_redis_command_duration_seconds"):
        assert text.count(f"# TYPE {family} ") == 1


def test_the_view_counts_what_was_done_outside_requests(
    served: Flask, registry: CollectorRegistry
) -> None:
    samples = parsed(scrape(served))["flask_redis_commands"][2]
    assert (
        samples[("flask_redis_commands_total", (("command", "INCRBY"), ("prefix", "redis")))] == 1
    )
    assert samples[("flask_redis_commands_total", (("command", "GET"), ("prefix", "cache")))] == 3


def test_the_view_compresses_for_a_client_that_accepts_gzip(served: Flask) -> None:
    plain = served.test_client().get("/metrics")
    packed = served.test_client().get("/metrics", headers={"Accept-Encoding": "gzip, deflate"})
    assert plain.content_encoding is None
    assert packed.content_encoding == "gzip"
    assert "Accept-Encoding" in plain.vary and "Accept-Encoding" in packed.vary
    assert len(packed.get_data()) * 5 < len(plain.get_data())
    # The same values: a scrape is not counted as a request of the app.
    assert parsed(gzip.decompress(packed.get_data()).decode()) == parsed(plain.get_data(True))


def test_collecting_while_the_view_writes_apart_yields_nothing_of_ours(
    served: Flask, registry: CollectorRegistry
) -> None:
    metrics = metrics_for(registry)
    with metrics.written_apart():
        assert b"flask_redis" not in generate_latest(registry)
    assert b"flask_redis_commands_total" in generate_latest(registry)


def test_without_metrics_path_there_is_no_metrics_route(
    app: Flask, registry: CollectorRegistry
) -> None:
    app.config["REDIS_METRICS_REGISTRY"] = registry
    Redis(app).ping()
    assert app.test_client().get("/metrics").status_code == 404


def test_promtool_finds_no_problem_in_the_served_metrics(served: Flask) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool is not on PATH (Debian: apt install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    text = scrape(served).encode()
    for name in ("commands_total", "command_errors_total", "command_duration_seconds",
                 "request_commands", "request_duration_seconds", "pool_connections",
                 "pool_usage_ratio"):  # fmt: skip
        assert f"# TYPE flask_redis_{name} ".encode() in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=60
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
