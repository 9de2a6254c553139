"""What the calls of a request say: totals per prefix, duplicates and N+1 patterns."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from ._model import Call

#: This many single-key reads of one command from one line of code make an N+1 hint.
N_PLUS_ONE_THRESHOLD = 5

#: Reads of one key each: many of them from one line are better sent together.
SINGLE_KEY_READS = frozenset({
    "GET", "GETEX", "GETRANGE", "STRLEN", "EXISTS", "TYPE", "TTL", "PTTL",
    "HGET", "HGETALL", "HEXISTS", "HKEYS", "HVALS", "HLEN", "HMGET",
    "LINDEX", "LLEN", "LRANGE", "SCARD", "SISMEMBER", "SMEMBERS",
    "ZCARD", "ZRANGE", "ZSCORE", "ZRANK",
})  # fmt: skip

#: The command that reads many keys (or members) at once, where there is one.
_BATCHED = {"GET": "MGET", "HGET": "HMGET", "SISMEMBER": "SMISMEMBER"}


def call_key(call: Call) -> Hashable:
    """What makes two calls the same: prefix, command and recorded arguments."""
    return (call.prefix, call.command, call.args, call.args_left_out)


def duplicate_counts(calls: Sequence[Call]) -> list[int]:
    """For each call, how many calls of the request are the same as it (1: none other)."""
    keys = [call_key(call) for call in calls]
    counts = Counter(keys)
    return [counts[key] for key in keys]


def round_trip_seconds(calls: Sequence[Call]) -> float:
    """The time of the calls' round trips: a pipeline's time once, not once per command."""
    seconds = 0.0
    seen: set[tuple[str, int]] = set()
    for call in calls:
        if call.pipeline is not None:
            trip = (call.prefix, call.pipeline)
            if trip in seen:
                continue
            seen.add(trip)
        seconds += call.duration
    return seconds


@dataclass(frozen=True)
class Hint:
    """One line of code that sends many single-key reads of one command."""

    prefix: str
    command: str
    location: str
    count: int

    @property
    def message(self) -> str:
        """``"6 GET calls from views.py:12: use MGET or a pipeline"``."""
        batched = _BATCHED.get(self.command)
        advice = f"{batched} or a pipeline" if batched else "a pipeline"
        return f"{self.count} {self.command} calls from {self.location}: use {advice}"


def is_single_key_read(call: Call) -> bool:
    """The call reads one key, on its own: not in a pipeline."""
    if call.pipeline is not None or call.command not in SINGLE_KEY_READS:
        return False
    # EXISTS and HMGET take many keys or fields: only one of them is a single read.
    if call.command == "EXISTS":
        return len(call.args) == 1
    if call.command == "HMGET":
        return len(call.args) == 2
    return True


def n_plus_one_hints(calls: Sequence[Call], threshold: int = N_PLUS_ONE_THRESHOLD) -> list[Hint]:
    """The places that send ``threshold`` or more single-key reads of one command, one by
    one; calls in a pipeline are already sent together and do not count."""
    counts: Counter[tuple[str, str, str]] = Counter(
        (call.prefix, call.location, call.command)
        for call in calls
        if call.location is not None and is_single_key_read(call)
    )
    return [
        Hint(prefix, command, location, count)
        for (prefix, location, command), count in counts.items()
        if count >= threshold
    ]


@dataclass(frozen=True)
class PrefixSummary:
    """The calls of one config prefix in a request."""

    prefix: str
    #: Calls recorded.
    calls: int
    #: Seconds of its round trips.
    seconds: float
    hits: int
    misses: int
    errors: int
    #: Calls beyond the cap, counted only.
    dropped: int
    #: The topology, for a prefix that uses Sentinel or Cluster.
    mode: str | None = None
    #: Calls recorded that the client-side cache served, with no round trip.
    cached: int = 0


def summarize(
    calls: Sequence[Call],
    dropped: Mapping[str, int],
    seconds: Mapping[str, float] | None = None,
    modes: Mapping[str, str] | None = None,
) -> list[PrefixSummary]:
    """One summary per prefix, in the order the prefixes were first called.

    :param seconds: Per prefix, the time of all its round trips where known (the calls not
        recorded included); else the time of the calls recorded.
    :param modes: Per prefix that uses Sentinel or Cluster, its topology.
    """
    seconds = seconds or {}
    modes = modes or {}
    by_prefix: dict[str, list[Call]] = {}
    for call in calls:
        by_prefix.setdefault(call.prefix, []).append(call)
    for prefix in dropped:
        by_prefix.setdefault(prefix, [])
    return [
        PrefixSummary(
            prefix=prefix,
            calls=len(group),
            seconds=seconds.get(prefix, round_trip_seconds(group)),
            hits=sum(call.hits for call in group),
            misses=sum(call.misses for call in group),
            errors=sum(1 for call in group if call.error is not None),
            dropped=dropped.get(prefix, 0),
            mode=modes.get(prefix),
            cached=sum(1 for call in group if call.cached),
        )
        for prefix, group in by_prefix.items()
    ]


@dataclass(frozen=True)
class Analysis:
    """Everything the panel says about a request's calls besides the calls themselves."""

    summaries: list[PrefixSummary]
    #: Per call, how many calls are the same as it (1: none other).
    duplicates: list[int]
    #: Calls that repeat an earlier one: three identical calls are two duplicates.
    duplicate_calls: int
    hints: list[Hint]

    @property
    def calls(self) -> int:
        """Calls made, the ones not recorded included."""
        return sum(summary.calls + summary.dropped for summary in self.summaries)

    @property
    def seconds(self) -> float:
        """Seconds of the round trips (see :func:`summarize`)."""
        return sum(summary.seconds for summary in self.summaries)

    @property
    def cached(self) -> int:
        """Calls recorded that the client-side cache served."""
        return sum(summary.cached for summary in self.summaries)


def analyze(
    calls: Sequence[Call],
    dropped: Mapping[str, int],
    seconds: Mapping[str, float] | None = None,
    modes: Mapping[str, str] | None = None,
) -> Analysis:
    """Summaries, duplicates and N+1 hints of a request's calls (see :func:`summarize`)."""
    duplicates = duplicate_counts(calls)
    repeats = len(calls) - len({call_key(call) for call in calls})
    summaries = summarize(calls, dropped, seconds, modes)
    return Analysis(summaries, duplicates, repeats, n_plus_one_hints(calls))
