"""The per-request log of Redis calls that the debug toolbar panel shows.

Each prefix with recording on has a :class:`PrefixRecorder`, an observer of its
instrumented client. During a request it appends a :class:`RecordedCall` per command to
the request's log (at most ``PREFIX_RECORD_CALLS_MAX``, then only counted); outside a
request it does nothing. Secrets are redacted before anything is stored. How a command
reads is :mod:`._display`'s to say, where it was called from :mod:`._callers`'; the figures
of a request also make its ``Server-Timing`` header (:mod:`._server_timing`).
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from asyncio import events
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Callable, NamedTuple

from flask import Flask, current_app

from . import _nodes
from ._callers import Callers
from ._client_cache import served_from_cache
from ._commands import Command
from ._config import ClientConfig
from ._display import (
    ARGUMENTS_LIMIT,
    as_text,
    as_utf8,
    displayed,
    error_text,
    is_utf8,
    refused,
)
from ._instrument import Observer, combine
from ._per_request import PerRequest, Stacked
from ._request_pages import add_page
from ._server_timing import Timing, send_server_timing
from ._topology import CLUSTER, SENTINEL

#: Reads of one key whose nil reply is a miss, else a hit.
_READS = frozenset({"GET", "GETEX", "GETDEL", "HGET", "LINDEX", "ZSCORE"})
#: Reads of one key whose empty, zero or false reply is a miss too.
_EMPTY_IS_MISS = frozenset({
    "HGETALL", "SMEMBERS", "LRANGE", "ZRANGE", "HEXISTS", "GETRANGE", "STRLEN",
})  # fmt: skip
#: Reads of several keys (EXISTS) or fields (HMGET), each a hit or a miss.
_MULTI_READS = frozenset({"MGET", "HMGET"})
_ALL_READS = _READS | _EMPTY_IS_MISS | _MULTI_READS | {"EXISTS"}


@dataclass
class RecordedCall:
    """One command of a request, as the debug toolbar panel shows it. Treat it as
    read-only (it is not frozen: a frozen dataclass costs more to create)."""

    #: The config prefix of the client, as configured (``"REDIS"``).
    prefix: str
    #: The command, upper-case as sent (``"GET"``, ``"CLIENT SETNAME"``): the first word
    #: redis-py sends, and the second when it is a subcommand named in the same string.
    command: str
    #: The arguments after the command, as display strings: secrets are ``"***"``, long
    #: values are cut, binary values are shown as hex. A command named in one string with
    #: its arguments (``"CONFIG SET maxmemory 1mb"``) has them here, as redis-py sends them.
    args: tuple[str, ...]
    #: Arguments not kept, beyond the first :data:`ARGUMENTS_LIMIT`.
    args_left_out: int
    #: Seconds from the start of the request to the start of the round trip.
    start: float
    #: Seconds of the round trip; the commands of a pipeline share it.
    duration: float
    #: The pipeline or transaction of the command within the request (1, 2, ...).
    pipeline: int | None
    #: The command was part of a transaction (``MULTI`` ... ``EXEC``).
    transaction: bool
    #: The error, as ``"ClassName: message"``; only the class for a call with a secret.
    error: str | None
    #: The caller, ``path/relative/to/app/root.py:42``.
    location: str | None
    #: The caller's whole stack, innermost last, when ``PREFIX_RECORD_STACK`` is on.
    stack: tuple[str, ...] | None
    #: For Sentinel and Cluster clients, the server that answered (``"host:port"``, then
    #: ``" (replica)"`` for a replica); several, in order, for a command that was
    #: redirected (``MOVED``, ``ASK``) or a pipeline over several cluster nodes.
    node: str | None
    #: Keys read that existed, and that did not (nil reply).
    hits: int
    misses: int
    #: Some argument was redacted.
    redacted: bool
    #: The command and its arguments are the text that was sent, so that it can be sent
    #: again from them: none was cut short, redacted, left out or shown as hex.
    exact: bool = True
    #: The round trip was awaited: made by the asyncio client
    #: (:attr:`Redis.async_connection <flask_redis.Redis.async_connection>`). A call of the
    #: sync client is not, even in an ``async def`` view, where it blocks the event loop.
    asynchronous: bool = False
    #: The reply came from redis-py's client-side cache (``PREFIX_CACHE_CONFIG``), with no
    #: round trip to Redis: :attr:`duration` is the client's time alone. Only a command on
    #: its own is; a pipeline's commands never are.
    cached: bool = False


class _Tally:
    """What one thread counted of one prefix's calls in one request: only that thread
    writes it, so that no count is lost when the threads of a request record at once."""

    __slots__ = (
        "key", "prefix", "tickets", "pipeline_ids", "stored", "dropped", "seconds", "pipelines",
    )  # fmt: skip

    def __init__(self, calls: RecordedCalls, prefix: str, tickets: Iterator[int]) -> None:
        #: What tells the request apart (:attr:`RecordedCalls._key`): not its calls, which
        #: a thread that holds its last tally would keep.
        self.key = calls._key
        self.prefix = prefix
        #: The numbers of the prefix's calls in the request, shared by its threads: the
        #: calls numbered below the cap are stored. And the pipelines' ids.
        self.tickets = tickets
        self.pipeline_ids = calls._pipeline_ids
        self.stored = self.dropped = self.pipelines = 0
        self.seconds = 0.0


class RecordedCalls(Stacked, list[RecordedCall]):
    """The calls of one request, in order (see :func:`get_recorded_calls`).

    The threads that a request hands work to record their calls here too (see
    :mod:`._per_request`). Each thread counts in tallies of its own, which the figures add up:
    no count is lost when they record at once.
    """

    def __init__(self, started: float) -> None:
        super().__init__()
        #: :func:`time.perf_counter` at the start of the request.
        self.started = started
        #: Per config prefix that uses Sentinel or Cluster, its topology in a few words
        #: (``"Sentinel, service mymaster"``, ``"Cluster"``); set by
        #: :func:`get_recorded_calls`.
        self.modes: dict[str, str] = {}
        # Calls recorded as plain tuples of the fields of _Pending, cheaper to make than
        # the dataclass or the named tuple; made into RecordedCall objects, by name, when
        # they are asked for.
        self._pending: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        # The tallies of the threads (see _Tally), and what they share.
        self._key = object()
        self._tallies: list[_Tally] = []
        self._tickets: dict[str, Iterator[int]] = {}
        self._pipeline_ids = itertools.count(1)

    @property
    def dropped(self) -> dict[str, int]:
        """Per config prefix, the calls beyond its cap: counted, not stored."""
        return self._sum("dropped")

    @property
    def counts(self) -> dict[str, int]:
        """Per config prefix, the calls stored."""
        return self._sum("stored")

    @property
    def seconds(self) -> dict[str, float]:
        """Per config prefix, the seconds of all its round trips, dropped ones included."""
        return self._sum("seconds", every=True)

    @property
    def pipelines(self) -> int:
        """Pipelines recorded so far; the last one's id."""
        return sum(tally.pipelines for tally in self._tallies[:])

    def _sum(self, field: str, every: bool = False) -> dict[str, Any]:
        """Per config prefix, the sum of ``field`` of the threads' tallies; of those that
        counted any, or with ``every``, of all."""
        sums: dict[str, Any] = {}
        for tally in self._tallies[:]:  # a copy, made in one C call: threads may append
            value = getattr(tally, field)
            if value or every:
                sums[tally.prefix] = sums.get(tally.prefix, 0) + value
        return sums

    def _tally(self, prefix: str) -> _Tally:
        """A new tally of the calls of ``prefix`` in the current thread."""
        tickets = self._tickets.get(prefix)
        if tickets is None:  # atomic: the threads that start at once share the same
            tickets = self._tickets.setdefault(prefix, itertools.count())
        tally = _Tally(self, prefix, tickets)
        self._tallies.append(tally)
        return tally

    def _materialize(self) -> RecordedCalls:
        if self._pending:
            with self._lock:  # each call taken once, whatever threads ask; more may come
                pending = self._pending[:]
                del self._pending[: len(pending)]
            for fields in pending:
                record = _Pending._make(fields)
                # Numbers were kept as they were sent (see displayed()).
                args, exact = as_text(record.args, record.exact)
                self.append(RecordedCall(**record._replace(args=args, exact=exact)._asdict()))
        return self


class _Pending(NamedTuple):
    """A recorded call as the recorder stores it, named: :class:`RecordedCall`'s fields,
    its arguments as :func:`~flask_redis._display.displayed` gives them. The recorder
    stores plain tuples of these fields in this order (a test checks it)."""

    prefix: str
    command: str
    args: tuple[Any, ...]
    args_left_out: int
    start: float
    duration: float
    pipeline: int | None
    transaction: bool
    error: str | None
    location: str | None
    stack: tuple[str, ...] | None
    node: str | None
    hits: int
    misses: int
    redacted: bool
    exact: bool
    asynchronous: bool
    cached: bool


# Per app, the prefixes that record calls; per request, the calls.
_requests: PerRequest[PrefixRecorder, RecordedCalls] = PerRequest(
    "flask_redis_request_calls", lambda recorders: RecordedCalls(perf_counter())
)
_request_calls = _requests.current


def get_recorded_calls() -> RecordedCalls:
    """The Redis calls of the current request, for every prefix with recording on.

    Empty outside a request, and when no prefix of the app records calls.
    """
    calls = _requests.value()
    if calls is None:
        return RecordedCalls(perf_counter())
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    calls.modes = {r.prefix: r.mode for r in _requests.members(app) if r.mode is not None}
    return calls._materialize()


def _hits_and_misses(command: str, keys: int, reply: Any) -> tuple[int, int]:
    """Keys found and not found by ``command`` (upper-case) of ``keys`` arguments, read from
    its reply (the rules are in docs/panel.rst)."""
    if command in _MULTI_READS:  # MGET key..., HMGET key field...: a nil per one not found
        if not isinstance(reply, list):
            return 0, 0
        misses = sum(1 for item in reply if item is None)
        return len(reply) - misses, misses
    if command == "EXISTS":  # EXISTS key...: the number of the keys that exist
        if not isinstance(reply, int) or not keys:
            return 0, 0
        found = min(max(reply, 0), keys)
        return found, keys - found
    # Nil, an empty collection or string, 0 or False: nothing was found.
    missing = reply is None or (command in _EMPTY_IS_MISS and not reply)
    return (0, 1) if missing else (1, 0)


#: The running event loop of the thread, or ``None``: one C call (asyncio's own, which
#: :func:`asyncio.get_running_loop` wraps, without the exception it raises outside a loop).
_running_loop = events._get_running_loop
#: The source file of the instrumented clients, whose frames call the observers.
_INSTRUMENT_FILE = combine.__code__.co_filename
_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE


def _awaited(depth: int) -> bool:
    """Whether the round trip being observed was awaited, when the thread runs an event
    loop: among the frames of the instrumented clients that called the observer, from
    ``depth`` frames out of the function that asks, one is a coroutine (the asyncio
    client's ``execute_command``, its pipelines' timing); a sync client's call in a
    coroutine has only plain frames there."""
    frame: Any = sys._getframe(depth + 1)
    while frame is not None and frame.f_code.co_filename == _INSTRUMENT_FILE:
        if frame.f_code.co_flags & _CO_COROUTINE:
            return True
        frame = frame.f_back
    return False


class _Local(threading.local):
    #: The tally of the thread's last call, which its next call of the request adds to.
    tally: _Tally | None = None


class PrefixRecorder:
    """Records the calls of one config prefix; its :meth:`observe` is an observer."""

    def __init__(
        self,
        prefix: str,
        app: Flask,
        max_calls: int,
        redact_keys: Sequence[str],
        stack: bool,
        encoding: str = "utf-8",
    ) -> None:
        self.prefix = prefix
        self.max_calls = max_calls
        self.redact_keys = tuple(redact_keys)
        # Finds the caller of each call, and its stack with ``stack``: the bound method, one
        # attribute fewer to look up per call, which callgrind counts.
        self._find_caller = Callers(app.root_path + os.sep, stack).find
        #: The encoding the client sends text in, when it is not UTF-8, in which the panel's
        #: command lines are written: only text of the same bytes in both is exact (ASCII
        #: is not, in UTF-16).
        self.other_encoding = None if is_utf8(encoding) else encoding
        #: The topology in a few words (``"Cluster"``), shown by the panel; ``None`` for
        #: one server.
        self.mode: str | None = None
        #: Takes the servers that answered the round trip just observed
        #: (:func:`flask_redis._nodes.take`), for Sentinel and Cluster clients.
        self.nodes: Callable[[], str | None] | None = None
        #: Takes the note of whether the command just observed was served from the
        #: client-side cache (:func:`flask_redis._client_cache.served_from_cache`), for a
        #: prefix whose client has one.
        self.cached: Callable[[], bool] | None = None
        #: Add this prefix's figures to the ``Server-Timing`` header.
        self.server_timing = False
        self._local = _Local()

    def observe(
        self,
        command: Command,
        seconds: float,
        reply: Any,
        error: BaseException | None,
        commands: Sequence[Command] | None,
    ) -> None:
        calls = _request_calls.get()
        # Its request ended (a teardown function raised before ours), or none in this
        # thread's context variables: maybe under a copy of a request's context.
        if calls is None or not calls._tokens:
            calls = _requests.value()
        # The servers noted, and the cache's note, are taken outside a request too, or the
        # next call would show them.
        node = None if self.nodes is None else self.nodes()
        cached = False if self.cached is None else self.cached()
        if calls is None:  # outside a request: nothing to do
            return
        start = perf_counter() - seconds - calls.started
        tally = self._local.tally
        if tally is None or tally.key is not calls._key:  # this thread's first in the request
            tally = self._local.tally = calls._tally(self.prefix)
        tally.seconds += seconds
        cap = self.max_calls
        if commands is None:
            if next(tally.tickets) >= cap:
                tally.dropped += 1
                return
            tally.stored += 1
            self._add(calls, command, start, seconds, reply, error, None, False, node, cached)
            return
        tally.pipelines += 1
        pipeline = next(tally.pipeline_ids)
        stored = 0
        for _args in commands:  # a thread's numbers grow: the first ones are stored
            if next(tally.tickets) < cap:
                stored += 1
        tally.stored += stored
        tally.dropped += len(commands) - stored
        if not stored:
            return
        transaction = command[0] == "MULTI"
        replies = reply if isinstance(reply, list) else [None] * len(commands)
        # redis-py's message of a failed pipeline quotes the failing command: it is not
        # shown when any command of the pipeline holds a secret.
        secret = error is not None and any(
            displayed(args, self.redact_keys, ARGUMENTS_LIMIT)[3] for args in commands
        )
        for args, item in zip(commands[:stored], replies):
            failed = item if isinstance(item, Exception) else error
            self._add(
                calls, args, start, seconds, item, failed, pipeline, transaction, node, False,
                secret,
            )  # fmt: skip

    def _add(
        self,
        calls: RecordedCalls,
        sent: Command,
        start: float,
        duration: float,
        reply: Any,
        failure: BaseException | None,
        pipeline: int | None,
        transaction: bool,
        node: str | None,
        cached: bool,
        secret: bool = False,
    ) -> None:
        """Store one command of a round trip, counted already (see :class:`_Tally`)."""
        prefix = self.prefix
        command, args, args_left_out, redacted, exact = displayed(
            sent, self.redact_keys, ARGUMENTS_LIMIT
        )
        hits = misses = 0
        error: str | None = None
        if failure is not None:
            error = error_text(failure, redacted or secret)
            # The library refused an argument before sending anything (valkey-py 6 and
            # redis-py 7 refuse a bytearray): the line would send what the call did not.
            exact = exact and not refused(failure)
        elif command in _ALL_READS:
            hits, misses = _hits_and_misses(command, len(args) + args_left_out, reply)
        if exact and self.other_encoding is not None:
            encoding = self.other_encoding
            exact = all(type(arg) is not str or as_utf8(arg, encoding) for arg in args)
        # Frames out of this method: observe(), then what called it.
        location, stack = self._find_caller(2)
        asynchronous = _running_loop() is not None and _awaited(2)
        # _Pending's fields, in order, each named as its field.
        calls._pending.append((
            prefix, command, args, args_left_out, start, duration, pipeline, transaction, error,
            location, stack, node, hits, misses, redacted, exact, asynchronous, cached,
        ))  # fmt: skip


def setup_recording(app: Flask, config: ClientConfig, record: bool) -> Observer:
    """Record the calls of ``config``'s prefix per request of ``app``: the observer.

    Without ``record``, for Server-Timing alone, calls are counted and timed, not stored.
    The clients of a Sentinel or Cluster topology note the servers that answer
    (:mod:`flask_redis._nodes`), which the recorder takes; so do those with a client-side
    cache note a command it served (:mod:`flask_redis._client_cache`), when recording.
    """
    most = config.record_calls_max if record else 0
    encoding = config.kwargs.get("encoding", "utf-8")
    recorder = PrefixRecorder(
        config.prefix, app, most, config.redact_keys, config.record_stack, encoding
    )
    recorder.mode = _topology(config)
    if recorder.mode is not None:
        recorder.nodes = _nodes.take
    if record and _has_cache(config):
        recorder.cached = served_from_cache
    recorder.server_timing = config.server_timing
    _requests.add(app, recorder)
    if config.server_timing:
        send_server_timing(app, _timings)
    if record:
        add_page(app)
    return recorder.observe


def _has_cache(config: ClientConfig) -> bool:
    """Whether ``config`` gives its client redis-py's client-side cache, whose commands note
    for the recorder whether they were served locally (see :func:`setup_recording`)."""
    kwargs = config.kwargs
    return kwargs.get("cache_config") is not None or kwargs.get("cache") is not None


def _topology(config: ClientConfig) -> str | None:
    """The topology of ``config`` in a few words, for the panel; ``None`` for one server."""
    if config.mode == SENTINEL:
        return f"Sentinel, service {config.service}"
    if config.mode == CLUSTER:
        return "Cluster"
    return None


def _timings() -> list[Timing]:
    """The figures of the current request of each prefix of the app with Server-Timing
    on."""
    calls = _requests.value()
    if calls is None:
        return []
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    counts, dropped, seconds = calls.counts, calls.dropped, calls.seconds
    return [
        Timing(
            recorder.prefix,
            counts.get(recorder.prefix, 0) + dropped.get(recorder.prefix, 0),
            seconds.get(recorder.prefix, 0.0),
        )
        for recorder in _requests.members(app)
        if recorder.server_timing
    ]
