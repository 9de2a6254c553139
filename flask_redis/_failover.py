"""Follow a Sentinel service to its new master the moment the sentinels announce it.

redis-py asks the sentinels for the master only when it opens a connection. After a
failover that leaves the old master running (``SENTINEL FAILOVER``, a network partition
that heals), the pool's open connections keep writing to the old master until the
sentinels turn it into a replica, about ten seconds later, and those writes are lost.
A :class:`MasterWatch` listens for the sentinels' ``+switch-master`` announcement in a
thread of its own and points the pool at the new master at once: idle connections to
the old one are closed, and the ones in use are closed when they are given back. It does
the same, in each event loop, for the pools of the asyncio clients of the service.

It listens to every sentinel at once, so that one that freezes, dies or lies delays
nothing: the others announce the failover too. What a sentinel reports is followed only
if it is the newest configuration (Sentinel's ``config-epoch``) that a sentinel reports,
and, between sentinels that report the same epoch, the address that most of them report.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any, Callable, NamedTuple

from ._commands import printable

logger = logging.getLogger("flask_redis")

#: The channel of the sentinels' announcements of a new master.
CHANNEL = "+switch-master"
#: Seconds the watch waits for a sentinel on its own connections: one that takes longer
#: counts as down for now (a frozen sentinel still accepts connections).
SENTINEL_TIMEOUT = 0.5
#: Seconds of silence on a subscription after which its sentinel is pinged, and the
#: seconds it then has to answer before its connection is closed and made again.
PING_SECONDS = 2.0
#: Seconds between two checks that the watch is still wanted.
POLL_SECONDS = 1.0
#: Seconds before a sentinel that could not be listened to is tried again; doubled
#: after each failure, up to :data:`MAX_RETRY_SECONDS`.
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 16.0


class MasterReport(NamedTuple):
    """What a sentinel reports of the master."""

    #: Sentinel's ``config-epoch``: the configuration that the report is of, newer if higher.
    epoch: int
    #: ``(ip, port)``.
    address: tuple[str, int]


_watches: weakref.WeakSet[MasterWatch] = weakref.WeakSet()


class _Subscription:
    """The watch's subscription to one sentinel's announcements, on a client of its own
    whose timeouts are at most :data:`SENTINEL_TIMEOUT`.

    :param sentinel: The sentinel's client in :attr:`redis.sentinel.Sentinel.sentinels`.
    """

    def __init__(self, sentinel: Any) -> None:
        self.sentinel = sentinel
        pool = sentinel.connection_pool
        kwargs = dict(pool.connection_kwargs)
        for name in ("socket_timeout", "socket_connect_timeout"):
            kwargs[name] = min(kwargs.get(name) or SENTINEL_TIMEOUT, SENTINEL_TIMEOUT)
        self.client = type(sentinel)(
            connection_pool=type(pool)(connection_class=pool.connection_class, **kwargs)
        )
        self.pubsub: Any = None
        self.retry_at = 0.0
        self.delay = RETRY_SECONDS
        self.heard = 0.0  # when it last said anything
        self.pinged: float | None = None  # when the PING it has not answered was sent
        #: Failed, and has not answered a PING since: a failure is logged once.
        self.failing = False
        #: The subscriptions the sentinel confirmed.
        self.confirmed = 0

    @property
    def name(self) -> str:
        host, port = _address(self.client)
        return printable(f"{host}:{port}")

    def open(self, now: float) -> None:
        """Subscribe. The sentinel confirms it later, in a message (see :meth:`messages`):
        waiting for it here would keep the watch from hearing the others meanwhile (a
        frozen sentinel accepts connections, and answers nothing). One that says nothing
        is pinged, as a silent subscription is (see :meth:`check`)."""
        pubsub = self.client.pubsub()
        try:
            pubsub.subscribe(CHANNEL)
        except BaseException:
            pubsub.close()
            raise
        self.pubsub, self.heard, self.pinged = pubsub, now, None

    def close(self, now: float) -> None:
        """Close the subscription; it is made again after a delay that doubles each time."""
        if self.pubsub is not None:
            self.pubsub.close()
            self.pubsub = None
        self.retry_at = now + self.delay
        self.delay = min(self.delay * 2, MAX_RETRY_SECONDS)

    def socket(self) -> Any:
        connection = getattr(self.pubsub, "connection", None)
        return getattr(connection, "_sock", None)

    def messages(self, now: float) -> Iterable[dict[str, Any]]:
        """The messages already received; any of them (a PONG too) shows it is alive."""
        while True:
            message = self.pubsub.get_message(timeout=0)
            if message is None:
                return
            self.heard, self.pinged = now, None
            kind = message.get("type")
            if kind in ("pong", "subscribe"):  # a round trip: it works again
                self.failing = False
                self.delay = RETRY_SECONDS
            if kind == "subscribe":
                self.confirmed += 1
            yield message

    def check(self, now: float) -> bool:
        """PING a sentinel that has been silent; whether it answered in time, if pinged."""
        if self.pinged is not None:
            return now - self.pinged < PING_SECONDS
        if now - self.heard >= PING_SECONDS:
            self.pubsub.ping()
            self.pinged = now
        return True

    def report(self, service: str, valid: Any) -> MasterReport | None:
        """What the sentinel reports of ``service``'s master now, if it answers in time
        and reports it as up."""
        try:
            state = self.client.sentinel_masters().get(service)
        except Exception:  # down, frozen, or not a sentinel: no report
            return None
        if not state or not valid(state, service):
            return None
        epoch = int(state.get("config-epoch", 0))
        return MasterReport(epoch, (str(state["ip"]), int(state["port"])))


def newest(reports: Iterable[tuple[Any, MasterReport]]) -> tuple[Any, MasterReport] | None:
    """Of ``(sentinel, report)`` pairs, the first pair whose report to follow: the highest
    ``config-epoch``, and of those, the address that most sentinels report."""
    found = list(reports)
    votes = collections.Counter(report for _, report in found)
    if not votes:
        return None
    best = max(votes, key=lambda report: (report.epoch, votes[report]))
    return next(pair for pair in found if pair[1] == best)


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
        self._subscriptions: list[_Subscription] = []
        self._followed: MasterReport | None = None
        self._lock = threading.Lock()  # the first connection may order the sentinels too
        #: ``(loop, client)`` for each asyncio client of the service's master (see
        #: :meth:`follow_loops`).
        self._loop_clients: Callable[[], list[tuple[Any, Any]]] = list
        #: The tasks that point an asyncio pool at the new master, until they end.
        self._tasks: set[Any] = set()

    def start(self) -> MasterWatch:
        """Start listening, in a daemon thread, unless it listens already."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"flask-redis-sentinel-{self.service}", daemon=True
                )
                self._thread.start()
                _watches.add(self)
        return self

    def follow_loops(self, loop_clients: Callable[[], list[tuple[Any, Any]]]) -> None:
        """Point the pools of asyncio clients of the master at each new master too, in
        their loops: ``loop_clients()`` lists ``(loop, client)`` when called. It must not
        hold the clients but by weak references: the watch ends with the pool."""
        self._loop_clients = loop_clients

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
            # The connections it made go with it; the clients of the sentinels make new
            # ones if the master's or the replicas' client still needs them.
            for subscription in self._subscriptions:
                subscription.close(0.0)
                subscription.client.connection_pool.disconnect()
            for sentinel in self.sentinel.sentinels:
                sentinel.connection_pool.disconnect()

    def subscriptions(self) -> list[_Subscription]:
        """One subscription for each sentinel, made the first time they are needed."""
        with self._lock:
            if not self._subscriptions:
                self._subscriptions = [_Subscription(s) for s in self.sentinel.sentinels]
            return self._subscriptions

    def _watch(self) -> None:
        subscriptions = self.subscriptions()
        while self._wanted:
            now = time.monotonic()
            for subscription in subscriptions:
                if subscription.pubsub is None and now >= subscription.retry_at:
                    self._subscribe(subscription, now)
            listening = [s for s in subscriptions if s.pubsub is not None]
            self._wait(listening, now)
            now = time.monotonic()
            for subscription in listening:
                try:
                    self._read(subscription, now)
                except Exception as error:  # its connection broke: made again later
                    self._failed(subscription, error, now)

    def _subscribe(self, subscription: _Subscription, now: float) -> None:
        try:
            subscription.open(now)
        except Exception as error:
            self._failed(subscription, error, now)

    def _failed(self, subscription: _Subscription, error: Exception, now: float) -> None:
        subscription.close(now)
        if not subscription.failing:
            subscription.failing = True
            logger.warning(
                "flask_redis: cannot listen to sentinel %s of %r for failovers (%s);"
                " trying again", subscription.name, self.service, type(error).__name__,
            )  # fmt: skip

    def _wait(self, listening: list[_Subscription], now: float) -> None:
        """Wait until a subscription has something to read, or for at most a poll."""
        retry = [s.retry_at - now for s in self._subscriptions if s.pubsub is None]
        timeout = max(0.0, min([POLL_SECONDS, *retry]))
        sockets = [s.socket() for s in listening]
        if not listening or None in sockets:  # nothing to wait on, or no socket to see
            self._stopped.wait(timeout if not listening else min(timeout, 0.05))
            return
        try:
            select.select(sockets, [], [], timeout)
        except (OSError, ValueError):  # a socket closed meanwhile: read it to find out
            pass

    def _read(self, subscription: _Subscription, now: float) -> None:
        for message in subscription.messages(now):
            kind = message.get("type")
            if kind == "subscribe" and subscription.confirmed > 1:
                self.choose()  # listening again: a failover while nobody listened?
            elif kind == "message" and _service_of(message) == self.service:
                self._heard_from(subscription)
        if not subscription.check(now):
            raise TimeoutError("no answer to PING")  # frozen, or a half-open connection

    def _heard_from(self, subscription: _Subscription) -> None:
        """Follow what ``subscription``'s sentinel reports, if it is newer than what is
        followed; if it differs at the same epoch or older, ask every sentinel."""
        report = subscription.report(self.service, self.sentinel.check_master_state)
        if report is None or report == self._followed:
            return
        if self._followed is not None and report.epoch > self._followed.epoch:
            self._follow(subscription.sentinel, report)
        else:
            self.choose()

    def choose(self) -> None:
        """Ask every sentinel but those that cannot be listened to, and follow the newest
        configuration that they report."""
        valid = self.sentinel.check_master_state
        # Not those that failed and have not answered since: a frozen one would keep the
        # watch waiting on each.
        asked = [s for s in self.subscriptions() if not s.failing]
        chosen = newest(
            (s.sentinel, report)
            for s in asked
            if (report := s.report(self.service, valid)) is not None
        )
        if chosen is not None:
            self._follow(*chosen)

    def _follow(self, sentinel: Any, report: MasterReport) -> None:
        """Point the pool at the master that ``sentinel`` reports."""
        self._followed = report
        # The pool asks the sentinels in order and takes the first answer: the one to
        # follow goes first.
        _first(self.sentinel.sentinels, sentinel)
        address = _address(sentinel)
        for loop, client in self._loop_clients():
            pool = client.connection_pool
            try:  # in the client's loop, which owns its pool
                loop.call_soon_threadsafe(self._follow_in_loop, pool, address, report)
            except RuntimeError:  # the loop closed meanwhile, its client with it
                pass
        pool = self._pool()
        if pool is None or pool.master_address in (None, report.address):
            # No connection yet: the first one asks the sentinels in this order. Or the
            # master it has: asking the sentinels again would only wait on one that hangs.
            return
        before = pool.master_address
        try:
            address = pool.get_master_address()  # closes idle connections to another one
        except Exception:  # the sentinel went away meanwhile: the next report decides
            return
        if address != before:
            host, port = address
            logger.info(
                "flask_redis: the sentinels of %r announced a new master, %s:%s",
                self.service, printable(str(host)), printable(str(port)),  # one line each
            )  # fmt: skip

    def _follow_in_loop(self, pool: Any, sentinel: tuple[Any, Any], report: MasterReport) -> None:
        """Point ``pool``, an asyncio client's, at the master that the sentinel at the
        address ``sentinel`` reports; run in the pool's loop."""
        if pool.master_address in (None, report.address):
            return  # no connection yet, or to that master: nothing to close
        manager = pool.sentinel_manager
        found = [each for each in manager.sentinels if _address(each) == sentinel]
        if found:
            _first(manager.sentinels, found[0])
        task = asyncio.ensure_future(_ask_master(pool))
        self._tasks.add(task)  # the loop keeps only a weak reference to its tasks
        task.add_done_callback(self._tasks.discard)


async def _ask_master(pool: Any) -> None:
    """Have ``pool``, an asyncio Sentinel pool, ask the sentinels for the master: if it
    changed, the pool closes its idle connections (and those in use when they are given
    back, see ``_async_clients``)."""
    try:
        await pool.get_master_address()
    except Exception:  # the sentinel went away meanwhile: the next connection asks again
        pass


def _first(sentinels: list[Any], sentinel: Any) -> None:
    """Move ``sentinel`` to the front of ``sentinels``, which are asked in order."""
    if sentinel in sentinels and sentinels[0] is not sentinel:
        index = sentinels.index(sentinel)
        sentinels[0], sentinels[index] = sentinels[index], sentinels[0]


def _address(client: Any) -> tuple[Any, Any]:
    """The address that the client of a sentinel connects to."""
    kwargs = client.connection_pool.connection_kwargs
    return kwargs.get("host"), kwargs.get("port")


def watch_of(pool: Any) -> MasterWatch | None:
    """The watch of ``pool``, a Sentinel master pool, if :func:`watch` was called on it."""
    # Not vars(pool): reading a pool's __dict__ costs each of its checkouts for good (see
    # flask_redis._hooks).
    return getattr(pool, "_flask_redis_watch", None) if pool is not None else None


def _service_of(message: dict[str, Any]) -> str | None:
    """The service of a ``+switch-master`` message: ``"name old-ip old-port new-ip new-port"``."""
    data = message.get("data")
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return data.split(" ", 1)[0] if isinstance(data, str) else None


def watch(sentinel: Any, service: str, pool: Any) -> MasterWatch:
    """Follow ``service`` to each new master as it is announced (see :class:`MasterWatch`),
    from the first time ``pool`` asks for its master, as it opens its first connection: an
    app that never talks to Redis (one loaded for a ``flask`` command) starts no thread.
    That first connection asks every sentinel, so that it goes to the master of the
    newest configuration and not to one that the first sentinel listed alone reports."""
    found = MasterWatch(sentinel, service, pool)
    # A connection asks the pool's proxy (redis-py 5.1 and later, valkey-py), else the pool.
    asker = getattr(pool, "proxy", pool)
    asked = asker.get_master_address
    lock = threading.Lock()
    first = True  # until a master is found

    def get_master_address() -> Any:
        nonlocal first
        with lock:  # two threads may open the first connections at once
            if first:
                found.choose()
        address = asked()  # no master found: the next connection asks again
        with lock:
            if first:
                first = False
                del asker.get_master_address  # the class's again
                found.start()
        return address

    asker.get_master_address = get_master_address
    pool._flask_redis_watch = found
    return found


def _restart_after_fork() -> None:
    # A forked child (a gunicorn worker) has no thread of its parent's: start its own.
    for each in list(_watches):
        if each._wanted:
            each._stopped = threading.Event()  # its lock may have been held at the fork
            each._lock = threading.Lock()
            each._thread = None  # the parent's
            each._tasks = set()  # of the parent's loops
            each._subscriptions = []  # the parent's connections are not the child's
            each.start()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_restart_after_fork)
