"""Flask-And-Redis: Redis for Flask apps, one configured client per config prefix."""

from __future__ import annotations

from .config import ConfigWarning, IgnoredKeyWarning, UnreadKeyWarning
from .extension import Redis
from .recording import RecordedCall, RecordedCalls, get_recorded_calls

__version__ = "2.0.0.dev0"

__all__ = [
    "ConfigWarning",
    "IgnoredKeyWarning",
    "RecordedCall",
    "RecordedCalls",
    "Redis",
    "UnreadKeyWarning",
    "__version__",
    "get_recorded_calls",
]
