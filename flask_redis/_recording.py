"""The per-request log of Redis calls that the debug toolbar panel shows.

Each prefix with recording on has a :class:`PrefixRecorder`, an observer of its
instrumented client. During a request it appends a :class:`RecordedCall` per command to
the request's log (at most ``PREFIX_RECORD_CALLS_MAX``, then only counted); outside a
request it does nothing. Secrets are redacted before anything is stored.
"""

from __future__ import annotations

import codecs
import importlib.util
import itertools
import logging
import os
import sys
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from time import perf_counter
from types import FrameType
from typing import Any, Callable

import redis
from flask import Flask, Response, current_app, has_request_context, request

from . import _nodes
from ._commands import BREAKS, Command, printable, split_name, upper_word
from ._config import ClientConfig
from ._instrument import Observer
from ._per_request import PerRequest, Stacked
from ._redaction import SECRET_COMMANDS, key_value_positions, secret_words

logger = logging.getLogger("flask_redis.slow")

#: Characters of an argument kept for display; the rest is cut and its size shown.
ARGUMENT_LIMIT = 200
#: Arguments of a call kept for display; the rest are counted.
ARGUMENTS_LIMIT = 50
#: Frames kept of a full stack (``PREFIX_RECORD_STACK``).
STACK_LIMIT = 40
REDACTED = "***"


def _package_folder(name: str) -> str | None:
    """The folder of package ``name`` (not imported for it), if it is installed."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    return os.path.dirname(spec.origin) + os.sep


# Files of these folders are not the caller: the first frame outside them is. valkey-py is
# redis-py's fork: its frames are a client's too.
_SKIPPED = tuple(
    folder
    for folder in (
        _package_folder(redis.__name__),
        _package_folder(__package__),
        _package_folder("valkey"),
    )
    if folder is not None
)

#: Reads of one key whose nil reply is a miss, else a hit.
_READS = frozenset({"GET", "GETEX", "GETDEL", "HGET", "LINDEX", "ZSCORE"})
#: Reads of one key whose empty, zero or false reply is a miss too.
_EMPTY_IS_MISS = frozenset({
    "HGETALL", "SMEMBERS", "LRANGE", "ZRANGE", "HEXISTS", "GETRANGE", "STRLEN",
})  # fmt: skip
#: Reads of several keys (EXISTS) or fields (HMGET), each a hit or a miss.
_MULTI_READS = frozenset({"MGET", "HMGET"})
_ALL_READS = _READS | _EMPTY_IS_MISS | _MULTI_READS | {"EXISTS"}


@dataclass
class RecordedCall:
    """One command of a request, as the debug toolbar panel shows it. Treat it as
    read-only (it is not frozen: a frozen dataclass costs more to create)."""

    #: The config prefix of the client, as configured (``"REDIS"``).
    prefix: str
    #: The command, upper-case as sent (``"GET"``, ``"CLIENT SETNAME"``): the first word
    #: redis-py sends, and the second when it is a subcommand named in the same string.
    command: str
    #: The arguments after the command, as display strings: secrets are ``"***"``, long
    #: values are cut, binary values are shown as hex. A command named in one string with
    #: its arguments (``"CONFIG SET maxmemory 1mb"``) has them here, as redis-py sends them.
    args: tuple[str, ...]
    #: Arguments not kept, beyond the first :data:`ARGUMENTS_LIMIT`.
    args_left_out: int
    #: Seconds from the start of the request to the start of the round trip.
    start: float
    #: Seconds of the round trip; the commands of a pipeline share it.
    duration: float
    #: The pipeline or transaction of the command within the request (1, 2, ...).
    pipeline: int | None
    #: The command was part of a transaction (``MULTI`` ... ``EXEC``).
    transaction: bool
    #: The error, as ``"ClassName: message"``; only the class for a call with a secret.
    error: str | None
    #: The caller, ``path/relative/to/app/root.py:42``.
    location: str | None
    #: The caller's whole stack, innermost last, when ``PREFIX_RECORD_STACK`` is on.
    stack: tuple[str, ...] | None
    #: For Sentinel and Cluster clients, the server that answered (``"host:port"``, then
    #: ``" (replica)"`` for a replica); several, in order, for a command that was
    #: redirected (``MOVED``, ``ASK``) or a pipeline over several cluster nodes.
    node: str | None
    #: Keys read that existed, and that did not (nil reply).
    hits: int
    misses: int
    #: Some argument was redacted.
    redacted: bool
    #: The command and its arguments are the text that was sent, so that it can be sent
    #: again from them: none was cut short, redacted, left out or shown as hex.
    exact: bool = True


class _Tally:
    """What one thread counted of one prefix's calls in one request: only that thread
    writes it, so that no count is lost when the threads of a request record at once."""

    __slots__ = (
        "key", "prefix", "tickets", "pipeline_ids", "stored", "dropped", "seconds", "pipelines",
    )  # fmt: skip

    def __init__(self, calls: RecordedCalls, prefix: str, tickets: Iterator[int]) -> None:
        #: What tells the request apart (:attr:`RecordedCalls._key`): not its calls, which
        #: a thread that holds its last tally would keep.
        self.key = calls._key
        self.prefix = prefix
        #: The numbers of the prefix's calls in the request, shared by its threads: the
        #: calls numbered below the cap are stored. And the pipelines' ids.
        self.tickets = tickets
        self.pipeline_ids = calls._pipeline_ids
        self.stored = self.dropped = self.pipelines = 0
        self.seconds = 0.0


class RecordedCalls(Stacked, list[RecordedCall]):
    """The calls of one request, in order (see :func:`get_recorded_calls`).

    The threads that a request hands work to record their calls here too (see
    :mod:`.per_request`). Each thread counts in tallies of its own, which the figures add up:
    no count is lost when they record at once.
    """

    def __init__(self, started: float) -> None:
        super().__init__()
        #: :func:`time.perf_counter` at the start of the request.
        self.started = started
        #: Per config prefix that uses Sentinel or Cluster, its topology in a few words
        #: (``"Sentinel, service mymaster"``, ``"Cluster"``); set by
        #: :func:`get_recorded_calls`.
        self.modes: dict[str, str] = {}
        # Calls recorded as tuples of RecordedCall's fields, cheaper to make than the
        # dataclass; made into RecordedCall objects when they are asked for.
        self._pending: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        # The tallies of the threads (see _Tally), and what they share.
        self._key = object()
        self._tallies: list[_Tally] = []
        self._tickets: dict[str, Iterator[int]] = {}
        self._pipeline_ids = itertools.count(1)

    @property
    def dropped(self) -> dict[str, int]:
        """Per config prefix, the calls beyond its cap: counted, not stored."""
        return self._sum("dropped")

    @property
    def counts(self) -> dict[str, int]:
        """Per config prefix, the calls stored."""
        return self._sum("stored")

    @property
    def seconds(self) -> dict[str, float]:
        """Per config prefix, the seconds of all its round trips, dropped ones included."""
        return self._sum("seconds", every=True)

    @property
    def pipelines(self) -> int:
        """Pipelines recorded so far; the last one's id."""
        return sum(tally.pipelines for tally in self._tallies[:])

    def _sum(self, field: str, every: bool = False) -> dict[str, Any]:
        """Per config prefix, the sum of ``field`` of the threads' tallies; of those that
        counted any, or with ``every``, of all."""
        sums: dict[str, Any] = {}
        for tally in self._tallies[:]:  # a copy, made in one C call: threads may append
            value = getattr(tally, field)
            if value or every:
                sums[tally.prefix] = sums.get(tally.prefix, 0) + value
        return sums

    def _tally(self, prefix: str) -> _Tally:
        """A new tally of the calls of ``prefix`` in the current thread."""
        tickets = self._tickets.get(prefix)
        if tickets is None:  # atomic: the threads that start at once share the same
            tickets = self._tickets.setdefault(prefix, itertools.count())
        tally = _Tally(self, prefix, tickets)
        self._tallies.append(tally)
        return tally

    def _materialize(self) -> RecordedCalls:
        if self._pending:
            with self._lock:  # each call taken once, whatever threads ask; more may come
                pending = self._pending[:]
                del self._pending[: len(pending)]
            for fields in pending:
                call = RecordedCall(*fields)
                # Numbers were kept as they were sent (see displayed()).
                args = call.args
                if not all(type(arg) is str for arg in args):
                    shown = [_shown(arg) for arg in args]
                    call.args = tuple([text for text, _exact in shown])
                    call.exact = call.exact and all(exact for _text, exact in shown)
                self.append(call)
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


def _bytes_head(value: Any, size: int) -> tuple[bytes, int]:
    """The first ``size`` bytes of a bytes-like ``value`` and its length in bytes; a
    ``memoryview`` or ``bytearray`` as the bytes it holds, copying no more than needed."""
    if isinstance(value, bytes):
        return value[:size], len(value)
    view = memoryview(value)
    if view.ndim == 1 and view.itemsize == 1:
        return view[:size].tobytes(), view.nbytes
    return view.tobytes()[:size], view.nbytes


def _cut(text: str, size: int, unit: str) -> str:
    """``text``, the start of a value of ``size`` ``unit``, marked as cut."""
    return f"{text}... ({size} {unit})"


def _shown(value: Any) -> tuple[str, bool]:
    """An argument as display text, and whether the text is exactly what redis-py sends.

    Text and numbers are kept as they are, cut to :data:`ARGUMENT_LIMIT` characters; bytes
    (``bytearray`` and ``memoryview`` included) as text when they are printable UTF-8, else
    as hex (``0x00ff``) of their first ``ARGUMENT_LIMIT // 2`` bytes.
    """
    if isinstance(value, str):
        if len(value) <= ARGUMENT_LIMIT:
            # Plain text: a str subclass such as markupsafe.Markup must not reach a
            # template as markup.
            return (value if type(value) is str else str(value)), True
        return _cut(value[:ARGUMENT_LIMIT], len(value), "characters"), False
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _shown_bytes(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # redis-py sends repr() of a number (of an int or float subclass too).
        if isinstance(value, int) and value.bit_length() > _NUMBER_BITS:
            return f"(an integer of {value.bit_length()} bits)", False
        text = repr(value)
        exact = True
    else:  # redis-py refuses anything else (a DataError): nothing was sent
        text = str(value)
        exact = False
    if len(text) <= ARGUMENT_LIMIT:
        return text, exact
    return _cut(text[:ARGUMENT_LIMIT], len(text), "characters"), False


# Integers of more bits than this have more than ARGUMENT_LIMIT digits.
_NUMBER_BITS = int(ARGUMENT_LIMIT * 3.32)


def _shown_bytes(value: Any) -> tuple[str, bool]:
    head, size = _bytes_head(value, ARGUMENT_LIMIT)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        # Text cut inside a character of several bytes is still text.
        if size <= ARGUMENT_LIMIT or error.start < len(head) - 3:
            return _hex(head, size), False
        text = head[: error.start].decode("utf-8")
    if not text.isprintable():
        return _hex(head, size), False
    if size > ARGUMENT_LIMIT:
        return _cut(text, size, "bytes"), False
    return text, True


def _hex(head: bytes, size: int) -> str:
    text = "0x" + head[: ARGUMENT_LIMIT // 2].hex()
    return _cut(text, size, "bytes") if size > ARGUMENT_LIMIT // 2 else text


def _command_text(words: Sequence[Any]) -> tuple[str, bool]:
    """The upper-case command named by ``words``, and whether it is exact: each word is
    short printable ASCII without spaces, so the line of the panel sends it again."""
    texts: list[str] = []
    exact = True
    for word in words:
        text, same = _shown(word)
        if same:
            upper = text.upper()
            same = upper.isascii() and upper.isprintable() and " " not in upper and upper != ""
            text = upper
        exact = exact and same
        texts.append(text)
    return " ".join(texts), exact


#: Plain command names (first arguments) and the command they name, upper-case: names of
#: command words only, that can hold no secret. Filled as they are first seen; bounded.
_plain_names: dict[Any, str] = {}


def displayed(
    command: Command, redact_keys: Sequence[str], limit: int
) -> tuple[str, tuple[Any, ...], int, bool, bool]:
    """A command as it may be shown: its upper-case name, its first ``limit`` arguments
    (display strings with secrets redacted; short numbers are left as numbers), the number
    of arguments left out, whether any argument was redacted, and whether the name and the
    arguments are exactly what was sent (see :attr:`RecordedCall.exact`)."""
    name = command[0]
    kind = type(name)
    text = _plain_names.get(name) if kind is str or kind is bytes else None
    if text is not None and not redact_keys and len(command) <= limit + 1:
        # The common case, kept short: short text and numbers are kept as they are (numbers
        # become text when the calls are asked for).
        args = command[1:]
        for arg in args:
            kind = type(arg)
            if kind is str:
                if len(arg) > ARGUMENT_LIMIT:
                    break
            elif kind is not int and kind is not float:
                break
        else:
            return text, args, 0, False, True
    return _displayed(command, redact_keys, limit)


def _displayed(
    command: Command, redact_keys: Sequence[str], limit: int
) -> tuple[str, tuple[Any, ...], int, bool, bool]:
    """:func:`displayed`, for any command."""
    names, args = split_name(command)
    if not names:  # nothing is sent (the server waits for a command)
        return "", (), 0, False, False
    tokens = [token for word in names for token in BREAKS.split(upper_word(word)) if token]
    secret = bool(tokens) and tokens[0] in SECRET_COMMANDS
    hidden: set[int] = set()
    text, exact = _command_text(names)
    redacted = False
    if secret:
        shift = len(tokens)
        found = secret_words([*tokens, *map(upper_word, args)], 0)
        hidden = {index - shift for index in found if index >= shift}
        if len(hidden) < len(found):  # the name itself holds one: it is no command
            text, redacted = f"{tokens[0]} {REDACTED}", True
    elif exact and len(args) == len(command) - 1:
        # The name is the command's words only, and can hold no secret: the next call of
        # the same name may take the short way.
        name = command[0]
        if type(name) in (str, bytes) and len(_plain_names) < 4096:
            _plain_names[name] = text  # bounded by the names an app sends
    if redact_keys:
        hidden |= key_value_positions(text, args, redact_keys)
    kept = args[:limit]
    shown: list[str] = []
    for index, arg in enumerate(kept):
        if index in hidden:
            shown.append(REDACTED)
            continue
        value, same = _shown(arg)
        exact = exact and same
        shown.append(value)
    left_out = len(args) - len(kept)
    redacted = redacted or bool(hidden)
    return text, tuple(shown), left_out, redacted, exact and not redacted and not left_out


def _hits_and_misses(command: str, keys: int, reply: Any) -> tuple[int, int]:
    """Keys found and not found by ``command`` (upper-case) of ``keys`` arguments, read from
    its reply (the rules are in docs/panel.rst)."""
    if command in _MULTI_READS:  # MGET key..., HMGET key field...: a nil per one not found
        if not isinstance(reply, list):
            return 0, 0
        misses = sum(1 for item in reply if item is None)
        return len(reply) - misses, misses
    if command == "EXISTS":  # EXISTS key...: the number of the keys that exist
        if not isinstance(reply, int) or not keys:
            return 0, 0
        found = min(max(reply, 0), keys)
        return found, keys - found
    # Nil, an empty collection or string, 0 or False: nothing was found.
    missing = reply is None or (command in _EMPTY_IS_MISS and not reply)
    return (0, 1) if missing else (1, 0)


class _Local(threading.local):
    #: The tally of the thread's last call, which its next call of the request adds to.
    tally: _Tally | None = None


class PrefixRecorder:
    """Records the calls of one config prefix; its :meth:`observe` is an observer."""

    def __init__(
        self,
        prefix: str,
        app: Flask,
        max_calls: int,
        redact_keys: Sequence[str],
        stack: bool,
        encoding: str = "utf-8",
    ) -> None:
        self.prefix = prefix
        self.root = app.root_path + os.sep
        self.max_calls = max_calls
        self.redact_keys = tuple(redact_keys)
        self.stack = stack
        #: The encoding the client sends text in, when it is not UTF-8, in which the panel's
        #: command lines are written: only text of the same bytes in both is exact (ASCII
        #: is not, in UTF-16).
        self.other_encoding = None if _is_utf8(encoding) else encoding
        #: The topology in a few words (``"Cluster"``), shown by the panel; ``None`` for
        #: one server.
        self.mode: str | None = None
        #: Takes the servers that answered the round trip just observed
        #: (:func:`flask_redis._nodes.take`), for Sentinel and Cluster clients.
        self.nodes: Callable[[], str | None] | None = None
        #: Add this prefix's figures to the ``Server-Timing`` header.
        self.server_timing = False
        self._locations: dict[tuple[int, int], tuple[Any, str]] = {}
        self._local = _Local()

    def observe(
        self,
        command: Command,
        seconds: float,
        reply: Any,
        error: BaseException | None,
        commands: Sequence[Command] | None,
    ) -> None:
        calls = _request_calls.get()
        # Its request ended (a teardown function raised before ours), or none in this
        # thread's context variables: maybe under a copy of a request's context.
        if calls is None or not calls._tokens:
            calls = _requests.value()
        # The servers noted are taken outside a request too, or the next call would show them.
        node = None if self.nodes is None else self.nodes()
        if calls is None:  # outside a request: nothing to do
            return
        start = perf_counter() - seconds - calls.started
        tally = self._local.tally
        if tally is None or tally.key is not calls._key:  # this thread's first in the request
            tally = self._local.tally = calls._tally(self.prefix)
        tally.seconds += seconds
        cap = self.max_calls
        if commands is None:
            if next(tally.tickets) >= cap:
                tally.dropped += 1
                return
            tally.stored += 1
            self._add(calls, command, start, seconds, reply, error, None, False, node)
            return
        tally.pipelines += 1
        pipeline = next(tally.pipeline_ids)
        stored = 0
        for _args in commands:  # a thread's numbers grow: the first ones are stored
            if next(tally.tickets) < cap:
                stored += 1
        tally.stored += stored
        tally.dropped += len(commands) - stored
        if not stored:
            return
        transaction = command[0] == "MULTI"
        replies = reply if isinstance(reply, list) else [None] * len(commands)
        # redis-py's message of a failed pipeline quotes the failing command: it is not
        # shown when any command of the pipeline holds a secret.
        secret = error is not None and any(
            displayed(args, self.redact_keys, ARGUMENTS_LIMIT)[3] for args in commands
        )
        for args, item in zip(commands[:stored], replies):
            failed = item if isinstance(item, Exception) else error
            self._add(
                calls, args, start, seconds, item, failed, pipeline, transaction, node, secret
            )

    def _add(
        self,
        calls: RecordedCalls,
        command: Command,
        start: float,
        seconds: float,
        reply: Any,
        error: BaseException | None,
        pipeline: int | None,
        transaction: bool,
        node: str | None,
        secret: bool = False,
    ) -> None:
        """Store one command of a round trip, counted already (see :class:`_Tally`)."""
        prefix = self.prefix
        name, shown, left_out, redacted, exact = displayed(
            command, self.redact_keys, ARGUMENTS_LIMIT
        )
        hits = misses = 0
        if error is not None:
            failure: str | None = _error_text(error, redacted or secret)
            # The library refused an argument before sending anything (valkey-py 6 and
            # redis-py 7 refuse a bytearray): the line would send what the call did not.
            exact = exact and not _refused(error)
        else:
            failure = None
            if name in _ALL_READS:
                hits, misses = _hits_and_misses(name, len(shown) + left_out, reply)
        if exact and self.other_encoding is not None:
            encoding = self.other_encoding
            exact = all(type(arg) is not str or _as_utf8(arg, encoding) for arg in shown)
        location, stack = self._caller()
        # RecordedCall's fields, in order.
        calls._pending.append((
            prefix, name, shown, left_out, start, seconds, pipeline, transaction, failure,
            location, stack, node, hits, misses, redacted, exact,
        ))  # fmt: skip

    def _caller(self) -> tuple[str | None, tuple[str, ...] | None]:
        """The caller's location, and its stack if asked for."""
        # Frames 0 to 2 are this method, _add() and observe(); the walk starts at frame 3,
        # what called observe() in instrument.py. Going there by depth saves making frame
        # objects for ours, the dearest part of the walk, which is _caller_frame()'s,
        # inlined.
        try:
            frame: FrameType | None = sys._getframe(3)
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
        lines: list[str] = []
        while frame is not None and len(lines) < STACK_LIMIT:
            code = frame.f_code
            path = _relative(code.co_filename, self.root)
            lines.append(f"{path}:{frame.f_lineno} in {code.co_name}")
            frame = frame.f_back
        return location, tuple(reversed(lines))


def _caller_frame(frame: FrameType | None) -> FrameType | None:
    """The first frame from ``frame`` outwards that is neither redis-py's nor ours."""
    while frame is not None and frame.f_code.co_filename.startswith(_SKIPPED):
        frame = frame.f_back
    return frame


def _relative(filename: str, root: str) -> str:
    return filename[len(root) :] if filename.startswith(root) else filename


def _is_utf8(encoding: Any) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except (LookupError, TypeError):
        return False


def _as_utf8(text: str, encoding: str) -> bool:
    """Whether ``text`` in ``encoding`` is its UTF-8 bytes (not so for text that either
    refuses: a lone surrogate, a character Latin-1 lacks)."""
    try:
        return text.encode(encoding) == text.encode("utf-8")
    except (UnicodeError, LookupError):  # an encoding the config would have refused
        return False


def _refused(error: BaseException) -> bool:
    """Whether ``error`` is what redis-py or valkey-py raise for an argument they refuse,
    before sending: their ``DataError``, or their encoder's ``UnicodeEncodeError`` (a lone
    surrogate in UTF-8, a character the encoding lacks)."""
    if isinstance(error, UnicodeEncodeError):
        return True
    return any(cls.__name__ == "DataError" for cls in type(error).__mro__)


def _error_text(error: BaseException | None, secret: bool) -> str | None:
    """``"ClassName: message"``; the class only for a call that holds a secret, since the
    message may quote the command (redis-py's does for pipelines, the server's for an
    unknown command)."""
    if error is None:
        return None
    name = type(error).__name__
    if secret:
        return name
    message = str(error)
    return f"{name}: {_shown(message)[0]}" if message else name


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
        error: BaseException | None,
        commands: Sequence[Command] | None,
    ) -> None:
        if seconds < self.threshold:
            return
        name, args, left_out, _redacted, _exact = displayed(command, self.redact_keys, 10)
        shown = " ".join([arg if type(arg) is str else _shown(arg)[0] for arg in args])
        if left_out:
            shown += f" ... ({left_out} more)"
        if commands is not None:
            shown = f"({len(commands)} commands)"
        frame = _caller_frame(sys._getframe(1))
        caller = "unknown"
        if frame is not None:
            caller = f"{_relative(frame.f_code.co_filename, self.root)}:{frame.f_lineno}"
        endpoint = request.endpoint if has_request_context() else None
        # Every value is escaped: a key that holds a line break or a terminal's escape
        # sequence must not start a line of its own or reach the terminal.
        logger.warning(
            "slow Redis call: %s %s %s took %.1f ms (caller %s, endpoint %s)",
            printable(self.prefix), printable(name), printable(shown), seconds * 1000,
            printable(caller), printable(endpoint or "none"),
        )  # fmt: skip


def setup_recording(
    app: Flask, config: ClientConfig, record: bool, mode: str | None = None
) -> Observer:
    """Record the calls of ``config``'s prefix per request of ``app``: the observer.

    Without ``record``, for Server-Timing alone, calls are counted and timed, not stored.
    ``mode`` describes a Sentinel or Cluster topology, whose clients note the servers that
    answer (:mod:`flask_redis._nodes`).
    """
    most = config.record_calls_max if record else 0
    encoding = config.kwargs.get("encoding", "utf-8")
    recorder = PrefixRecorder(
        config.prefix, app, most, config.redact_keys, config.record_stack, encoding
    )
    if mode is not None:
        recorder.mode = mode
        recorder.nodes = _nodes.take
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
        response.headers.add(  # type: ignore[no-untyped-call,unused-ignore]  # Werkzeug 2
            "Server-Timing",
            f"redis-{prefix.lower()};dur={milliseconds:.3f};"
            f'desc="{count} call{"" if count == 1 else "s"}"',
        )
    return response
