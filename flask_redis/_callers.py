"""Where a command was called from: the first frame of the stack outside redis-py,
valkey-py and this package, as a path relative to the app's root and a line."""

from __future__ import annotations

import importlib.util
import os
import sys
from types import FrameType
from typing import Any

import redis

#: Frames kept of a full stack (``PREFIX_RECORD_STACK``).
STACK_LIMIT = 40


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


def _relative(filename: str, root: str) -> str:
    return filename[len(root) :] if filename.startswith(root) else filename


class Callers:
    """Finds the callers of an app's commands.

    :param root: The app's root folder, ending in a separator: paths are shown relative
        to it.
    :param stack: Find the caller's whole stack too.
    """

    def __init__(self, root: str, stack: bool) -> None:
        self.root = root
        self.stack = stack
        self._locations: dict[tuple[int, int], tuple[Any, str]] = {}

    def find(self, depth: int) -> tuple[str | None, tuple[str, ...] | None]:
        """The location of the caller (``path/relative/to/root.py:42``), searched from the
        frame ``depth`` frames out of the one that calls this method; and its stack,
        innermost last, when :attr:`stack` is on."""
        # Starting there by depth saves making frame objects for the frames of the
        # observer, the dearest part of the walk.
        try:
            frame: FrameType | None = sys._getframe(depth + 1)
        except ValueError:  # called near the top of a stack
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
