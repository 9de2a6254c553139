"""Waiting in the tests: poll a condition until it holds, else fail saying what was
awaited.

Every wait of the suite goes through :func:`wait_for`, so that a timeout always fails the
test, with a message naming what did not happen (a wait that answered ``False`` could be
left unasserted, and pass).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis

T = TypeVar("T")

#: How long :func:`wait_for` waits by default, in seconds.
TIMEOUT = 30.0
#: How long it sleeps between two calls of the check by default, in seconds.
INTERVAL = 0.05
#: What a check may raise while the servers it asks restart or reconfigure: "not yet".
TRANSIENT: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.ResponseError,
)


def wait_for(
    check: Callable[[], T | None],
    what: str,
    timeout: float = TIMEOUT,
    *,
    interval: float = INTERVAL,
    detail: Callable[[], str] | None = None,
) -> T:
    """Call ``check`` until it returns something true, and return that.

    An error of :data:`TRANSIENT` counts as "not yet". The check is called once more after
    the deadline, so a slow machine that got there just in time passes.

    :param what: What is awaited, for the message: "the replica's link".
    :param timeout: Seconds to wait.
    :param interval: Seconds between two calls of ``check``.
    :param detail: Called at the timeout for more to say (a log of the process awaited).
    :raises TimeoutError: after ``timeout`` seconds, naming ``what``, the last error and
        the ``detail``.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        late = time.monotonic() > deadline
        try:
            result = check()
        except TRANSIENT as error:
            last_error = error
        else:
            if result:
                return result
        if late:
            message = f"timed out after {timeout:g} s waiting for {what}"
            if last_error is not None:
                message += f" (last error: {last_error!r})"
            if detail is not None:
                message += f":\n{detail()}"
            raise TimeoutError(message)
        time.sleep(interval)
