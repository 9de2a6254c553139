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
from typing import Union

#: Escapes of the characters that have a short one in redis-cli's double quotes.
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

#: Printable characters that still need quotes: they end a token or start a quoted part.
_SPECIAL = re.compile("[ \"']")


def _hex(data: bytes) -> str:
    return "".join(f"\\x{byte:02x}" for byte in data)


class _TextEscapes(dict):  # type: ignore[type-arg]
    """The :meth:`str.translate` table of text in double quotes, filled as characters are
    met: a character stays as it is when it is printable (UTF-8 goes as it is), else it is
    written as ``\\xHH`` of its UTF-8 bytes."""

    #: Characters looked up beyond these many are worked out each time, not kept.
    LIMIT = 8192

    def __missing__(self, code: int) -> str:
        char = chr(code)
        escape = _ESCAPES.get(char)
        if escape is None:
            if char.isprintable():
                escape = char
            else:
                try:
                    # Lone surrogates from a "surrogateescape" decoding stand for the
                    # original bytes. (The bytes the client sends for one depend on its
                    # encoding_errors: the panel offers no copy line that holds one.)
                    escape = _hex(char.encode("utf-8", "surrogateescape"))
                except UnicodeEncodeError:
                    escape = _hex(char.encode("utf-8", "surrogatepass"))
        if len(self) < self.LIMIT:
            self[code] = escape
        return escape


_TEXT_ESCAPES = _TextEscapes()
for _code in range(128):
    _TEXT_ESCAPES[_code]  # the ASCII characters, looked up ahead

#: The table of bytes (decoded as Latin-1, a character per byte) in double quotes: any
#: byte but printable ASCII as ``\\xHH``.
_BYTE_ESCAPES = {
    code: _ESCAPES.get(chr(code)) or (chr(code) if 32 <= code < 127 else f"\\x{code:02x}")
    for code in range(256)
}

Argument = Union[str, bytes]


def quote_argument(value: Argument) -> str:
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
        return '"' + text.translate(_BYTE_ESCAPES) + '"'
    if value and value.isprintable() and not _SPECIAL.search(value):
        return str(value)  # a str subclass (markupsafe.Markup...) becomes plain text
    return '"' + value.translate(_TEXT_ESCAPES) + '"'


def command_line(command: str, args: Iterable[Argument]) -> str:
    """The line to type at the redis-cli prompt: the command's words, then its arguments.

    :param command: The command as recorded, one or two words (``"CLIENT SETNAME"``).
    :param args: The arguments after the command.
    """
    words = [quote_argument(word) for word in command.split()]
    words.extend(quote_argument(arg) for arg in args)
    return " ".join(words)
