"""What a command is, and how its words read as text: helpers shared by the observers,
the Sentinel watch, the commands and the panel. This module imports nothing of the project.
"""

from __future__ import annotations

import re
from typing import Any

Command = tuple[Any, ...]
"""A command as redis-py sends it: ``("SET", "key", "value")``."""


#: Integers of more bits than this are not written out (Python refuses to, by default).
_WRITTEN_BITS = 4000 * 3


def word_text(value: Any) -> str:
    """A word as redis-py encodes it, as text: bytes as Latin-1, numbers as ``repr()``."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    if isinstance(value, int) and value.bit_length() > _WRITTEN_BITS:
        return ""
    return repr(value) if isinstance(value, (int, float)) else str(value)


def upper_word(value: Any) -> str:
    """A word of a command, upper-case, to compare with the names of commands and options
    (which the server reads case-insensitively, ASCII letters only)."""
    return word_text(value).upper()


# ASCII whitespace, which bytes.split() splits on: redis-py splits a command name on it.
SPACES = re.compile("[ \t\n\r\x0b\x0c]+")

# Where words are parted too, to search them for a secret: at any character but printable
# ASCII (whitespace, controls, all else), which no name of a command or option holds. The
# server reads "AUTH\u00a0pw" (redis-py does not split it) as one word, a command it does
# not know, and quotes it in its error; bytes are read as Latin-1, so "\u3000" in UTF-8 is
# three such characters.
BREAKS = re.compile(r"[^!-~]+")

#: Commands whose second word is a subcommand, shown with it (``"CLIENT SETNAME"``) when
#: the command is named in one string, as redis-py names them.
_CONTAINERS = frozenset({
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "HOTKEYS",
    "LATENCY", "LOLWUT", "MEMORY", "MODULE", "OBJECT", "PUBSUB", "SCRIPT", "SENTINEL",
    "SLOWLOG", "XGROUP", "XINFO",
})  # fmt: skip


def split_name(command: Command) -> tuple[list[Any], list[Any]]:
    """The words that name ``command`` and its arguments, as redis-py sends them.

    redis-py's ``pack_command`` splits a first argument of text on ASCII whitespace, and one
    of bytes that holds a space: ``("CONFIG SET masterauth pw",)`` sends four words. The
    command is named by the first word, and by the second too when it is a subcommand
    (listed in ``_CONTAINERS``) of the same first argument; the other words are arguments.
    """
    name = command[0]
    if isinstance(name, str):
        words: list[Any] = [word for word in SPACES.split(name) if word]
    elif isinstance(name, (bytes, bytearray)) and b" " in name:
        words = bytes(name).split()
    else:
        words = [name]
    args = list(command[1:])
    if not words:  # a name of spaces only: the next argument goes as the command
        words = [args.pop(0)] if args else []
    count = 2 if len(words) > 1 and upper_word(words[0]) in _CONTAINERS else 1
    return words[:count], words[count:] + args


def printable(text: str) -> str:
    """``text`` with each character that is not printable written as its escape: ``\\n``,
    ``\\r``, ``\\t``, ``\\x1b``, ``\\u2028``, ``\\udcff``... What it returns holds no control
    character, line or paragraph separator or lone surrogate, so that a log record stays
    one line, a terminal shows it as it is, and it can be encoded as UTF-8."""
    if text.isprintable():
        return str(text)  # a str subclass (markupsafe.Markup...) becomes plain text
    return "".join([char if char.isprintable() else repr(char)[1:-1] for char in text])
