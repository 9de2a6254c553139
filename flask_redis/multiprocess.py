"""Under a multiprocess server (``PROMETHEUS_MULTIPROC_DIR``): write the metrics of each
process to the shared files every second, and when it exits.

Round trips are tallied in memory, as in one process. But another process may serve the
scrape, and it reads the files: no scrape of this process adds its tallies up. A thread
of each process does, every :data:`INTERVAL` seconds, and once more at exit; the process
that serves a scrape adds its own first. A scrape sees the round trips of the other
workers up to a second late; a worker killed with SIGKILL loses at most its last second.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING

from .instrument import _report_observer_error

if TYPE_CHECKING:
    from .metrics import Metrics

#: Seconds between two writes.
INTERVAL = 1.0

_written: weakref.WeakSet[Metrics] = weakref.WeakSet()
_writer: _Writer | None = None
_lock = threading.Lock()


class _Writer(threading.Thread):
    """The thread that writes, every :data:`INTERVAL` seconds, for the life of the process."""

    def __init__(self) -> None:
        super().__init__(name="flask_redis metrics writer", daemon=True)

    def run(self) -> None:
        while True:  # a daemon thread: it ends with the process
            time.sleep(INTERVAL)
            write()


def write() -> None:
    """Add what was tallied since the last write to the metrics, which are in the files."""
    with _lock:  # a set may not change while it is copied
        written = list(_written)
    for metrics in written:
        try:
            metrics.add_pending()
        except Exception:  # the next write tries again; the server goes on
            _report_observer_error()


def write_every_second(metrics: Metrics) -> None:
    """Write ``metrics`` every second, from a thread of this process, and at exit."""
    global _writer
    with _lock:
        _written.add(metrics)
        if _writer is None:
            _writer = _Writer()
            _writer.start()


def _after_fork() -> None:
    # A forked child (a gunicorn worker) has no thread of its parent's, and its parent
    # writes what it tallied: the child starts its own thread and forgets those tallies.
    global _writer, _lock
    _lock = threading.Lock()  # it may have been held at the fork
    _writer = None
    for metrics in list(_written):
        metrics.forget_pending()
    if _written:
        _writer = _Writer()
        _writer.start()


atexit.register(write)
if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_after_fork)
