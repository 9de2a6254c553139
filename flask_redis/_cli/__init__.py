"""The ``flask redis`` commands, found by Flask through the package's ``flask.commands``
entry point, ``flask_redis._cli:redis_group``."""

from __future__ import annotations

from .commands import redis_group

__all__ = ["redis_group"]
