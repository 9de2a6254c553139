"""The per-request log of Redis calls that the debug toolbar panel shows.

Each prefix with recording on has a :class:`PrefixRecorder`, an observer of its
instrumented client. During a request it appends a :class:`RecordedCall` per command to
the request's log (at most ``PREFIX_RECORD_CALLS_MAX``, then only counted); outside a
request it does nothing. Secrets are redacted before anything is stored.
"""

from __future__ import annotations

import logging
import os
import sys
import weakref
from dataclasses import dataclass
from fnmatch import fnmatchcase
from time import perf_counter
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import redis
from flask import Flask, Response, current_app, has_request_context, request

from . import nodes
from .config import ClientConfig
from .instrument import Command, Observer
from .per_request import PerRequest, Stacked

logger = logging.getLogger("flask_redis.slow")

#: Characters of an argument kept for display; the rest is cut and its size shown.
ARGUMENT_LIMIT = 200
#: Arguments of a call kept for display; the rest are counted.
ARGUMENTS_LIMIT = 50
#: Frames kept of a full stack (``PREFIX_RECORD_STACK``).
STACK_LIMIT = 40
REDACTED = "***"

# Files of these folders are not the caller: the first frame outside them is.
_SKIPPED = tuple(
    os.path.dirname(module.__file__) + os.sep
    for module in (redis, sys.modules[__package__])
    if module.__file__
)

#: Reads whose nil reply is a miss; MGET and HMGET count each key or field.
_READS = frozenset({
    "GET", "GETEX", "GETDEL", "HGET", "HGETALL", "LINDEX", "ZSCORE", "SMEMBERS",
    "HEXISTS", "EXISTS", "LRANGE", "ZRANGE", "GETRANGE", "STRLEN",
})  # fmt: skip
_MULTI_READS = frozenset({"MGET", "HMGET"})
_EMPTY_IS_MISS = frozenset({"HGETALL", "SMEMBERS", "LRANGE", "ZRANGE"})
_ALL_READS = _READS | _MULTI_READS


@dataclass
class RecordedCall:
    """One command of a request, as the debug toolbar panel shows it. Treat it as
    read-only (it is not frozen: a frozen dataclass costs more to create)."""

    #: The config prefix of the client, as configured (``"REDIS"``).
    prefix: str
    #: The command, upper-case as sent (``"GET"``, ``"CLIENT SETNAME"``).
    command: str
    #: The arguments after the command, as display strings: secrets are ``"***"``, long
    #: values are cut, binary values are shown as hex.
    args: Tuple[str, ...]
    #: Arguments not kept, beyond the first :data:`ARGUMENTS_LIMIT`.
    args_left_out: int
    #: Seconds from the start of the request to the start of the round trip.
    start: float
    #: Seconds of the round trip; the commands of a pipeline share it.
    duration: float
    #: The pipeline or transaction of the command within the request (1, 2, ...).
    pipeline: Optional[int]
    #: The command was part of a transaction (``MULTI`` ... ``EXEC``).
    transaction: bool
    #: The error, as ``"ClassName: message"``; only the class for a call with a secret.
    error: Optional[str]
    #: The caller, ``path/relative/to/app/root.py:42``.
    location: Optional[str]
    #: The caller's whole stack, innermost last, when ``PREFIX_RECORD_STACK`` is on.
    stack: Optional[Tuple[str, ...]]
    #: For Sentinel and Cluster clients, the server that answered (``"host:port"``, then
    #: ``" (replica)"`` for a replica); several, in order, for a command that was
    #: redirected (``MOVED``, ``ASK``) or a pipeline over several cluster nodes.
    node: Optional[str]
    #: Keys read that existed, and that did not (nil reply).
    hits: int
    misses: int
    #: Some argument was redacted.
    redacted: bool


class RecordedCalls(Stacked, List[RecordedCall]):
    """The calls of one request, in order (see :func:`get_recorded_calls`)."""

    def __init__(self, started: float) -> None:
        super().__init__()
        #: :func:`time.perf_counter` at the start of the request.
        self.started = started
        #: Per config prefix, the calls beyond its cap: counted, not stored.
        self.dropped: Dict[str, int] = {}
        #: Per config prefix, the calls stored.
        self.counts: Dict[str, int] = {}
        #: Per config prefix, the seconds of all its round trips, dropped ones included.
        self.seconds: Dict[str, float] = {}
        #: Pipelines recorded so far; the last one's id.
        self.pipelines = 0
        #: Per config prefix that uses Sentinel or Cluster, its topology in a few words
        #: (``"Sentinel, service mymaster"``, ``"Cluster"``); set by
        #: :func:`get_recorded_calls`.
        self.modes: Dict[str, str] = {}
        # Calls recorded as tuples of RecordedCall's fields, cheaper to make than the
        # dataclass; made into RecordedCall objects when they are asked for.
        self._pending: List[Tuple[Any, ...]] = []

    def _materialize(self) -> RecordedCalls:
        if self._pending:
            for fields in self._pending:
                call = RecordedCall(*fields)
                # Short numbers were kept as they were sent (see displayed()).
                call.args = tuple([a if type(a) is str else str(a) for a in call.args])
                self.append(call)
            self._pending.clear()
        return self


# Per app, the prefixes that record calls; per request, the calls.
_requests: PerRequest[PrefixRecorder, RecordedCalls] = PerRequest(
    "flask_redis_request_calls", lambda recorders: RecordedCalls(perf_counter())
)
_request_calls = _requests.current


def get_recorded_calls() -> RecordedCalls:
    """The Redis calls of the current request, for every prefix with recording on.

    Empty outside a request, and when no prefix of the app records calls.
    """
    calls = _requests.value()
    if calls is None:
        return RecordedCalls(perf_counter())
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    calls.modes = {r.prefix: r.mode for r in _requests.members(app) if r.mode is not None}
    return calls._materialize()


def _shown(value: Any) -> str:
    """An argument as display text: cut to :data:`ARGUMENT_LIMIT`, binary as hex."""
    if isinstance(value, bytes):
        size = len(value)
        head = value[:ARGUMENT_LIMIT]
        try:
            text = head.decode("utf-8")
            printable = text.isprintable()
        except UnicodeDecodeError as error:
            # Text cut inside a character of several bytes is still text.
            printable = size > ARGUMENT_LIMIT and error.start >= len(head) - 3
            if printable:
                text = head[: error.start].decode("utf-8", "replace")
                printable = text.isprintable()
        if not printable:
            text = "0x" + head[: ARGUMENT_LIMIT // 2].hex()
            if size > ARGUMENT_LIMIT // 2:
                text += f"... ({size} bytes)"
            return text
    else:
        text = value if isinstance(value, str) else str(value)
        size = len(text)
        if size <= ARGUMENT_LIMIT:
            return text
        text = text[:ARGUMENT_LIMIT]
    if size > ARGUMENT_LIMIT:
        text += f"... ({size} bytes)" if isinstance(value, bytes) else f"... ({size} characters)"
    return text


def _word(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").upper()
    return str(value).upper()


_NONE: frozenset[int] = frozenset()
_SECRET_COMMANDS = frozenset({"AUTH", "HELLO", "MIGRATE", "ACL", "CONFIG", "SENTINEL"})
_may_hold_secrets: Dict[str, bool] = {}  # by command name as sent; bounded below


def _may_hold_secret(name: str) -> bool:
    try:
        return _may_hold_secrets[name]
    except KeyError:
        found = name.split(" ", 1)[0].upper() in _SECRET_COMMANDS
        if len(_may_hold_secrets) < 4096:
            _may_hold_secrets[name] = found
        return found


_CONFIG_SECRETS = frozenset({
    "REQUIREPASS", "MASTERAUTH", "MASTERUSER", "TLS-KEY-FILE-PASS", "TLS-CLIENT-KEY-FILE-PASS",
})  # fmt: skip


def secret_positions(name: str, args: Sequence[Any]) -> frozenset[int] | set[int]:
    """Positions in ``args`` (the arguments after command ``name``) that hold a secret."""
    if not _may_hold_secret(name):
        return _NONE
    head = name.upper().split()
    shift = len(head)
    hidden = _secret_words([*head, *(_word(arg) for arg in args)])
    return {index - shift for index in hidden if index >= shift}


def _secret_words(words: List[str]) -> set[int]:
    """Positions of the secrets in a whole command, upper-cased word by word."""
    command, size = words[0], len(words)

    def after(index: int, skip: int) -> set[int]:
        # The word ``skip`` places after ``index``; all that follow if the command is cut
        # short (the server rejects it, but what was sent may still be a password).
        return {index + skip} if index + skip < size else set(range(index + 1, size))

    def options(start: int, names: frozenset[str]) -> set[int]:
        # Values of name-value pairs from ``start`` whose name is in ``names``.
        return {i + 1 for i in range(start, size - 1, 2) if words[i] in names}

    sub = words[1] if size > 1 else ""
    if command == "AUTH":
        return set(range(1, size))
    if command == "HELLO":  # HELLO protover [AUTH username password] [SETNAME name]
        index = 2
        while index < size:
            if words[index] == "AUTH":
                return after(index, 2)
            index += 2 if words[index] == "SETNAME" else 1
        return set()
    if command == "MIGRATE":  # MIGRATE host port key db timeout [options] [KEYS key...]
        for index in range(6, size):
            if words[index] in ("AUTH", "AUTH2"):
                return after(index, 1 if words[index] == "AUTH" else 2)
            if words[index] == "KEYS":
                break
        return set()
    if command == "ACL" and sub == "SETUSER":
        # ACL SETUSER name rule...: >pass and <pass add and remove a password, #hash and
        # !hash a hashed one.
        return {i for i in range(3, size) if words[i][:1] in (">", "<", "#", "!")}
    if command == "CONFIG" and sub == "SET":
        return options(2, _CONFIG_SECRETS)
    if command == "SENTINEL" and sub == "SET":  # SENTINEL SET master option value ...
        return options(3, frozenset({"AUTH-PASS"}))
    if command == "SENTINEL" and sub == "CONFIG" and size > 2 and words[2] == "SET":
        return options(3, frozenset({"SENTINEL-PASS"}))
    return set()


def _value_positions(
    name: str, args: Sequence[Any], globs: Sequence[str]
) -> frozenset[int] | set[int]:
    """Positions of the values of keys matching ``globs`` (``PREFIX_RECORD_REDACT_KEYS``)."""
    if not globs or not args:
        return _NONE

    def matches(key: Any) -> bool:
        text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        return any(fnmatchcase(text, glob) for glob in globs)

    if name.upper() in ("MSET", "MSETNX"):
        return {index + 1 for index in range(0, len(args) - 1, 2) if matches(args[index])}
    return set(range(1, len(args))) if matches(args[0]) else set()


def displayed(
    command: Command, redact_keys: Sequence[str], limit: int
) -> Tuple[str, Tuple[Any, ...], int, bool]:
    """A command as it may be shown: its upper-case name, its first ``limit`` arguments
    (display strings with secrets redacted; short numbers are left as numbers), the number
    of arguments left out, and whether any argument was redacted."""
    name = command[0]
    if type(name) is not str:
        name = _word(name)
    args = command[1:]
    if not redact_keys and not _may_hold_secret(name) and len(args) <= limit:
        # The common case, kept short: short text and numbers are kept as they are (numbers
        # become text when the calls are asked for).
        for arg in args:
            kind = type(arg)
            if kind is str:
                if len(arg) > ARGUMENT_LIMIT:
                    break
            elif kind is not int and kind is not float:
                break
        else:
            return name.upper(), args, 0, False
    hidden = secret_positions(name, args)
    if redact_keys:
        hidden = hidden | _value_positions(name, args, redact_keys)
    kept = args[:limit]
    if hidden:
        shown = tuple(REDACTED if i in hidden else _shown(arg) for i, arg in enumerate(kept))
    else:
        shown = tuple([_shown(arg) for arg in kept])
    return name.upper(), shown, len(args) - len(kept), bool(hidden)


def _hits_and_misses(command: str, reply: Any) -> Tuple[int, int]:
    """Keys found and not found by ``command`` (upper-case), read from its reply."""
    if command in _MULTI_READS and isinstance(reply, list):
        misses = sum(1 for item in reply if item is None)
        return len(reply) - misses, misses
    if command in _READS:
        missing = reply is None or (command in _EMPTY_IS_MISS and not reply)
        if command in ("EXISTS", "HEXISTS"):
            missing = not reply
        return (0, 1) if missing else (1, 0)
    return 0, 0


class PrefixRecorder:
    """Records the calls of one config prefix; its :meth:`observe` is an observer."""

    def __init__(
        self,
        prefix: str,
        app: Flask,
        max_calls: int,
        redact_keys: Sequence[str],
        stack: bool,
    ) -> None:
        self.prefix = prefix
        self.root = app.root_path + os.sep
        self.max_calls = max_calls
        self.redact_keys = tuple(redact_keys)
        self.stack = stack
        #: The topology in a few words (``"Cluster"``), shown by the panel; ``None`` for
        #: one server.
        self.mode: Optional[str] = None
        #: Takes the servers that answered the round trip just observed
        #: (:func:`flask_redis.nodes.take`), for Sentinel and Cluster clients.
        self.nodes: Optional[Callable[[], Optional[str]]] = None
        #: Add this prefix's figures to the ``Server-Timing`` header.
        self.server_timing = False
        self._locations: Dict[Tuple[int, int], Tuple[Any, str]] = {}

    def observe(
        self,
        command: Command,
        seconds: float,
        reply: Any,
        error: Optional[BaseException],
        commands: Optional[Sequence[Command]],
    ) -> None:
        calls = _request_calls.get()
        if calls is not None and not calls._tokens:  # its request ended, teardown not run
            calls = _requests.value()
        # The servers noted are taken outside a request too, or the next call would show them.
        node = None if self.nodes is None else self.nodes()
        if calls is None:  # outside a request: nothing to do
            return
        start = perf_counter() - seconds - calls.started
        calls.seconds[self.prefix] = calls.seconds.get(self.prefix, 0.0) + seconds
        if commands is None:
            self._add(calls, command, start, seconds, reply, error, None, False, node)
            return
        calls.pipelines += 1
        transaction = command[0] == "MULTI"
        replies = reply if isinstance(reply, list) else [None] * len(commands)
        # redis-py's message of a failed pipeline quotes the failing command: it is not
        # shown when any command of the pipeline holds a secret.
        secret = error is not None and any(
            displayed(args, self.redact_keys, ARGUMENTS_LIMIT)[3] for args in commands
        )
        for args, item in zip(commands, replies):
            failed = item if isinstance(item, Exception) else error
            self._add(
                calls, args, start, seconds, item, failed, calls.pipelines, transaction, node,
                secret,
            )  # fmt: skip

    def _add(
        self,
        calls: RecordedCalls,
        command: Command,
        start: float,
        seconds: float,
        reply: Any,
        error: Optional[BaseException],
        pipeline: Optional[int],
        transaction: bool,
        node: Optional[str],
        secret: bool = False,
    ) -> None:
        prefix = self.prefix
        count = calls.counts.get(prefix, 0)
        if count >= self.max_calls:
            calls.dropped[prefix] = calls.dropped.get(prefix, 0) + 1
            return
        calls.counts[prefix] = count + 1
        name, shown, left_out, redacted = displayed(command, self.redact_keys, ARGUMENTS_LIMIT)
        hits = misses = 0
        if error is not None:
            failure: Optional[str] = _error_text(error, redacted or secret)
        else:
            failure = None
            if name in _ALL_READS:
                hits, misses = _hits_and_misses(name, reply)
        location, stack = self._caller()
        # RecordedCall's fields, in order.
        calls._pending.append((
            prefix, name, shown, left_out, start, seconds, pipeline, transaction, failure,
            location, stack, node, hits, misses, redacted,
        ))  # fmt: skip

    def _caller(self) -> Tuple[Optional[str], Optional[Tuple[str, ...]]]:
        """The caller's location, and its stack if asked for."""
        # Frames 0 to 2 are this method, _add() and observe(); the walk starts at frame 3,
        # what called observe() in instrument.py. Going there by depth saves making frame
        # objects for ours, the dearest part of the walk, which is _caller_frame()'s,
        # inlined.
        try:
            frame: Optional[FrameType] = sys._getframe(3)
        except ValueError:  # observe() called from the top of a stack
            return None, None
        while frame is not None and frame.f_code.co_filename.startswith(_SKIPPED):
            frame = frame.f_back
        if frame is None:
            return None, None
        # Cached by code object and instruction: hashing a code object, or finding the
        # line of an instruction, costs more than the rest of the walk.
        code = frame.f_code
        place = (id(code), frame.f_lasti)
        known = self._locations.get(place)
        if known is None:
            location = f"{_relative(code.co_filename, self.root)}:{frame.f_lineno}"
            if len(self._locations) < 4096:  # bounded by the calls in the app's code
                # The code object is kept, so that its id is not reused by another one.
                self._locations[place] = (code, location)
        else:
            location = known[1]
        if not self.stack:
            return location, None
        lines: List[str] = []
        while frame is not None and len(lines) < STACK_LIMIT:
            code = frame.f_code
            path = _relative(code.co_filename, self.root)
            lines.append(f"{path}:{frame.f_lineno} in {code.co_name}")
            frame = frame.f_back
        return location, tuple(reversed(lines))


def _caller_frame(frame: Optional[FrameType]) -> Optional[FrameType]:
    """The first frame from ``frame`` outwards that is neither redis-py's nor ours."""
    while frame is not None and frame.f_code.co_filename.startswith(_SKIPPED):
        frame = frame.f_back
    return frame


def _relative(filename: str, root: str) -> str:
    return filename[len(root):] if filename.startswith(root) else filename


def _error_text(error: Optional[BaseException], secret: bool) -> Optional[str]:
    if error is None:
        return None
    name = type(error).__name__
    # A message may quote the command (redis-py does for pipelines): not for a secret.
    return name if secret or not str(error) else f"{name}: {_shown(str(error))}"


class SlowLog:
    """Logs round trips slower than ``PREFIX_SLOW_LOG_THRESHOLD`` seconds; an observer."""

    def __init__(
        self, prefix: str, threshold: float, app: Flask, redact_keys: Sequence[str]
    ) -> None:
        self.prefix = prefix
        self.threshold = threshold
        self.root = app.root_path + os.sep
        self.redact_keys = tuple(redact_keys)

    def observe(
        self,
        command: Command,
        seconds: float,
        reply: Any,
        error: Optional[BaseException],
        commands: Optional[Sequence[Command]],
    ) -> None:
        if seconds < self.threshold:
            return
        name, args, left_out, _redacted = displayed(command, self.redact_keys, 10)
        shown = " ".join(map(str, args)) + (f" ... ({left_out} more)" if left_out else "")
        if commands is not None:
            shown = f"({len(commands)} commands)"
        frame = _caller_frame(sys._getframe(1))
        caller = "unknown"
        if frame is not None:
            caller = f"{_relative(frame.f_code.co_filename, self.root)}:{frame.f_lineno}"
        endpoint = request.endpoint if has_request_context() else None
        logger.warning(
            "slow Redis call: %s %s %s took %.1f ms (caller %s, endpoint %s)",
            self.prefix, name, shown, seconds * 1000, caller, endpoint or "none",
        )


def setup_recording(
    app: Flask, config: ClientConfig, record: bool, mode: Optional[str] = None
) -> Observer:
    """Record the calls of ``config``'s prefix per request of ``app``: the observer.

    Without ``record``, for Server-Timing alone, calls are counted and timed, not stored.
    ``mode`` describes a Sentinel or Cluster topology, whose clients note the servers that
    answer (:mod:`flask_redis.nodes`).
    """
    most = config.record_calls_max if record else 0
    recorder = PrefixRecorder(config.prefix, app, most, config.redact_keys, config.record_stack)
    if mode is not None:
        recorder.mode = mode
        recorder.nodes = nodes.take
    track_requests(app, recorder, config.server_timing)
    return recorder.observe


# The apps that send Server-Timing headers.
_timed_apps: weakref.WeakSet[Flask] = weakref.WeakSet()


def track_requests(app: Flask, recorder: PrefixRecorder, server_timing: bool) -> None:
    """Record the calls of ``recorder`` per request of ``app``; with ``server_timing``,
    add its figures to each response's ``Server-Timing`` header."""
    recorder.server_timing = server_timing
    _requests.add(app, recorder)
    if server_timing and app not in _timed_apps:
        _timed_apps.add(app)
        app.after_request(_server_timing)


def _server_timing(response: Response) -> Response:
    """Add a ``Server-Timing`` entry per prefix: its Redis time and number of calls."""
    calls = _requests.value()
    if calls is None:
        return response
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    for recorder in _requests.members(app):
        if not recorder.server_timing:
            continue
        prefix = recorder.prefix
        count = calls.counts.get(prefix, 0) + calls.dropped.get(prefix, 0)
        milliseconds = calls.seconds.get(prefix, 0.0) * 1000
        response.headers.add(
            "Server-Timing",
            f'redis-{prefix.lower()};dur={milliseconds:.3f};desc="{count} calls"',
        )
    return response
