"""The rows of the panel's table, with everything the template shows already worked out.

Whatever a call holds, its row stays small: the text of its command, its error and its
arguments is cut to :data:`ROW_TEXT_BYTES` bytes of HTML at most, counted after the
quoting for redis-cli and the escaping for HTML, so that 1000 calls make less than 2 MB of
panel.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from flask_redis._commands import printable
from flask_redis._display import ARGUMENT_LIMIT, CUT_MARK

from ._analysis import Analysis, is_single_key_read
from ._cli import command_line, quote_argument
from ._model import Call, Snapshot

#: Characters of the arguments shown before the rest is folded away.
PREVIEW_LIMIT = 80
#: Bytes of HTML of the text of one row at most: its command, its error and its
#: arguments, folded or not.
ROW_TEXT_BYTES = 1000
#: Of those, the most the command and the error may take.
COMMAND_BYTES = 100
ERROR_BYTES = 250
#: Of those, the most the preview of folded arguments may take.
PREVIEW_BYTES = 160

# A lone surrogate: the client sends it as the bytes its encoding_errors make of it (or
# refuses it), which the recorded call does not say.
_SURROGATE = re.compile("[\ud800-\udfff]")
#: What follows text cut to fit the panel.
_MORE = " …"


class Row(NamedTuple):
    """One call, as its table row shows it."""

    number: int
    call: Call
    #: The command, cut to fit.
    command: str
    #: The error, cut to fit; ``None`` for a call that did not fail.
    error: str | None
    #: The start of the arguments, when they are folded: :data:`PREVIEW_LIMIT` characters.
    preview: str | None
    #: The arguments, each quoted as for redis-cli, cut to fit (then ending in ``" …"``).
    full: str
    #: The command's words quoted as for redis-cli, when the call can be copied: the line
    #: to copy is these, a space and :attr:`full` (the panel's script reads it there).
    cli_command: str | None
    #: The redis-cli line to copy, or ``None`` when the call cannot be copied.
    cli: str | None
    #: Why the call cannot be copied, when it cannot.
    not_copyable: str | None
    #: Calls of the request that are the same as this one, itself included.
    duplicates: int
    #: The call is one of an N+1 hint.
    n_plus_one: bool
    milliseconds: str
    #: When its round trip started, in milliseconds from the start of the request.
    start_milliseconds: str
    #: Position and length of its timeline bar, as percentages of the request so far.
    offset: str
    width: str


@dataclass
class Group:
    """Consecutive rows of the table: one pipeline or transaction, or calls of no pipeline."""

    pipeline: int | None
    transaction: bool
    rows: list[Row] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``"pipeline #2"``, ``"transaction #3"``; empty outside a pipeline."""
        if self.pipeline is None:
            return ""
        return f"{'transaction' if self.transaction else 'pipeline'} #{self.pipeline}"


def html_size(text: str) -> int:
    """The bytes of ``text`` in UTF-8 once escaped for HTML (``&amp;``, ``&lt;``, ``&gt;``,
    ``&#34;``, ``&#39;``), as the panel's templates escape it."""
    size = len(text.encode("utf-8", "surrogatepass"))
    return (
        size
        + 4 * (text.count("&") + text.count('"') + text.count("'"))
        + 3 * (text.count("<") + text.count(">"))
    )


# A character makes 5 bytes of HTML at most: "&" and the quotes 5, UTF-8 4.
_MOST_BYTES_PER_CHARACTER = 5


def fit(text: str, budget: int) -> tuple[str, bool]:
    """``text``, or as much of its start as makes ``budget`` bytes of HTML at most, and
    whether it was cut."""
    if len(text) * _MOST_BYTES_PER_CHARACTER <= budget or html_size(text) <= budget:
        return text, False
    low, high = budget // _MOST_BYTES_PER_CHARACTER, min(len(text), budget)
    while low < high:  # the longest start that fits: its size grows with its length
        middle = (low + high + 1) // 2
        if html_size(text[:middle]) <= budget:
            low = middle
        else:
            high = middle - 1
    return text[:low], True


def _quoted(args: Sequence[str], budget: int) -> tuple[str, bool]:
    """``args`` quoted as for redis-cli and joined, cut to ``budget`` bytes of HTML; and
    whether they were cut. Arguments past the budget are not even quoted."""
    parts: list[str] = []
    length = -1
    for arg in args:
        if length > budget:  # a character is a byte at least: no more can fit
            break
        parts.append(quote_argument(arg))
        length += len(parts[-1]) + 1
    text, cut = fit(" ".join(parts), budget)
    return text, cut or len(parts) < len(args)


def _marked_cut(args: Sequence[str]) -> bool:
    """Whether an argument bears the recorder's mark of a value it cut, and is longer than
    the recorder keeps of a value (shorter ones were not cut, whatever their end)."""
    return any(len(arg) > ARGUMENT_LIMIT and CUT_MARK.search(arg) for arg in args)


def _not_copyable(call: Call) -> str | None:
    """Why the call cannot be copied as recorded, if it cannot."""
    if call.redacted:
        return "Not copyable: a secret is redacted (***)"
    if call.args_left_out:
        return f"Not copyable: {call.args_left_out} more arguments were not recorded"
    # A call not made by the recorder may not say that a value was cut: the mark says it.
    if call.exact and not _marked_cut(call.args):
        if any(not arg.isprintable() and _SURROGATE.search(arg) for arg in call.args):
            return (
                "Not copyable: a value holds a lone surrogate, whose bytes depend on the"
                " client's encoding_errors"
            )
        return None
    if any(CUT_MARK.search(arg) for arg in call.args):
        return "Not copyable: a value was cut short when recorded"
    return "Not copyable: a value is not recorded as sent (binary values are shown as hex)"


def _percent(part: float, whole: float) -> float:
    return min(max(part / whole * 100.0, 0.0), 100.0) if whole > 0 else 0.0


def make_row(number: int, call: Call, elapsed: float, duplicates: int, hinted: bool) -> Row:
    """The row of the ``number``-th call of a request whose snapshot took ``elapsed``
    seconds from its start."""
    budget = ROW_TEXT_BYTES
    command, command_cut = fit(printable(call.command), COMMAND_BYTES)
    budget -= html_size(command)
    error: str | None = None
    if call.error is not None:
        error, error_cut = fit(printable(call.error), ERROR_BYTES)
        error += _MORE if error_cut else ""
        budget -= html_size(error)
    full, args_cut = _quoted(call.args, budget - PREVIEW_BYTES - len(_MORE.encode()))
    not_copyable = _not_copyable(call)
    if not_copyable is None and (command_cut or args_cut):
        not_copyable = "Not copyable: too long to show in full"
    cli_command = cli = None
    if not_copyable is None:
        cli_command = command_line(call.command, ())
        cli = cli_command + " " + full if full else cli_command
    if args_cut:
        full += _MORE
    if command_cut:
        command += _MORE
    if call.args_left_out:
        full += f" … ({call.args_left_out} more)"
    preview: str | None = None
    if len(full) > PREVIEW_LIMIT:
        preview = fit(full[:PREVIEW_LIMIT], PREVIEW_BYTES - len(_MORE.encode()))[0] + "…"
    offset = _percent(call.start, elapsed)
    return Row(
        number,
        call,
        command,
        error,
        preview,
        full,
        cli_command,
        cli,
        not_copyable,
        duplicates,
        hinted,
        f"{call.duration * 1000:.2f}",
        f"{call.start * 1000:.2f}",
        f"{offset:.2f}",
        f"{min(_percent(call.duration, elapsed), 100.0 - offset):.2f}",
    )


def make_groups(snapshot: Snapshot, analysis: Analysis) -> list[Group]:
    """The rows of a snapshot, a group per pipeline and per run of calls outside one."""
    hinted = {(hint.prefix, hint.location, hint.command) for hint in analysis.hints}
    groups: list[Group] = []
    for index, call in enumerate(snapshot.calls):
        if not groups or groups[-1].pipeline != call.pipeline:
            groups.append(Group(call.pipeline, call.transaction))
        in_hint = (call.prefix, call.location, call.command) in hinted
        in_hint = in_hint and is_single_key_read(call)
        row = make_row(index + 1, call, snapshot.elapsed, analysis.duplicates[index], in_hint)
        groups[-1].rows.append(row)
    return groups
