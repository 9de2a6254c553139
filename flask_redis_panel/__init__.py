"""A Flask-DebugToolbar panel of the Redis calls each request makes through Flask-And-Redis.

Add it to the toolbar's panels::

    app.config["DEBUG_TB_PANELS"] += ("flask_redis_panel.RedisPanel",)
"""

from __future__ import annotations

from .panel import RedisPanel

__all__ = ["RedisPanel"]
