"""The ``flask redis`` commands: whether the server of each config prefix answers, and
what it is.

Flask finds the group through the package's ``flask.commands`` entry point, so
``flask --app myapp redis ping`` works without the extension touching ``app.cli``.

The commands talk to the servers through connections of their own, made from each
prefix's settings with no retries, and closed when they are done; with the classes of the
prefix's client library, redis-py or valkey-py. Their round trips are none of the app's:
the metrics, the recorded calls and the slow log do not see them, and the app's connection
pools are left as they were. Each prefix is checked on a thread of its own, all at once,
and the command stops waiting at its deadline, ``--timeout`` seconds after it started.

What they print is built from the parsed hosts and ports, never from a value that may hold
a password; a text of the client library or of a server that holds one is not shown.
"""

from __future__ import annotations

from .commands import redis_group

__all__ = ["redis_group"]
