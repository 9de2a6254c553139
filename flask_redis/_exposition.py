"""The ``/metrics`` view: the Prometheus text format, flask_redis's own metrics written fast.

prometheus-client's :func:`~prometheus_client.generate_latest` builds a sample object per
line and checks and escapes every label on the way: some 20 us a line on a small machine,
and a histogram child is 19 lines. :func:`render` writes the same text from the metric
values directly; the rest of the registry is still written by prometheus-client.

:func:`render` reads attributes that prometheus-client keeps private (the children of a
metric, their values, the ``_created`` setting). They are the same from 0.17 to 0.26; the
tests compare its text with prometheus-client's on the oldest and newest releases.
"""

from __future__ import annotations

import gzip
from typing import Any, Callable

from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import metrics as _client_metrics
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

from ._metrics import Metrics, metrics_for
from ._multiprocess import REQUIREMENT, folder_problem, folder_setting, write
from ._tallies import METRICS_ENDPOINT

#: How prometheus-client writes a bucket bound (``5e-05``, ``+Inf``); untyped there.
_bound_text: Callable[[float], str] = floatToGoString


def serve_metrics(app: Flask, path: str, registry: CollectorRegistry | None = None) -> None:
    """Serve the metrics of ``registry`` (default: prometheus-client's) at ``path`` of
    ``app``, once per app.

    With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn and other pre-fork servers), the
    metrics of all worker processes are served instead, read from that folder.
    """
    if METRICS_ENDPOINT in app.view_functions:
        return
    source = REGISTRY if registry is None else registry
    metrics = metrics_for(source)

    def view() -> Response:
        response = Response(text_of(source, metrics), content_type=CONTENT_TYPE_LATEST)
        response.vary.add("Accept-Encoding")
        # The quality of gzip, 0 if not accepted (indexed: Werkzeug 2's quality() is untyped).
        if request.accept_encodings["gzip"] > 0:  # Prometheus asks: 20 times smaller
            # The fastest level: the text is repetitive enough to shrink as much at it.
            response.set_data(gzip.compress(response.get_data(), compresslevel=1))
            response.content_encoding = "gzip"
        return response

    app.add_url_rule(path, METRICS_ENDPOINT, view)


def text_of(registry: CollectorRegistry, metrics: Metrics) -> bytes:
    """The text format of ``registry``, which holds ``metrics``: those written by
    :func:`render`, the rest by prometheus-client."""
    setting = folder_setting()
    if setting is not None and setting[1]:  # every worker's values, from files
        problem = folder_problem()
        if problem is not None:  # removed after the start: no worker's files to read
            raise RuntimeError(f"flask_redis cannot serve the metrics: {problem}; {REQUIREMENT}")
        write()  # this worker's metrics (key families too), now; the others' within a second
        merged = CollectorRegistry()
        collector: Any = MultiProcessCollector  # untyped in some releases
        collector(merged, path=setting[1])
        return generate_latest(merged)
    with metrics.written_apart():
        return render(metrics).encode() + generate_latest(registry)


def render(metrics: Metrics) -> str:
    """The text format of ``metrics``, as :func:`~prometheus_client.generate_latest`
    writes it (labels in their declared order), pending tallies added first."""
    metrics.add_pending()
    lines: list[str] = []
    for metric in metrics.families:
        _render_family(metric, lines)
    return "".join(lines)


def _render_family(metric: Any, lines: list[str]) -> None:
    name, kind = metric._name, metric._type
    help_text = metric._documentation.replace("\\", r"\\").replace("\n", r"\n")
    exposed = f"{name}_total" if kind == "counter" else name
    lines.append(f"# HELP {exposed} {help_text}\n# TYPE {exposed} {kind}\n")
    with metric._lock:
        children = list(metric._metrics.items())
    created: list[str] = []
    with_created = kind != "gauge" and _client_metrics._use_created
    if kind == "histogram":
        bounds = [_bound_text(bound) for bound in metric._upper_bounds]
    for values, child in children:
        labels = ",".join(
            f'{label}="{_escape(value)}"' for label, value in zip(metric._labelnames, values)
        )
        # Values are read without their locks, as floats: a reference read is atomic.
        if kind == "histogram":
            bucket_line = f"{name}_bucket{{{labels},le="
            cumulative = 0.0
            for bound, bucket in zip(bounds, child._buckets):
                cumulative += bucket._value
                lines.append(f'{bucket_line}"{bound}"}} {cumulative!r}\n')
            lines.append(f"{name}_count{{{labels}}} {cumulative!r}\n")
            lines.append(f"{name}_sum{{{labels}}} {float(child._sum._value)!r}\n")
        else:
            lines.append(f"{exposed}{{{labels}}} {float(child._value._value)!r}\n")
        if with_created:
            created.append(f"{name}_created{{{labels}}} {child._created!r}\n")
    if created:  # prometheus-client writes no such family for a metric without children
        lines.append(f"# HELP {name}_created {help_text}\n# TYPE {name}_created gauge\n")
        lines.extend(created)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
