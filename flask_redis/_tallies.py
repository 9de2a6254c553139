"""The tallies of round trips and requests that the metrics observer keeps, without a
lock, before they are added to the metrics: records of round trips by command name, a
thread's figures in a request, and a request's figures added up once it has ended.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from ._commands import Command
from ._labels import command_label, is_short

#: Upper bounds of the duration buckets, in seconds: loopback to WAN.
DURATION_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
#: Upper bounds of the buckets of Redis commands per request.
REQUEST_COMMAND_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
#: The endpoint of the metrics view (``PREFIX_METRICS_PATH``), whose requests are not
#: figures of the app's.
METRICS_ENDPOINT = "flask_redis_metrics"

#: Upper bounds of the duration buckets, +Inf included.
BOUNDS = (*DURATION_BUCKETS, float("inf"))
#: Upper bounds of the buckets of commands per request, +Inf included.
REQUEST_BOUNDS = (*REQUEST_COMMAND_BUCKETS, float("inf"))
_50US, _100US, _250US, _500US, _1MS = DURATION_BUCKETS[:5]

# A record of round trips (see tally()) is a list, which one C call copies whole:
# ``[count, seconds, *counts per bucket of DURATION_BUCKETS]``. Its items:
#: The round trips tallied.
COUNT = 0
#: Their wall time, in seconds.
SECONDS = 1
#: The count of the first bucket; bucket ``i`` is counted at ``FIRST_BUCKET + i``.
FIRST_BUCKET = 2

# A record of an endpoint's requests (see Request.close()), a list too: ``[requests,
# commands, seconds, *counts per bucket of commands, *counts per bucket of seconds]``.
#: The requests added up.
REQUESTS = 0
#: The commands they sent.
REQUEST_COMMANDS = 1
#: Their time in Redis, in seconds.
REQUEST_SECONDS = 2
#: The count of the first bucket of commands per request.
FIRST_COMMANDS_BUCKET = 3
#: The count of the first bucket of seconds per request.
FIRST_SECONDS_BUCKET = FIRST_COMMANDS_BUCKET + len(REQUEST_BOUNDS)

#: The key of the record of an endpoint's requests is ``(REQUESTS_KEY, endpoint)``.
REQUESTS_KEY = object()

#: Raw command names kept apart in one record; beyond it, names are kept by their label,
#: of which there are a few hundred: a record stays bounded whatever names are sent.
RECORD_NAMES = 256


def bucket(seconds: float) -> int:
    """The index in :data:`DURATION_BUCKETS` of the bucket of ``seconds``, the first
    whose bound is not below it (``len(DURATION_BUCKETS)`` for +Inf).

    Comparisons for loopback and LAN times, which cost a tenth of
    :func:`~bisect.bisect_left`. The metrics observer inlines it, which the tests check.
    """
    if seconds > _1MS:
        return bisect_left(BOUNDS, seconds)
    if seconds > _250US:
        return 4 if seconds > _500US else 3
    return 2 if seconds > _100US else 1 if seconds > _50US else 0


def tally(
    records: dict[Any, Any], command: Command, seconds: float,
    commands: Sequence[Command] | None,
) -> None:  # fmt: skip
    """Tally a round trip in ``records``: ``{name: record}`` (see :data:`COUNT`).

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
            record = records[name] = [0, 0.0] + [0] * len(BOUNDS)
    record[COUNT] += 1
    record[SECONDS] += seconds
    record[FIRST_BUCKET + bucket(seconds)] += 1
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
    or its label once ``kept`` holds :data:`RECORD_NAMES` names, or for a long name."""
    if len(kept) >= RECORD_NAMES or not is_short(name):
        return command_label(name)
    return name


def items(mapping: dict[Any, Any]) -> list[tuple[Any, Any]]:
    """The items of a dict that another thread may be adding to."""
    while True:
        try:
            return list(mapping.items())  # one C call, which the GIL keeps whole...
        except RuntimeError:  # ...unless the garbage collector ran Python code mid-way
            continue


class Figures:
    """A thread's figures in one request: the commands it sent there, and their time. Only
    that thread writes them; they are one of the parts of a :class:`Request`."""

    __slots__ = ("context", "commands", "seconds", "tokens", "thread")

    def __init__(self, context: Any, tokens: Sequence[Any], thread: Any) -> None:
        #: The request context; ``None`` once the request has ended and the thread let go.
        self.context = context
        self.commands = 0
        self.seconds = 0.0
        #: The context variable tokens of the request context, which Flask empties when it
        #: pops the context: empty once the request has ended in this thread.
        self.tokens = tokens
        #: The thread that writes them.
        self.thread = thread


#: The figures of no request: what a thread's records hold before their first request.
NO_REQUEST = Figures(None, (), None)


class ThreadRecords:
    """The records (see :func:`tally`) of one thread's round trips, and its figures in the
    requests it made round trips in.

    Only that thread adds to the records of round trips and to its figures, and needs no
    lock for it. Another thread, under the prefix's lock, adds what is new in the records
    to the metrics, and the figures of the requests that have ended (see :class:`Request`).
    """

    __slots__ = ("thread", "records", "added", "request", "active")

    def __init__(self) -> None:
        self.thread = threading.current_thread()
        self.records: dict[Any, Any] = {}
        #: Copies of the records as they were when last added to the metrics.
        self.added: dict[Any, Any] = {}
        #: The thread's figures in the requests whose context may still be pushed,
        #: innermost last, each one of the parts of a :class:`Request`. Only this thread
        #: reads it.
        self.active: list[Figures] = []
        #: Of those, the figures of the request of the thread's last round trip in one.
        self.request = NO_REQUEST

    def let_go(self) -> None:
        """Let go of the context of each request that has ended: the figures the thread
        still holds at hand (:attr:`active`, :attr:`request`) would keep its app alive.

        Safe from any thread, at any time, without the lock: the context of a request
        that has ended is no longer the current one, so no round trip finds it equal.
        """
        for figures in self.active[:]:  # a copy, made in one C call
            if not figures.tokens and figures.context is not None:
                figures.context = None

    def take_over(self) -> None:
        """Make the records of a thread that has ended the current thread's. What they
        tallied stays, to be added up as before; the figures of the ended thread's requests
        stay with those requests, and let go of their contexts: nothing compares them."""
        for figures in self.active:
            figures.context = None
        self.active = []
        self.request = NO_REQUEST
        self.thread = threading.current_thread()

    def take_new(self) -> dict[Any, Any]:
        """What was tallied since the last call, as records of its own."""
        new: dict[Any, Any] = {}
        for name, record in items(self.records):
            before = self.added.get(name)
            now: Any
            if name is None:  # {name: count} of the commands pipelines carried
                now = dict(items(record))
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


class Request:
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

    def __init__(self, endpoint: str | None, part: Figures) -> None:
        self.endpoint = endpoint
        #: The parts (see :attr:`ThreadRecords.active`); threads append theirs.
        self.parts = [part]
        #: Added up: a context of the request that makes its first round trip now adds
        #: nothing to it.
        self.closed = False

    def ended(self) -> bool:
        """Whether the request has ended: its figures are final."""
        parts = self.parts[:]  # a copy, made in one C call: threads may append
        for part in parts:
            if part.tokens:  # its context is pushed: ended only if no thread of it is alive
                return not any(each.thread.is_alive() for each in parts)
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
            commands += part.commands
            seconds += part.seconds
        key = (REQUESTS_KEY, endpoint)
        record = records.get(key)
        if record is None:
            record = records[key] = [0, 0, 0.0] + [0] * (len(REQUEST_BOUNDS) + len(BOUNDS))
        record[REQUESTS] += 1
        record[REQUEST_COMMANDS] += commands
        record[REQUEST_SECONDS] += seconds
        record[FIRST_COMMANDS_BUCKET + bisect_left(REQUEST_BOUNDS, commands)] += 1
        record[FIRST_SECONDS_BUCKET + bucket(seconds)] += 1
