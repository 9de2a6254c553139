"""What the panel shows: a recorded call as the panel reads it, and the calls of a request
taken at one moment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import Protocol

from flask_redis import get_recorded_calls


class Call(Protocol):
    """A recorded call: :class:`flask_redis.RecordedCall`, or anything with its fields."""

    @property
    def prefix(self) -> str: ...
    @property
    def command(self) -> str: ...
    @property
    def args(self) -> tuple[str, ...]: ...
    @property
    def args_left_out(self) -> int: ...
    @property
    def start(self) -> float: ...
    @property
    def duration(self) -> float: ...
    @property
    def pipeline(self) -> int | None: ...
    @property
    def transaction(self) -> bool: ...
    @property
    def error(self) -> str | None: ...
    @property
    def location(self) -> str | None: ...
    @property
    def stack(self) -> tuple[str, ...] | None: ...
    @property
    def node(self) -> str | None: ...
    @property
    def hits(self) -> int: ...
    @property
    def misses(self) -> int: ...
    @property
    def redacted(self) -> bool: ...
    @property
    def exact(self) -> bool: ...
    @property
    def asynchronous(self) -> bool: ...
    @property
    def cached(self) -> bool: ...


@dataclass(frozen=True)
class Snapshot:
    """The calls of one request as they were at one moment.

    :param calls: The recorded calls, in order.
    :param dropped: Per config prefix, the calls beyond its cap: counted, not recorded.
    :param elapsed: Seconds from the start of the request to the snapshot.
    :param seconds: Per config prefix, the seconds of all its round trips, the ones not
        recorded included, where the recorder counts them; else worked out from ``calls``.
    :param modes: Per config prefix that uses Sentinel or Cluster, its topology.
    """

    calls: tuple[Call, ...]
    dropped: Mapping[str, int]
    elapsed: float
    seconds: Mapping[str, float] = field(default_factory=dict)
    modes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def take(cls) -> Snapshot:
        """The calls of the current request so far; none outside a request."""
        recorded = get_recorded_calls()
        elapsed = max(perf_counter() - recorded.started, 0.0)
        seconds: Mapping[str, float] = getattr(recorded, "seconds", None) or {}
        modes: Mapping[str, str] = getattr(recorded, "modes", None) or {}
        return cls(tuple(recorded), dict(recorded.dropped), elapsed, dict(seconds), dict(modes))
