"""Time each round trip to Redis and hand it to an observer: the hot path lives here only.

:func:`instrumented` makes a thin subclass of the configured client class whose
``execute_command`` takes one :func:`~time.perf_counter` pair and makes one observer call.
The pipelines it returns are instrumented the same way: a pipeline or transaction is one
round trip, observed as ``PIPELINE`` or ``MULTI`` with the commands it carried. The clients
of redis-py and of valkey-py, its fork, have the same methods: both are timed the same way.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from time import perf_counter
from typing import Any, Callable, Protocol, TypeVar

from redis import Redis
from redis.cluster import ClusterPipeline

# redis-py 5 has no cluster transactions. Each ignore below is needed with either redis-py 5
# or a later one, never both: hence unused-ignore.
try:
    from redis.cluster import (  # type: ignore[attr-defined,unused-ignore]
        TransactionStrategy as _TransactionStrategy,
    )
except ImportError:  # pragma: no cover - redis-py 5
    _TransactionStrategy = None  # type: ignore[assignment,misc,unused-ignore]

logger = logging.getLogger("flask_redis")

#: A command as redis-py sends it: the type ``Command`` of ``_commands``, which this module,
#: the hot path, does not import (it imports nothing of the project).
_Command = tuple[Any, ...]

ClientT = TypeVar("ClientT")


class Observer(Protocol):
    """What receives each round trip.

    :param command: The command sent; ``("PIPELINE",)`` or ``("MULTI",)`` for a pipeline.
    :param seconds: Its wall time, sending the command and reading the reply.
    :param reply: The parsed reply (for a pipeline, the list of replies), ``None`` on error.
    :param error: The exception the caller gets, else ``None``.
    :param commands: For a pipeline, the commands it carried; else ``None``.
    """

    def __call__(
        self,
        command: _Command,
        seconds: float,
        reply: Any,
        error: BaseException | None,
        commands: Sequence[_Command] | None,
    ) -> None: ...


#: The parts of the extension whose failure was logged: each is logged once per process.
_reported: set[str] = set()


def report_failure(part: str, message: str) -> None:
    """Log ``message``, a failure of ``part`` of the extension (an observer, the pool gauges
    of a prefix, the multiprocess write), with the exception being handled if any.

    Each part is logged the first time it fails in the process, and only then: a failure
    that repeats on every command would flood the log. One part's failure does not silence
    another's.
    """
    if part in _reported:
        return
    _reported.add(part)
    error = sys.exc_info()[1]  # None outside an except block: no traceback then
    logger.error("flask_redis: %s", message, exc_info=error)


def forget_failure(part: str) -> None:
    """Log the next failure of ``part`` again (in a forked child, which has not logged it)."""
    _reported.discard(part)


def _observer_name(observer: Any) -> str:
    """What names ``observer`` in a log: its qualified name, and its prefix if it is the
    method of an object of one prefix (each observer of the extension is)."""
    name = getattr(observer, "__qualname__", None) or type(observer).__qualname__
    prefix = getattr(getattr(observer, "__self__", None), "prefix", None)
    return f"{name} of prefix {prefix!r}" if isinstance(prefix, str) else name


def _report_observer_error(observer: Any) -> None:
    """Log that ``observer`` raised, once per observer: the caller's command is not affected."""
    name = _observer_name(observer)
    report_failure(
        f"the observer {name}",
        f"the observer {name} failed; the Redis command it observed did not",
    )


class _Ignore:
    """The observer of a client that :func:`observe` was not called on.

    An instance, not a function: as a class attribute it must not bind to the client.
    """

    def __call__(
        self,
        command: _Command,
        seconds: float,
        reply: Any,
        error: BaseException | None,
        commands: Sequence[_Command] | None,
    ) -> None:
        pass


_ignore = _Ignore()


def _observe(
    observe: Observer,
    command: _Command,
    seconds: float,
    reply: Any,
    error: BaseException | None,
    commands: Sequence[_Command] | None,
) -> None:
    try:
        observe(command, seconds, reply, error, commands)
    except Exception:
        _report_observer_error(observe)


def _timed(observe: Observer, command: _Command, commands: Sequence[_Command] | None,
           call: Callable[[], Any]) -> Any:  # fmt: skip
    """Make the round trip ``call()`` and hand it to ``observe``; its reply or error goes
    on to the caller."""
    start = perf_counter()
    try:
        reply = call()
    except BaseException as error:
        _observe(observe, command, perf_counter() - start, None, error, commands)
        raise
    _observe(observe, command, perf_counter() - start, reply, None, commands)
    return reply


class _Queued:
    """What the instrumented pipelines, sync and asyncio, read of the commands queued."""

    _flask_redis_observe: Observer = _ignore

    def _flask_redis_queued(self) -> tuple[list[_Command], bool]:
        """The commands queued, and whether they run as a transaction."""
        commands = [args for args, _options in self.command_stack]  # type: ignore[attr-defined]
        return commands, self.transaction or self.explicit_transaction  # type: ignore[attr-defined]


class _InstrumentedPipeline(_Queued):
    """Mixed into a client's pipeline class: ``execute()`` is one observed round trip."""

    def execute(self, raise_on_error: bool = True) -> Any:
        commands, transaction = self._flask_redis_queued()
        execute = super().execute  # type: ignore[misc]
        if not commands:  # nothing queued: redis-py makes no round trip
            return execute(raise_on_error)
        name = ("MULTI",) if transaction else ("PIPELINE",)
        return _timed(self._flask_redis_observe, name, commands,
                      lambda: execute(raise_on_error))  # fmt: skip

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        # WATCH, and the reads between WATCH and MULTI, go to the server at once.
        call = super().immediate_execute_command  # type: ignore[misc]
        return _timed(self._flask_redis_observe, args, None, lambda: call(*args, **options))


class _InstrumentedClusterPipeline(_InstrumentedPipeline):
    """Mixed into a cluster client's pipeline class, whose queue is kept elsewhere."""

    def _flask_redis_queued(self) -> tuple[list[_Command], bool]:
        # redis-py 6 and later queue in an execution strategy, transactions included;
        # redis-py 5 and valkey-py in the pipeline itself, and have no cluster transactions.
        strategy = getattr(self, "_execution_strategy", None)
        if strategy is None:
            queue = self.command_stack  # type: ignore[attr-defined]
        else:
            queue = strategy.command_queue
        return [command.args for command in queue], _is_transaction(strategy)


if _TransactionStrategy is not None:

    class _TimedTransactionStrategy(_TransactionStrategy):  # type: ignore[misc,unused-ignore]
        """The strategy of a cluster transaction: WATCH, and the reads between WATCH and
        MULTI, go to the server at once, each an observed round trip."""

        __slots__ = ()  # the class swap needs the layout of the strategy it replaces

        def _immediate_execute_command(self, *args: Any, **options: Any) -> Any:
            call: Any = super()._immediate_execute_command
            pipe: Any = self._pipe
            observe = pipe._flask_redis_observe
            return _timed(observe, args, None, lambda: call(*args, **options))


def _is_cluster(pipe: Any) -> bool:
    """Whether ``pipe`` is a cluster client's pipeline: redis-py's, or one that routes its
    commands by node as redis-py's does (valkey-py's)."""
    return isinstance(pipe, ClusterPipeline) or hasattr(pipe, "nodes_manager")


def _is_transaction(strategy: Any) -> bool:
    """Whether a cluster pipeline's execution strategy runs a transaction."""
    return _TransactionStrategy is not None and isinstance(strategy, _TransactionStrategy)


def _is_async_cluster(pipe: Any) -> bool:
    """Whether ``pipe`` is an asyncio cluster client's pipeline, which holds its client as
    ``cluster_client`` (redis-py 6 and later) or ``_client`` (redis-py 5, valkey-py); by
    name, not by class: this module does not import ``redis.asyncio``."""
    return hasattr(pipe, "cluster_client") or hasattr(pipe, "_client")


def _forwarding(function: Callable[..., Any]) -> Callable[..., Any] | None:
    """``function`` if all it does is hand the command on to ``self._execute_command``,
    as redis-py's :meth:`~redis.Redis.execute_command` does since 5.1; else ``None``."""
    return function if function.__code__.co_names == ("_execute_command",) else None


_FORWARD = _forwarding(Redis.execute_command)


class _InstrumentedClient:
    """Mixed into the configured client class: each command is one observed round trip."""

    _flask_redis_observe: Observer = _ignore
    #: The configured class, which this one extends.
    _flask_redis_base: type[Any] = object

    def execute_command(self, *args: Any, **options: Any) -> Any:
        # The hot path: _observe() is inlined here to save a call per command (the tests
        # check that both observe and report alike).
        start = perf_counter()
        try:
            # Looked up on each call, not when the class was made: a tracer may patch it.
            execute = self._flask_redis_base.execute_command
            if execute is _FORWARD:
                # redis-py's own, which only hands the command on: calling the method it
                # calls saves a frame, half of what timing costs.
                reply = self._execute_command(*args, **options)  # type: ignore[attr-defined]
            else:  # the configured class's own (valkey-py's), or a tracer's patch
                reply = execute(self, *args, **options)
        except BaseException as error:
            # The same exception object goes on to the caller.
            seconds = perf_counter() - start
            try:
                self._flask_redis_observe(args, seconds, None, error, None)
            except Exception:
                _report_observer_error(self._flask_redis_observe)
            raise
        seconds = perf_counter() - start
        try:
            self._flask_redis_observe(args, seconds, reply, None, None)
        except Exception:
            _report_observer_error(self._flask_redis_observe)
        return reply

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = super().pipeline(*args, **kwargs)  # type: ignore[misc]
        # Swap the class rather than build the pipeline ourselves: its constructor differs
        # between redis-py releases, its state does not.
        mixin = _InstrumentedClusterPipeline if _is_cluster(pipe) else _InstrumentedPipeline
        pipe.__class__ = subclass(type(pipe), mixin)
        pipe._flask_redis_observe = self._flask_redis_observe
        strategy = getattr(pipe, "_execution_strategy", None)
        if _TransactionStrategy is not None and type(strategy) is _TransactionStrategy:
            strategy.__class__ = _TimedTransactionStrategy
        return pipe

    def client(self) -> Any:
        client = super().client()  # type: ignore[misc]
        client._flask_redis_observe = self._flask_redis_observe
        return client


async def _timed_async(observe: Observer, command: _Command, commands: Sequence[_Command] | None,
                       call: Callable[[], Any]) -> Any:  # fmt: skip
    """:func:`_timed` for a coroutine: ``await call()`` is the round trip. Its time is the
    wall time of the await, the time other tasks of the loop ran meanwhile included."""
    start = perf_counter()
    try:
        reply = await call()
    except BaseException as error:  # CancelledError too: the round trip ended there
        _observe(observe, command, perf_counter() - start, None, error, commands)
        raise
    _observe(observe, command, perf_counter() - start, reply, None, commands)
    return reply


class _InstrumentedAsyncPipeline(_Queued):
    """Mixed into an asyncio client's pipeline class: ``await execute()`` is one observed
    round trip."""

    def _flask_redis_queued(self) -> tuple[list[_Command], bool]:
        # An asyncio pipeline is a client too: its "transaction" is the client's method.
        commands = [args for args, _options in self.command_stack]  # type: ignore[attr-defined]
        return commands, self.is_transaction or self.explicit_transaction  # type: ignore[attr-defined]

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        # Any arguments, handed on: a cluster pipeline's execute() takes allow_redirections.
        commands, transaction = self._flask_redis_queued()
        execute = super().execute  # type: ignore[misc]
        if not commands:  # nothing queued: redis-py makes no round trip
            return await execute(*args, **kwargs)
        name = ("MULTI",) if transaction else ("PIPELINE",)
        return await _timed_async(self._flask_redis_observe, name, commands,
                                  lambda: execute(*args, **kwargs))  # fmt: skip

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        # WATCH, and the reads between WATCH and MULTI, go to the server at once.
        call = super().immediate_execute_command  # type: ignore[misc]
        return await _timed_async(self._flask_redis_observe, args, None,
                                  lambda: call(*args, **options))  # fmt: skip


class _InstrumentedAsyncClusterPipeline(_InstrumentedAsyncPipeline):
    """Mixed into an asyncio cluster client's pipeline class, whose queue is kept elsewhere."""

    def _flask_redis_queued(self) -> tuple[list[_Command], bool]:
        # redis-py 6 and later queue in an execution strategy, transactions included;
        # redis-py 5 and valkey-py in the pipeline itself, and have no cluster transactions.
        strategy = getattr(self, "_execution_strategy", None)
        if strategy is None:
            queue = self._command_stack  # type: ignore[attr-defined]
        else:
            queue = strategy._command_queue
        transaction = type(strategy).__name__ == "TransactionStrategy"
        return [command.args for command in queue], transaction


class _InstrumentedAsyncClient:
    """Mixed into an asyncio client class (``redis.asyncio.Redis``): each command awaited
    is one observed round trip."""

    _flask_redis_observe: Observer = _ignore

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        # The hot path: _timed_async() and _observe() are inlined here to save a coroutine,
        # a lambda and a call per command (the tests check that all observe and report alike).
        start = perf_counter()
        try:
            reply = await super().execute_command(*args, **options)  # type: ignore[misc]
        except BaseException as error:  # CancelledError too: the round trip ended there
            seconds = perf_counter() - start
            try:
                self._flask_redis_observe(args, seconds, None, error, None)
            except Exception:
                _report_observer_error(self._flask_redis_observe)
            raise
        seconds = perf_counter() - start
        try:
            self._flask_redis_observe(args, seconds, reply, None, None)
        except Exception:
            _report_observer_error(self._flask_redis_observe)
        return reply

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = super().pipeline(*args, **kwargs)  # type: ignore[misc]
        mixin = (
            _InstrumentedAsyncClusterPipeline
            if _is_async_cluster(pipe)
            else _InstrumentedAsyncPipeline
        )
        pipe.__class__ = subclass(type(pipe), mixin)
        pipe._flask_redis_observe = self._flask_redis_observe
        return pipe

    def client(self) -> Any:
        client = super().client()  # type: ignore[misc]
        client._flask_redis_observe = self._flask_redis_observe
        return client


# Made once per base class: there are as many as the app uses client and pipeline classes.
_subclasses: dict[tuple[type[Any], type[Any]], type[Any]] = {}


def subclass(base: type[Any], mixin: type[Any]) -> type[Any]:
    cls = _subclasses.get((base, mixin))
    if cls is None:
        # The configured class stays the one of an instrumented base (a Sentinel client
        # that notes its servers mixes into one): its execute_command is not ours.
        configured = base.__dict__.get("_flask_redis_base", base)
        namespace = {"__module__": base.__module__, "__qualname__": base.__qualname__,
                     "__doc__": base.__doc__, "_flask_redis_base": configured}  # fmt: skip
        cls = _subclasses[base, mixin] = type(base.__name__, (mixin, base), namespace)
    return cls


def instrumented(base: type[ClientT]) -> type[ClientT]:
    """The subclass of ``base`` that times each round trip, made once per base class.

    It keeps the name of ``base``. A client of it reports to the observer set with
    :func:`observe`; the clients and pipelines it returns report to the same one.
    """
    return subclass(base, _InstrumentedClient)


def instrumented_async(base: type[ClientT]) -> type[ClientT]:
    """:func:`instrumented` for an asyncio client class (``redis.asyncio.Redis``): each
    command and pipeline awaited is one observed round trip."""
    return subclass(base, _InstrumentedAsyncClient)


def combine(*observers: Observer) -> Observer:
    """One observer that calls each of ``observers`` in turn. Each has its own guard: one
    that fails is logged (once, by name) and the others still see the round trip."""
    if len(observers) == 1:
        return observers[0]

    def observe_all(
        command: _Command,
        seconds: float,
        reply: Any,
        error: BaseException | None,
        commands: Sequence[_Command] | None,
    ) -> None:
        for observer in observers:
            _observe(observer, command, seconds, reply, error, commands)

    return observe_all


def observer_of(client: Any) -> Observer | None:
    """The observer that :func:`observe` gave ``client``, or ``None`` for a client that is
    not instrumented."""
    found = getattr(client, "_flask_redis_observe", None)
    return None if found is None or found is _ignore else found


def observe(client: Any, observer: Observer) -> None:
    """Hand every round trip of ``client``, an instance of :func:`instrumented`, to
    ``observer``. Errors reach the caller unchanged; an error in ``observer`` is logged
    once, naming it, and ignored."""
    client._flask_redis_observe = observer
