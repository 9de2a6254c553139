"""Under a multiprocess server (``PROMETHEUS_MULTIPROC_DIR``): write the metrics of each
process to the shared files every second, and when it exits.

Round trips are tallied in memory, as in one process. But another process may serve the
scrape, and it reads the files: no scrape of this process adds its tallies up. A thread
of each process does, every :data:`INTERVAL` seconds, and once more at exit; the process
that serves a scrape adds its own first. A scrape sees the round trips of the other
workers up to a second late; a worker killed with SIGKILL loses at most its last second.

The folder is checked when the metrics are set up (:func:`check_folder`): one that is
missing, is no folder or cannot be written to is a :exc:`ValueError` naming the variable,
not a failure of every page later. A folder removed while the server runs is logged by
each process that writes, once (as is a write that fails: see
:func:`~._instrument.report_failure`), and fails the scrapes with an error that says so.
"""

from __future__ import annotations

import atexit
import os
import sys
import tempfile
import threading
import time
import weakref
from typing import Protocol

from ._instrument import forget_failure, report_failure

#: Seconds between two writes.
INTERVAL = 1.0
#: The variables that turn prometheus-client's multiprocess mode on, in the order it reads
#: them: the lower-case one is deprecated, and only read when the other is not set.
VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")
#: What the folder must be, said by every error about it.
REQUIREMENT = (
    "with metrics on, it must name an existing folder that every process of the server"
    " can write to, emptied before the server starts (see 'Under Gunicorn' in the"
    " metrics documentation); unset it to keep the metrics in one process"
)

#: The part of the extension whose failures :func:`write` reports.
_PART = "the multiprocess file write"


class Written(Protocol):
    """What is written every second: the metrics of a registry."""

    def add_pending(self) -> None:
        """Add what was tallied since the last call to the metrics (in the files)."""

    def forget_pending(self) -> None:
        """In a forked child: forget what the parent tallied."""


_written: weakref.WeakSet[Written] = weakref.WeakSet()
_writer: _Writer | None = None
_lock = threading.Lock()


def folder_setting() -> tuple[str, str] | None:
    """The variable of multiprocess mode that prometheus-client reads, and its value;
    ``None`` when neither is set."""
    for name in VARIABLES:
        if name in os.environ:
            return name, os.environ[name]
    return None


def folder_problem(write: bool = False) -> str | None:
    """What is wrong with the folder of multiprocess mode, ``None`` if nothing is or no
    variable is set. With ``write``, a file is made and removed there to make sure it can
    be written to."""
    setting = folder_setting()
    if setting is None:
        return None
    name, folder = setting
    if not folder:
        return f"{name} is set, but empty"
    if not os.path.exists(folder):
        return f"{name} is {folder!r}, which does not exist"
    if not os.path.isdir(folder):
        return f"{name} is {folder!r}, which is not a folder"
    if write:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            reason = error.strerror or type(error).__name__
            return f"{name} is {folder!r}, which this process cannot write to ({reason})"
    return None


def check_folder() -> None:
    """Make sure that the folder of multiprocess mode, if a variable sets one, is a folder
    this process can write its metrics to.

    :raises ValueError: it is empty, missing, not a folder, or cannot be written to.
    """
    problem = folder_problem(write=True)
    if problem is not None:
        raise ValueError(f"{problem}: {REQUIREMENT}")


class _Writer(threading.Thread):
    """The thread that writes, every :data:`INTERVAL` seconds, for the life of the process."""

    def __init__(self) -> None:
        super().__init__(name="flask_redis metrics writer", daemon=True)

    def run(self) -> None:
        while True:  # a daemon thread: it ends with the process
            time.sleep(INTERVAL)
            write()


def write() -> None:
    """Add what was tallied since the last write to the metrics, which are in the files.

    A failure, or a folder that is gone (the files already open are still written to,
    but no scrape reads them), is logged once per process (the first of them); the next
    write tries again.
    """
    with _lock:  # a set may not change while it is copied
        written = list(_written)
    if not written:
        return
    problem = folder_problem()
    if problem is not None:
        _report_write_error(f"{problem}: the metrics of this process are lost; {REQUIREMENT}")
    for metrics in written:
        try:
            metrics.add_pending()
        except Exception:  # the next write tries again; the server goes on
            name = (folder_setting() or VARIABLES)[0]
            _report_write_error(f"writing the metrics of this process to {name} failed")


def _report_write_error(message: str) -> None:
    """Log that a write failed, with the exception being handled if any, once per process."""
    report_failure(_PART, f"{_PART}: {message} (pid {os.getpid()})")


def write_every_second(metrics: Written) -> None:
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
    forget_failure(_PART)  # logged once per process: the child has not
    for metrics in list(_written):
        metrics.forget_pending()
    if _written:
        _writer = _Writer()
        _writer.start()


def _at_exit() -> None:
    """Write what is left, then remove the files of this process's live gauges: a process
    that ends is none of the live ones that they add up. A ``flask`` command or a script
    that loads the app leaves the folder as it found it; a gunicorn worker killed at once is
    left to the ``child_exit`` hook."""
    write()
    setting = folder_setting()
    if setting is None or not setting[1] or "prometheus_client" not in sys.modules:
        return  # an empty variable names no folder: prometheus-client would look in "."
    from prometheus_client import multiprocess

    try:
        multiprocess.mark_process_dead(os.getpid(), setting[1])  # type: ignore[no-untyped-call]
    except OSError:  # the folder is gone, or the master's hook was first
        pass


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_after_fork)
