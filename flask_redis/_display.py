"""How a command reads in the panel and the slow log: its name and arguments as display
text, secrets redacted, long values cut, binary values as hex; and whether that text is
exactly what was sent, so that the panel's command line sends it again."""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from typing import Any

from ._commands import BREAKS, Command, split_name, upper_word
from ._redaction import SECRET_COMMANDS, key_value_positions, secret_words

#: Characters of an argument kept for display; the rest is cut and its size shown.
ARGUMENT_LIMIT = 200
#: Arguments of a call kept for display; the rest are counted.
ARGUMENTS_LIMIT = 50
#: What a secret is shown as.
REDACTED = "***"

# The units of the size of a cut value: of text, and of bytes.
_CHARACTERS, _BYTES = "characters", "bytes"
#: The mark that ends a value cut by :func:`cut`: ``"... (123456 bytes)"``.
CUT_MARK = re.compile(rf"\.\.\. \(\d+ (?:{_CHARACTERS}|{_BYTES})\)\Z")


def cut(text: str, size: int, unit: str) -> str:
    """``text``, the start of a value of ``size`` ``unit`` (``"characters"`` or
    ``"bytes"``), marked as cut (:data:`CUT_MARK`)."""
    return f"{text}... ({size} {unit})"


def _bytes_head(value: Any, size: int) -> tuple[bytes, int]:
    """The first ``size`` bytes of a bytes-like ``value`` and its length in bytes; a
    ``memoryview`` or ``bytearray`` as the bytes it holds, copying no more than needed."""
    if isinstance(value, bytes):
        return value[:size], len(value)
    view = memoryview(value)
    if view.ndim == 1 and view.itemsize == 1:
        return view[:size].tobytes(), view.nbytes
    return view.tobytes()[:size], view.nbytes


def shown(value: Any) -> tuple[str, bool]:
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
        return cut(value[:ARGUMENT_LIMIT], len(value), _CHARACTERS), False
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
    return cut(text[:ARGUMENT_LIMIT], len(text), _CHARACTERS), False


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
        return cut(text, size, _BYTES), False
    return text, True


def _hex(head: bytes, size: int) -> str:
    text = "0x" + head[: ARGUMENT_LIMIT // 2].hex()
    return cut(text, size, _BYTES) if size > ARGUMENT_LIMIT // 2 else text


def as_text(args: Sequence[Any], exact: bool) -> tuple[tuple[str, ...], bool]:
    """The arguments that :func:`displayed` returns, all as display text (it leaves short
    numbers as they are), and whether they are all exactly what was sent too."""
    if all(type(arg) is str for arg in args):
        return tuple(args), exact
    texts = [shown(arg) for arg in args]
    return tuple([text for text, _same in texts]), exact and all(same for _text, same in texts)


def _command_text(words: Sequence[Any]) -> tuple[str, bool]:
    """The upper-case command named by ``words``, and whether it is exact: each word is
    short printable ASCII without spaces, so the line of the panel sends it again."""
    texts: list[str] = []
    exact = True
    for word in words:
        text, same = shown(word)
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
    (display strings with secrets redacted; short numbers are left as numbers, which
    :func:`as_text` makes text), the number of arguments left out, whether any argument was
    redacted, and whether the name and the arguments are exactly what was sent (see
    :attr:`flask_redis.RecordedCall.exact`)."""
    name = command[0]
    kind = type(name)
    text = _plain_names.get(name) if kind is str or kind is bytes else None
    if text is not None and not redact_keys and len(command) <= limit + 1:
        # The common case, kept short: short text and numbers are kept as they are (numbers
        # become text when the calls are asked for). It must give what _displayed() gives,
        # once through as_text(): a test checks it.
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
    text, exact = _command_text(names)
    tokens = [token for word in names for token in BREAKS.split(upper_word(word)) if token]
    hidden: set[int] = set()
    redacted = False
    if tokens and tokens[0] in SECRET_COMMANDS:
        hidden, redacted = _secret_args(tokens, args)
        if redacted:  # the name itself holds one: it is no command
            text = f"{tokens[0]} {REDACTED}"
    elif exact and len(args) == len(command) - 1:
        # The name is the command's words only, and can hold no secret: the next call of
        # the same name may take the short way.
        _remember(command[0], text)
    if redact_keys:
        hidden |= key_value_positions(text, args, redact_keys)
    kept = args[:limit]
    texts, same = _texts(kept, hidden)
    left_out = len(args) - len(kept)
    redacted = redacted or bool(hidden)
    return text, texts, left_out, redacted, exact and same and not redacted and not left_out


def _secret_args(tokens: list[str], args: Sequence[Any]) -> tuple[set[int], bool]:
    """The positions of the secrets among ``args``, the arguments of the command named by
    ``tokens``, and whether its name holds one too."""
    shift = len(tokens)
    found = secret_words([*tokens, *map(upper_word, args)], 0)
    hidden = {index - shift for index in found if index >= shift}
    return hidden, len(hidden) < len(found)


def _remember(name: Any, text: str) -> None:
    """Keep ``text`` as the command that the plain name ``name`` names."""
    if type(name) in (str, bytes) and len(_plain_names) < 4096:
        _plain_names[name] = text  # bounded by the names an app sends


def _texts(args: Sequence[Any], hidden: set[int]) -> tuple[tuple[str, ...], bool]:
    """``args`` as display text, those at the positions ``hidden`` as :data:`REDACTED`;
    and whether the others are exactly what was sent."""
    texts: list[str] = []
    exact = True
    for index, arg in enumerate(args):
        if index in hidden:
            texts.append(REDACTED)
            continue
        text, same = shown(arg)
        exact = exact and same
        texts.append(text)
    return tuple(texts), exact


def error_text(error: BaseException, secret: bool) -> str:
    """``"ClassName: message"``; the class only for a call that holds a secret, since the
    message may quote the command (redis-py's does for pipelines, the server's for an
    unknown command)."""
    name = type(error).__name__
    if secret:
        return name
    message = str(error)
    return f"{name}: {shown(message)[0]}" if message else name


def refused(error: BaseException) -> bool:
    """Whether ``error`` is what redis-py or valkey-py raise for an argument they refuse,
    before sending: their ``DataError``, or their encoder's ``UnicodeEncodeError`` (a lone
    surrogate in UTF-8, a character the encoding lacks)."""
    if isinstance(error, UnicodeEncodeError):
        return True
    return any(cls.__name__ == "DataError" for cls in type(error).__mro__)


def is_utf8(encoding: Any) -> bool:
    """Whether ``encoding`` names UTF-8."""
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except (LookupError, TypeError):
        return False


def as_utf8(text: str, encoding: str) -> bool:
    """Whether ``text`` in ``encoding`` is its UTF-8 bytes (not so for text that either
    refuses: a lone surrogate, a character Latin-1 lacks)."""
    try:
        return text.encode(encoding) == text.encode("utf-8")
    except (UnicodeError, LookupError):  # an encoding the config would have refused
        return False
