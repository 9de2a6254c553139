"""The names of a prefix's keys: one per keyword argument that its client takes in its
topology (:func:`arguments`), the extension's own settings, and the keys of 1.0 that
redis-py renamed; and what takes those arguments, for messages (:func:`taker`)."""

from __future__ import annotations

import inspect
from typing import Any

from ._libraries import library_of
from ._topology import CLUSTER, SENTINEL, SERVER

#: Keys of 1.0 that redis-py renamed, mapped to today's argument names.
LEGACY_KEYS = {"CHARSET": "encoding", "ERRORS": "encoding_errors"}

#: Arguments never read from a key of their own: the legacy names above, which redis-py 5
#: still accepts (deprecated) and which are read through their 1.0 keys instead.
_NOT_KEYS = frozenset(name.lower() for name in LEGACY_KEYS)

#: Arguments that the topology sets itself: as keys, they are an error in that mode.
NOT_IN_MODE = {
    SENTINEL: ("host", "port", "unix_socket_path", "connection_pool"),
    CLUSTER: ("db", "unix_socket_path", "connection_pool"),
}
#: Arguments of a Sentinel-managed connection pool beside its connections' arguments.
_SENTINEL_POOL_ARGUMENTS = ("ssl", "max_connections")
#: The settings of the extension itself, besides one key per argument of the client.
SETTINGS = (
    "URL", "CLASS", *LEGACY_KEYS, "SENTINELS", "SENTINEL_MASTER", "SENTINEL_KWARGS",
    "SENTINEL_WATCH", "CLUSTER", "METRICS", "METRICS_REGISTRY", "METRICS_PATH",
    "METRICS_KEY_FAMILIES", "RECORD_CALLS", "RECORD_CALLS_MAX", "RECORD_STACK",
    "RECORD_REDACT_KEYS", "SERVER_TIMING", "SLOW_LOG_THRESHOLD",
)  # fmt: skip


def client_arguments(client_class: type[Any]) -> list[str]:
    """The keyword arguments ``client_class`` accepts, in the order of its signature.

    Where an ``__init__`` takes ``**kwargs``, the arguments of the ``__init__`` it passes them
    on to (the next one in the MRO) are added, so a subclass of :class:`redis.Redis` (or of
    ``valkey.Valkey``) with arguments of its own accepts all of the library's as well.
    """
    names: dict[str, None] = {}
    for klass in client_class.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        try:
            parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
        except (TypeError, ValueError):  # a builtin or C-level __init__: nothing to read
            break
        takes_kwargs = False
        for parameter in list(parameters)[1:]:  # skip self
            if parameter.kind is parameter.VAR_KEYWORD:
                takes_kwargs = True
            elif parameter.kind is not parameter.VAR_POSITIONAL:
                names.setdefault(parameter.name, None)
        if not takes_kwargs:
            break
    return [name for name in names if name not in _NOT_KEYS]


def arguments(mode: str, client_class: type[Any]) -> list[str]:
    """The keyword arguments that keys may set in ``mode``, for a client of
    ``client_class`` (of redis-py or valkey-py: :func:`library_of`)."""
    if mode == SERVER:
        return client_arguments(client_class)
    library = library_of(client_class)
    if mode == SENTINEL:
        # Sentinel hands them to the pool of the master, which hands them to each
        # connection: the client class's own arguments are not passed on, nor are the
        # connection's internal ones that the library's client does not take either.
        connection = set(client_arguments(library.sentinel_connection))
        names = [name for name in client_arguments(library.client) if name in connection]
        names += _SENTINEL_POOL_ARGUMENTS
    else:
        # The cluster client's own arguments, and those it passes on to the client of each
        # node.
        node_arguments = [name for name in client_arguments(library.client)
                          if name in library.node_arguments]  # fmt: skip
        names = [name for name in client_arguments(client_class)
                 if name not in ("startup_nodes", "url")]  # fmt: skip
        names += node_arguments
    refused = NOT_IN_MODE[mode]
    return [name for name in dict.fromkeys(names) if name not in refused]


def taker(mode: str, client_class: type[Any]) -> str:
    """What takes the arguments of ``mode``, for messages."""
    if mode == SENTINEL:
        return "a Sentinel master's connection"
    return f"{client_class.__module__}.{client_class.__qualname__}"
