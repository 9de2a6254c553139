"""Prometheus metrics per config prefix, fed by the instrumented client.

No round trip calls prometheus-client, nor takes a lock: each is tallied in a record of
its thread and, in a request, added to the thread's figures in the request (commands and
time in Redis), which no other thread writes to (``_tallies`` holds those records).
Nothing is done when a request starts or ends. When the metrics are collected, the
figures of the requests whose contexts have been popped are added up, each request once
whatever threads it handed commands to, and what is new in the records is added to the
metrics. Under a multiprocess server, where another process reads the metrics, a thread
of each process does that every second instead (see ``_multiprocess``).

Nothing kept here keeps an app alive: the figures of a request that has ended let go of
its context, and so of its app, before each full collection of the garbage collector
(see :func:`_let_go_of_ended_requests`), and the pools of an app's clients are
listed through weak references. An app its code drops is collected with its clients,
and what they tallied stays: it is the prefix's.
"""

from __future__ import annotations

import gc
import itertools
import threading
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flask import Flask
from flask.globals import _cv_request  # the request context, if any: a context variable
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ._commands import Command
from ._config import ClientConfig
from ._connection_metrics import ConnectionMetrics
from ._instrument import Observer, report_failure
from ._labels import command_label, error_code
from ._multiprocess import check_folder, write_every_second
from ._pools import PoolLister, read_pools
from ._tallies import (
    BOUNDS,
    COUNT,
    DURATION_BUCKETS,
    FIRST_BUCKET,
    FIRST_COMMANDS_BUCKET,
    FIRST_SECONDS_BUCKET,
    REQUEST_COMMAND_BUCKETS,
    REQUEST_COMMANDS,
    REQUEST_SECONDS,
    REQUESTS_KEY,
    SECONDS,
    Figures,
    Request,
    ThreadRecords,
    tally,
)

#: The current request context, if any: the context variable's ``get``, bound once. Looking
#: ``get`` up on each round trip would cost as much again as calling it.
_request_context = _cv_request.get
_50US, _100US, _250US, _500US, _1MS = DURATION_BUCKETS[:5]


class Metrics(Collector):
    """The metric objects, created once per registry (see :func:`metrics_for`).

    They are registered as one collector, this object, which adds the tallies of round
    trips outside requests to them before they are collected.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        # No reference to the registry is kept: it is the weak key of this object.
        self.duration = Histogram(
            "flask_redis_command_duration_seconds",
            "Wall time of Redis round trips (a pipeline is one), by config prefix and command.",
            ["prefix", "command"], buckets=DURATION_BUCKETS, registry=None,
        )  # fmt: skip
        self.commands = Counter(
            "flask_redis_commands",
            "Redis commands sent, each command of a pipeline counted, by prefix and command.",
            ["prefix", "command"], registry=None,
        )  # fmt: skip
        self.errors = Counter(
            "flask_redis_command_errors",
            "Redis commands that failed, by prefix, command, exception class and the error"
            " prefix of the server's reply (none: no reply).",
            ["prefix", "command", "error", "code"], registry=None,
        )  # fmt: skip
        self.request_commands = Histogram(
            "flask_redis_request_commands",
            "Redis commands per Flask request, by prefix and endpoint.",
            ["prefix", "endpoint"], buckets=REQUEST_COMMAND_BUCKETS, registry=None,
        )  # fmt: skip
        self.request_duration = Histogram(
            "flask_redis_request_duration_seconds",
            "Time spent in Redis per Flask request, by prefix and endpoint.",
            ["prefix", "endpoint"], buckets=DURATION_BUCKETS, registry=None,
        )  # fmt: skip
        self.pool = Gauge(
            "flask_redis_pool_connections",
            "Connections of the client's pool, by prefix and state (in_use, idle).",
            ["prefix", "state"], registry=None, multiprocess_mode="livesum",
        )  # fmt: skip
        self.pool_usage = Gauge(
            "flask_redis_pool_usage_ratio",
            "Connections in use over max_connections, of the fullest pool of the prefix.",
            ["prefix"], registry=None, multiprocess_mode="livemax",
        )  # fmt: skip
        self.connection_create = Histogram(
            "flask_redis_connection_create_duration_seconds",
            "Connections opened, and the time each took to be ready, handshake included.",
            ["prefix"], buckets=DURATION_BUCKETS, registry=None,
        )  # fmt: skip
        self.connections_closed = Counter(
            "flask_redis_connections_closed",
            "Connections closed, by prefix and reason (closed, timeout, connection_error,"
            " error).",
            ["prefix", "reason"], registry=None,
        )  # fmt: skip
        self.pool_wait = Histogram(
            "flask_redis_pool_wait_duration_seconds",
            "Time waited for a connection by the checkouts that found none free.",
            ["prefix"], buckets=DURATION_BUCKETS, registry=None,
        )  # fmt: skip
        self.pool_exhausted = Counter(
            "flask_redis_pool_exhausted",
            "Checkouts refused for lack of a connection (max_connections, or a blocking"
            " pool's timeout).",
            ["prefix"], registry=None,
        )  # fmt: skip
        self.retries = Counter(
            "flask_redis_retries",
            "Retries made by the client's Retry after a failed attempt, by prefix and command.",
            ["prefix", "command"], registry=None,
        )  # fmt: skip
        self.network = Counter(
            "flask_redis_network_bytes",
            "Bytes of the prefix's TCP connections, by direction (sent, received).",
            ["prefix", "direction"], registry=None,
        )  # fmt: skip
        self.client_cache_requests = Counter(
            "flask_redis_client_cache_requests",
            "Reads looked up in the client-side cache, by result (hit, miss).",
            ["prefix", "result"], registry=None,
        )  # fmt: skip
        self.client_cache_evictions = Counter(
            "flask_redis_client_cache_evictions",
            "Entries dropped from the client-side cache, by reason (full: to make room;"
            " invalidation: the server invalidated their key).",
            ["prefix", "reason"], registry=None,
        )  # fmt: skip
        self.client_cache_entries = Gauge(
            "flask_redis_client_cache_entries",
            "Entries in the client-side cache.",
            ["prefix"], registry=None, multiprocess_mode="livesum",
        )  # fmt: skip
        #: The metric objects, in the order they are exposed.
        self.families = (
            self.duration, self.commands, self.errors,
            self.request_commands, self.request_duration, self.pool, self.pool_usage,
            self.connection_create, self.connections_closed, self.pool_wait,
            self.pool_exhausted, self.retries, self.network,
            self.client_cache_requests, self.client_cache_evictions,
            self.client_cache_entries,
        )  # fmt: skip
        #: With PROMETHEUS_MULTIPROC_DIR, the values live in files that another process
        #: reads: no collect() here adds the tallies up (see :mod:`._multiprocess`).
        self.multiprocess = bool(getattr(values.ValueClass, "_multiprocess", False))
        self._prefixes: dict[str, PrefixMetrics] = {}
        registry.register(self)

    def describe(self) -> list[Metric]:
        """The metric families, without samples: what the registry checks names with."""
        return [family for metric in self.families for family in metric.describe()]

    def collect(self) -> Iterator[Metric]:
        """The metric families with their samples, pending tallies added first."""
        if _written_apart.get() is self:
            return
        self.add_pending()
        for metric in self.families:
            yield from metric.collect()

    def add_pending(self) -> None:
        """Bring the metrics up to date: add what was tallied since, and sample the pools."""
        for prefix_metrics in list(self._prefixes.values()):
            prefix_metrics.add_pending()
            pools: list[Any] = []
            try:  # a client's pools, read from here: a failure must not fail the scrape
                pools = prefix_metrics.listed_pools()
                prefix_metrics.sample_pools(pools)
            except Exception:
                prefix = prefix_metrics.prefix
                report_failure(
                    f"the pool gauges of prefix {prefix!r}",
                    f"reading the connection pools of prefix {prefix!r} for the pool gauges"
                    " failed; the metrics are served with the gauges' last values",
                )
            try:
                prefix_metrics.connections.add_pending(pools)
            except Exception:
                prefix = prefix_metrics.prefix
                report_failure(
                    f"the connection metrics of prefix {prefix!r}",
                    f"adding up the connection events, bytes and cache figures of prefix"
                    f" {prefix!r} failed; what was read is added the next time",
                )

    @contextmanager
    def written_apart(self) -> Iterator[None]:
        """While in this context, :meth:`collect` yields nothing in this thread: for a
        caller that writes these metrics itself, then the rest of their registry."""
        token = _written_apart.set(self)
        try:
            yield
        finally:
            _written_apart.reset(token)

    def forget_pending(self) -> None:
        """In a forked child: what the parent tallied is the parent's to add up."""
        for prefix_metrics in list(self._prefixes.values()):
            prefix_metrics.forget_pending()
            prefix_metrics.connections.forget_pending()

    def for_prefix(self, prefix: str) -> PrefixMetrics:
        """The observer of config prefix ``prefix``, made once per registry."""
        observer = self._prefixes.get(prefix)
        if observer is None:
            observer = self._prefixes[prefix] = PrefixMetrics(prefix, self)
        return observer


_written_apart: ContextVar[Metrics | None] = ContextVar("flask_redis_written_apart", default=None)
_metrics: weakref.WeakKeyDictionary[CollectorRegistry, Metrics] = weakref.WeakKeyDictionary()


def metrics_for(registry: CollectorRegistry | None = None) -> Metrics:
    """The metrics registered in ``registry`` (default: prometheus-client's), made once."""
    registry = REGISTRY if registry is None else registry
    try:
        return _metrics[registry]
    except KeyError:
        metrics = _metrics[registry] = Metrics(registry)
        return metrics


#: The numbers of the keys of the WSGI environ that hold a request's figures, one per
#: prefix and registry.
_environ_keys = itertools.count()
#: Threads whose records are kept before those of the threads that ended are dropped,
#: where nothing collects the metrics.
_THREADS = 64
#: Requests of a prefix whose figures are kept before they are added up, where nothing
#: collects the metrics.
_OPENED = 1024


class PrefixMetrics:
    """The metrics of one config prefix. Its :meth:`observe` is the observer of the
    prefix's instrumented clients (a bound method: cheaper to call than ``__call__``)."""

    def __init__(self, prefix: str, metrics: Metrics) -> None:
        self.prefix = prefix.lower()
        self.metrics = metrics
        self._durations: dict[str, Any] = {}
        self._commands: dict[str, Any] = {}
        self._requests: dict[str, tuple[Any, Any]] = {}
        # Each thread's records, and the lock of those that add them up.
        self._local = threading.local()
        self._threads: list[ThreadRecords] = []
        self._lock = threading.Lock()
        #: The requests whose figures are not added up yet, and the key of the WSGI environ
        #: of a request that holds its figures.
        self._open: deque[Request] = deque()
        self._environ_key = f"flask_redis._metrics.{next(_environ_keys)}"
        #: Per app, what lists the connection pools of its client of this prefix. A value
        #: must hold neither the app nor its clients or pools, but by weak references:
        #: a value that holds its key keeps it alive, and the clients and pools of a
        #: dropped app must go with it.
        self.pools: weakref.WeakKeyDictionary[Flask, PoolLister] = weakref.WeakKeyDictionary()
        #: The pool gauges were set: once the prefix's pools are all gone, they show none.
        self._pools_shown = self._usage_shown = False
        #: The events of the prefix's connections and pools (see :mod:`._connections`).
        self.connections = ConnectionMetrics(self.prefix, metrics)

    def observe(
        self,
        command: Command,
        seconds: float,
        reply: Any,
        error: BaseException | None,
        commands: Sequence[Command] | None,
    ) -> None:
        if error is not None or commands is not None:
            self._count_errors(command, reply, error, commands)
        try:
            thread = self._local.thread
        except AttributeError:
            thread = self._local.thread = self._thread_records()
        context = _request_context(None)
        if context is not None:  # in a request: its figures too
            figures = thread.request
            # The first round trip of a request in this thread, or one in a request that
            # has ended (in a thread that runs in a copy of its context variables).
            if figures.context is not context or not figures.tokens:
                figures = self._enter(thread, context)
            figures.commands += 1 if commands is None else len(commands)
            figures.seconds += seconds
        records = thread.records
        record = records.get(command[0]) if commands is None else None
        if record is None:  # a name new to the records, or a pipeline
            tally(records, command, seconds, commands)
            return
        # The common case, tally() inlined (the tests check that both count alike): a
        # command already tallied.
        record[COUNT] += 1
        record[SECONDS] += seconds
        # Its bucket, bucket() inlined: comparisons for loopback and LAN times.
        if seconds > _1MS:
            index = bisect_left(BOUNDS, seconds)
        elif seconds > _250US:
            index = 4 if seconds > _500US else 3
        else:
            index = 2 if seconds > _100US else 1 if seconds > _50US else 0
        record[FIRST_BUCKET + index] += 1

    def _enter(self, thread: ThreadRecords, context: Any) -> Figures:
        """The figures of ``thread`` in the request of ``context``, opened now if it has
        none yet; figures that no request adds up where the request has ended.

        A request's :class:`~._tallies.Request` is found by a weak reference in its WSGI environ,
        which the copies of its request context share, and which lives as long as the
        request: its threads find it there, and once it has been added up and dropped, a
        dead reference. Nothing the environ holds keeps the request's context or app.
        """
        active = thread.active
        while active and not active[-1].tokens:  # popped: its tokens are gone
            active.pop().context = None  # the context goes; the figures wait in their request
        if active and active[-1].context is context:  # back in the request after another
            figures = active[-1]
        else:
            figures = Figures(context, context._cv_tokens, thread.thread)
            if not figures.tokens:  # the request has ended
                return Figures(None, (), None)  # counted as outside a request
            request = context.request
            rule = request.url_rule
            opened = Request(None if rule is None else rule.endpoint, figures)
            reference = weakref.ref(opened)
            # Atomic: the threads of a request that start at once find the same one.
            found = request.environ.setdefault(self._environ_key, reference)
            if found is reference:
                self._open.append(opened)
                if len(self._open) > _OPENED:  # nothing collects the metrics
                    self.add_pending()
            else:
                opened = found()
                if opened is None or opened.closed:  # added up: the request has ended
                    return Figures(None, (), None)
                opened.parts.append(figures)
            active.append(figures)
        thread.request = figures
        return figures

    def _thread_records(self) -> ThreadRecords:
        """Records for the current thread, kept where :meth:`add_pending` finds them: those
        of a thread that has ended, taken over, else new ones.

        A server that runs each request in a thread of its own (Werkzeug's; asgiref, for
        each async view) would otherwise make records in every request, and add each
        thread's to the metrics apart: about half of what the first round trip of a
        request costs.
        """
        with self._lock:
            for thread_records in reversed(self._threads):  # the latest ended first
                if not thread_records.thread.is_alive():  # under the lock: none adds it up
                    thread_records.take_over()
                    return thread_records
            thread_records = ThreadRecords()
            self._threads.append(thread_records)
            many = len(self._threads) > _THREADS
        if many:  # threads come and go, and nothing collects the metrics
            self.add_pending()
        return thread_records

    def add_pending(self) -> None:
        """Add what the threads tallied since the last call to the metrics, the requests
        that ended included, and forget the threads that ended."""
        with self._lock:
            for thread_records in list(self._threads):
                alive = thread_records.thread.is_alive()  # first: it writes no more after
                new = thread_records.take_new()
                if new:
                    self._add(new)
                if not alive:
                    self._threads.remove(thread_records)
            ended = self._close_ended()
            if ended:
                self._add(ended)

    def _close_ended(self) -> dict[Any, Any]:
        """The figures of the requests that have ended, added up as records (see
        :meth:`~._tallies.Request.close`). Called under the prefix's lock."""
        records: dict[Any, Any] = {}
        for _ in range(len(self._open)):  # threads may append meanwhile
            request = self._open.popleft()
            if request.ended():
                request.close(records)
            else:
                self._open.append(request)
        return records

    def forget_pending(self) -> None:
        """In a forked child: what the parent tallied is the parent's to add up."""
        self._lock = threading.Lock()  # it may have been held at the fork
        current = threading.current_thread()
        self._threads = [each for each in self._threads if each.thread is current]
        for thread_records in self._threads:
            thread_records.take_new()
        self._close_ended()

    def _duration(self, label: str) -> Any:
        child = self._durations.get(label)
        if child is None:
            child = self._durations[label] = self.metrics.duration.labels(self.prefix, label)
        return child

    def _command(self, label: str) -> Any:
        child = self._commands.get(label)
        if child is None:
            child = self._commands[label] = self.metrics.commands.labels(self.prefix, label)
        return child

    def _request(self, endpoint: str) -> tuple[Any, Any]:
        children = self._requests.get(endpoint)
        if children is None:
            metrics = self.metrics
            children = self._requests[endpoint] = (
                metrics.request_commands.labels(self.prefix, endpoint),
                metrics.request_duration.labels(self.prefix, endpoint),
            )
        return children

    def _count_errors(
        self,
        command: Command,
        reply: Any,
        error: BaseException | None,
        commands: Sequence[Command] | None,
    ) -> None:
        errors = self.metrics.errors
        if error is not None:
            label = command_label(command[0])
            errors.labels(self.prefix, label, type(error).__name__, error_code(error)).inc()
        elif commands is not None and isinstance(reply, list):
            # execute(raise_on_error=False): failed commands hold their error as reply.
            for args, item in zip(commands, reply):
                if isinstance(item, Exception):
                    label = command_label(args[0])
                    errors.labels(self.prefix, label, type(item).__name__, error_code(item)).inc()

    def _add(self, records: dict[Any, Any]) -> None:
        """Add tallies to the metrics."""
        for name, record in records.items():
            if name is None:  # the commands the pipelines carried
                for inner, count in record.items():
                    self._command(command_label(inner)).inc(count)
                continue
            if isinstance(name, tuple) and name[0] is REQUESTS_KEY:
                self._add_requests(name[1], record)
                continue
            label = command_label(name[0] if isinstance(name, tuple) else name)
            _add_histogram(self._duration(label), record[SECONDS], record[FIRST_BUCKET:])
            if not isinstance(name, tuple):  # a pipeline's commands are counted above
                self._command(label).inc(record[COUNT])

    def _add_requests(self, endpoint: str, record: list[Any]) -> None:
        """Add the figures of an endpoint's requests (see :meth:`~._tallies.Request.close`)."""
        commands, seconds = self._request(endpoint)
        _add_histogram(commands, record[REQUEST_COMMANDS],
                       record[FIRST_COMMANDS_BUCKET:FIRST_SECONDS_BUCKET])  # fmt: skip
        _add_histogram(seconds, record[REQUEST_SECONDS], record[FIRST_SECONDS_BUCKET:])

    def listed_pools(self) -> list[Any]:
        """The connection pools of this prefix's clients, in every app, each once."""
        # A pool that clients of several apps share (PREFIX_CONNECTION_POOL) is listed once.
        found = {id(pool): pool for pools in list(self.pools.values()) for pool in pools()}
        return list(found.values())

    def sample_pools(self, pools: list[Any]) -> None:
        """Set the pool gauges: the connections of ``pools``, this prefix's (see
        :meth:`listed_pools`), summed, and how full the fullest of them is."""
        reading = read_pools([lambda: pools])
        if reading.readable or self._pools_shown:  # none left, when the apps were dropped
            self._pools_shown = reading.readable
            self.metrics.pool.labels(self.prefix, "in_use").set(reading.in_use)
            self.metrics.pool.labels(self.prefix, "idle").set(reading.idle)
        if reading.usages or self._usage_shown:
            self._usage_shown = bool(reading.usages)
            self.metrics.pool_usage.labels(self.prefix).set(max(reading.usages, default=0.0))


def _add_histogram(child: Any, total: float, buckets: Sequence[int]) -> None:
    """Add observations to a histogram child in bulk: their sum and their count per bucket.

    prometheus-client has no public call for it; these are the values its ``observe()``
    increments one at a time.
    """
    if total:
        child._sum.inc(total)
    for bucket, count in zip(child._buckets, buckets):
        if count:
            bucket.inc(count)


def setup_metrics(
    app: Flask, config: ClientConfig, pools: PoolLister
) -> tuple[Observer, ConnectionMetrics]:
    """Keep the metrics of ``config``'s prefix for a client of ``app`` whose connection
    pools ``pools()`` lists: the observer of its commands, and the events of its
    connections and pools. ``pools`` is kept as long as ``app``: it must hold neither
    ``app`` nor its clients or pools, but by weak references.

    :raises ValueError: ``PROMETHEUS_MULTIPROC_DIR`` is set to no folder this process can
        write to (see :func:`.multiprocess.check_folder`).
    """
    check_folder()  # else every metric written later fails, deep in prometheus-client
    prefix_metrics = metrics_for(config.metrics_registry).for_prefix(config.prefix)
    prefix_metrics.pools[app] = pools
    if prefix_metrics.metrics.multiprocess:  # another process may read the metrics
        write_every_second(prefix_metrics.metrics)
    return prefix_metrics.observe, prefix_metrics.connections


def _let_go_of_ended_requests(phase: str, info: dict[str, int]) -> None:
    """A callback of the garbage collector: before it collects the oldest generation, the
    figures of the requests that have ended let go of their request context (see
    :meth:`~._tallies.ThreadRecords.let_go`).

    A thread holds the figures of its last request at hand, to count its next round trips
    there with one comparison, until its next request makes a round trip. Their context
    holds its app, and an app that its code dropped must be collected with its clients,
    pools and threads. Only the garbage collector ever frees an app (a Flask app holds
    reference cycles): letting go before it runs is soon enough, and costs neither a round
    trip nor a request anything. Before the full collections only (``gc.collect()`` is
    one): they are the rarest, and an app that a younger collection kept moves to the
    oldest generation, whose next collection frees it.

    It takes no lock and never raises: it may run in any thread, at any allocation, in the
    middle of our own code too.
    """
    if phase != "start" or info.get("generation") != 2:
        return
    try:
        everything = list(_metrics.values())
        for metrics in everything:
            for prefix_metrics in list(metrics._prefixes.values()):
                for thread_records in prefix_metrics._threads[:]:
                    thread_records.let_go()
    except Exception:  # a registry added meanwhile by another thread: the next time
        pass


gc.callbacks.append(_let_go_of_ended_requests)
