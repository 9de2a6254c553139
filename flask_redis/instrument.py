"""Time each round trip to Redis and hand it to an observer: the hot path lives here only.

:func:`instrumented` makes a thin subclass of the configured client class whose
``execute_command`` takes one :func:`~time.perf_counter` pair and makes one observer call.
The pipelines it returns are instrumented the same way: a pipeline or transaction is one
round trip, observed as ``PIPELINE`` or ``MULTI`` with the commands it carried.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any, Optional, Protocol, Sequence, Tuple, TypeVar


logger = logging.getLogger("flask_redis")

Command = Tuple[Any, ...]
"""A command as redis-py sends it: ``("SET", "key", "value")``."""

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
        command: Command,
        seconds: float,
        reply: Any,
        error: Optional[BaseException],
        commands: Optional[Sequence[Command]],
    ) -> None: ...


_observer_failed = False


def _report_observer_error() -> None:
    """Log an observer's failure once per process: the caller's command is not affected."""
    global _observer_failed
    if not _observer_failed:
        _observer_failed = True
        logger.exception("flask_redis: recording a Redis command failed; the command itself did not")


class _Ignore:
    """The observer of a client that :func:`observe` was not called on.

    An instance, not a function: as a class attribute it must not bind to the client.
    """

    def __call__(
        self,
        command: Command,
        seconds: float,
        reply: Any,
        error: Optional[BaseException],
        commands: Optional[Sequence[Command]],
    ) -> None:
        pass


_ignore = _Ignore()


def _observe(
    observe: Observer,
    command: Command,
    seconds: float,
    reply: Any,
    error: Optional[BaseException],
    commands: Optional[Sequence[Command]],
) -> None:
    try:
        observe(command, seconds, reply, error, commands)
    except Exception:
        _report_observer_error()


class _InstrumentedPipeline:
    """Mixed into a client's pipeline class: ``execute()`` is one observed round trip."""

    _flask_redis_observe: Observer = _ignore

    def execute(self, raise_on_error: bool = True) -> Any:
        commands = [args for args, _options in self.command_stack]  # type: ignore[attr-defined]
        if not commands:  # nothing queued: redis-py makes no round trip
            return super().execute(raise_on_error)  # type: ignore[misc]
        transaction = self.transaction or self.explicit_transaction  # type: ignore[attr-defined]
        name = ("MULTI",) if transaction else ("PIPELINE",)
        start = perf_counter()
        try:
            replies = super().execute(raise_on_error)  # type: ignore[misc]
        except BaseException as error:
            _observe(self._flask_redis_observe, name, perf_counter() - start, None, error, commands)
            raise
        _observe(self._flask_redis_observe, name, perf_counter() - start, replies, None, commands)
        return replies

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        # WATCH, and the reads between WATCH and MULTI, go to the server at once.
        start = perf_counter()
        try:
            reply = super().immediate_execute_command(*args, **options)  # type: ignore[misc]
        except BaseException as error:
            _observe(self._flask_redis_observe, args, perf_counter() - start, None, error, None)
            raise
        _observe(self._flask_redis_observe, args, perf_counter() - start, reply, None, None)
        return reply


class _InstrumentedClient:
    """Mixed into the configured client class: each command is one observed round trip."""

    _flask_redis_observe: Observer = _ignore

    def execute_command(self, *args: Any, **options: Any) -> Any:
        # The hot path: _observe() is inlined here to save a call per command.
        start = perf_counter()
        try:
            reply = super().execute_command(*args, **options)  # type: ignore[misc]
        except BaseException as error:
            # The same exception object goes on to the caller.
            seconds = perf_counter() - start
            try:
                self._flask_redis_observe(args, seconds, None, error, None)
            except Exception:
                _report_observer_error()
            raise
        seconds = perf_counter() - start
        try:
            self._flask_redis_observe(args, seconds, reply, None, None)
        except Exception:
            _report_observer_error()
        return reply

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = super().pipeline(*args, **kwargs)  # type: ignore[misc]
        # Swap the class rather than build the pipeline ourselves: its constructor differs
        # between redis-py releases, its state does not.
        pipe.__class__ = _subclass(type(pipe), _InstrumentedPipeline)
        pipe._flask_redis_observe = self._flask_redis_observe
        return pipe

    def client(self) -> Any:
        client = super().client()  # type: ignore[misc]
        client._flask_redis_observe = self._flask_redis_observe
        return client


# Made once per base class: there are as many as the app uses client and pipeline classes.
_subclasses: dict[tuple[type[Any], type[Any]], type[Any]] = {}


def _subclass(base: type[Any], mixin: type[Any]) -> type[Any]:
    cls = _subclasses.get((base, mixin))
    if cls is None:
        namespace = {"__module__": base.__module__, "__qualname__": base.__qualname__,
                     "__doc__": base.__doc__}  # fmt: skip
        cls = _subclasses[base, mixin] = type(base.__name__, (mixin, base), namespace)
    return cls


def instrumented(base: type[ClientT]) -> type[ClientT]:
    """The subclass of ``base`` that times each round trip, made once per base class.

    It keeps the name of ``base``. A client of it reports to the observer set with
    :func:`observe`; the clients and pipelines it returns report to the same one.
    """
    return _subclass(base, _InstrumentedClient)


def combine(*observers: Observer) -> Observer:
    """One observer that calls each of ``observers`` in turn. Each has its own guard: one
    that fails is logged (once) and the others still see the round trip."""
    if len(observers) == 1:
        return observers[0]

    def observe_all(
        command: Command,
        seconds: float,
        reply: Any,
        error: Optional[BaseException],
        commands: Optional[Sequence[Command]],
    ) -> None:
        for observer in observers:
            _observe(observer, command, seconds, reply, error, commands)

    return observe_all


def observe(client: Any, observer: Observer) -> None:
    """Hand every round trip of ``client``, an instance of :func:`instrumented`, to
    ``observer``. Errors reach the caller unchanged; an error in ``observer`` is logged
    once and ignored."""
    client._flask_redis_observe = observer
