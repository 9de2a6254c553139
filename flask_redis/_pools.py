"""Count the connections of a redis-py connection pool, for the pool gauges and the CLI."""

from __future__ import annotations

import os
from typing import Any


def connection_counts(pool: Any) -> tuple[int, int] | None:
    """Connections (in use, idle) of a redis-py pool; ``None`` for a kind it cannot read."""
    if getattr(pool, "pid", None) not in (None, os.getpid()):
        # A forked worker's copy of its parent's pool, which redis-py empties on first use.
        return 0, 0
    queue = getattr(pool, "pool", None)  # BlockingConnectionPool: a queue of idle ones
    if queue is not None and hasattr(pool, "_connections"):
        idle = sum(1 for connection in list(queue.queue) if connection is not None)
        return len(pool._connections) - idle, idle
    in_use = getattr(pool, "_in_use_connections", None)
    available = getattr(pool, "_available_connections", None)
    if in_use is None or available is None:
        return None
    return len(in_use), len(available)


def usage(pool: Any, counts: tuple[int, int]) -> float | None:
    """How full ``pool`` is: its ``counts`` of connections in use over its
    ``max_connections``, from 0 to 1; ``None`` for a pool without a usable maximum."""
    limit = getattr(pool, "max_connections", None)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        return None
    return counts[0] / limit
