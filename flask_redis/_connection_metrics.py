"""The metrics of a prefix's connections and pools: connections opened and closed, waits
for a connection, pools exhausted, retries, bytes on the wire, and the client-side cache.

None of them costs a command anything. The first five are events that happen rarely
(see :mod:`._connections`): each is appended to a queue, which takes no lock, and added
to the metrics when they are collected. An event may happen in a garbage collector's
finalizer (redis-py closes a connection it collects), in the middle of any code, of
prometheus-client's too, whose locks are not re-entrant: so no event calls it. The bytes
and the cache's figures are read when the metrics are collected, from each connection's
socket (see :mod:`._sockets`) and from each cache.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from ._client_cache import CacheFigures, cache_figures
from ._connections import CLOSE_REASONS
from ._labels import command_label
from ._pools import pool_connections
from ._sockets import unread_bytes

#: The kinds of event, the first item of each queued one.
_OPENED, _CLOSED, _WAITED, _EXHAUSTED, _RETRIED = range(5)
#: Events queued before the event that makes the queue longer adds them itself, where
#: nothing collects the metrics.
_QUEUED = 4096


class ConnectionMetrics:
    """The events of the connections and pools of one config prefix (a
    :class:`~._connections.ConnectionEvents`), and what is read from them when the metrics
    are collected.

    :param prefix: The ``prefix`` label.
    :param metrics: The metric objects (a :class:`~._metrics.Metrics`).
    """

    def __init__(self, prefix: str, metrics: Any) -> None:
        self.prefix = prefix
        self.metrics = metrics
        self._events: deque[tuple[Any, ...]] = deque()
        self._lock = threading.Lock()
        #: The caches' figures, summed, when they were last read (see :meth:`_add_cache`).
        self._cache = CacheFigures(0, 0, 0, 0, 0)
        self._cache_shown = False
        self._shown = False

    def _show(self) -> None:
        """Make the series of the prefix, at zero until something happens: a rate() or a
        ratio of a series that does not exist yet is no value, where it should be 0.

        Not before the prefix's first connection opens: under ``PROMETHEUS_MULTIPROC_DIR``
        each series is a file, and a process that never used the prefix (``flask redis
        ping``, run every few seconds as a health check) must leave none behind.
        """
        metrics, prefix = self.metrics, self.prefix
        metrics.connection_create.labels(prefix)
        metrics.pool_wait.labels(prefix)
        metrics.pool_exhausted.labels(prefix)
        for reason in CLOSE_REASONS:
            metrics.connections_closed.labels(prefix, reason)
        for direction in ("sent", "received"):
            metrics.network.labels(prefix, direction)
        self._shown = True

    # The events: each appends to the queue, which is atomic and takes no lock.

    def opened(self, connection: Any, seconds: float) -> None:
        """A connection was opened in ``seconds``, its handshake included."""
        self._queue((_OPENED, seconds))

    def closing(self, connection: Any, reason: str) -> None:
        """``connection`` is about to close its socket, for ``reason``: what the socket
        moved since it was last read is read now."""
        sent, received = unread_bytes(connection)
        self._queue((_CLOSED, reason, sent, received))

    def waited(self, seconds: float) -> None:
        """A checkout found no connection free and waited ``seconds``."""
        self._queue((_WAITED, seconds))

    def exhausted(self) -> None:
        """A checkout was refused for lack of a connection."""
        self._queue((_EXHAUSTED,))

    def retried(self, command: str | bytes | None) -> None:
        """redis-py retries ``command`` (``None``: a connect outside any command)."""
        self._queue((_RETRIED, command))

    def _queue(self, event: tuple[Any, ...]) -> None:
        events = self._events
        events.append(event)
        # Where nothing collects the metrics, the queue is added up here once in a while,
        # unless it is being added up: this may be a finalizer run in the middle of that.
        if len(events) > _QUEUED and self._lock.acquire(blocking=False):
            try:
                self._add_events()
            finally:
                self._lock.release()

    # Collection: the queued events, then what the sockets and caches say.

    def add_pending(self, pools: Iterable[Any]) -> None:
        """Add the queued events to the metrics, then the bytes that the connections of
        ``pools`` moved since they were last read, and the figures of their caches."""
        with self._lock:
            self._add_events()
            self._add_bytes(pools)
            self._add_cache(pools)

    def forget_pending(self) -> None:
        """In a forked child: the events queued in the parent are the parent's."""
        self._lock = threading.Lock()  # it may have been held at the fork
        self._events.clear()

    def _add_events(self) -> None:
        metrics, prefix = self.metrics, self.prefix
        if not self._shown and self._events:
            self._show()
        closed: dict[str, int] = {}
        sent = received = exhausted = 0
        retries: dict[str, int] = {}
        events = self._events
        for _ in range(len(events)):  # others may be appended meanwhile: the next time
            event = events.popleft()
            kind = event[0]
            if kind == _OPENED:
                metrics.connection_create.labels(prefix).observe(event[1])
            elif kind == _CLOSED:
                closed[event[1]] = closed.get(event[1], 0) + 1
                sent += event[2]
                received += event[3]
            elif kind == _WAITED:
                metrics.pool_wait.labels(prefix).observe(event[1])
            elif kind == _EXHAUSTED:
                exhausted += 1
            else:
                label = "none" if event[1] is None else command_label(event[1])
                retries[label] = retries.get(label, 0) + 1
        for reason, count in closed.items():
            metrics.connections_closed.labels(prefix, reason).inc(count)
        if exhausted:
            metrics.pool_exhausted.labels(prefix).inc(exhausted)
        for label, count in retries.items():
            metrics.retries.labels(prefix, label).inc(count)
        self._add_network(sent, received)

    def _add_network(self, sent: int, received: int) -> None:
        if sent:
            self.metrics.network.labels(self.prefix, "sent").inc(sent)
        if received:
            self.metrics.network.labels(self.prefix, "received").inc(received)

    def _add_bytes(self, pools: Iterable[Any]) -> None:
        sent = received = 0
        for pool in pools:
            for connection in pool_connections(pool):
                more_sent, more_received = unread_bytes(connection)
                sent += more_sent
                received += more_received
        self._add_network(sent, received)

    def _add_cache(self, pools: Iterable[Any]) -> None:
        """Add what the caches of ``pools`` counted since they were last read."""
        figures = cache_figures(pools)
        if figures is None:
            if self._cache_shown:  # the caches went with their apps
                self.metrics.client_cache_entries.labels(self.prefix).set(0)
                self._cache_shown = False
            return
        metrics, prefix = self.metrics, self.prefix
        requests, evictions = metrics.client_cache_requests, metrics.client_cache_evictions
        last = self._cache
        # Each counter's series, at zero until it counts; a cache that went (its app
        # dropped) takes its counts with it: what is new is never negative.
        for child, now, before in (
            (requests.labels(prefix, "hit"), figures.hits, last.hits),
            (requests.labels(prefix, "miss"), figures.misses, last.misses),
            (evictions.labels(prefix, "full"), figures.evictions, last.evictions),
            (evictions.labels(prefix, "invalidation"), figures.invalidations,
             last.invalidations),
        ):  # fmt: skip
            if now > before:
                child.inc(now - before)
        self._cache = figures
        metrics.client_cache_entries.labels(prefix).set(figures.size)
        self._cache_shown = True
