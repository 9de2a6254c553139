"""What happens to the connections and pools of a client: opened, closed, waits,
exhaustion, retries, reported to a :class:`ConnectionEvents`.

:func:`instrument_client` gives each pool a subclass of its connection class (connections
are made of it from then on), and the backoffs of its connections' retries a subclass;
the pool, its queue or condition and a sync cluster's nodes manager keep their classes
and are given hooks of their own (see :mod:`flask_redis._hooks`). What they override
runs when something rare happens: a socket opened or closed, a new connection made, a
checkout that finds no connection free, a retry's backoff computed. The hooks of an
asyncio pool and of a blocking pool's queue run at each checkout, and only call the
library's method unless it fails or finds nothing free.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import queue
import sys
from collections.abc import Awaitable
from time import perf_counter
from typing import Any, Callable, Protocol

from ._hooks import hook
from ._instrument import report_failure

#: Why a connection was closed: the values of :meth:`ConnectionEvents.closing`'s reason.
CLOSE_REASONS = ("closed", "timeout", "connection_error", "error")

#: How many frames up a retry looks for the command it retries.
_COMMAND_DEPTH = 40
#: How many frames up a socket connect looks for the retry that runs it.
_RETRY_DEPTH = 8


class ConnectionEvents(Protocol):
    """What is told what happens to the connections and pools of a client."""

    def opened(self, connection: Any, seconds: float) -> None:
        """``connection`` was opened: ``seconds`` from the start of its first socket
        connect to the end of its handshake (TLS, HELLO or AUTH, SELECT, ...)."""

    def closing(self, connection: Any, reason: str) -> None:
        """The socket of ``connection`` is about to be closed, for ``reason``, one of
        :data:`CLOSE_REASONS`; the connection still holds it."""

    def waited(self, seconds: float) -> None:
        """A checkout found no connection free and waited ``seconds``."""

    def exhausted(self) -> None:
        """A checkout was refused for lack of a connection."""

    def retried(self, command: str | bytes | None) -> None:
        """redis-py is about to retry ``command`` (its name as sent; ``PIPELINE`` or
        ``MULTI`` for a pipeline; ``None`` if it cannot be told)."""


#: Errors by the name of a class of theirs, redis-py's and valkey-py's alike (valkey-py is
#: not imported for its classes), Python's own too: ``TimeoutError``, ``socket.timeout``.
_TIMEOUTS = frozenset({"TimeoutError", "timeout"})
# AuthenticationError is a ConnectionError in redis-py: a refusal, not a lost connection.
_REFUSALS = frozenset({"AuthenticationError"})


def close_reason(error: BaseException | None) -> str:
    """The reason of :data:`CLOSE_REASONS` a connection closed for ``error``, the error
    being handled (``None``: none)."""
    if error is None:
        return "closed"
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & _TIMEOUTS:
        return "timeout"
    if names & _REFUSALS:
        return "error"
    if isinstance(error, OSError) or "ConnectionError" in names:
        return "connection_error"
    return "error"


def _report(events: ConnectionEvents, event: str, *args: Any) -> None:
    """Call ``events.<event>(*args)``; its failure is logged once, never raised."""
    try:
        getattr(events, event)(*args)
    except Exception:
        name = type(events).__qualname__
        report_failure(
            f"the connection events {name}",
            f"the connection events {name} failed; the Redis connection they reported on did not",
        )


# Connections -------------------------------------------------------------------------


def _retry_failures(frame: Any) -> int:
    """The failures so far of the nearest retry above ``frame``, 0 if none is found."""
    for _ in range(_RETRY_DEPTH):
        if frame is None:
            break
        if frame.f_code.co_name == "call_with_retry":
            failures = frame.f_locals.get("failures")
            return failures if isinstance(failures, int) else 0
        frame = frame.f_back
    return 0


def _note_start(connection: Any) -> None:
    """Note when the socket connect of ``connection`` starts, unless it is a retry of a
    connect whose first attempt was noted (its time counts from that one)."""
    state = connection.__dict__
    if "_flask_redis_started" in state and _retry_failures(sys._getframe(2)) > 0:
        return
    state["_flask_redis_started"] = perf_counter()


def _opened(connection: Any, events: ConnectionEvents) -> None:
    start = connection.__dict__.pop("_flask_redis_started", None)
    if start is not None:
        _report(events, "opened", connection, perf_counter() - start)


def _error_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> BaseException | None:
    """The error a disconnect was called for: passed (``error=`` or first positional), or
    else the one being handled."""
    error = kwargs.get("error")
    if isinstance(error, BaseException):
        return error
    if args and isinstance(args[0], BaseException):
        return args[0]
    return sys.exc_info()[1]


def _handshake_name(base: type[Any]) -> str:
    """The handshake method the base's connect calls: redis-py 6 and later have
    ``on_connect_check_health`` (which their ``on_connect`` calls), earlier ones and
    valkey-py ``on_connect``."""
    return "on_connect_check_health" if hasattr(base, "on_connect_check_health") else "on_connect"


def _sync_methods(base: type[Any], events: ConnectionEvents) -> dict[str, Any]:
    handshake_name = _handshake_name(base)
    base_init, base_connect = base.__init__, base._connect
    base_handshake, base_disconnect = getattr(base, handshake_name), base.disconnect

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base_init(self, *args, **kwargs)
        instrument_retry(getattr(self, "retry", None), events)

    def _connect(self: Any) -> Any:
        _note_start(self)
        return base_connect(self)

    def handshake(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = base_handshake(self, *args, **kwargs)
        _opened(self, events)
        return result

    def disconnect(self: Any, *args: Any, **kwargs: Any) -> Any:
        # A forked child's copy of its parent's connection (closed when collected) is the
        # parent's: its socket, and the bytes it moved, are counted there.
        ours = getattr(self, "pid", None) in (None, os.getpid())
        if ours and getattr(self, "_sock", None) is not None:
            _report(events, "closing", self, close_reason(_error_of(args, kwargs)))
        return base_disconnect(self, *args, **kwargs)

    return {"__init__": __init__, "_connect": _connect, handshake_name: handshake,
            "disconnect": disconnect}  # fmt: skip


def _async_methods(base: type[Any], events: ConnectionEvents) -> dict[str, Any]:
    handshake_name = _handshake_name(base)
    base_init, base_connect = base.__init__, base._connect
    base_handshake, base_disconnect = getattr(base, handshake_name), base.disconnect

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base_init(self, *args, **kwargs)
        instrument_retry(getattr(self, "retry", None), events)

    async def _connect(self: Any) -> Any:
        _note_start(self)
        return await base_connect(self)

    async def handshake(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = await base_handshake(self, *args, **kwargs)
        _opened(self, events)
        return result

    async def disconnect(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "_writer", None) is not None:
            _report(events, "closing", self, close_reason(_error_of(args, kwargs)))
        return await base_disconnect(self, *args, **kwargs)

    return {"__init__": __init__, "_connect": _connect, handshake_name: handshake,
            "disconnect": disconnect}  # fmt: skip


# Made once per (class, events) pair: as many as the app has pools' classes and prefixes.
_made: dict[tuple[str, type[Any], ConnectionEvents], type[Any]] = {}


def _subclass(kind: str, base: type[Any], events: ConnectionEvents,
              make: Callable[[], dict[str, Any]], slots: bool = True) -> type[Any]:  # fmt: skip
    """The subclass of ``base`` reporting to ``events`` with the methods ``make()``
    returns, made once. With ``slots``, it adds no slot: an instance of ``base`` can take
    it as its class."""
    cls = _made.get((kind, base, events))
    if cls is None:
        namespace = {"__module__": base.__module__, "__qualname__": base.__qualname__,
                     "__doc__": base.__doc__, "_flask_redis_events": events, **make()}  # fmt: skip
        if slots:
            namespace["__slots__"] = ()
        cls = _made[kind, base, events] = type(base.__name__, (base,), namespace)
    return cls


def configured_class(connection_class: type[Any]) -> type[Any]:
    """The class that ``connection_class`` reports for (see :func:`connection_class`), or
    ``connection_class`` itself: for connections of the same kind that report nothing."""
    for cls in connection_class.__mro__:
        if "_flask_redis_events" not in vars(cls):
            return cls
    return connection_class  # pragma: no cover - object has no such attribute


def connection_class(base: type[Any], events: ConnectionEvents) -> type[Any]:
    """The subclass of the connection class ``base`` that reports to ``events``."""
    if getattr(base, "_flask_redis_events", None) is not None:
        return base

    def methods() -> dict[str, Any]:
        coroutine = inspect.iscoroutinefunction(base._connect)
        return (_async_methods if coroutine else _sync_methods)(base, events)

    # No __slots__: redis.asyncio's connections have slots, the subclass a __dict__ more.
    return _subclass("connection", base, events, methods, slots=False)


# Retries -----------------------------------------------------------------------------


def _pipeline_name(pipe: Any) -> str | None:
    """``MULTI`` or ``PIPELINE`` if ``pipe`` is a pipeline, else ``None``."""
    strategy = getattr(pipe, "_execution_strategy", None)
    if strategy is None and not (hasattr(pipe, "command_stack") or hasattr(pipe, "_command_stack")):
        return None
    transaction = type(strategy).__name__ == "TransactionStrategy" or any(
        getattr(pipe, name, False) is True
        for name in ("transaction", "explicit_transaction", "is_transaction")
    )
    return "MULTI" if transaction else "PIPELINE"


def retried_command(frame: Any) -> str | bytes | None:
    """The command being retried, read from the frames above ``frame``: the first
    arguments of the nearest ``execute_command``, or ``PIPELINE``/``MULTI`` for the
    nearest pipeline's ``execute``; ``None`` if there is none within a bounded depth."""
    for _ in range(_COMMAND_DEPTH):
        if frame is None:
            break
        name = frame.f_code.co_name
        if name in ("execute_command", "_execute_command", "immediate_execute_command"):
            args = frame.f_locals.get("args")
            if isinstance(args, tuple) and args and isinstance(args[0], (str, bytes)):
                return args[0]
        elif name == "execute":
            found = _pipeline_name(frame.f_locals.get("self"))
            if found is not None:
                return found
        frame = frame.f_back
    return None


def _backoff_methods(base: type[Any], events: ConnectionEvents) -> dict[str, Any]:
    base_compute = base.compute

    def compute(self: Any, failures: int) -> Any:
        # Called once per retry, right before it: never for a call that does not fail.
        _report(events, "retried", retried_command(sys._getframe(1)))
        return base_compute(self, failures)

    return {"compute": compute}


def instrument_retry(retry: Any, events: ConnectionEvents) -> None:
    """Report each retry of ``retry``, a :class:`~redis.retry.Retry` of this project's own
    (a connection's deep copy), by swapping its backoff's class."""
    backoff = getattr(retry, "_backoff", None)
    if backoff is None or getattr(type(backoff), "_flask_redis_events", None) is not None:
        return
    base = type(backoff)
    try:
        backoff.__class__ = _subclass(
            "backoff", base, events, lambda: _backoff_methods(base, events)
        )
    except TypeError:  # a backoff class whose layout refuses the swap: not reported
        pass


def _own_retry(owner: Any, events: ConnectionEvents) -> None:
    """Report the retries of ``owner.retry`` (a cluster client's), on a copy: the user
    may share the Retry object they passed in."""
    import copy

    retry = getattr(owner, "retry", None)
    if retry is None or getattr(retry, "_backoff", None) is None:
        return
    retry = copy.copy(retry)
    retry._backoff = copy.copy(retry._backoff)
    instrument_retry(retry, events)
    owner.retry = retry


# Pools -------------------------------------------------------------------------------


def _hook_available(pool: Any, events: ConnectionEvents) -> None:
    """An asyncio pool (redis.asyncio 6 and later, valkey-py) refuses in
    get_available_connection(), called at each checkout."""
    available = type(pool).get_available_connection

    def make(call: Callable[..., Any], ref: Callable[[], Any]) -> Callable[..., Any]:
        # The class's method, called straight: this runs at each checkout.
        def get_available_connection() -> Any:
            this = ref()
            try:
                return available(this)
            except Exception:
                if len(this._in_use_connections) >= this.max_connections:
                    _report(events, "exhausted")
                raise

        return get_available_connection

    hook(pool, "get_available_connection", make)


def _hook_make_connection(pool: Any, events: ConnectionEvents) -> None:
    """A sync pool refuses in make_connection(), called only when a new connection is
    needed; a blocking pool never refuses there."""

    def make(call: Callable[..., Any], ref: Callable[[], Any]) -> Callable[..., Any]:
        def make_connection() -> Any:
            this = ref()
            made = getattr(this, "_created_connections", None)
            full = made is not None and made >= this.max_connections
            try:
                return call()
            except Exception:
                if full:
                    _report(events, "exhausted")
                raise

        return make_connection

    hook(pool, "make_connection", make)


def _hook_queue(waiting: Any, events: ConnectionEvents) -> None:
    """A sync blocking pool's queue: a checkout that finds none free waits in ``get``."""
    get = type(waiting).get

    def make(call: Callable[..., Any], ref: Callable[[], Any]) -> Callable[..., Any]:
        # The class's get, called straight: this runs at each checkout.
        def hooked_get(block: bool = True, timeout: float | None = None) -> Any:
            this = ref()
            try:
                return get(this, False)
            except queue.Empty:
                if not block:
                    raise
            start = perf_counter()
            try:
                item = get(this, block, timeout)
            except queue.Empty:
                _report(events, "waited", perf_counter() - start)
                _report(events, "exhausted")
                raise
            _report(events, "waited", perf_counter() - start)
            return item

        return hooked_get

    hook(waiting, "get", make)


def _async_wait_ended(events: ConnectionEvents, start: float, timeout: Any,
                      error: BaseException | None) -> None:  # fmt: skip
    """Report an asyncio checkout's wait; one the pool's timeout cancelled is a refusal."""
    seconds = perf_counter() - start
    _report(events, "waited", seconds)
    if (
        isinstance(error, asyncio.CancelledError)
        and isinstance(timeout, (int, float))
        and seconds >= timeout * 0.9
    ):
        _report(events, "exhausted")


async def _timed_wait(waiting: Awaitable[Any], events: ConnectionEvents, timeout: Any) -> Any:
    """Await ``waiting``, an asyncio checkout that found no connection free, and report it."""
    start = perf_counter()
    try:
        result = await waiting
    except BaseException as error:
        _async_wait_ended(events, start, timeout, error)
        raise
    _async_wait_ended(events, start, None, None)
    return result


def _hook_async_queue(waiting: Any, events: ConnectionEvents, timeout: Any) -> None:
    """An asyncio blocking pool's queue (redis-py 5, valkey-py before the condition)."""
    get = type(waiting).get

    def make(call: Callable[..., Any], ref: Callable[[], Any]) -> Callable[..., Any]:
        async def hooked_get() -> Any:
            this = ref()
            try:
                return this.get_nowait()
            except asyncio.QueueEmpty:
                pass
            return await _timed_wait(get(this), events, timeout)

        return hooked_get

    hook(waiting, "get", make)


def _hook_condition(condition: Any, events: ConnectionEvents, timeout: Any) -> None:
    """An asyncio blocking pool's condition: a checkout waits in ``wait_for``, which asks
    the predicate first as :meth:`asyncio.Condition.wait_for` does: no cost added."""
    wait_for = type(condition).wait_for

    def make(call: Callable[..., Any], ref: Callable[[], Any]) -> Callable[..., Any]:
        async def hooked_wait_for(predicate: Callable[[], Any]) -> Any:
            result = predicate()
            if result:
                return result
            return await _timed_wait(wait_for(ref(), predicate), events, timeout)

        return hooked_wait_for

    hook(condition, "wait_for", make)


def _swap(thing: Any, kind: str, events: ConnectionEvents,
          methods: Callable[[type[Any], ConnectionEvents], dict[str, Any]]) -> None:  # fmt: skip
    """Give ``thing`` the subclass of its class with ``methods``, made once."""
    base = type(thing)
    if getattr(base, "_flask_redis_events", None) is None:
        thing.__class__ = _subclass(kind, base, events, lambda: methods(base, events))


def _instrument_waits(pool: Any, events: ConnectionEvents) -> None:
    """Report the waits of a blocking pool, sync or asyncio."""
    waiting = getattr(pool, "pool", None)
    condition = getattr(pool, "_condition", None)
    if isinstance(waiting, queue.Queue):
        _hook_queue(waiting, events)
        queue_class = pool.queue_class

        def make_queue(*args: Any, **kwargs: Any) -> Any:
            made = queue_class(*args, **kwargs)
            _hook_queue(made, events)
            return made

        pool.queue_class = make_queue  # a fork's reset makes a new queue of queue_class
    elif isinstance(waiting, asyncio.Queue):
        _hook_async_queue(waiting, events, pool.timeout)
    elif isinstance(condition, asyncio.Condition):
        _hook_condition(condition, events, pool.timeout)


def instrument_pool(pool: Any, events: ConnectionEvents) -> None:
    """Report what happens to the connections of ``pool`` to ``events``; a pool already
    instrumented keeps its first events. The pool, its queue or condition keep their
    classes (see :mod:`flask_redis._hooks`)."""
    if getattr(pool, "_flask_redis_events", None) is not None:
        return
    if hasattr(pool, "get_available_connection"):
        _hook_available(pool, events)
    elif hasattr(pool, "make_connection"):
        _hook_make_connection(pool, events)
    pool._flask_redis_events = events
    pool.connection_class = connection_class(pool.connection_class, events)
    _instrument_waits(pool, events)


# Cluster nodes ------------------------------------------------------------------------


def _node_connections_methods(base: type[Any], events: ConnectionEvents) -> dict[str, Any]:
    """An asyncio cluster node's list of connections: its length is read on checkout only
    when no connection is free, to refuse one past max_connections."""

    def __len__(self: Any) -> int:
        count = list.__len__(self)
        caller = sys._getframe(1)
        if caller.f_code.co_name == "acquire_connection":
            node = caller.f_locals.get("self")
            if count >= getattr(node, "max_connections", count + 1):
                _report(events, "exhausted")
        return count

    return {"__len__": __len__}


def _instrument_async_node(node: Any, events: ConnectionEvents) -> None:
    if getattr(type(node._connections), "_flask_redis_events", None) is not None:
        return
    node.connection_class = connection_class(node.connection_class, events)
    cls = _subclass("node connections", list, events,
                    lambda: _node_connections_methods(list, events), slots=False)  # fmt: skip
    node._connections = cls(node._connections)


def _instrument_sync_node(node: Any, events: ConnectionEvents) -> None:
    for attribute in ("redis_connection", "valkey_connection"):
        client = getattr(node, attribute, None)
        if client is not None:
            instrument_pool(client.connection_pool, events)


def _async_nodes_manager_methods(base: type[Any], events: ConnectionEvents) -> dict[str, Any]:
    """An asyncio cluster's nodes manager: the nodes it sets are instrumented. It has
    slots, so it takes a subclass (no attribute could hold a hook; nor does a class
    assigned to it slow the reads of its slots)."""
    base_set_nodes = base.set_nodes

    def set_nodes(self: Any, old: Any, new: Any, *args: Any, **kwargs: Any) -> Any:
        for node in new.values():
            _instrument_async_node(node, events)
        return base_set_nodes(self, old, new, *args, **kwargs)

    return {"set_nodes": set_nodes}


def _instrument_nodes_manager(manager: Any, events: ConnectionEvents) -> None:
    """The nodes manager of a cluster client: the nodes it makes later are instrumented
    too. A sync one's clients, made by ``create_redis_node``, through a hook on the
    manager, which each cluster command reads (see :mod:`flask_redis._hooks`)."""
    if getattr(manager, "_flask_redis_events", None) is not None:
        return
    name = next((name for name in ("create_redis_node", "create_valkey_node")
                 if hasattr(manager, name)), None)  # fmt: skip
    if name is None:
        _swap(manager, "nodes manager", events, _async_nodes_manager_methods)
        return

    def creating(call: Callable[..., Any], ref: Any) -> Callable[..., Any]:
        def create_node(*args: Any, **kwargs: Any) -> Any:
            client = call(*args, **kwargs)
            instrument_pool(client.connection_pool, events)
            return client

        return create_node

    hook(manager, name, creating)
    manager._flask_redis_events = events


def _instrument_cluster(client: Any, manager: Any, events: ConnectionEvents) -> None:
    nodes = list(getattr(manager, "startup_nodes", {}).values())
    nodes += list(getattr(manager, "nodes_cache", {}).values())
    for node in nodes:
        if hasattr(node, "acquire_connection"):
            _instrument_async_node(node, events)
        else:
            _instrument_sync_node(node, events)
    _instrument_nodes_manager(manager, events)
    _own_retry(client, events)


def instrument_client(client: Any, events: ConnectionEvents) -> None:
    """Report what happens to the connections and pools of ``client`` to ``events`` from
    now on: a redis-py or valkey-py client, sync or asyncio, of one server, a Sentinel
    service or a Cluster. Call it before the client's first command; connections made
    before are not reported. A pool already instrumented keeps its first events."""
    manager = getattr(client, "nodes_manager", None)
    if manager is not None:
        _instrument_cluster(client, manager, events)
        return
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        instrument_pool(pool, events)
