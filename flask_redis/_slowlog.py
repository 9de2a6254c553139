"""The slow log: a warning of logger ``flask_redis.slow`` per round trip slower than
``PREFIX_SLOW_LOG_THRESHOLD`` seconds, with the command as the panel shows it, its caller
and the endpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from flask import Flask, has_request_context, request

from ._callers import Callers
from ._commands import Command, printable
from ._display import displayed, shown

logger = logging.getLogger("flask_redis.slow")

#: Arguments of a command shown in its record; the rest are counted.
_ARGUMENTS_SHOWN = 10


class SlowLog:
    """Logs round trips slower than ``PREFIX_SLOW_LOG_THRESHOLD`` seconds; an observer."""

    def __init__(
        self, prefix: str, threshold: float, app: Flask, redact_keys: Sequence[str]
    ) -> None:
        self.prefix = prefix
        self.threshold = threshold
        self.redact_keys = tuple(redact_keys)
        self._callers = Callers(app.root_path + os.sep, stack=False)

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
        name, args, left_out, _redacted, _exact = displayed(
            command, self.redact_keys, _ARGUMENTS_SHOWN
        )
        text = " ".join([arg if type(arg) is str else shown(arg)[0] for arg in args])
        if left_out:
            text += f" ... ({left_out} more)"
        if commands is not None:
            text = f"({len(commands)} commands)"
        caller = self._callers.find(1)[0] or "unknown"  # from what called this method
        endpoint = request.endpoint if has_request_context() else None
        # Every value is escaped: a key that holds a line break or a terminal's escape
        # sequence must not start a line of its own or reach the terminal.
        logger.warning(
            "slow Redis call: %s %s %s took %.1f ms (caller %s, endpoint %s)",
            printable(self.prefix), printable(name), printable(text), seconds * 1000,
            printable(caller), printable(endpoint or "none"),
        )  # fmt: skip
