"""Flask-And-Redis: Redis for Flask apps, one configured client per config prefix."""

from __future__ import annotations

from .extension import Redis

__version__ = "2.0.0.dev0"

__all__ = ["Redis", "__version__"]
