"""The ``Server-Timing`` header of a response: per config prefix that asks for it
(``PREFIX_SERVER_TIMING``), the Redis time of the request and its number of calls."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Callable, NamedTuple

from flask import Flask, Response


class Timing(NamedTuple):
    """The figures of one config prefix in one request."""

    prefix: str
    #: Its calls, counted ones that were not stored included.
    calls: int
    #: The seconds of all its round trips.
    seconds: float


# The apps that send Server-Timing headers.
_timed_apps: weakref.WeakSet[Flask] = weakref.WeakSet()


def send_server_timing(app: Flask, timings: Callable[[], Sequence[Timing]]) -> None:
    """Add the figures that ``timings`` gives for the current request to each response of
    ``app``: an entry per prefix. Once per app: ``timings`` gives those of all prefixes."""
    if app in _timed_apps:
        return
    _timed_apps.add(app)

    def add_server_timing(response: Response) -> Response:
        for timing in timings():
            milliseconds = timing.seconds * 1000
            count = timing.calls
            response.headers.add(  # type: ignore[no-untyped-call,unused-ignore]  # Werkzeug 2
                "Server-Timing",
                f"redis-{timing.prefix.lower()};dur={milliseconds:.3f};"
                f'desc="{count} call{"" if count == 1 else "s"}"',
            )
        return response

    app.after_request(add_server_timing)
