"""Metrics per key family (``PREFIX_METRICS_KEY_FAMILIES``): commands, time and payload
bytes of the commands whose first key matches a family's globs.

The family of a command is read from its first key (:func:`first_key`): the first family,
in the setting's order, with a glob that matches it; ``other`` if none does; ``none`` for
a command without a key. The globs of a prefix are one compiled regular expression, and
its label values are the families of the setting and those two: as many as the setting
makes, whatever the keys.

As for the other metrics, no round trip calls prometheus-client or takes a lock: each is
tallied in a list of its thread, added to the counters when they are collected (and, under
``PROMETHEUS_MULTIPROC_DIR``, every second by :mod:`._multiprocess`).
"""

from __future__ import annotations

import fnmatch
import re
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, Callable

from flask import Flask
from prometheus_client import REGISTRY, CollectorRegistry, Counter, values
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ._commands import SPACES, Command
from ._config import ClientConfig
from ._instrument import Observer
from ._labels import is_short
from ._multiprocess import write_every_second

#: The family of a command whose first key matches no glob.
OTHER = "other"
#: The family of a command without a key.
NONE = "none"

# A thread's tally of a family: [commands, seconds, bytes sent, bytes received].
_COMMANDS, _SECONDS, _SENT, _RECEIVED = range(4)

#: Commands without a key (their arguments are channels, patterns, scripts, options...).
_KEYLESS = frozenset(
    """
    ACL ASKING AUTH BGREWRITEAOF BGSAVE CLIENT CLUSTER COMMAND CONFIG DBSIZE DEBUG DISCARD
    ECHO EXEC FAILOVER FLUSHALL FLUSHDB FUNCTION HELLO INFO KEYS LASTSAVE LATENCY LOLWUT
    MODULE MONITOR MULTI PFSELFTEST PING PSUBSCRIBE PSYNC PUBLISH PUBSUB PUNSUBSCRIBE
    RANDOMKEY READONLY READWRITE REPLCONF REPLICAOF RESET ROLE SAVE SCAN SCRIPT SELECT
    SHUTDOWN SLAVEOF SLOWLOG SPUBLISH SSUBSCRIBE SUBSCRIBE SUNSUBSCRIBE SWAPDB SYNC TIME
    UNSUBSCRIBE UNWATCH WAIT WAITAOF
""".split()
)


def _at(index: int) -> Callable[[Sequence[Any]], Any]:
    def key(words: Sequence[Any]) -> Any:
        return words[index] if len(words) > index else None

    return key


def _after_count(index: int) -> Callable[[Sequence[Any]], Any]:
    """The key after a count of keys at ``index`` (EVAL script numkeys key...)."""

    def key(words: Sequence[Any]) -> Any:
        try:
            count = int(words[index])
        except (IndexError, ValueError, TypeError):
            return None
        return words[index + 1] if count > 0 and len(words) > index + 1 else None

    return key


def _after_word(word: str, start: int = 1) -> Callable[[Sequence[Any]], Any]:
    """The key after the first ``word`` (XREAD ... STREAMS key...)."""

    def key(words: Sequence[Any]) -> Any:
        for index in range(start, len(words) - 1):
            if _text(words[index]).upper() == word:
                return words[index + 1]
        return None

    return key


def _migrate(words: Sequence[Any]) -> Any:
    # MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH...] [KEYS key...]
    if len(words) > 3 and _text(words[3]):
        return words[3]
    return _after_word("KEYS", 6)(words)


def _subcommand(*names: str) -> Callable[[Sequence[Any]], Any]:
    """The key after a subcommand of ``names`` (OBJECT ENCODING key); none after another."""

    def key(words: Sequence[Any]) -> Any:
        if len(words) > 2 and _text(words[1]).upper() in names:
            return words[2]
        return None

    return key


_SECOND = _at(1)
#: Where the first key is, for the commands whose key is not their first argument.
_RULES: dict[str, Callable[[Sequence[Any]], Any]] = {
    **dict.fromkeys(["EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"],
                    _after_count(2)),
    **dict.fromkeys(["ZUNION", "ZINTER", "ZDIFF", "ZINTERCARD", "SINTERCARD", "LMPOP",
                     "ZMPOP"], _after_count(1)),
    **dict.fromkeys(["BLMPOP", "BZMPOP"], _after_count(2)),
    **dict.fromkeys(["XREAD", "XREADGROUP"], _after_word("STREAMS")),
    "STRALGO": _after_word("KEYS"),
    "BITOP": _at(2),
    "MIGRATE": _migrate,
    "OBJECT": _subcommand("ENCODING", "FREQ", "IDLETIME", "REFCOUNT"),
    "MEMORY": _subcommand("USAGE"),
    "XINFO": _subcommand("STREAM", "GROUPS", "CONSUMERS"),
    "XGROUP": _subcommand("CREATE", "SETID", "DESTROY", "CREATECONSUMER", "DELCONSUMER"),
}  # fmt: skip


def _keyless(words: Sequence[Any]) -> Any:
    return None


def _rule(name: str) -> Callable[[Sequence[Any]], Any]:
    """How to find the first key of the command ``name`` (upper-case)."""
    if name in _KEYLESS:
        return _keyless
    return _RULES.get(name, _SECOND)


def _text(word: Any) -> str:
    """A word as text: bytes as UTF-8, each invalid byte as a lone surrogate
    (``surrogateescape``), which a glob's ``?`` or ``*`` matches and no other character does."""
    if isinstance(word, str):
        return word
    if isinstance(word, (bytes, bytearray, memoryview)):
        return bytes(word).decode("utf-8", "surrogateescape")
    return repr(word) if isinstance(word, (int, float)) else str(word)


#: Per command name as redis-py sends it (``"GET"``, ``b"get"``): whether it holds
#: arguments too (``"GET k"``), and the rule of its first key. Bounded: names come from code.
_NAMES: dict[Any, tuple[bool, Callable[[Sequence[Any]], Any]]] = {}
_NAMES_SIZE = 4096
#: Keys whose family a prefix keeps (see :meth:`Matcher.family`).
_KNOWN = 4096


def _name_rule(name: Any) -> tuple[bool, Callable[[Sequence[Any]], Any]]:
    """Whether command name ``name`` holds arguments too, and the rule of its first key."""
    found = _NAMES.get(name)
    if found is None:
        words = words_of((name,))
        split = len(words) != 1 or words[0] is not name
        # A name unknown to Redis (a module's, JSON.GET) is read as key-first.
        found = (split, _rule(_text(words[0]).upper()) if words else _keyless)
        if len(_NAMES) < _NAMES_SIZE and is_short(name):
            _NAMES[name] = found
    return found


def words_of(command: Command) -> Sequence[Any]:
    """The words of ``command`` as redis-py sends them: a first argument of text, or of
    bytes with a space, split on ASCII whitespace (``"GET k"`` sends two words)."""
    name = command[0]
    if isinstance(name, str):
        words: list[Any] = SPACES.split(name.strip(" \t\n\r\x0b\x0c"))
    elif isinstance(name, (bytes, bytearray)) and b" " in name:
        words = bytes(name).split()
    else:
        return command
    if words == [""]:  # spaces only: the next argument goes as the name
        words = []
    return [*words, *command[1:]]


def first_key(command: Command) -> Any:
    """The first key of ``command`` as redis-py sends it, ``None`` for a command without one.

    Per the table :data:`_RULES` (EVAL, XREAD, BITOP, OBJECT, MIGRATE...), else none for
    the commands of :data:`_KEYLESS`, else the first argument: that of every other Redis
    command of :data:`~._labels.COMMANDS`, and of a command Redis does not know.
    """
    split, rule = _name_rule(command[0])
    return rule(words_of(command) if split else command)


def _size(value: Any) -> int:
    """The bytes of a word as redis-py sends it: text as UTF-8, numbers as their text."""
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, memoryview):
        return value.nbytes
    if isinstance(value, (int, float)):
        return len(repr(value))
    return 0


def sent_bytes(words: Sequence[Any]) -> int:
    """The payload of a command: the length of each word as sent, without the framing."""
    total = 0
    for word in words:  # the common types first, inline
        kind = type(word)
        if kind is str and word.isascii() or kind is bytes:
            total += len(word)
        else:
            total += _size(word)
    return total


def reply_bytes(reply: Any) -> int:
    """The payload of a reply: the length of its strings (bytes or text as UTF-8), in
    lists, tuples, sets and dicts at any depth; numbers, nulls and errors count nothing."""
    kind = type(reply)
    if kind is bytes or reply is None:
        return 0 if reply is None else len(reply)
    if isinstance(reply, (bytes, str)):
        return _size(reply)
    if not isinstance(reply, (list, tuple, set, frozenset, dict)):
        return 0
    total = 0
    stack = [reply]
    while stack:  # a loop, not recursion: no depth of nesting is too deep
        items = stack.pop()
        if isinstance(items, dict):
            items = [*items.keys(), *items.values()]
        for item in items:
            if isinstance(item, (bytes, str)):
                total += _size(item)
            elif isinstance(item, (list, tuple, set, frozenset, dict)):
                stack.append(item)
    return total


class Matcher:
    """The families of a prefix: one regular expression of all their globs."""

    def __init__(self, families: Sequence[tuple[str, Sequence[str]]]) -> None:
        self.names = [name for name, _globs in families]
        groups: dict[str, str] = {}
        parts: list[str] = []
        for name, globs in families:
            for glob in globs:
                group = f"kf{len(groups)}"
                groups[group] = name
                parts.append(f"(?P<{group}>{fnmatch.translate(glob)})")
        self._groups = groups
        self._match = re.compile("|".join(parts)).match if parts else None
        #: The family of each key matched lately: keys are read again and again, and a
        #: look-up costs a fifth of a match. Bounded: emptied when full.
        self._known: dict[Any, str] = {}

    def family(self, key: Any) -> str:
        """The family of ``key`` (``None``: no key)."""
        try:
            found = self._known.get(key)
        except TypeError:  # unhashable (a bytearray, a memoryview): not kept
            return self._family(key)
        if found is None:
            found = self._family(key)
            if is_short(key):  # no long key is kept, nor arguments of a one-string name
                known = self._known
                if len(known) >= _KNOWN:
                    known.clear()
                known[key] = found
        return found

    def _family(self, key: Any) -> str:
        if key is None:
            return NONE
        if self._match is None:
            return OTHER
        found = self._match(_text(key))
        return OTHER if found is None else self._groups[found.lastgroup]  # type: ignore[index]


class KeyFamilies(Collector):
    """The counters of the key families of every prefix of a registry, made once per
    registry (see :func:`families_for`); they are registered as this one collector."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.commands = Counter(
            "flask_redis_key_family_commands",
            "Redis commands sent, by prefix and family of their first key"
            " (PREFIX_METRICS_KEY_FAMILIES; other: no family matched, none: no key).",
            ["prefix", "family"], registry=None,
        )  # fmt: skip
        self.seconds = Counter(
            "flask_redis_key_family_seconds",
            "Wall time of Redis commands, by prefix and key family (a pipeline's time shared"
            " evenly by its commands).",
            ["prefix", "family"], registry=None,
        )  # fmt: skip
        self.bytes = Counter(
            "flask_redis_key_family_bytes",
            "Payload bytes of Redis commands (sent: their words; received: the strings of"
            " their replies), by prefix, key family and direction.",
            ["prefix", "family", "direction"], registry=None,
        )  # fmt: skip
        self._prefixes: dict[str, PrefixFamilies] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def describe(self) -> list[Metric]:
        return [*self.commands.describe(), *self.seconds.describe(), *self.bytes.describe()]

    def collect(self) -> Iterator[Metric]:
        self.add_pending()
        for metric in (self.commands, self.seconds, self.bytes):
            yield from metric.collect()

    def add_pending(self) -> None:
        """Add what every prefix tallied since to the counters."""
        for prefix_families in list(self._prefixes.values()):
            prefix_families.add_pending()

    def forget_pending(self) -> None:
        """In a forked child: what the parent tallied is the parent's to add up."""
        for prefix_families in list(self._prefixes.values()):
            prefix_families.forget_pending()

    def for_prefix(self, prefix: str) -> PrefixFamilies:
        with self._lock:
            found = self._prefixes.get(prefix)
            if found is None:
                found = self._prefixes[prefix] = PrefixFamilies(prefix, self)
            return found


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, KeyFamilies] = weakref.WeakKeyDictionary()
_collectors_lock = threading.Lock()


def families_for(registry: CollectorRegistry | None = None) -> KeyFamilies:
    """The key family counters registered in ``registry`` (default: prometheus-client's),
    made once."""
    registry = REGISTRY if registry is None else registry
    with _collectors_lock:
        found = _collectors.get(registry)
        if found is None:
            found = _collectors[registry] = KeyFamilies(registry)
        return found


#: Threads whose tallies are kept before those of the threads that ended are added up,
#: where nothing collects the metrics.
_THREADS = 64


class PrefixFamilies:
    """The tallies of one prefix: per thread, ``{family: [commands, seconds, sent,
    received]}``, which only that thread writes to."""

    def __init__(self, prefix: str, collector: KeyFamilies) -> None:
        self.prefix = prefix.lower()
        self.collector = collector
        #: The current thread's tallies, as ``local.tallies``.
        self.local = threading.local()
        #: Per thread: the thread, its tallies, and what of them was added already.
        self._threads: list[
            tuple[threading.Thread, dict[str, list[Any]], dict[str, list[Any]]]
        ] = []
        self._lock = threading.Lock()
        self._children: dict[str, tuple[Any, Any, Any, Any]] = {}

    def tallies(self) -> dict[str, list[Any]]:
        """The current thread's tallies."""
        try:
            return self.local.tallies  # type: ignore[no-any-return]
        except AttributeError:
            pass
        tallies: dict[str, list[Any]] = {}
        with self._lock:
            self._threads.append((threading.current_thread(), tallies, {}))
            many = len(self._threads) > _THREADS
        self.local.tallies = tallies
        if many:  # threads come and go, and nothing collects the metrics
            self.add_pending()
        return tallies

    def add_pending(self) -> None:
        """Add what the threads tallied since the last call, and forget the threads that
        ended."""
        with self._lock:
            for entry in list(self._threads):
                thread, tallies, added = entry
                alive = thread.is_alive()  # first: it writes no more after
                for family, tally in list(tallies.items()):
                    now = tally.copy()  # one C call: the GIL keeps it whole
                    before = added.get(family, (0, 0.0, 0, 0))
                    self._add(family, [a - b for a, b in zip(now, before)])
                    added[family] = now
                if not alive:
                    self._threads.remove(entry)

    def forget_pending(self) -> None:
        """In a forked child: forget what the parent's threads tallied."""
        self._lock = threading.Lock()  # it may have been held at the fork
        current = threading.current_thread()
        self._threads = [entry for entry in self._threads if entry[0] is current]
        for _thread, tallies, added in self._threads:
            added.update((family, tally.copy()) for family, tally in tallies.items())

    def _add(self, family: str, difference: list[Any]) -> None:
        children = self._children.get(family)
        if children is None:
            collector, prefix = self.collector, self.prefix
            children = self._children[family] = (
                collector.commands.labels(prefix, family),
                collector.seconds.labels(prefix, family),
                collector.bytes.labels(prefix, family, "sent"),
                collector.bytes.labels(prefix, family, "received"),
            )
        for child, amount in zip(children, difference):
            if amount:
                child.inc(amount)


class FamilyObserver:
    """The observer of a prefix's key families: its :meth:`observe` tallies each command
    in the current thread's tallies."""

    def __init__(self, matcher: Matcher, tallies: PrefixFamilies) -> None:
        self.matcher = matcher
        self.prefix_families = tallies
        self._local = tallies.local

    def observe(
        self,
        command: Command,
        seconds: float,
        reply: Any,
        error: BaseException | None,
        commands: Sequence[Command] | None,
    ) -> None:
        try:
            tallies = self._local.tallies
        except AttributeError:
            tallies = self.prefix_families.tallies()
        if commands is None:
            self._tally(tallies, command, seconds, reply)
            return
        if not commands:
            return
        share = seconds / len(commands)
        replies = reply if isinstance(reply, list) and len(reply) == len(commands) else ()
        for index, args in enumerate(commands):
            self._tally(tallies, args, share, replies[index] if replies else None)

    def _tally(
        self, tallies: dict[str, list[Any]], command: Command, seconds: float, reply: Any
    ) -> None:
        split, rule = _name_rule(command[0])
        words = words_of(command) if split else command
        family = self.matcher.family(rule(words))
        tally = tallies.get(family)
        if tally is None:
            tally = tallies[family] = [0, 0.0, 0, 0]
        tally[_COMMANDS] += 1
        tally[_SECONDS] += seconds
        tally[_SENT] += sent_bytes(words)
        tally[_RECEIVED] += reply_bytes(reply)


def setup_key_families(app: Flask, config: ClientConfig) -> Observer | None:
    """The observer of the key families of ``config``'s prefix, whose counters are kept in
    its metrics registry; ``None`` when ``PREFIX_METRICS_KEY_FAMILIES`` is not set."""
    if config.key_families is None:
        return None
    collector = families_for(config.metrics_registry)
    if getattr(values.ValueClass, "_multiprocess", False):  # another process may read them
        write_every_second(collector)
    matcher = Matcher(config.key_families)
    return FamilyObserver(matcher, collector.for_prefix(config.prefix)).observe
