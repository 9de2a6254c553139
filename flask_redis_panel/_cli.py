"""Quote a command for the ``redis-cli`` prompt, following the rules redis-cli parses by.

redis-cli splits a line into arguments with ``sdssplitargs``: a token runs to the next
space, tab, newline or carriage return, and a double quote or single quote anywhere in it
starts a quoted part. Inside double quotes, ``\\"``, ``\\\\``, ``\\n``, ``\\r``, ``\\t`` and
``\\xHH`` (any byte) are escapes. So an argument is written as it is when it is not empty
and holds only printable characters other than spaces and quotes, and in double quotes
with those escapes otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Escapes of the characters that have a short one in redis-cli's double quotes.
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

#: Printable characters that still need quotes: they end a token or start a quoted part.
_SPECIAL = re.compile("[ \"']")

#: What may need an escape inside double quotes: anything but printable ASCII other than
#: the double quote and the backslash.
_MAY_ESCAPE = re.compile(r"[^ !#-\[\]-~]")


def _escape_char(match: re.Match[str]) -> str:
    char = match[0]
    escape = _ESCAPES.get(char)
    if escape is not None:
        return escape
    if char.isprintable():  # printable beyond ASCII: UTF-8, as it is
        return char
    try:
        # Lone surrogates from a "surrogateescape" decoding stand for the original bytes.
        data = char.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = char.encode("utf-8", "surrogatepass")
    return "".join(f"\\x{byte:02x}" for byte in data)


def _escape_byte(match: re.Match[str]) -> str:
    char = match[0]  # one byte, decoded as Latin-1
    return _ESCAPES.get(char) or f"\\x{ord(char):02x}"


def quote_argument(value: str | bytes) -> str:
    """One argument as redis-cli reads it back: a plain token when that is safe, else in
    double quotes with escapes.

    Text goes as UTF-8: printable characters as they are, others as ``\\xHH`` of their
    bytes. Bytes are quoted byte for byte: any byte but printable ASCII as ``\\xHH``.

    >>> quote_argument("user:1")
    'user:1'
    >>> print(quote_argument('say "hi"\\n'))
    "say \\"hi\\"\\n"
    >>> print(quote_argument(b"\\x00\\xff"))
    "\\x00\\xff"
    """
    if isinstance(value, bytes):
        text = value.decode("latin-1")  # one character per byte
        if text and text.isascii() and text.isprintable() and not _SPECIAL.search(text):
            return text
        return '"' + _MAY_ESCAPE.sub(_escape_byte, text) + '"'
    if value and value.isprintable() and not _SPECIAL.search(value):
        return value
    return '"' + _MAY_ESCAPE.sub(_escape_char, value) + '"'


def command_line(command: str, args: Iterable[str | bytes]) -> str:
    """The line to type at the redis-cli prompt: the command's words, then its arguments.

    :param command: The command as recorded, one or two words (``"CLIENT SETNAME"``).
    :param args: The arguments after the command.
    """
    words = [quote_argument(word) for word in command.split()]
    words.extend(quote_argument(arg) for arg in args)
    return " ".join(words)
