"""Which server answered: Sentinel and Cluster clients note it, the recorder takes it.

Only clients whose calls are recorded note their servers: :func:`noting` mixes
:class:`SentinelNodes` or :class:`ClusterNodes` into their class. Each round trip notes
the servers it talked to in a record of its thread; the recorder, which observes the
round trip right after it ends in the same thread, takes them with :func:`take`.
"""

from __future__ import annotations

import threading
from typing import Any

from ._instrument import subclass

_local = threading.local()


def _note(name: str) -> None:
    names: dict[str, None] | None = getattr(_local, "names", None)
    if names is None:
        names = _local.names = {}
    names[name] = None  # a dict keeps the order the servers were noted in


def take() -> str | None:
    """The servers noted in this thread since the last call, as ``"host:port"`` joined by
    ``", "``, a replica's followed by ``" (replica)"``; ``None`` if none was noted."""
    names: dict[str, None] | None = getattr(_local, "names", None)
    if not names:
        return None
    _local.names = None
    return ", ".join(names)


def _noting_pipeline(pipe: Any, mixin: type[Any]) -> Any:
    """``pipe``, made to note its servers with ``mixin`` too."""
    pipe.__class__ = subclass(type(pipe), mixin)
    return pipe


class SentinelNodes:
    """Mixed into a Sentinel-managed client and its pipelines: notes the server of each
    reply, whose address the connection learnt from the sentinels when it connected."""

    def parse_response(self, connection: Any, command_name: Any, **options: Any) -> Any:
        try:
            return super().parse_response(connection, command_name, **options)  # type: ignore[misc]
        finally:
            replica = not getattr(connection.connection_pool, "is_master", True)
            _note(f"{connection.host}:{connection.port}" + (" (replica)" if replica else ""))

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = super().pipeline(*args, **kwargs)  # type: ignore[misc]
        return _noting_pipeline(pipe, SentinelNodes)


def _note_node(node: Any) -> None:
    """Note a cluster node that a command is sent to."""
    _note(node.name + (" (replica)" if node.server_type == "replica" else ""))


class ClusterNodes:
    """Mixed into a cluster client and its pipelines: notes each node a command is sent to,
    redirections (``MOVED``, ``ASK``) and retries included, so the last one noted for a
    command is the one that answered."""

    def get_redis_connection(self, node: Any) -> Any:
        _note_node(node)
        return super().get_redis_connection(node)  # type: ignore[misc]

    def get_valkey_connection(self, node: Any) -> Any:
        # valkey-py's name of the same method: a client has one of the two.
        _note_node(node)
        return super().get_valkey_connection(node)  # type: ignore[misc]

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = super().pipeline(*args, **kwargs)  # type: ignore[misc]
        return _noting_pipeline(pipe, ClusterNodes)


def noting(client_class: type[Any], mixin: type[Any]) -> type[Any]:
    """The subclass of ``client_class`` whose clients and pipelines note their servers
    with ``mixin`` (:class:`SentinelNodes` or :class:`ClusterNodes`)."""
    return subclass(client_class, mixin)
