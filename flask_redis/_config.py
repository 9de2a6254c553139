"""Read a config prefix's ``PREFIX_*`` settings into a :class:`ClientConfig`: the client class
and its keyword arguments, the topology, and the extension's own settings.

The client library, redis-py or valkey-py, follows the client class (``PREFIX_CLASS``),
else the URL's scheme (``valkey://`` picks valkey-py), else redis-py; a
:class:`ClientLibrary` holds the classes of it that the extension builds on.

The contract: a setting that is not what its key expects is a :exc:`ValueError` or a
:exc:`TypeError` whose message names the key and what was expected, raised before any
client exists (:mod:`.checks` checks each argument, :mod:`.urls` reads the URLs). Values of
keys that may hold a secret (``*_PASSWORD``, ``*_URL``, ``*_SENTINEL_KWARGS``) are never put
into a message, and no message shows any part of a URL. A key that looks like a setting but
that nothing reads is a :class:`UnreadKeyWarning`.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import inspect
import re
import sys
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Flask
from redis.cluster import REDIS_ALLOWED_KEYS, ClusterNode, RedisCluster
from redis.sentinel import Sentinel, SentinelManagedSSLConnection
from werkzeug.utils import import_string

from ._checks import (
    _BOOLEAN,
    _INTEGER,
    _NUMBER,
    _UNSET,
    _boolean,
    _check_together,
    _class_named,
    _convert_with,
    _integer,
    _seconds,
    _shown,
    _value,
)  # fmt: skip
from ._topology import (
    _DEFAULT_PORTS,
    _TOPOLOGY_SCHEMES,
    CLUSTER,
    REDIS_PY,
    SENTINEL,
    SERVER,
    VALKEY_PY,
    _scheme_library,
)
from ._urls import (
    _LEFT_OUT,
    _NOT_USED,
    _WHAT,
    Address,
    _addresses,
    _server_url,
    _split_url,
    _topology_url,
    _unix_socket_host,
)  # fmt: skip

DEFAULT_PREFIX = "REDIS"


class ConfigWarning(UserWarning):
    """A setting of ``app.config`` that does not do what it seems to."""


class UnreadKeyWarning(ConfigWarning):
    """A key with the extension's prefix that nothing reads: a misspelled key, a key of
    another topology or client class, or a key of another library that shares the prefix."""


class IgnoredKeyWarning(ConfigWarning):
    """A separate key that ``PREFIX_URL`` overrides with a value of its own or its default,
    as Flask-And-Redis 1.0 did."""


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


def _library_named(name: str, key: str, why: str) -> ClientLibrary:
    """:func:`client_library`, or a :exc:`ValueError` naming ``key`` when the library is
    not installed; ``why`` says what in ``key`` asks for it."""
    try:
        return client_library(name)
    except ImportError:
        raise ValueError(
            f"{key} {why}, which asks for {name}-py, but it is not installed: pip install"
            f" {name} (or set {key.rsplit('_', 1)[0]}_CLASS to another client class)"
        ) from None


#: Keys of 1.0 that redis-py renamed, mapped to today's argument names.
_LEGACY_KEYS = {"CHARSET": "encoding", "ERRORS": "encoding_errors"}

#: Arguments never read from a key of their own: the legacy names above, which redis-py 5
#: still accepts (deprecated) and which are read through their 1.0 keys instead.
_NOT_KEYS = frozenset(name.lower() for name in _LEGACY_KEYS)

#: Arguments that the topology sets itself: as keys, they are an error in that mode.
_NOT_IN_MODE = {
    SENTINEL: ("host", "port", "unix_socket_path", "connection_pool"),
    CLUSTER: ("db", "unix_socket_path", "connection_pool"),
}
#: Arguments of a Sentinel-managed connection pool beside its connections' arguments.
_SENTINEL_POOL_ARGUMENTS = ("ssl", "max_connections")
#: The settings of the extension itself, besides one key per argument of the client.
_SETTINGS = (
    "URL", "CLASS", *_LEGACY_KEYS, "SENTINELS", "SENTINEL_MASTER", "SENTINEL_KWARGS",
    "SENTINEL_WATCH", "CLUSTER", "METRICS", "METRICS_REGISTRY", "METRICS_PATH",
    "RECORD_CALLS", "RECORD_CALLS_MAX", "RECORD_STACK", "RECORD_REDACT_KEYS",
    "SERVER_TIMING", "SLOW_LOG_THRESHOLD",
)  # fmt: skip
#: Keys of other libraries that a prefix of this extension may share (Flask's own keys
#: are added from :attr:`flask.Flask.default_config`): no :class:`UnreadKeyWarning`.
_OTHER_LIBRARIES_KEYS = frozenset((
    # Flask-Caching, whose keys share the prefix CACHE.
    "CACHE_TYPE", "CACHE_NO_NULL_WARNING", "CACHE_ARGS", "CACHE_OPTIONS",
    "CACHE_DEFAULT_TIMEOUT", "CACHE_IGNORE_ERRORS", "CACHE_THRESHOLD", "CACHE_KEY_PREFIX",
    "CACHE_SOURCE_CHECK", "CACHE_UWSGI_NAME", "CACHE_DIR", "CACHE_MEMCACHED_SERVERS",
    "CACHE_MEMCACHED_USERNAME", "CACHE_MEMCACHED_PASSWORD", "CACHE_REDIS_HOST",
    "CACHE_REDIS_PORT", "CACHE_REDIS_PASSWORD", "CACHE_REDIS_DB", "CACHE_REDIS_URL",
    "CACHE_REDIS_SENTINELS", "CACHE_REDIS_SENTINEL_MASTER", "CACHE_REDIS_SENTINEL_PASSWORD",
    "CACHE_REDIS_CLUSTER",
    # Flask-Session, whose keys share the prefix SESSION with Flask's.
    "SESSION_TYPE", "SESSION_PERMANENT", "SESSION_USE_SIGNER", "SESSION_KEY_PREFIX",
    "SESSION_REDIS", "SESSION_ID_LENGTH", "SESSION_SERIALIZATION_FORMAT",
    "SESSION_CLEANUP_N_REQUESTS",
    # Flask-RQ2, whose keys share the prefix RQ.
    "RQ_REDIS_URL", "RQ_QUEUES", "RQ_ASYNC", "RQ_SCHEDULER_QUEUE", "RQ_SCHEDULER_INTERVAL",
    "RQ_SCHEDULER_CLASS", "RQ_CONNECTION_CLASS", "RQ_QUEUE_CLASS", "RQ_WORKER_CLASS",
    "RQ_JOB_CLASS",
))  # fmt: skip


def _warn(message: str, category: type[Warning]) -> None:
    """Warn at the first frame outside this package: the app's ``Redis(app)`` or
    ``init_app()`` call."""
    level, frame = 2, sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        "flask_redis."
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


@dataclass
class ClientConfig:
    """What one config prefix asks for: the client class and the keyword arguments to call
    it with, and whether and where to keep its metrics."""

    prefix: str
    client_class: type[Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: The library of the client class: redis-py's or valkey-py's.
    library: ClientLibrary = field(default_factory=_redis_py)
    #: What the client talks to: :data:`~.topology.SERVER`, ``SENTINEL`` or ``CLUSTER``.
    mode: str = SERVER
    #: Sentinel: the sentinels; Cluster: the startup nodes. ``(host, port)`` pairs.
    addresses: list[Address] = field(default_factory=list)
    #: Sentinel: the name of the service whose master is the client's server.
    service: str | None = None
    #: Sentinel: the arguments of the connections to the sentinels themselves.
    sentinel_kwargs: dict[str, Any] | None = None
    #: Sentinel: follow the service to a new master as soon as the sentinels announce it.
    sentinel_watch: bool = True
    #: Keep Prometheus metrics of this prefix (``PREFIX_METRICS``).
    metrics: bool = False
    #: The registry to keep them in; ``None`` for prometheus-client's default.
    metrics_registry: Any = None
    #: Where to serve the metrics from (``PREFIX_METRICS_PATH``), if anywhere.
    metrics_path: str | None = None
    #: Record each request's calls (``PREFIX_RECORD_CALLS``); ``None``: when the app debugs.
    record_calls: bool | None = None
    #: Calls recorded per request at most (``PREFIX_RECORD_CALLS_MAX``).
    record_calls_max: int = 1000
    #: Record each call's whole stack (``PREFIX_RECORD_STACK``).
    record_stack: bool = False
    #: Globs of keys whose values are not recorded (``PREFIX_RECORD_REDACT_KEYS``).
    redact_keys: tuple[str, ...] = ()
    #: Send a ``Server-Timing`` header (``PREFIX_SERVER_TIMING``).
    server_timing: bool = False
    #: Log round trips slower than this many seconds (``PREFIX_SLOW_LOG_THRESHOLD``).
    slow_log_threshold: float | None = None
    #: Per argument of :attr:`kwargs`, the key (or the URL key) that gives it: what an
    #: error of the client class names (:func:`~.checks.refusal`).
    sources: dict[str, str] = field(default_factory=dict)


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


def _client_class(config: Mapping[str, Any], key: str) -> type[Any] | None:
    """The class named by ``key``, if it is set."""
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
                f"{key} must be {expected}; {_shown(key, config.get(key))} does not import:"
                f" {type(cause).__name__}{hint}"
            ) from None
    if not isinstance(value, type):
        raise TypeError(f"{key} must be {expected}, got {_shown(key, value)}")
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


# -- Reading a prefix -----------------------------------------------------------------------


def read_config(
    config: Mapping[str, Any], prefix: str = DEFAULT_PREFIX, other_prefixes: Iterable[str] = ()
) -> ClientConfig:
    """Read the settings of ``prefix`` from ``config`` (a Flask ``app.config``).

    :param other_prefixes: The prefixes already set up on the app: their keys are not
        unread keys of ``prefix`` (``REDIS_CACHE_URL`` of the prefix ``REDIS_CACHE``).
    :raises ValueError: a value is not what its key expects.
    :raises TypeError: a value has the wrong type.
    :warns UnreadKeyWarning: a key of ``prefix`` that nothing reads.
    :warns IgnoredKeyWarning: a key that ``PREFIX_URL`` overrides.
    """
    url_key = f"{prefix}_URL"
    url = config.get(url_key)
    if url == "":  # 1.0 read an empty URL as none: REDIS_URL = os.environ.get(..., "")
        url = None
    class_key = f"{prefix}_CLASS"
    client_class = _client_class(config, class_key)
    mode, cause = _mode(config, prefix, url, client_class)
    if client_class is None:
        library = _url_library(url_key, url)
        client_class = library.cluster if mode == CLUSTER else library.client
    else:
        library = library_of(client_class)
    _check_class(mode, client_class, class_key, cause, library)
    names = _arguments(mode, client_class)
    kwargs: dict[str, Any] = {}
    sources: dict[str, str] = {}  # the key each argument comes from
    for name in names:
        key = f"{prefix}_{name.upper()}"
        if key in config:
            _keep(kwargs, sources, name, key, config[key], library.name)

    for old, name in _LEGACY_KEYS.items():
        old_key, new_key = f"{prefix}_{old}", f"{prefix}_{name.upper()}"
        if old_key not in config:
            continue
        if new_key in config:
            raise ValueError(f"{old_key} and {new_key} are both set: keep only {new_key}")
        _warn(f"{old_key} is deprecated; use {new_key}", DeprecationWarning)
        _keep(kwargs, sources, name, old_key, config[old_key], library.name)

    taker = _taker(mode, client_class)
    topology: dict[str, Any] = {}
    if mode == SERVER:
        _server(prefix, url, set(names), kwargs, sources, taker, library)
    else:
        topology = _topology(
            config, prefix, mode, cause, url, set(names), kwargs, sources, taker, library
        )

    _drop_tls_arguments(kwargs, sources, prefix)
    unknown = sorted(set(kwargs) - set(names))
    if unknown:  # what a URL's address gives: a key of its own would not have been read
        name = unknown[0]
        raise TypeError(f"{sources[name]} sets {name!r}, which {taker} does not take")
    _check_together(
        kwargs, lambda name: sources.get(name, f"{prefix}_{name.upper()}"), library.name
    )
    settings = {**_metrics_settings(config, prefix), **_recording_settings(config, prefix)}
    read = {f"{prefix}_{name.upper()}" for name in names}
    read.update(f"{prefix}_{name}" for name in _SETTINGS)
    _warn_unread(config, prefix, read, other_prefixes, taker, library)
    return ClientConfig(
        prefix, client_class, kwargs, library, mode=mode, sources=sources, **topology, **settings
    )


def _url_library(url_key: str, url: Any) -> ClientLibrary:
    """The library whose client class the scheme of ``url`` picks (redis-py's without a
    URL)."""
    scheme = url.partition("://")[0] if isinstance(url, str) else ""
    name = _scheme_library(scheme)
    return _library_named(name, url_key, f"has a {name} scheme")  # the name, not the scheme


def _keep(
    kwargs: dict[str, Any],
    sources: dict[str, str],
    name: str,
    key: str,
    value: Any,
    library: str = REDIS_PY,
) -> None:
    """Add argument ``name`` as ``key`` gives it, unless that is "not set"."""
    value = _value(key, name, value, library)
    if value is not _UNSET:
        kwargs[name], sources[name] = value, key


def _taker(mode: str, client_class: type[Any]) -> str:
    """What takes the arguments of ``mode``, for messages."""
    if mode == SENTINEL:
        return "a Sentinel master's connection"
    return f"{client_class.__module__}.{client_class.__qualname__}"


def _server(
    prefix: str,
    url: Any,
    names: set[str],
    kwargs: dict[str, Any],
    sources: dict[str, str],
    taker: str,
    library: ClientLibrary,
) -> None:
    """Add what ``PREFIX_HOST`` and ``PREFIX_URL`` say of one server to ``kwargs``."""
    socket_path = _unix_socket_host(kwargs.get("host"))
    if socket_path is not None:
        kwargs["unix_socket_path"], sources["unix_socket_path"] = socket_path, sources["host"]
        del kwargs["host"], sources["host"]
    if url is None:
        return
    url_key = f"{prefix}_URL"
    if "connection_pool" in kwargs:
        raise ValueError(
            f"{url_key} and {prefix}_CONNECTION_POOL are both set: a ready pool ignores"
            " the URL, keep only one"
        )
    owned, query = _server_url(url_key, _split_url(url_key, url), names, taker, library.name)
    _apply_url(kwargs, sources, url_key, owned, query)


#: What a URL decides even when it leaves it out (then the default: 1.0 overwrote the
#: keys with the URL's host, port, user name, password and database, or their defaults).
_URL_DEFAULTS: dict[str, Any] = {
    "host": "localhost", "port": 6379, "db": 0, "username": None, "password": None,
}  # fmt: skip


def _apply_url(
    kwargs: dict[str, Any],
    sources: dict[str, str],
    url_key: str,
    owned: dict[str, Any],
    query: dict[str, Any],
) -> None:
    """Let what a URL decides win over the separate keys, in ``kwargs``: the parts of its
    address (their defaults when left out), then its query arguments. A separate key that
    gives something else is ignored with an :class:`IgnoredKeyWarning` naming it."""
    for name, value in owned.items():
        if name in kwargs:
            given, key = kwargs.pop(name), sources.pop(name)
            said = _URL_DEFAULTS.get(name) if value is _LEFT_OUT else value
            if value is _NOT_USED:
                transport = "a unix socket" if name in ("host", "port") else "TCP"
                _warn(
                    f"{key} is ignored: {url_key} is set, and connects over {transport}",
                    IgnoredKeyWarning,
                )
            elif (given or None) != (said or None):  # "" and None are both no password
                what = _WHAT[name]
                _warn(
                    f"{key} is ignored: {url_key} is set, and decides the {what} also when it"
                    " leaves it out (then the default applies), as in Flask-And-Redis 1.0."
                    f" Give the {what} in {url_key}, or remove {key}",
                    IgnoredKeyWarning,
                )
        if value is not _LEFT_OUT and value is not _NOT_USED:
            kwargs[name], sources[name] = value, url_key
    for name, value in query.items():
        if name in kwargs and kwargs[name] != value:
            _warn(
                f"{sources[name]} is ignored: {url_key} sets {name!r} as a query argument,"
                " and the URL wins",
                IgnoredKeyWarning,
            )
        kwargs[name], sources[name] = value, url_key


def _drop_tls_arguments(kwargs: dict[str, Any], sources: dict[str, str], prefix: str) -> None:
    """Drop the ``ssl_*`` arguments when TLS is off, with an :class:`UnreadKeyWarning`:
    redis.Redis ignores them then, and a Sentinel master's plain connection refuses them."""
    if kwargs.get("ssl"):
        return
    for name in [name for name in kwargs if name.startswith("ssl_")]:
        key = sources.pop(name)
        if kwargs.pop(name) is not None:
            _warn(
                f"{key} is set, but TLS is off, so nothing reads it: set {prefix}_SSL = True"
                " (or use a rediss:// URL), or remove the key",
                UnreadKeyWarning,
            )


def _mode(
    config: Mapping[str, Any], prefix: str, url: Any, client_class: type[Any] | None
) -> tuple[str, str]:
    """The topology that ``prefix`` asks for, and the key that asks for it."""
    url_key = f"{prefix}_URL"
    scheme = url.partition("://")[0].lower() if isinstance(url, str) else ""
    from_url = _TOPOLOGY_SCHEMES.get(scheme)
    keys = {SENTINEL: f"{prefix}_SENTINELS", CLUSTER: f"{prefix}_CLUSTER"}
    keyed = [mode for mode, key in keys.items() if config.get(key) is not None]
    if len(keyed) == 2:
        raise ValueError(
            f"{keys[SENTINEL]} and {keys[CLUSTER]} are both set: a client uses Sentinel or"
            " a Cluster, keep only one"
        )
    if keyed:
        mode = keyed[0]
        if url is not None and from_url != mode:
            raise ValueError(
                f"{url_key} and {keys[mode]} are both set: use a redis+{mode}:// URL,"
                f" or leave {url_key} unset"
            )
        return mode, keys[mode]
    if from_url is not None:
        return from_url, url_key
    if client_class is not None and issubclass(client_class, library_of(client_class).cluster):
        return CLUSTER, f"{prefix}_CLASS"
    for name in ("SENTINEL_MASTER", "SENTINEL_KWARGS", "SENTINEL_WATCH"):
        if config.get(f"{prefix}_{name}") is not None:
            raise ValueError(
                f"{prefix}_{name} is set, but neither {keys[SENTINEL]} nor a"
                f" redis+sentinel:// {url_key}: set the sentinels too"
            )
    return SERVER, ""


def _name(klass: type[Any]) -> str:
    return f"{klass.__module__}.{klass.__qualname__}"


def _check_class(
    mode: str, client_class: type[Any], key: str, cause: str, library: ClientLibrary
) -> None:
    """Raise if ``client_class`` cannot be the client of ``mode``."""
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


def _arguments(mode: str, client_class: type[Any]) -> list[str]:
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
    refused = _NOT_IN_MODE[mode]
    return [name for name in dict.fromkeys(names) if name not in refused]


#: Why a key cannot be used with Sentinel or Cluster.
_REFUSED_BECAUSE = {
    "host": "the addresses come from {cause}",
    "port": "the addresses come from {cause}",
    "db": "a cluster has database 0 only",
    "unix_socket_path": "Sentinel and Cluster clients connect over TCP",
    "connection_pool": "the client makes the pools of its servers itself",
}


def _topology(
    config: Mapping[str, Any],
    prefix: str,
    mode: str,
    cause: str,
    url: Any,
    names: set[str],
    kwargs: dict[str, Any],
    sources: dict[str, str],
    taker: str,
    library: ClientLibrary,
) -> dict[str, Any]:
    """Read the keys of Sentinel or Cluster: the :class:`ClientConfig` fields they set.
    What a URL sets is added to ``kwargs``."""
    refused = _NOT_IN_MODE[mode]
    if mode == CLUSTER and cause != f"{prefix}_CLASS":
        refused += ("host", "port")  # RedisCluster(host, port) is one startup node
    for name in refused:
        key = f"{prefix}_{name.upper()}"
        if config.get(key) is not None:
            reason = _REFUSED_BECAUSE[name].format(cause=cause)
            raise ValueError(f"{key} cannot be used with {cause}: {reason}")
    url_key = f"{prefix}_URL"
    addresses_key = f"{prefix}_SENTINELS" if mode == SENTINEL else f"{prefix}_CLUSTER"
    master_key = f"{prefix}_SENTINEL_MASTER"
    service = None
    if url is not None:
        addresses, service, owned, query = _topology_url(
            url_key, _split_url(url_key, url), mode, names, taker, library.name
        )
        _apply_url(kwargs, sources, url_key, owned, query)
        master = config.get(master_key)
        if service is not None and master is not None and master != service:
            _warn(
                f"{master_key} is ignored: {url_key} is set, and gives the service as its path",
                IgnoredKeyWarning,
            )
    elif config.get(addresses_key) is not None:
        addresses = _addresses(addresses_key, config[addresses_key], _DEFAULT_PORTS[mode])
    else:  # RedisCluster of PREFIX_CLASS, from PREFIX_HOST and PREFIX_PORT
        addresses = []
        if "host" not in kwargs:
            raise ValueError(
                f"{cause} is a cluster client class, but no startup node is set: set"
                f" {addresses_key}, a redis+cluster:// {url_key}, or {prefix}_HOST"
            )
    if mode == CLUSTER:
        return {"addresses": addresses}
    if service is None:
        service = config.get(master_key)
    if service is None:
        path = f", or give the name as the path of {url_key}" if url else ""
        raise ValueError(
            f"{cause} is set, but {master_key} is not: set it to the name of the service that"
            f" the sentinels monitor{path}"
        )
    if not isinstance(service, str) or not service:
        raise ValueError(
            f"{master_key} must be the name of the service that the sentinels monitor,"
            f" got {_shown(master_key, service)}"
        )
    return {
        "addresses": addresses,
        "service": service,
        "sentinel_kwargs": _sentinel_kwargs(config, f"{prefix}_SENTINEL_KWARGS", cause, library),
        "sentinel_watch": _flag(config, f"{prefix}_SENTINEL_WATCH", True),
    }


def _sentinel_kwargs(
    config: Mapping[str, Any], key: str, cause: str, library: ClientLibrary
) -> dict[str, Any] | None:
    """The arguments of the sentinels' own connections (``PREFIX_SENTINEL_KWARGS``), each
    an argument of the library's client but those that the sentinels' addresses (from
    ``cause``) decide, as for the master's."""
    value = config.get(key)
    if value is None:
        return None  # the library then uses the socket_* arguments of the master's
    client = f"{library.name}.{library.client.__qualname__}"
    if not isinstance(value, Mapping):
        raise TypeError(f"{key} must be a dict of {client} arguments, got {_shown(key, value)}")
    accepted = client_arguments(library.client)
    kwargs: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, item in value.items():
        if name not in accepted:
            raise ValueError(f"{key} has {_shown('', name)}, which is not an argument of {client}")
        if name in _NOT_IN_MODE[SENTINEL]:
            reason = _REFUSED_BECAUSE[name].format(cause=cause)
            raise ValueError(f"{key} has {name!r}, which cannot be used with {cause}: {reason}")
        _keep(kwargs, sources, name, f"{key} ({name!r})", item, library.name)
    _check_together(kwargs, lambda name: f"{key} ({name!r})", library.name)
    return kwargs


def _flag(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key)
    if value is None:
        return default
    value = _convert_with(key, value, _BOOLEAN)
    return bool(_boolean()(key, value))


def _metrics_settings(config: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    key = f"{prefix}_METRICS"
    available = importlib.util.find_spec("prometheus_client") is not None
    enabled = _flag(config, key, available)
    if enabled and not available:
        raise ValueError(
            f"{key} is on, but prometheus-client is not installed:"
            " pip install 'Flask-And-Redis[metrics]'"
        )
    key = f"{prefix}_METRICS_REGISTRY"
    registry = config.get(key)
    if registry is not None and not _is_registry(registry):
        raise TypeError(
            f"{key} must be a prometheus_client.CollectorRegistry (an instance),"
            f" got {_shown(key, registry)}"
        )
    path_key = f"{prefix}_METRICS_PATH"
    path = config.get(path_key)
    if path is not None and not (isinstance(path, str) and re.fullmatch(r"/[^\s<>?#%\\]*", path)):
        raise ValueError(
            f"{path_key} must be a URL path starting with '/', without spaces or any of"
            f" < > ? # % \\, got {_shown(path_key, path)}"
        )
    return {"metrics": enabled, "metrics_registry": registry, "metrics_path": path}


def _is_registry(value: Any) -> bool:
    """Whether ``value`` is a registry of prometheus-client (an instance, not the class)."""
    registry_class = _class_named("prometheus_client.registry.CollectorRegistry")
    if registry_class is not None:
        return isinstance(value, registry_class)
    return not isinstance(value, type) and callable(getattr(value, "register", None))


def _recording_settings(config: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    key = f"{prefix}_RECORD_CALLS"
    record = None if config.get(key) is None else _flag(config, key, False)
    key = f"{prefix}_RECORD_CALLS_MAX"
    value = config.get(key)
    most = 1000 if value is None else _integer(0)(key, _convert_with(key, value, _INTEGER))
    key = f"{prefix}_RECORD_REDACT_KEYS"
    globs = config.get(key, ())
    globs = (globs,) if isinstance(globs, str) else globs
    if not isinstance(globs, (list, tuple, set, frozenset)) or not all(
        isinstance(glob, str) for glob in globs
    ):
        raise TypeError(f"{key} must be a list of key patterns (globs), got {_shown(key, globs)}")
    key = f"{prefix}_SLOW_LOG_THRESHOLD"
    threshold = _convert_with(key, config.get(key), _NUMBER)
    if threshold is not None:
        threshold = float(_seconds(zero=True, none=False)(key, threshold))
    return {
        "record_calls": record,
        "record_calls_max": most,
        "record_stack": _flag(config, f"{prefix}_RECORD_STACK", False),
        "redact_keys": tuple(globs),
        "server_timing": _flag(config, f"{prefix}_SERVER_TIMING", False),
        "slow_log_threshold": threshold,
    }


# -- Keys that nothing reads ---------------------------------------------------------------


@functools.cache
def _known_names(library: ClientLibrary | None = None) -> frozenset[str]:
    """Every key name (the part after the prefix) that some topology or client of redis-py
    (and of ``library``) reads: a key of another prefix ends with one of them."""
    names = set(_SETTINGS)
    for each in {client_library(REDIS_PY), library or client_library(REDIS_PY)}:
        for mode, client_class in ((SERVER, each.client), (SENTINEL, each.client),
                                   (CLUSTER, each.cluster)):  # fmt: skip
            names.update(name.upper() for name in _arguments(mode, client_class))
    return frozenset(names)


def _pool_only_names(library: ClientLibrary) -> frozenset[str]:
    """The key names of the arguments of the library's ``ConnectionPool`` itself
    (``CONNECTION_CLASS``, ...), which a client hands to no pool it makes."""
    pool = importlib.import_module(library.name).ConnectionPool
    parameters = inspect.signature(pool.__init__).parameters.values()
    return frozenset(
        each.name.upper()
        for each in parameters
        if each.name != "self" and each.kind not in (each.VAR_POSITIONAL, each.VAR_KEYWORD)
    )


def _nearest(name: str, names: list[str]) -> str | None:
    """The key name of ``names`` that ``name`` was most likely meant to be: the shortest
    that starts with it (``USER``: ``USERNAME``, as 1.0 wrote ``REDIS_USER``), else the
    closest in spelling (``HSOT``: ``HOST``)."""
    longer = sorted((each for each in names if each.startswith(name)), key=len)
    if longer:
        return longer[0]
    near = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return near[0] if near else None


#: Key names that nothing reads but that a user plausibly means, with where their value
#: goes (``{prefix}``: the config prefix); no key of a prefix that ends in their first part.
_MEANT = {
    "SENTINEL_PASSWORD": "give the sentinels' password as 'password' in"
                         " {prefix}_SENTINEL_KWARGS; the master's is {prefix}_PASSWORD",
    "SENTINEL_USERNAME": "give the sentinels' user name as 'username' in"
                         " {prefix}_SENTINEL_KWARGS; the master's is {prefix}_USERNAME",
    "MASTER_PASSWORD": "the master's password is {prefix}_PASSWORD",
    "CLUSTER_PASSWORD": "the password of the cluster's nodes is {prefix}_PASSWORD",
    "USE_SSL": "TLS is {prefix}_SSL = True, or a rediss:// {prefix}_URL",
    "SERVER_URL": "did you mean {prefix}_URL?",
}  # fmt: skip


def _warn_unread(
    config: Mapping[str, Any],
    prefix: str,
    read: set[str],
    other_prefixes: Iterable[str],
    taker: str,
    library: ClientLibrary | None = None,
) -> None:
    """Warn of each key of ``prefix`` that nothing reads (:class:`UnreadKeyWarning`).

    Not unread: the keys of a longer prefix that is set up (``other_prefixes``) or that
    looks like one (``REDIS_CACHE_URL``: a key name after a prefix ``REDIS_CACHE``), and
    keys of Flask and of a few libraries that share prefixes (:data:`_OTHER_LIBRARIES_KEYS`).
    """
    start = f"{prefix}_"
    longer = [f"{other}_" for other in other_prefixes if other.startswith(start)]
    known = _known_names(library)
    pool_only = _pool_only_names(library or client_library(REDIS_PY)) - known
    for key in list(config):
        if not isinstance(key, str) or not key.startswith(start) or key in read:
            continue
        if key in _OTHER_LIBRARIES_KEYS or key in Flask.default_config:
            continue
        if any(key.startswith(other) for other in longer):
            continue
        name = key[len(start) :]
        if name in _MEANT:
            hint = _MEANT[name].format(prefix=prefix)
        elif name in pool_only:  # PREFIX_CONNECTION_CLASS: not of a prefix PREFIX_CONNECTION
            hint = "it is an argument of a connection pool, not of the client"
            if f"{start}CONNECTION_POOL" in read:
                hint += f": set {start}CONNECTION_POOL to a pool made with it"
        elif any(name[:i] and name[i + 1 :] in known for i, c in enumerate(name) if c == "_"):
            continue  # PREFIX_OTHER_URL: a key of the prefix PREFIX_OTHER
        elif name in known:
            hint = f"{taker} does not take it with these settings"
        else:
            near = _nearest(name, [each[len(start) :] for each in read])
            hint = f"did you mean {start}{near}?" if near else "no setting has that name"
        _warn(
            f"{key} is set, but Flask-And-Redis does not read it ({hint}). If another"
            f" library reads it, ignore flask_redis.UnreadKeyWarning for it",
            UnreadKeyWarning,
        )
