"""The client library of an app's client, redis-py or valkey-py, and what the commands take
from it: its package, its errors, the client's topology, connection arguments that give up
in time, class names as the reports show them."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import redis

from .._libraries import ClientLibrary, library_of
from .._topology import CLUSTER, SENTINEL, SERVER


def library_of_client(client: Any) -> ClientLibrary:
    """The library of an app's client: redis-py's or valkey-py's."""
    return library_of(type(client))


def package_of(library: ClientLibrary) -> Any:
    """The package of ``library``: :mod:`redis`, or ``valkey``."""
    return importlib.import_module(library.name)


def library_errors(*others: type[BaseException]) -> tuple[type[BaseException], ...]:
    """The base classes of the errors of the client libraries imported, and ``others``."""
    found: list[type[BaseException]] = [redis.RedisError, *others]
    valkey = sys.modules.get("valkey")
    if valkey is not None:  # a prefix of valkey-py's: its errors are ValkeyError's
        found.append(valkey.ValkeyError)
    return tuple(found)


def topology_of(client: Any) -> str:
    """The topology of an app's client, as :func:`flask_redis._extension._connect` made
    it."""
    library = library_of_client(client)
    if isinstance(client, library.cluster):
        return CLUSTER
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, package_of(library).sentinel.SentinelConnectionPool):
        return SENTINEL
    return SERVER


def bounded_arguments(timeout: float, library: ClientLibrary) -> dict[str, Any]:
    """Connection arguments that give up after ``timeout`` seconds, and never retry."""
    module = package_of(library)
    importlib.import_module(f"{library.name}.backoff")
    importlib.import_module(f"{library.name}.retry")
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": module.retry.Retry(module.backoff.NoBackoff(), 0),
    }


def class_name(cls: type[Any]) -> str:
    """``module.QualifiedName`` of ``cls``."""
    return f"{cls.__module__}.{cls.__qualname__}"
