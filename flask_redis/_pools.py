"""Count the connections of redis-py connection pools, for the pool gauges and the CLI."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Callable, NamedTuple

#: What lists the connection pools of a client, for the pool gauges.
PoolLister = Callable[[], Iterable[Any]]


def connection_counts(pool: Any) -> tuple[int, int] | None:
    """Connections (in use, idle) of a redis-py pool, sync or asyncio, or of an asyncio
    cluster node, which keeps its connections itself; ``None`` for a kind it cannot read."""
    if getattr(pool, "pid", None) not in (None, os.getpid()):
        # A forked worker's copy of its parent's pool, which redis-py empties on first use.
        return 0, 0
    queue = getattr(pool, "pool", None)  # BlockingConnectionPool: a queue of idle ones
    if queue is not None and hasattr(pool, "_connections"):
        idle = sum(1 for connection in list(queue.queue) if connection is not None)
        return len(pool._connections) - idle, idle
    free = getattr(pool, "_free", None)  # an asyncio cluster node: its idle ones, of all
    if free is not None and hasattr(pool, "_connections"):
        idle = len(free)
        return len(pool._connections) - idle, idle
    in_use = getattr(pool, "_in_use_connections", None)
    available = getattr(pool, "_available_connections", None)
    if in_use is None or available is None:
        return None
    return len(in_use), len(available)


#: How many times :func:`pool_connections` copies a collection that another thread changed
#: while it was copied, before it gives up on that pool for this reading.
_COPY_ATTEMPTS = 5


def _copied(items: Any) -> list[Any]:
    """A list of ``items``, a list, set or weak set that other threads change; raises
    ``RuntimeError`` if it changed size while it was copied, at each attempt."""
    for attempt in range(1, _COPY_ATTEMPTS + 1):
        try:
            return list(items)
        except RuntimeError:  # changed size during iteration
            if attempt == _COPY_ATTEMPTS:
                raise
    return []  # not reached


def pool_connections(pool: Any) -> list[Any]:
    """The connections ``pool`` holds now, idle and in use: of a redis-py or valkey-py
    pool, sync or asyncio, blocking or not, or of an asyncio cluster node, which keeps
    its connections itself; ``[]`` for a kind it cannot read, for a forked worker's copy of
    its parent's pool, and for one that other threads kept changing while it was copied."""
    if getattr(pool, "pid", None) not in (None, os.getpid()):
        return []  # a forked worker's copy: its connections are its parent's sockets
    try:
        everyone = getattr(pool, "_connections", None)  # blocking pools, cluster nodes
        if everyone is not None:
            return _copied(everyone)
        in_use = getattr(pool, "_in_use_connections", None)
        available = getattr(pool, "_available_connections", None)
        if in_use is None or available is None:
            return []
        # A connection that moves from one to the other once meanwhile is in one copy at
        # least; one found in two is listed once.
        first, idle, then = _copied(in_use), _copied(available), _copied(in_use)
        if not first and not then:
            return idle
        found = {id(connection): connection for connection in (*first, *idle, *then)}
        return list(found.values())
    except (RuntimeError, TypeError):
        return []


def usage(pool: Any, counts: tuple[int, int]) -> float | None:
    """How full ``pool`` is: its ``counts`` of connections in use over its
    ``max_connections``, from 0 to 1; ``None`` for a pool without a usable maximum."""
    limit = getattr(pool, "max_connections", None)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        return None
    return counts[0] / limit


class PoolReading(NamedTuple):
    """The connections of some pools (see :func:`read_pools`)."""

    #: Connections in use, summed.
    in_use: int
    #: Idle connections, summed.
    idle: int
    #: How full each pool with a maximum is (see :func:`usage`).
    usages: list[float]
    #: Whether any pool could be read.
    readable: bool


def read_pools(listers: Iterable[PoolLister]) -> PoolReading:
    """The connections of the pools that ``listers`` list, each pool counted once."""
    in_use = idle = 0
    usages: list[float] = []
    readable = False
    # A pool that clients of several apps share (PREFIX_CONNECTION_POOL) is counted once.
    # Kept for the pass only, so that no id is another pool's meanwhile.
    seen: dict[int, Any] = {}
    for pools in listers:
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
    return PoolReading(in_use, idle, usages, readable)
