"""Prometheus metrics per config prefix, fed by the instrumented client.

No round trip calls prometheus-client, nor takes a lock: each is tallied in a record of
its thread and, in a request, added to the thread's figures in the request (commands and
time in Redis), which no other thread writes to. Nothing is done when a request starts
or ends. When the metrics are collected, the figures of the requests whose contexts have
been popped are added up, each request once whatever threads it handed commands to, and
what is new in the records is added to the metrics. Under a multiprocess server, where
another process reads the metrics, a thread of each process does that every second
instead (see :mod:`.multiprocess`).

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
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable

from flask import Flask
from flask.globals import _cv_request  # the request context, if any: a context variable
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ._commands import Command, split_name, upper_word
from ._config import ClientConfig
from ._instrument import Observer, _report_observer_error
from ._multiprocess import check_folder, write_every_second
from ._pools import connection_counts, usage

#: Upper bounds of the duration buckets, in seconds: loopback to WAN.
DURATION_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
#: Upper bounds of the buckets of Redis commands per request.
REQUEST_COMMAND_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

#: Redis commands that are ``command`` label values; any other command is ``OTHER``. A
#: command of two words (``CLIENT SETNAME``) is labelled by its first.
COMMANDS = frozenset(
    """
    ACL APPEND ASKING AUTH BGREWRITEAOF BGSAVE BITCOUNT BITFIELD BITFIELD_RO BITOP BITPOS
    BLMOVE BLMPOP BLPOP BRPOP BRPOPLPUSH BZMPOP BZPOPMAX BZPOPMIN CLIENT CLUSTER COMMAND
    CONFIG COPY DBSIZE DEBUG DECR DECRBY DEL DISCARD DUMP ECHO EVAL EVAL_RO EVALSHA
    EVALSHA_RO EXEC EXISTS EXPIRE EXPIREAT EXPIRETIME FAILOVER FCALL FCALL_RO FLUSHALL
    FLUSHDB FUNCTION GEOADD GEODIST GEOHASH GEOPOS GEORADIUS GEORADIUSBYMEMBER
    GEORADIUSBYMEMBER_RO GEORADIUS_RO GEOSEARCH GEOSEARCHSTORE GET GETBIT GETDEL GETEX
    GETRANGE GETSET HDEL HELLO HEXISTS HEXPIRE HEXPIREAT HEXPIRETIME HGET HGETALL HGETDEL
    HGETEX HINCRBY HINCRBYFLOAT HKEYS HLEN HMGET HMSET HPERSIST HPEXPIRE HPEXPIREAT
    HPEXPIRETIME HPTTL HRANDFIELD HSCAN HSET HSETEX HSETNX HSTRLEN HTTL HVALS INCR INCRBY
    INCRBYFLOAT INFO KEYS LASTSAVE LATENCY LCS LINDEX LINSERT LLEN LMOVE LMPOP LOLWUT LPOP
    LPOS LPUSH LPUSHX LRANGE LREM LSET LTRIM MEMORY MGET MIGRATE MODULE MONITOR MOVE MSET
    MSETNX MULTI OBJECT PERSIST PEXPIRE PEXPIREAT PEXPIRETIME PFADD PFCOUNT PFDEBUG PFMERGE
    PFSELFTEST PING PSETEX PSUBSCRIBE PSYNC PTTL PUBLISH PUBSUB PUNSUBSCRIBE RANDOMKEY
    READONLY READWRITE RENAME RENAMENX REPLCONF REPLICAOF RESET RESTORE RESTORE-ASKING ROLE
    RPOP RPOPLPUSH RPUSH RPUSHX SADD SAVE SCAN SCARD SCRIPT SDIFF SDIFFSTORE SELECT SET
    SETBIT SETEX SETNX SETRANGE SHUTDOWN SINTER SINTERCARD SINTERSTORE SISMEMBER SLAVEOF
    SLOWLOG SMEMBERS SMISMEMBER SMOVE SORT SORT_RO SPOP SPUBLISH SRANDMEMBER SREM SSCAN
    SSUBSCRIBE STRALGO STRLEN SUBSCRIBE SUBSTR SUNION SUNIONSTORE SUNSUBSCRIBE SWAPDB SYNC
    TIME TOUCH TTL TYPE UNLINK UNSUBSCRIBE UNWATCH VADD VCARD VDIM VEMB VGETATTR VINFO
    VLINKS VRANDMEMBER VREM VSETATTR VSIM WAIT WAITAOF WATCH XACK XADD XAUTOCLAIM XCLAIM
    XDEL XGROUP XINFO XLEN XPENDING XRANGE XREAD XREADGROUP XREVRANGE XSETID XTRIM ZADD
    ZCARD ZCOUNT ZDIFF ZDIFFSTORE ZINCRBY ZINTER ZINTERCARD ZINTERSTORE ZLEXCOUNT ZMPOP
    ZMSCORE ZPOPMAX ZPOPMIN ZRANDMEMBER ZRANGE ZRANGEBYLEX ZRANGEBYSCORE ZRANGESTORE ZRANK
    ZREM ZREMRANGEBYLEX ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREVRANGE ZREVRANGEBYLEX
    ZREVRANGEBYSCORE ZREVRANK ZSCAN ZSCORE ZUNION ZUNIONSTORE
""".split()
)
#: The endpoint of the metrics view (``PREFIX_METRICS_PATH``).
METRICS_ENDPOINT = "flask_redis_metrics"
#: The ``command`` label of a pipeline's and of a transaction's round trip.
ROUND_TRIPS = frozenset({"PIPELINE", "MULTI"})

#: The current request context, if any: the context variable's ``get``, bound once. Looking
#: ``get`` up on each round trip would cost as much again as calling it.
_request_context = _cv_request.get
_BOUNDS = (*DURATION_BUCKETS, float("inf"))
_50US, _100US, _250US, _500US, _1MS = DURATION_BUCKETS[:5]
_LABEL_CACHE_SIZE = 4096
_labels: dict[Any, str] = {}
#: Characters (or bytes) of the longest name kept as a key, of the label cache or of a
#: record: a command named in one string with its arguments (``"SET k <100 kB>"``) is
#: labelled and tallied by its label instead, and nothing keeps its arguments.
_NAME_LIMIT = 64


def command_label(name: Any) -> str:
    """The ``command`` label of a command name as redis-py sends it (``"GET"``, ``b"get"``)."""
    try:
        return _labels[name]
    except KeyError:
        pass
    words, _args = split_name((name,))  # as redis-py sends it: "GET k" sends GET
    word = upper_word(words[0]) if words else ""
    label = word if word in COMMANDS or word in ROUND_TRIPS else "OTHER"
    # Bounded, in entries and in bytes: command names come from code, mostly.
    if len(_labels) < _LABEL_CACHE_SIZE and _short(name):
        _labels[name] = label
    return label


def _short(name: Any) -> bool:
    """Whether ``name`` is text or bytes of at most :data:`_NAME_LIMIT`: short enough to be
    kept as a key."""
    return isinstance(name, (str, bytes)) and len(name) <= _NAME_LIMIT


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
            "Redis commands that failed, by prefix, command and exception class.",
            ["prefix", "command", "error"], registry=None,
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
        #: The metric objects, in the order they are exposed.
        self.families = (
            self.duration, self.commands, self.errors,
            self.request_commands, self.request_duration, self.pool, self.pool_usage,
        )  # fmt: skip
        #: With PROMETHEUS_MULTIPROC_DIR, the values live in files that another process
        #: reads: no collect() here adds the tallies up (see :mod:`.multiprocess`).
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
            try:  # a client's pools, read from here: a failure must not fail the scrape
                prefix_metrics.sample_pools()
            except Exception:
                _report_observer_error()

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


#: The first element of the key of a record of requests: ``(_REQUESTS, endpoint)``.
_REQUESTS = object()
#: Upper bounds of the buckets of commands per request, +Inf included.
_REQUEST_BOUNDS = (*REQUEST_COMMAND_BUCKETS, float("inf"))


#: Raw command names kept apart in one record; beyond it, names are kept by their label,
#: of which there are a few hundred: a record stays bounded whatever names are sent.
_RECORD_NAMES = 256


def _bucket(seconds: float) -> int:
    """The index in :data:`DURATION_BUCKETS` of the bucket of ``seconds``, the first
    whose bound is not below it (``len(DURATION_BUCKETS)`` for +Inf).

    :meth:`PrefixMetrics.observe` inlines it: comparisons for loopback and LAN times,
    which cost a tenth of :func:`~bisect.bisect_left`.
    """
    if seconds > _1MS:
        return bisect_left(_BOUNDS, seconds)
    if seconds > _250US:
        return 4 if seconds > _500US else 3
    return 2 if seconds > _100US else 1 if seconds > _50US else 0


def _tally(
    records: dict[Any, Any], command: Command, seconds: float,
    commands: Sequence[Command] | None,
) -> None:  # fmt: skip
    """Tally a round trip in ``records``: ``{name: [count, seconds, *bucket counts]}``.

    A command is tallied under its name, a pipeline's round trip under ``("PIPELINE",)``
    or ``("MULTI",)``, and the commands pipelines carried under ``None``: ``{name: count}``.
    """
    name = command[0] if commands is None else command
    record = records.get(name)
    if record is None:
        if commands is None:
            name = _kept_name(name, records)
            record = records.get(name)
        if record is None:
            record = records[name] = [0, 0.0] + [0] * len(_BOUNDS)
    record[0] += 1
    record[1] += seconds
    record[2 + _bucket(seconds)] += 1
    if commands is not None:
        inner = records.get(None)
        if inner is None:
            inner = records[None] = {}
        for args in commands:
            name = args[0]
            if name not in inner:
                name = _kept_name(name, inner)
            inner[name] = inner.get(name, 0) + 1


def _kept_name(name: Any, kept: dict[Any, Any]) -> Any:
    """The key of command name ``name``, new to ``kept``, a record's names: the name itself,
    or its label once ``kept`` holds :data:`_RECORD_NAMES` names, or for a long name."""
    if len(kept) >= _RECORD_NAMES or not _short(name):
        return command_label(name)
    return name


def _items(mapping: dict[Any, Any]) -> list[tuple[Any, Any]]:
    """The items of a dict that another thread may be adding to."""
    while True:
        try:
            return list(mapping.items())  # one C call, which the GIL keeps whole...
        except RuntimeError:  # ...unless the garbage collector ran Python code mid-way
            continue


#: The figures of no request: what a thread's records hold before their first request.
_NO_REQUEST: list[Any] = [None, 0, 0.0, (), None]


class _ThreadRecords:
    """The records (see :func:`_tally`) of one thread's round trips, and its figures in the
    requests it made round trips in.

    Only that thread adds to the records of round trips and to its figures, and needs no
    lock for it. Another thread, under the prefix's lock, adds what is new in the records
    to the metrics, and the figures of the requests that have ended (see :class:`_Request`).
    """

    __slots__ = ("thread", "records", "added", "request", "active")

    def __init__(self) -> None:
        self.thread = threading.current_thread()
        self.records: dict[Any, Any] = {}
        #: Copies of the records as they were when last added to the metrics.
        self.added: dict[Any, Any] = {}
        #: The thread's figures in the requests whose context may still be pushed,
        #: innermost last: ``[request context, commands, seconds, its context variable
        #: tokens, this thread]``, each one of the parts of a :class:`_Request`. Only this
        #: thread reads it.
        self.active: list[list[Any]] = []
        #: Of those, the figures of the request of the thread's last round trip in one.
        self.request: list[Any] = _NO_REQUEST

    def let_go(self) -> None:
        """Let go of the context of each request that has ended: the figures the thread
        still holds at hand (:attr:`active`, :attr:`request`) would keep its app alive.

        Safe from any thread, at any time, without the lock: the context of a request
        that has ended is no longer the current one, so no round trip finds it equal.
        """
        for figures in self.active[:]:  # a copy, made in one C call
            if not figures[3] and figures[0] is not None:
                figures[0] = None

    def take_new(self) -> dict[Any, Any]:
        """What was tallied since the last call, as records of its own."""
        new: dict[Any, Any] = {}
        for name, record in _items(self.records):
            before = self.added.get(name)
            now: Any
            if name is None:  # {name: count} of the commands pipelines carried
                now = dict(_items(record))
                before = before or {}
                difference: Any = {
                    key: count - before.get(key, 0)
                    for key, count in now.items() if count != before.get(key, 0)
                }  # fmt: skip
            else:
                now = record.copy()  # one C call: the GIL keeps it whole
                difference = now if before is None else [a - b for a, b in zip(now, before)]
            if any(difference):
                new[name] = difference
                self.added[name] = now
        return new


class _Request:
    """The figures of one request under a prefix: a part per thread that made round trips
    in it, which only that thread adds to, all added up once when the request has ended.

    The threads of a request share it: those that run in a copy of its context variables
    (:func:`contextvars.copy_context`), under its request context, and those that run
    under a copy of its request context (:func:`flask.copy_current_request_context`),
    which is another context of the same request object. The request has ended once no
    context of a part is pushed any longer (or no thread of a part is alive): a round
    trip under a context that has been popped, in a thread that outlives the request, is
    no longer the request's.
    """

    __slots__ = ("endpoint", "parts", "closed", "__weakref__")

    def __init__(self, endpoint: str | None, part: list[Any]) -> None:
        self.endpoint = endpoint
        #: The parts (see :attr:`_ThreadRecords.active`); threads append theirs.
        self.parts = [part]
        #: Added up: a context of the request that makes its first round trip now adds
        #: nothing to it.
        self.closed = False

    def ended(self) -> bool:
        """Whether the request has ended: its figures are final."""
        parts = self.parts[:]  # a copy, made in one C call: threads may append
        for part in parts:
            if part[3]:  # its context is pushed: ended only if no thread of it is alive
                return not any(each[4].is_alive() for each in parts)
        return True

    def close(self, records: dict[Any, Any]) -> None:
        """Add the figures of the request to ``records``, under the key of its endpoint."""
        self.closed = True
        parts, self.parts = self.parts, []  # the parts let go of their contexts
        endpoint = self.endpoint or "none"
        if endpoint == METRICS_ENDPOINT:  # a scrape is no figure of the app's
            return
        commands, seconds = 0, 0.0
        for part in parts:
            commands += part[1]
            seconds += part[2]
        key = (_REQUESTS, endpoint)
        record = records.get(key)
        if record is None:
            record = records[key] = [0, 0, 0.0] + [0] * (len(_REQUEST_BOUNDS) + len(_BOUNDS))
        record[0] += 1
        record[1] += commands
        record[2] += seconds
        record[3 + bisect_left(_REQUEST_BOUNDS, commands)] += 1
        record[3 + len(_REQUEST_BOUNDS) + _bucket(seconds)] += 1


#: The numbers of the keys of the WSGI environ that hold a request's figures, one per
#: prefix and registry.
_environ_keys = itertools.count()
#: Threads whose records are kept before those of the threads that ended are dropped,
#: where nothing collects the metrics.
_THREADS = 64
#: Requests of a prefix whose figures are kept before they are added up, where nothing
#: collects the metrics.
_OPENED = 1024

_Pools = Callable[[], Iterable[Any]]


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
        self._threads: list[_ThreadRecords] = []
        self._lock = threading.Lock()
        #: The requests whose figures are not added up yet, and the key of the WSGI environ
        #: of a request that holds its figures.
        self._open: deque[_Request] = deque()
        self._environ_key = f"flask_redis._metrics.{next(_environ_keys)}"
        #: Per app, what lists the connection pools of its client of this prefix. A value
        #: must hold neither the app nor its clients or pools, but by weak references:
        #: a value that holds its key keeps it alive, and the clients and pools of a
        #: dropped app must go with it.
        self.pools: weakref.WeakKeyDictionary[Flask, _Pools] = weakref.WeakKeyDictionary()
        #: The pool gauges were set: once the prefix's pools are all gone, they show none.
        self._pools_shown = self._usage_shown = False

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
            if figures[0] is not context or not figures[3]:
                figures = self._enter(thread, context)
            figures[1] += 1 if commands is None else len(commands)
            figures[2] += seconds
        records = thread.records
        record = records.get(command[0]) if commands is None else None
        if record is None:  # a name new to the records, or a pipeline
            _tally(records, command, seconds, commands)
            return
        # The common case, _tally() inlined: a command already tallied.
        record[0] += 1
        record[1] += seconds
        # Its bucket: _bucket(seconds) + 2, inlined.
        if seconds > _1MS:
            bucket = 2 + bisect_left(_BOUNDS, seconds)
        elif seconds > _250US:
            bucket = 6 if seconds > _500US else 5
        else:
            bucket = 4 if seconds > _100US else 3 if seconds > _50US else 2
        record[bucket] += 1

    def _enter(self, thread: _ThreadRecords, context: Any) -> list[Any]:
        """The figures of ``thread`` in the request of ``context``, opened now if it has
        none yet; figures that no request adds up where the request has ended.

        A request's :class:`_Request` is found by a weak reference in its WSGI environ,
        which the copies of its request context share, and which lives as long as the
        request: its threads find it there, and once it has been added up and dropped, a
        dead reference. Nothing the environ holds keeps the request's context or app.
        """
        active = thread.active
        while active and not active[-1][3]:  # popped: its tokens are gone
            active.pop()[0] = None  # the context goes; the figures wait in their request
        if active and active[-1][0] is context:  # back in the request after another
            figures = active[-1]
        else:
            figures = [context, 0, 0.0, context._cv_tokens, thread.thread]
            if not figures[3]:  # the request has ended
                return [None, 0, 0.0, (), None]  # counted as outside a request
            request = context.request
            rule = request.url_rule
            opened = _Request(None if rule is None else rule.endpoint, figures)
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
                    return [None, 0, 0.0, (), None]
                opened.parts.append(figures)
            active.append(figures)
        thread.request = figures
        return figures

    def _thread_records(self) -> _ThreadRecords:
        """New records for the current thread, kept where :meth:`add_pending` finds them."""
        thread_records = _ThreadRecords()
        with self._lock:
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
        :meth:`_Request.close`). Called under the prefix's lock."""
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
            errors.labels(self.prefix, command_label(command[0]), type(error).__name__).inc()
        elif commands is not None and isinstance(reply, list):
            # execute(raise_on_error=False): failed commands hold their error as reply.
            for args, item in zip(commands, reply):
                if isinstance(item, Exception):
                    label = command_label(args[0])
                    errors.labels(self.prefix, label, type(item).__name__).inc()

    def _add(self, records: dict[Any, Any]) -> None:
        """Add tallies to the metrics."""
        for name, record in records.items():
            if name is None:  # the commands the pipelines carried
                for inner, count in record.items():
                    self._command(command_label(inner)).inc(count)
                continue
            if isinstance(name, tuple) and name[0] is _REQUESTS:
                self._add_requests(name[1], record)
                continue
            label = command_label(name[0] if isinstance(name, tuple) else name)
            _add_histogram(self._duration(label), record[1], record[2:])
            if not isinstance(name, tuple):  # a pipeline's commands are counted above
                self._command(label).inc(record[0])

    def _add_requests(self, endpoint: str, record: list[Any]) -> None:
        """Add the figures of an endpoint's requests (see :meth:`_Request.close`)."""
        commands, seconds = self._request(endpoint)
        split = 3 + len(_REQUEST_BOUNDS)
        _add_histogram(commands, record[1], record[3:split])
        _add_histogram(seconds, record[2], record[split:])

    def sample_pools(self) -> None:
        """Set the pool gauges: the connections of this prefix's pools, summed (each pool
        once), and how full the fullest of them is."""
        in_use = idle = 0
        usages: list[float] = []
        readable = False
        # A pool that clients of several apps share (PREFIX_CONNECTION_POOL) is counted once.
        # Kept for the pass only, so that no id is another pool's meanwhile.
        seen: dict[int, Any] = {}
        for pools in list(self.pools.values()):
            for pool in pools():
                if id(pool) in seen:
                    continue
                seen[id(pool)] = pool
                counts = connection_counts(pool)
                if counts is None:
                    continue
                readable = True
                in_use, idle = in_use + counts[0], idle + counts[1]
                full = usage(pool, counts)
                if full is not None:
                    usages.append(full)
        if readable or self._pools_shown:  # none left, when the apps were dropped
            self._pools_shown = readable
            self.metrics.pool.labels(self.prefix, "in_use").set(in_use)
            self.metrics.pool.labels(self.prefix, "idle").set(idle)
        if usages or self._usage_shown:
            self._usage_shown = bool(usages)
            self.metrics.pool_usage.labels(self.prefix).set(max(usages, default=0.0))


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


def setup_metrics(app: Flask, config: ClientConfig, pools: _Pools) -> Observer:
    """Keep the metrics of ``config``'s prefix for a client of ``app`` whose connection
    pools ``pools()`` lists: the observer. ``pools`` is kept as long as ``app``: it must
    hold neither ``app`` nor its clients or pools, but by weak references.

    :raises ValueError: ``PROMETHEUS_MULTIPROC_DIR`` is set to no folder this process can
        write to (see :func:`.multiprocess.check_folder`).
    """
    check_folder()  # else every metric written later fails, deep in prometheus-client
    prefix_metrics = metrics_for(config.metrics_registry).for_prefix(config.prefix)
    prefix_metrics.pools[app] = pools
    if prefix_metrics.metrics.multiprocess:  # another process may read the metrics
        write_every_second(prefix_metrics.metrics)
    return prefix_metrics.observe


def _let_go_of_ended_requests(phase: str, info: dict[str, int]) -> None:
    """A callback of the garbage collector: before it collects the oldest generation, the
    figures of the requests that have ended let go of their request context (see
    :meth:`_ThreadRecords.let_go`).

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
