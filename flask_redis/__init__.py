"""Flask-And-Redis: Redis for Flask apps, one configured client per config prefix."""

from __future__ import annotations

from . import _flask_redis_compat
from ._config_warnings import ConfigWarning, IgnoredKeyWarning, UnreadKeyWarning
from ._extension import Redis
from ._flask_redis_compat import FlaskRedis
from ._recording import RecordedCall, RecordedCalls, get_recorded_calls

__version__ = "2.0.0.dev0"

__all__ = [
    "ConfigWarning",
    "FlaskRedis",
    "IgnoredKeyWarning",
    "RecordedCall",
    "RecordedCalls",
    "Redis",
    "UnreadKeyWarning",
    "__version__",
    "get_recorded_calls",
]

# flask-redis installs this package too: say so while it can still be repaired.
_flask_redis_compat.warn_if_flask_redis_installed()
