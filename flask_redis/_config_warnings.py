"""The warnings of settings that do not do what they seem to, and where they point: at the
app's own call (``Redis(app)``, ``init_app()``), not at this package."""

from __future__ import annotations

import sys
import warnings


class ConfigWarning(UserWarning):
    """A setting of ``app.config`` that does not do what it seems to."""


class UnreadKeyWarning(ConfigWarning):
    """A key with the extension's prefix that nothing reads: a misspelled key, a key of
    another topology or client class, or a key of another library that shares the prefix."""


class IgnoredKeyWarning(ConfigWarning):
    """A separate key that ``PREFIX_URL`` overrides with a value of its own or its default,
    as Flask-And-Redis 1.0 did."""


def warn_at_app(message: str, category: type[Warning]) -> None:
    """Warn at the first frame outside this package: the app's ``Redis(app)`` or
    ``init_app()`` call."""
    level, frame = 2, sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        "flask_redis."
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
