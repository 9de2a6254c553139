"""The client libraries, redis-py and valkey-py: the classes of each that the extension
builds on (:class:`ClientLibrary`), which library a client class is of, and the client
class that ``PREFIX_CLASS`` names, checked to be a sync client class of one of them that
fits the topology."""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.cluster import REDIS_ALLOWED_KEYS, ClusterNode, RedisCluster
from redis.sentinel import Sentinel, SentinelManagedSSLConnection
from werkzeug.utils import import_string

from ._checks import shown
from ._topology import CLUSTER, REDIS_PY, SENTINEL, VALKEY_PY


@dataclass(frozen=True)
class ClientLibrary:
    """A client library, redis-py or valkey-py: the classes of it that the extension builds
    on, and the names that differ between the two."""

    #: The name it is imported as: ``"redis"`` or ``"valkey"``.
    name: str
    #: The client of one server: :class:`redis.Redis` or ``valkey.Valkey``.
    client: type[Any]
    #: The cluster client: :class:`redis.cluster.RedisCluster` or ``ValkeyCluster``.
    cluster: type[Any]
    #: What a startup node is given as: ``ClusterNode`` of the library.
    cluster_node: type[Any]
    #: The Sentinel manager: ``Sentinel`` of the library.
    sentinel: type[Any]
    #: The connection of a Sentinel-managed master, TLS or not.
    sentinel_connection: type[Any]
    #: The arguments of the cluster client that it hands on to the client of each node.
    node_arguments: tuple[str, ...]
    #: The argument of ``Sentinel.master_for()`` that names the client class.
    sentinel_class_argument: str
    #: The attribute of a ``ClusterNode`` that holds the client of the node.
    node_client_attribute: str

    def node_pools(self, nodes: Iterable[Any]) -> list[tuple[Any, Any]]:
        """``(node, pool)`` for each cluster node of ``nodes`` that has a client yet: the
        connection pool of the node's client (``redis_connection``, ``valkey_connection``)."""
        found = []
        for node in nodes:
            client = getattr(node, self.node_client_attribute, None)
            if client is not None:
                found.append((node, client.connection_pool))
        return found

    @property
    def asyncio_client(self) -> type[Any]:
        """The asyncio client of one server: ``redis.asyncio.Redis`` or
        ``valkey.asyncio.Valkey`` (imported now: most apps never need it)."""
        module = importlib.import_module(f"{self.name}.asyncio")
        return getattr(module, self.client.__name__)  # type: ignore[no-any-return]

    @property
    def asyncio_cluster(self) -> tuple[type[Any], type[Any]]:
        """The asyncio cluster client and its ``ClusterNode``: ``redis.asyncio.cluster``'s
        ``RedisCluster`` or ``valkey.asyncio.cluster``'s ``ValkeyCluster``."""
        module = importlib.import_module(f"{self.name}.asyncio.cluster")
        return getattr(module, self.cluster.__name__), module.ClusterNode

    @property
    def asyncio_sentinel(self) -> type[Any]:
        """The asyncio Sentinel manager of the library."""
        return importlib.import_module(f"{self.name}.asyncio.sentinel").Sentinel  # type: ignore[no-any-return]

    @property
    def asyncio_sentinel_pool(self) -> type[Any]:
        """The connection pool of the asyncio Sentinel manager's clients."""
        module = importlib.import_module(f"{self.name}.asyncio.sentinel")
        return module.SentinelConnectionPool  # type: ignore[no-any-return]

    @property
    def asyncio_retry(self) -> type[Any]:
        """The ``Retry`` class that the asyncio clients take."""
        return importlib.import_module(f"{self.name}.asyncio.retry").Retry  # type: ignore[no-any-return]

    @property
    def project(self) -> str:
        """The name of the project, for messages: ``"redis-py"`` or ``"valkey-py"``."""
        return f"{self.name}-py"


def _redis_py() -> ClientLibrary:
    return ClientLibrary(
        REDIS_PY, redis.Redis, RedisCluster, ClusterNode, Sentinel,
        SentinelManagedSSLConnection, tuple(REDIS_ALLOWED_KEYS),
        "redis_class", "redis_connection",
    )  # fmt: skip


@functools.cache
def client_library(name: str) -> ClientLibrary:
    """The :class:`ClientLibrary` of ``name``, ``"redis"`` or ``"valkey"``, imported now.

    :raises ImportError: the library is not installed.
    """
    if name == REDIS_PY:
        return _redis_py()
    if name != VALKEY_PY:
        raise ValueError(f"no client library {name!r}")
    valkey = importlib.import_module("valkey")
    cluster = importlib.import_module("valkey.cluster")
    sentinel = importlib.import_module("valkey.sentinel")
    return ClientLibrary(
        VALKEY_PY, valkey.Valkey, cluster.ValkeyCluster, cluster.ClusterNode,
        sentinel.Sentinel, sentinel.SentinelManagedSSLConnection,
        tuple(cluster.VALKEY_ALLOWED_KEYS), "valkey_class", "valkey_connection",
    )  # fmt: skip


def library_of(client_class: type[Any]) -> ClientLibrary:
    """The library whose client or cluster client ``client_class`` is, or extends;
    redis-py's for a class of neither (a client class of the app's own). valkey-py is not
    imported for it: a class of valkey-py is only there once valkey-py is."""
    if issubclass(client_class, (redis.Redis, RedisCluster)):
        return client_library(REDIS_PY)
    if "valkey" in sys.modules:
        valkey = client_library(VALKEY_PY)
        if issubclass(client_class, (valkey.client, valkey.cluster)):
            return valkey
    return client_library(REDIS_PY)


def library_named(name: str, key: str, why: str) -> ClientLibrary:
    """:func:`client_library`, or a :exc:`ValueError` naming ``key`` when the library is
    not installed; ``why`` says what in ``key`` asks for it."""
    try:
        return client_library(name)
    except ImportError:
        raise ValueError(
            f"{key} {why}, which asks for {name}-py, but it is not installed: pip install"
            f" {name} (or set {key.rsplit('_', 1)[0]}_CLASS to another client class)"
        ) from None


def read_client_class(config: Mapping[str, Any], key: str) -> type[Any] | None:
    """The client class that ``key`` (``PREFIX_CLASS``) of ``config`` names, if it is set:
    a class, or its dotted path, checked as :func:`_check_client` does, that can be
    subclassed."""
    value = config.get(key)
    if value is None:
        return None
    expected = "a class, such as redis.Redis or valkey.Valkey, or the dotted path of one"
    if isinstance(value, str):
        try:
            value = import_string(value)
        except Exception as error:  # ImportStringError, ValueError of "", the module's own
            cause = getattr(error, "exception", error)
            missing = getattr(cause, "name", None) if isinstance(cause, ImportError) else None
            hint = ": pip install valkey" if missing == VALKEY_PY else ""
            raise ValueError(
                f"{key} must be {expected}; {shown(key, config.get(key))} does not import:"
                f" {type(cause).__name__}{hint}"
            ) from None
    if not isinstance(value, type):
        raise TypeError(f"{key} must be {expected}, got {shown(key, value)}")
    name = f"{value.__module__}.{value.__qualname__}"
    if value.__module__ == "builtins" or inspect.isabstract(value):
        raise TypeError(f"{key} must be {expected}, got {name}")
    _check_client(key, value)
    try:  # the instrumented client is a subclass of it
        type("Probe", (value,), {})
    except TypeError:
        raise TypeError(f"{key} must be {expected} that can be subclassed, got {name}") from None
    return value


#: The asyncio client classes, with the sync client class to use instead.
_ASYNC_CLIENTS = {
    "redis.asyncio.cluster.RedisCluster": "redis.cluster.RedisCluster",
    "redis.asyncio.client.Redis": "redis.Redis",
    "valkey.asyncio.cluster.ValkeyCluster": "valkey.cluster.ValkeyCluster",
    "valkey.asyncio.client.Valkey": "valkey.Valkey",
}
#: Classes of redis-py and valkey-py (``{lib}``) that are no client, some of them
#: subclasses of one, with what to do instead (``{prefix}``: the config prefix).
_NOT_CLIENTS = (
    ("{lib}.client.Pipeline", "call pipeline() on the client"),
    ("{lib}.cluster.ClusterPipeline", "call pipeline() on the client"),
    ("{lib}.client.PubSub", "call pubsub() on the client"),
    ("{lib}.sentinel.Sentinel", "for Sentinel, set {prefix}_SENTINELS and"
                                " {prefix}_SENTINEL_MASTER, and leave {prefix}_CLASS unset"),
)  # fmt: skip


def _imported(path: str) -> type[Any] | None:
    """The class at the dotted ``path`` if its module is imported: a class can only be a
    subclass of it then, and nothing is imported for the question."""
    module, _, name = path.rpartition(".")
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else None


def _check_client(key: str, klass: type[Any]) -> None:
    """Raise unless ``klass``, read from ``key``, is a sync client class of redis-py or
    valkey-py, or a subclass of one: an asyncio client (see :data:`_ASYNC_CLIENTS`), a
    pipeline, or any other class is refused naming what to use instead."""
    name = _name(klass)
    for path, sync in _ASYNC_CLIENTS.items():
        if _is_subclass(klass, _imported(path)):
            raise TypeError(
                f"{key} is an asyncio client class, {name}, but Flask-And-Redis makes sync"
                f" clients only (asyncio is planned): use {sync}, the sync client, instead"
            )
    libraries = [client_library(REDIS_PY)]
    if VALKEY_PY in sys.modules:  # a class of valkey-py is only there once it is
        libraries.append(client_library(VALKEY_PY))
    clients = tuple(each for library in libraries for each in (library.client, library.cluster))
    hints = [
        hint.format(prefix=key[: -len("_CLASS")])
        for library in libraries
        for path, hint in _NOT_CLIENTS
        if _is_subclass(klass, _imported(path.format(lib=library.name)))
    ]
    if hints or not issubclass(klass, clients):
        raise TypeError(
            f"{key} must be a client class of redis-py or valkey-py (redis.Redis,"
            " redis.cluster.RedisCluster, valkey.Valkey, valkey.cluster.ValkeyCluster) or a"
            f" subclass of one, got {name}" + (f": {hints[0]}" if hints else "")
        )


def _is_subclass(klass: type[Any], base: type[Any] | None) -> bool:
    return base is not None and issubclass(klass, base)


def _name(klass: type[Any]) -> str:
    return f"{klass.__module__}.{klass.__qualname__}"


def check_mode_class(
    mode: str, client_class: type[Any], key: str, cause: str, library: ClientLibrary
) -> None:
    """Raise if ``client_class``, of ``key``, cannot be the client of ``mode``, which the
    key ``cause`` asks for."""
    if mode == CLUSTER and not issubclass(client_class, library.cluster):
        raise TypeError(
            f"{key} must be {_name(library.cluster)} or a subclass of it with {cause},"
            f" got {_name(client_class)}"
        )
    if mode == SENTINEL and not issubclass(client_class, library.client):
        raise TypeError(
            f"{key} must be {library.name}.{library.client.__qualname__} or a subclass of it"
            f" with {cause}, got {_name(client_class)}"
        )
