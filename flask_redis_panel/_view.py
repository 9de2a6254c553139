"""The rows of the panel's table, with everything the template shows already worked out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

from ._analysis import Analysis, is_single_key_read
from ._cli import command_line, quote_argument
from ._model import Call, Snapshot

#: Characters of the arguments shown before the rest is folded away.
PREVIEW_LIMIT = 80

# The recorder's mark of a value it cut: "... (123456 bytes)" or "... (123 characters)".
_CUT = re.compile(r"\.\.\. \(\d+ (?:bytes|characters)\)\Z")
# Shorter arguments were not cut: the recorder keeps 200 characters, or 100 bytes as hex.
_CUT_AFTER = 200


class Row(NamedTuple):
    """One call, as its table row shows it."""

    number: int
    call: Call
    #: The arguments quoted as for redis-cli, cut to :data:`PREVIEW_LIMIT` characters.
    preview: str
    #: All the recorded arguments, when the preview does not show them all.
    full: Optional[str]
    #: The redis-cli line to copy, or ``None`` when the call cannot be copied.
    cli: Optional[str]
    #: Why the call cannot be copied, when it cannot.
    not_copyable: Optional[str]
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

    pipeline: Optional[int]
    transaction: bool
    rows: list[Row] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``"pipeline #2"``, ``"transaction #3"``; empty outside a pipeline."""
        if self.pipeline is None:
            return ""
        return f"{'transaction' if self.transaction else 'pipeline'} #{self.pipeline}"


def _not_copyable(call: Call) -> Optional[str]:
    if call.redacted:
        return "Not copyable: a secret is redacted (***)"
    if call.args_left_out:
        return f"Not copyable: {call.args_left_out} more arguments were not recorded"
    if any(len(arg) > _CUT_AFTER and _CUT.search(arg) for arg in call.args):
        return "Not copyable: a value was cut short when recorded"
    return None


def _percent(part: float, whole: float) -> float:
    return min(max(part / whole * 100.0, 0.0), 100.0) if whole > 0 else 0.0


def make_row(number: int, call: Call, elapsed: float, duplicates: int, hinted: bool) -> Row:
    """The row of the ``number``-th call of a request whose snapshot took ``elapsed``
    seconds from its start."""
    quoted = " ".join(map(quote_argument, call.args))
    not_copyable = _not_copyable(call)
    cli = None
    if not_copyable is None:
        cli = command_line(call.command, ()) + (" " + quoted if quoted else "")
    if call.args_left_out:
        quoted += f" … ({call.args_left_out} more)"
    full: Optional[str] = None
    preview = quoted
    if len(quoted) > PREVIEW_LIMIT:
        preview, full = quoted[:PREVIEW_LIMIT] + "…", quoted
    offset = _percent(call.start, elapsed)
    return Row(
        number,
        call,
        preview,
        full,
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
