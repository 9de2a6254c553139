"""The recent requests of an app in this process, each with the Redis calls it made: what
the page of a request's calls shows, found by the token of the request's response header.

Bounded: an app keeps its last :data:`REQUESTS` requests, each holding at most what the
recorder keeps of a request (``PREFIX_RECORD_CALLS_MAX`` calls, each cut to its byte
bounds). A request older than that, or made in another process, is no longer found.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from flask_redis._commands import printable

from ._analysis import Analysis
from ._model import Snapshot

#: Requests kept per app: the newest.
REQUESTS = 50


@dataclass(frozen=True)
class KeptRequest:
    """A request and the Redis calls it made, as its response left the app."""

    #: What finds it: random, so that no other request's calls can be guessed.
    token: str
    method: str
    #: The path, with its query string if any.
    path: str
    status: int
    #: When the response left, in seconds since the epoch.
    at: float
    snapshot: Snapshot
    analysis: Analysis


class History:
    """The last :data:`REQUESTS` requests of one app, newest last. Safe from any thread:
    requests of a threaded server end at once."""

    def __init__(self, size: int = REQUESTS) -> None:
        self._size = size
        self._kept: OrderedDict[str, KeptRequest] = OrderedDict()
        self._lock = threading.Lock()

    def keep(
        self, method: str, path: str, status: int, snapshot: Snapshot, analysis: Analysis
    ) -> KeptRequest:
        """Keep a request that has ended, forgetting the oldest beyond the bound."""
        kept = KeptRequest(
            secrets.token_urlsafe(12), method, path, status, time.time(), snapshot, analysis
        )
        with self._lock:
            self._kept[kept.token] = kept
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return kept

    def get(self, token: str) -> KeptRequest | None:
        """The request of ``token``, if it is still kept."""
        with self._lock:
            return self._kept.get(token)

    def newest(self) -> list[KeptRequest]:
        """The requests kept, newest first."""
        with self._lock:
            return list(reversed(self._kept.values()))


def summary(kept: KeptRequest) -> dict[str, Any]:
    """What the panel's list of requests shows of ``kept``, as JSON values."""
    analysis = kept.analysis
    return {
        "token": kept.token,
        "method": printable(kept.method),
        "path": printable(kept.path),
        "status": kept.status,
        "calls": analysis.calls,
        "milliseconds": round(analysis.seconds * 1000, 2),
        "duplicates": analysis.duplicate_calls,
        "hints": len(analysis.hints),
        "errors": sum(each.errors for each in analysis.summaries),
    }
