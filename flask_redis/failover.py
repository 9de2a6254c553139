"""Follow a Sentinel service to its new master the moment the sentinels announce it.

redis-py asks the sentinels for the master only when it opens a connection. After a
failover that leaves the old master running (``SENTINEL FAILOVER``, a network partition
that heals), the pool's open connections keep writing to the old master until the
sentinels turn it into a replica, about ten seconds later, and those writes are lost.
A :class:`MasterWatch` listens for the sentinels' ``+switch-master`` announcement in a
thread of its own and points the pool at the new master at once: idle connections to
the old one are closed, and the ones in use are closed when they are given back.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

from .recording import printable

logger = logging.getLogger("flask_redis")

#: Seconds to wait for an announcement before checking that the watch is still wanted.
POLL_SECONDS = 1.0
#: Seconds between two attempts to reach a sentinel, when none answers.
RETRY_SECONDS = 1.0
#: Seconds without an announcement after which the sentinel is pinged.
PING_SECONDS = 10.0

_watches: weakref.WeakSet[MasterWatch] = weakref.WeakSet()


class MasterWatch:
    """Points the master pool of ``service`` at a new master as soon as a sentinel of
    ``sentinel`` announces one. The watch ends when the pool is garbage collected, or
    when :meth:`stop` is called.

    :param sentinel: redis-py's :class:`~redis.sentinel.Sentinel` of the service.
    :param service: The service name.
    :param pool: The :class:`~redis.sentinel.SentinelConnectionPool` of its master.
    """

    def __init__(self, sentinel: Any, service: str, pool: Any) -> None:
        self.sentinel = sentinel
        self.service = service
        self._pool = weakref.ref(pool)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> MasterWatch:
        """Start listening, in a daemon thread."""
        self._thread = threading.Thread(
            target=self._run, name=f"flask-redis-sentinel-{self.service}", daemon=True
        )
        self._thread.start()
        _watches.add(self)
        return self

    def stop(self) -> None:
        """Stop listening; returns once the thread has ended."""
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    @property
    def _wanted(self) -> bool:
        return not self._stopped.is_set() and self._pool() is not None

    def _run(self) -> None:
        try:
            self._watch()
        finally:
            # The connections it made to the sentinels go with it; their clients make new
            # ones if the replicas' client still needs them.
            for sentinel in self.sentinel.sentinels:
                sentinel.connection_pool.disconnect()

    def _watch(self) -> None:
        attempt = 0
        while self._wanted:
            sentinels = self.sentinel.sentinels
            sentinel = sentinels[attempt % len(sentinels)]
            try:
                self._listen(sentinel)
            except Exception as error:  # a sentinel down, or anything else: try the next
                if not self._failing:
                    self._failing = True
                    logger.warning(
                        "flask_redis: cannot listen to the sentinels of %r for failovers"
                        " (%s); trying again", self.service, type(error).__name__,
                    )  # fmt: skip
                attempt += 1
                self._stopped.wait(RETRY_SECONDS)

    def _listen(self, sentinel: Any) -> None:
        """Listen to one sentinel until it fails or the watch is no longer wanted."""
        pubsub = sentinel.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe("+switch-master")
            self._failing = False
            self._follow(sentinel)  # a failover while nobody listened
            quiet = 0.0
            while self._wanted:
                message = pubsub.get_message(timeout=POLL_SECONDS)
                if message is None:
                    quiet += POLL_SECONDS
                    if quiet >= PING_SECONDS:  # a sentinel gone silently fails here
                        pubsub.ping()
                        quiet = 0.0
                    continue
                quiet = 0.0
                if message.get("type") == "message" and _service_of(message) == self.service:
                    self._follow(sentinel)
        finally:
            pubsub.close()

    def _follow(self, sentinel: Any) -> None:
        """Point the pool at the master that ``sentinel`` reports."""
        # The pool asks the sentinels in order and takes the first answer; the others may
        # learn of the failover a few seconds later, so the one that announced it goes first.
        sentinels = self.sentinel.sentinels
        if sentinel in sentinels and sentinels[0] is not sentinel:
            index = sentinels.index(sentinel)
            sentinels[0], sentinels[index] = sentinels[index], sentinels[0]
        # Asked without holding the pool: a pool dropped meanwhile is collected at once,
        # not after the sentinels' reply.
        address = self.sentinel.discover_master(self.service)
        pool = self._pool()
        if pool is None or address == pool.master_address:
            return
        before = pool.master_address
        address = pool.get_master_address()  # closes idle connections to another master
        if before is not None and address != before:
            host, port = address
            logger.info(
                "flask_redis: the sentinels of %r announced a new master, %s:%s",
                self.service, printable(str(host)), printable(str(port)),  # one line each
            )  # fmt: skip


def _service_of(message: dict[str, Any]) -> str | None:
    """The service of a ``+switch-master`` message: ``"name old-ip old-port new-ip new-port"``."""
    data = message.get("data")
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return data.split(" ", 1)[0] if isinstance(data, str) else None


def watch(sentinel: Any, service: str, pool: Any) -> MasterWatch:
    """Follow ``service`` to each new master as it is announced (see :class:`MasterWatch`),
    from the first time ``pool`` asks for its master, as it opens its first connection: an
    app that never talks to Redis (one loaded for a ``flask`` command) starts no thread."""
    found = MasterWatch(sentinel, service, pool)
    # A connection asks the pool's proxy (redis-py 5.1 and later, valkey-py), else the pool.
    asker = getattr(pool, "proxy", pool)
    asked = asker.get_master_address
    lock = threading.Lock()

    def get_master_address() -> Any:
        address = asked()  # no master found: the next connection asks again
        with lock:  # two threads may open the first connections at once
            if vars(asker).pop("get_master_address", None) is not None:  # the class's again
                found.start()
        return address

    asker.get_master_address = get_master_address
    return found


def _restart_after_fork() -> None:
    # A forked child (a gunicorn worker) has no thread of its parent's: start its own.
    for each in list(_watches):
        if each._wanted:
            each._stopped = threading.Event()  # its lock may have been held at the fork
            each.start()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_restart_after_fork)
