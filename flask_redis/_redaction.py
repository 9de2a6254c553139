"""Which words of a command, as redis-py sends it, hold a secret.

redis-py splits a command named in one string into words before it sends it; the server
splits no argument, and reads commands and options in any letter case. :func:`secret_words`
reads a command the same way, and also as if each argument were split into the words it
holds, the way its sender may have meant it; and it fails closed: where a word may be
followed by a secret and the words after it do not read the way the server reads them, all
of them are taken for secrets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any, Callable

from ._commands import BREAKS, SPACES, Command, split_name, upper_word, word_text

# A word that reads as a name of a subcommand, parameter, option or command, upper-case.
_NAME = re.compile(r"[A-Z0-9._-]*\Z")

#: Commands that may carry a secret, in their arguments or in a command they hold.
SECRET_COMMANDS = frozenset({"AUTH", "HELLO", "MIGRATE", "ACL", "CONFIG", "SENTINEL", "COMMAND"})


def secret_positions(command: Command) -> set[int]:
    """Positions of the secrets in ``command``'s words as redis-py sends them (see
    :func:`sent_words`): ``{2}`` for ``("AUTH", "default", "pw")`` and for ``("AUTH
    default pw",)``."""
    words = [upper_word(word) for word in sent_words(command)]
    return secret_words(words, 0) if words and words[0] in SECRET_COMMANDS else set()


def sent_words(command: Command) -> list[Any]:
    """The words of ``command`` as redis-py sends them (see :func:`split_name`)."""
    names, args = split_name(command)
    return names + args


def _from(start: int, size: int) -> set[int]:
    return set(range(start, size))


#: Subcommands that hold no secret, of the commands that have one that may. Any other
#: subcommand, the server does not know: all its arguments are taken for secrets.
_HARMLESS_SUBCOMMANDS = {
    "ACL": frozenset({
        "CAT", "DELUSER", "GENPASS", "GETUSER", "HELP", "LIST", "LOAD", "LOG", "SAVE", "USERS",
        "WHOAMI",
    }),
    "CONFIG": frozenset({"GET", "HELP", "RESETSTAT", "REWRITE"}),
    "COMMAND": frozenset({"COUNT", "DOCS", "HELP", "INFO", "LIST"}),
    "SENTINEL": frozenset({
        "CKQUORUM", "DEBUG", "FAILOVER", "FLUSHCONFIG", "GET-MASTER-ADDR-BY-NAME",
        "GET-PRIMARY-ADDR-BY-NAME", "HELP", "INFO-CACHE", "IS-MASTER-DOWN-BY-ADDR",
        "IS-PRIMARY-DOWN-BY-ADDR", "MASTER", "MASTERS", "MONITOR", "MYID", "PENDING-SCRIPTS",
        "PRIMARIES", "PRIMARY", "REMOVE", "REPLICAS", "RESET", "SENTINELS",
        "SIMULATE-FAILURE", "SLAVES",
    }),
}  # fmt: skip

#: Commands nested this deep (``ACL DRYRUN user COMMAND GETKEYS ...``) are not read: all
#: their words are taken for secrets.
_NESTING_LIMIT = 4


def secret_words(words: list[str], depth: int) -> set[int]:
    """Positions of the secrets in a whole command, given word by word in upper case, nested
    ``depth`` commands deep (``ACL DRYRUN``, ``COMMAND GETKEYS``).

    A word that holds several, parted by :data:`BREAKS`, is read twice: as one word, the way
    the server reads it (``("CONFIG", "SET masterauth pw")`` is a subcommand it does not
    know, which it quotes in its error), and as the words it holds, the way its sender may
    have meant it; it holds a secret if it does either way. Nested commands are read with
    the command that holds them.

    It fails closed: where a word may be followed by a secret and the words after it do not
    read the way the server reads them, every word from there on is taken for a secret; so is
    a word in the place of a name (a subcommand, parameter or command) that is not one.
    """
    found = _command_secrets(words, depth)
    if depth or not any(BREAKS.search(word) for word in words):
        return found
    owners: list[int] = []  # the word each part is of
    parts: list[str] = []
    for index, word in enumerate(words):
        for part in BREAKS.split(word):
            if part:
                owners.append(index)
                parts.append(part)
    # The parts hold no break: they are read without parting them again.
    return found | {owners[index] for index in _command_secrets(parts, 0)} if parts else found


def _command_secrets(words: list[str], depth: int) -> set[int]:
    """Positions of the secrets in a whole command, each word read as one."""
    command = words[0]
    sub = words[1] if len(words) > 1 else ""
    read = _READERS.get((command, sub)) or _READERS.get((command, None))
    if read is not None:
        return read(words, depth)
    harmless = _HARMLESS_SUBCOMMANDS.get(command)
    if harmless is None or len(words) < 2 or sub in harmless:
        return set()
    return _unknown_subcommand(words, 1)


def _sentinel_set_secrets(words: list[str]) -> set[int]:
    """SENTINEL SET master option value ...: the values of secret options."""
    hidden = _option_secrets(words, 3)
    if len(words) > 2 and _secret_option(words[2]):  # the master left out: the server
        hidden |= _option_secrets(words, 2)  # reads the first option's name as its name
    return hidden


def _sentinel_config_secrets(words: list[str]) -> set[int]:
    """SENTINEL CONFIG SET|GET parameter ...: the values of secret parameters."""
    action = words[2] if len(words) > 2 else "GET"
    if action == "SET":
        return _option_secrets(words, 3)
    return set() if action == "GET" else _unknown_subcommand(words, 2)


def _unknown_subcommand(words: list[str], index: int) -> set[int]:
    """The words after a subcommand the server does not know, at ``index``, and the
    subcommand too when it is not one word (the server quotes it in its error)."""
    return _from(index + 1 if _NAME.match(words[index]) else index, len(words))


def _hello_secrets(words: list[str]) -> set[int]:
    """HELLO [protover [AUTH username password] [SETNAME clientname]]: the password."""
    size, index = len(words), 1
    if size > 1 and _INTEGER.match(words[1]):
        index = 2
    # The server reads no option after a protocol version it cannot read; a password
    # without one was sent all the same.
    hidden: set[int] = set()
    while index < size:
        word = words[index]
        if word == "AUTH" and index + 2 < size:
            hidden.add(index + 2)
            index += 3
        elif word == "SETNAME" and index + 1 < size:
            index += 2
        else:  # not what the server reads: anything from here on may be the password
            return hidden | _from(index + 1 if word in ("AUTH", "SETNAME") else index, size)
    return hidden


_INTEGER = re.compile(r"-?[0-9]+\Z")


def _migrate_secrets(words: list[str]) -> set[int]:
    """MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH password | AUTH2 username
    password] [KEYS key...]: the password.

    Where there is no database and timeout (``MIGRATE host port key AUTH pw``), the server
    reads no option: all the words after an ``AUTH`` or ``AUTH2`` are taken for secrets; so
    are those among the keys, which a sender may have meant as options."""
    size = len(words)
    if size < 6 or not (_INTEGER.match(words[4]) and _INTEGER.match(words[5])):
        return _after_auth(words, 1)
    hidden: set[int] = set()
    index = 6
    while index < size:
        word = words[index]
        if word in ("COPY", "REPLACE"):
            index += 1
        elif word == "AUTH" and index + 1 < size:
            hidden.add(index + 1)
            index += 2
        elif word == "AUTH2" and index + 2 < size:
            hidden.add(index + 2)
            index += 3
        elif word == "KEYS":
            return hidden | _after_auth(words, index + 1)
        else:  # not what the server reads: anything from here on may be the password
            return hidden | _from(index + 1 if word in ("AUTH", "AUTH2") else index, size)
    return hidden


def _after_auth(words: list[str], start: int) -> set[int]:
    """The words after the first ``AUTH`` or ``AUTH2`` from ``start`` on."""
    for index in range(start, len(words)):
        if words[index] in ("AUTH", "AUTH2"):
            return _from(index + 1, len(words))
    return set()


#: ACL SETUSER rules that set no password, besides key (``~``, ``%``), channel (``&``) and
#: command (``+``, ``-``) rules.
_ACL_KEYWORDS = frozenset({
    "ON", "OFF", "NOPASS", "RESETPASS", "RESET", "ALLKEYS", "RESETKEYS", "ALLCHANNELS",
    "RESETCHANNELS", "ALLCOMMANDS", "NOCOMMANDS", "SKIP-SANITIZE-PAYLOAD", "SANITIZE-PAYLOAD",
    "CLEARSELECTORS",
})  # fmt: skip


# A key (``~``, ``%``), channel (``&``) or command (``+``, ``-``) rule of one word with no
# sign of a password (``> < # !``) nor quote (in a selector, the server reads "\x3e" in
# quotes as ">"). "~* +@all >pw" is one word to the server, which quotes it in its error.
_SIGN_RULE = re.compile(r"[~%&+-](?:(?![<>#!\"'])[!-~])*\Z")


def _harmless_acl_rule(rule: str) -> bool:
    """An ACL SETUSER rule that sets no password (``>pass``, ``<pass``, ``#hash``,
    ``!hash``): a keyword, a key, channel or command rule, or a selector (``(...)``, which
    may span several arguments, parted at ASCII whitespace as the server parts it) of these
    only. Anything else may be a password."""
    if rule[:1] == "(" or rule[-1:] == ")":
        tokens = SPACES.split(rule.strip("()"))
        return all(_harmless_acl_token(token) for token in tokens if token)
    return _harmless_acl_token(rule)


def _harmless_acl_token(token: str) -> bool:
    return token in _ACL_KEYWORDS or _SIGN_RULE.match(token) is not None


def _nested_secrets(words: list[str], start: int, depth: int) -> set[int]:
    """The secrets of the command that ``words`` hold from ``start`` on."""
    if start >= len(words):
        return set()
    if depth >= _NESTING_LIMIT:
        return _from(start, len(words))
    nested = words[start:]
    if nested[0] not in SECRET_COMMANDS:  # unless it is no name (the server quotes it)
        return set() if _NAME.match(nested[0]) else _from(start, len(words))
    return {start + index for index in secret_words(nested, depth + 1)}


def _secret_option(name: str) -> bool:
    """A parameter or option whose value is a secret: ``requirepass``, ``masterauth``,
    ``masteruser``, ``tls-key-file-pass``, ``auth-pass``, ``sentinel-pass`` and the like."""
    return "PASS" in name or "AUTH" in name or name.endswith("USER")


#: Options that take two values: ``SENTINEL SET master rename-command CONFIG NEW-NAME``.
_TWO_VALUES = frozenset({"RENAME-COMMAND"})


def _option_secrets(words: list[str], start: int) -> set[int]:
    """The values of the options from ``start`` on (``name value ...``) whose name is a
    secret's. Where they do not read the way the server reads them (a name without its
    value, a name that is not one word), see :func:`_unpaired_secrets`."""
    size, index = len(words), start
    hidden: set[int] = set()
    while index < size:
        name = words[index]
        end = index + (3 if name in _TWO_VALUES else 2)
        if end > size or not _NAME.match(name):
            return _unpaired_secrets(words, start)
        if _secret_option(name):
            hidden.update(range(index + 1, end))
        index = end
    return hidden


def _unpaired_secrets(words: list[str], start: int) -> set[int]:
    """Options that do not read the way the server reads them: which word is a name is
    unknown. All the words after the first secret's name are taken for secrets, and those
    from the first that is not one word (``"masterauth pw"``)."""
    for index in range(start, len(words)):
        word = words[index]
        if not _NAME.match(word):
            return _from(index, len(words))
        if _secret_option(word):
            return _from(index + 1, len(words))
    return set()


#: How to read the commands that may hold a secret other than by their subcommand alone:
#: by command and subcommand, or by command (``None``) whatever follows it.
_READERS: dict[tuple[str, str | None], Callable[[list[str], int], set[int]]] = {
    ("AUTH", None): lambda words, depth: _from(1, len(words)),  # AUTH [username] password
    ("HELLO", None): lambda words, depth: _hello_secrets(words),
    ("MIGRATE", None): lambda words, depth: _migrate_secrets(words),
    ("ACL", "SETUSER"): lambda words, depth: {  # ACL SETUSER username rule...
        index for index in range(3, len(words)) if not _harmless_acl_rule(words[index])
    },
    # ACL DRYRUN username command arg..., COMMAND GETKEYS command arg...
    ("ACL", "DRYRUN"): lambda words, depth: _nested_secrets(words, 3, depth),
    ("COMMAND", "GETKEYS"): lambda words, depth: _nested_secrets(words, 2, depth),
    ("COMMAND", "GETKEYSANDFLAGS"): lambda words, depth: _nested_secrets(words, 2, depth),
    # CONFIG SET parameter value ...
    ("CONFIG", "SET"): lambda words, depth: _option_secrets(words, 2),
    ("SENTINEL", "SET"): lambda words, depth: _sentinel_set_secrets(words),
    ("SENTINEL", "CONFIG"): lambda words, depth: _sentinel_config_secrets(words),
}


def key_value_positions(name: str, args: Sequence[Any], globs: Sequence[str]) -> set[int]:
    """Positions of the values of keys matching ``globs`` (``PREFIX_RECORD_REDACT_KEYS``)."""
    if not args:
        return set()

    def matches(key: Any) -> bool:
        if isinstance(key, (bytes, bytearray, memoryview)):
            text = bytes(key).decode("utf-8", "replace")
        else:
            text = word_text(key)
        return any(fnmatchcase(text, glob) for glob in globs)

    if name in ("MSET", "MSETNX"):
        return {index + 1 for index in range(0, len(args) - 1, 2) if matches(args[index])}
    return set(range(1, len(args))) if matches(args[0]) else set()
