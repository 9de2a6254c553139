"""Read a config prefix's ``PREFIX_*`` settings into a :class:`ClientConfig`: the client class
and its keyword arguments, the topology, and the extension's own settings.

The client library, redis-py or valkey-py, follows the client class (``PREFIX_CLASS``),
else the URL's scheme (``valkey://`` picks valkey-py), else redis-py (:mod:`._libraries`).

The contract: a setting that is not what its key expects is a :exc:`ValueError` or a
:exc:`TypeError` whose message names the key and what was expected, raised before any
client exists (:mod:`._checks` checks each argument, :mod:`._urls` reads the URLs). Values
of keys that may hold a secret (``*_PASSWORD``, ``*_URL``, ``*_SENTINEL_KWARGS``) are never
put into a message, and no message shows any part of a URL. A key that looks like a setting
but that nothing reads is an :class:`~._config_warnings.UnreadKeyWarning` (:mod:`._unread`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._checks import (
    UNSET,
    boolean_setting,
    check_together,
    checked_value,
    class_named,
    count_setting,
    seconds_setting,
    shown,
)
from ._config_warnings import IgnoredKeyWarning, UnreadKeyWarning, warn_at_app
from ._keys import LEGACY_KEYS, NOT_IN_MODE, SETTINGS, arguments, client_arguments, taker
from ._libraries import (
    ClientLibrary,
    check_mode_class,
    client_library,
    library_named,
    library_of,
    read_client_class,
)
from ._topology import CLUSTER, REDIS_PY, SENTINEL, SERVER
from ._unread import warn_unread
from ._urls import (
    Address,
    addresses,
    server_url,
    topology_url,
    unix_socket_host,
    url_library,
    url_topology,
)

DEFAULT_PREFIX = "REDIS"


@dataclass
class ClientConfig:
    """What one config prefix asks for: the client class and the keyword arguments to call
    it with, and whether and where to keep its metrics."""

    prefix: str
    client_class: type[Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: The library of the client class: redis-py's or valkey-py's.
    library: ClientLibrary = field(default_factory=functools.partial(client_library, REDIS_PY))
    #: What the client talks to: :data:`~._topology.SERVER`, ``SENTINEL`` or ``CLUSTER``.
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
    #: The key families (``PREFIX_METRICS_KEY_FAMILIES``): ``(name, globs)`` pairs in the
    #: setting's order; ``None`` when not set, or when the metrics are off.
    key_families: tuple[tuple[str, tuple[str, ...]], ...] | None = None
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
    #: error of the client class names (:func:`~._checks.refusal`).
    sources: dict[str, str] = field(default_factory=dict)


@dataclass
class _Reading:
    """A prefix as :func:`read_config` reads it: what its keys decided so far, and the
    arguments of the client that they give."""

    config: Mapping[str, Any]
    prefix: str
    #: ``PREFIX_URL``; ``None`` when it is not set, or empty.
    url: Any
    #: The topology, and the key that asks for it (``""`` for one server).
    mode: str
    cause: str
    client_class: type[Any]
    library: ClientLibrary
    #: The arguments that keys may set (:func:`~._keys.arguments`).
    names: list[str]
    #: What takes them, for messages (:func:`~._keys.taker`).
    taker: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: Per argument of :attr:`kwargs`, the key that gives it.
    sources: dict[str, str] = field(default_factory=dict)

    def key(self, name: str) -> str:
        """The key of argument ``name``."""
        return f"{self.prefix}_{name.upper()}"

    def keep(self, name: str, key: str, value: Any) -> None:
        """Add argument ``name`` as ``key`` gives it, unless that is "not set"."""
        _keep(self.kwargs, self.sources, name, key, value, self.library.name)


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
    url = config.get(f"{prefix}_URL")
    if url == "":  # 1.0 read an empty URL as none: REDIS_URL = os.environ.get(..., "")
        url = None
    reading = _start(config, prefix, url)
    for name in reading.names:
        key = reading.key(name)
        if key in config:
            reading.keep(name, key, config[key])
    _read_legacy_keys(reading)
    topology: dict[str, Any] = {}
    if reading.mode == SERVER:
        _server(reading)
    else:
        topology = _topology(reading)
    _drop_tls_arguments(reading.kwargs, reading.sources, prefix)
    _refuse_unknown(reading)
    _check_together(reading.kwargs, reading.sources, prefix, reading.library.name)
    settings = {**_metrics_settings(config, prefix), **_recording_settings(config, prefix)}
    read = {reading.key(name) for name in reading.names}
    read.update(f"{prefix}_{name}" for name in SETTINGS)
    warn_unread(config, prefix, read, other_prefixes, reading.taker, reading.library)
    return ClientConfig(
        prefix, reading.client_class, reading.kwargs, reading.library, mode=reading.mode,
        sources=reading.sources, **topology, **settings,
    )  # fmt: skip


def with_arguments(
    read: ClientConfig, kwargs: dict[str, Any], sources: dict[str, str]
) -> ClientConfig:
    """``read`` with other arguments of its client, ``kwargs``, each given by the key (or
    the name in code) that ``sources`` has for it, finished as :func:`read_config` finishes
    its own: the ``ssl_*`` arguments dropped when TLS is off, and arguments that the
    client refuses together refused.

    :raises ValueError: arguments that the client refuses together.
    :warns UnreadKeyWarning: an ``ssl_*`` argument while TLS is off.
    """
    _drop_tls_arguments(kwargs, sources, read.prefix)
    _check_together(kwargs, sources, read.prefix, read.library.name)
    return dataclasses.replace(read, kwargs=kwargs, sources=sources)


def _start(config: Mapping[str, Any], prefix: str, url: Any) -> _Reading:
    """What decides how the other keys of ``prefix`` are read: the client class, its
    library and the topology."""
    class_key = f"{prefix}_CLASS"
    client_class = read_client_class(config, class_key)
    mode, cause = _mode(config, prefix, url, client_class)
    if client_class is None:
        library = _url_library(f"{prefix}_URL", url)
        client_class = library.cluster if mode == CLUSTER else library.client
    else:
        library = library_of(client_class)
    check_mode_class(mode, client_class, class_key, cause, library)
    return _Reading(
        config, prefix, url, mode, cause, client_class, library,
        arguments(mode, client_class), taker(mode, client_class),
    )  # fmt: skip


def _url_library(url_key: str, url: Any) -> ClientLibrary:
    """The library whose client class the scheme of ``url`` picks (redis-py's without a
    URL)."""
    name = url_library(url)
    return library_named(name, url_key, f"has a {name} scheme")  # the name, not the scheme


def _read_legacy_keys(reading: _Reading) -> None:
    """Read the keys of 1.0 that redis-py renamed, with a :exc:`DeprecationWarning`."""
    for old, name in LEGACY_KEYS.items():
        old_key, new_key = f"{reading.prefix}_{old}", reading.key(name)
        if old_key not in reading.config:
            continue
        if new_key in reading.config:
            raise ValueError(f"{old_key} and {new_key} are both set: keep only {new_key}")
        warn_at_app(f"{old_key} is deprecated; use {new_key}", DeprecationWarning)
        reading.keep(name, old_key, reading.config[old_key])


def _refuse_unknown(reading: _Reading) -> None:
    """Refuse an argument that a URL's address gives but the client does not take (a key of
    its own would not have been read)."""
    unknown = sorted(set(reading.kwargs) - set(reading.names))
    if unknown:
        name = unknown[0]
        raise TypeError(
            f"{reading.sources[name]} sets {name!r}, which {reading.taker} does not take"
        )


def _check_together(
    kwargs: dict[str, Any], sources: dict[str, str], prefix: str, library: str
) -> None:
    """Refuse arguments that the client refuses together, naming the key of each."""
    check_together(kwargs, lambda name: sources.get(name, f"{prefix}_{name.upper()}"), library)


def _keep(
    kwargs: dict[str, Any],
    sources: dict[str, str],
    name: str,
    key: str,
    value: Any,
    library: str = REDIS_PY,
) -> None:
    """Add argument ``name`` as ``key`` gives it, unless that is "not set"."""
    value = checked_value(key, name, value, library)
    if value is not UNSET:
        kwargs[name], sources[name] = value, key


def _server(reading: _Reading) -> None:
    """Add what ``PREFIX_HOST`` and ``PREFIX_URL`` say of one server to the arguments."""
    kwargs, sources, prefix = reading.kwargs, reading.sources, reading.prefix
    socket_path = unix_socket_host(kwargs.get("host"))
    if socket_path is not None:
        kwargs["unix_socket_path"], sources["unix_socket_path"] = socket_path, sources["host"]
        del kwargs["host"], sources["host"]
    if reading.url is None:
        return
    url_key = f"{prefix}_URL"
    if "connection_pool" in kwargs:
        raise ValueError(
            f"{url_key} and {prefix}_CONNECTION_POOL are both set: a ready pool ignores"
            " the URL, keep only one"
        )
    settings = server_url(
        url_key, reading.url, set(reading.names), reading.taker, reading.library.name
    )
    settings.apply(kwargs, sources)


def _drop_tls_arguments(kwargs: dict[str, Any], sources: dict[str, str], prefix: str) -> None:
    """Drop the ``ssl_*`` arguments when TLS is off, with an :class:`UnreadKeyWarning`:
    redis.Redis ignores them then, and a Sentinel master's plain connection refuses them."""
    if kwargs.get("ssl"):
        return
    for name in [name for name in kwargs if name.startswith("ssl_")]:
        key = sources.pop(name)
        if kwargs.pop(name) is not None:
            warn_at_app(
                f"{key} is set, but TLS is off, so nothing reads it: set {prefix}_SSL = True"
                " (or use a rediss:// URL), or remove the key",
                UnreadKeyWarning,
            )


def _mode(
    config: Mapping[str, Any], prefix: str, url: Any, client_class: type[Any] | None
) -> tuple[str, str]:
    """The topology that ``prefix`` asks for, and the key that asks for it."""
    url_key = f"{prefix}_URL"
    from_url = url_topology(url)
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


#: Why a key cannot be used with Sentinel or Cluster.
_REFUSED_BECAUSE = {
    "host": "the addresses come from {cause}",
    "port": "the addresses come from {cause}",
    "db": "a cluster has database 0 only",
    "unix_socket_path": "Sentinel and Cluster clients connect over TCP",
    "connection_pool": "the client makes the pools of its servers itself",
}


def _topology(reading: _Reading) -> dict[str, Any]:
    """Read the keys of Sentinel or Cluster: the :class:`ClientConfig` fields they set.
    What a URL sets is added to the arguments."""
    _refuse_in_mode(reading)
    found, service = _topology_addresses(reading)
    if reading.mode == CLUSTER:
        return {"addresses": found}
    prefix, config = reading.prefix, reading.config
    return {
        "addresses": found,
        "service": _service(reading, service),
        "sentinel_kwargs": _sentinel_kwargs(
            config, f"{prefix}_SENTINEL_KWARGS", reading.cause, reading.library
        ),
        "sentinel_watch": _flag(config, f"{prefix}_SENTINEL_WATCH", True),
    }


def _refuse_in_mode(reading: _Reading) -> None:
    """Raise for a key of an argument that the topology sets itself."""
    refused = NOT_IN_MODE[reading.mode]
    if reading.mode == CLUSTER and reading.cause != f"{reading.prefix}_CLASS":
        refused += ("host", "port")  # RedisCluster(host, port) is one startup node
    for name in refused:
        key = reading.key(name)
        if reading.config.get(key) is not None:
            reason = _REFUSED_BECAUSE[name].format(cause=reading.cause)
            raise ValueError(f"{key} cannot be used with {reading.cause}: {reason}")


def _topology_addresses(reading: _Reading) -> tuple[list[Address], str | None]:
    """The sentinels or startup nodes, and the service that a URL names, if any; what the
    URL sets is added to the arguments."""
    config, prefix, mode = reading.config, reading.prefix, reading.mode
    url_key = f"{prefix}_URL"
    addresses_key = f"{prefix}_SENTINELS" if mode == SENTINEL else f"{prefix}_CLUSTER"
    if reading.url is not None:
        settings = topology_url(
            url_key, reading.url, mode, set(reading.names), reading.taker, reading.library.name
        )
        settings.apply(reading.kwargs, reading.sources)
        master_key = f"{prefix}_SENTINEL_MASTER"
        master = config.get(master_key)
        if settings.service is not None and master is not None and master != settings.service:
            warn_at_app(
                f"{master_key} is ignored: {url_key} is set, and gives the service as its path",
                IgnoredKeyWarning,
            )
        return settings.addresses, settings.service
    if config.get(addresses_key) is not None:
        return addresses(addresses_key, config[addresses_key], mode), None
    # RedisCluster of PREFIX_CLASS, from PREFIX_HOST and PREFIX_PORT
    if "host" not in reading.kwargs:
        raise ValueError(
            f"{reading.cause} is a cluster client class, but no startup node is set: set"
            f" {addresses_key}, a redis+cluster:// {url_key}, or {prefix}_HOST"
        )
    return [], None


def _service(reading: _Reading, service: str | None) -> str:
    """The name of the Sentinel service: the one of the URL, else ``PREFIX_SENTINEL_MASTER``."""
    master_key = f"{reading.prefix}_SENTINEL_MASTER"
    found = reading.config.get(master_key) if service is None else service
    if found is None:
        path = f", or give the name as the path of {reading.prefix}_URL" if reading.url else ""
        raise ValueError(
            f"{reading.cause} is set, but {master_key} is not: set it to the name of the"
            f" service that the sentinels monitor{path}"
        )
    if not isinstance(found, str) or not found:
        raise ValueError(
            f"{master_key} must be the name of the service that the sentinels monitor,"
            f" got {shown(master_key, found)}"
        )
    return found


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
        raise TypeError(f"{key} must be a dict of {client} arguments, got {shown(key, value)}")
    accepted = client_arguments(library.client)
    kwargs: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, item in value.items():
        if name not in accepted:
            raise ValueError(f"{key} has {shown('', name)}, which is not an argument of {client}")
        if name in NOT_IN_MODE[SENTINEL]:
            reason = _REFUSED_BECAUSE[name].format(cause=cause)
            raise ValueError(f"{key} has {name!r}, which cannot be used with {cause}: {reason}")
        _keep(kwargs, sources, name, f"{key} ({name!r})", item, library.name)
    check_together(kwargs, lambda name: f"{key} ({name!r})", library.name)
    return kwargs


# -- The extension's own settings -----------------------------------------------------------


def _flag(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key)
    return default if value is None else boolean_setting(key, value)


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
            f" got {shown(key, registry)}"
        )
    path_key = f"{prefix}_METRICS_PATH"
    path = config.get(path_key)
    if path is not None and not (isinstance(path, str) and re.fullmatch(r"/[^\s<>?#%\\]*", path)):
        raise ValueError(
            f"{path_key} must be a URL path starting with '/', without spaces or any of"
            f" < > ? # % \\, got {shown(path_key, path)}"
        )
    families = _key_families(config, prefix, enabled)
    return {
        "metrics": enabled, "metrics_registry": registry, "metrics_path": path,
        "key_families": families,
    }  # fmt: skip


#: The most families a prefix may have: each is a label value of three counters.
MAX_KEY_FAMILIES = 100
#: What a family's name is made of: a label value shown to operators.
_FAMILY_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: Names that the extension gives itself: no glob matched, and no key.
_RESERVED_FAMILIES = ("other", "none")


def _key_families(
    config: Mapping[str, Any], prefix: str, metrics: bool
) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    """``PREFIX_METRICS_KEY_FAMILIES``, checked: ``(name, globs)`` pairs in order; ``None``
    when it is not set or empty, or when the metrics are off (with a warning then)."""
    key = f"{prefix}_METRICS_KEY_FAMILIES"
    value = config.get(key)
    if value is None:
        return None
    expected = "a dict of family names to a key pattern (glob) or a list of them"
    if not isinstance(value, Mapping):
        raise TypeError(f"{key} must be {expected}, got {shown(key, value)}")
    if len(value) > MAX_KEY_FAMILIES:
        raise ValueError(
            f"{key} has {len(value)} families, more than {MAX_KEY_FAMILIES}: each is a label"
            " value of every key family metric, group keys into fewer"
        )
    families = tuple(_key_family(key, name, globs) for name, globs in value.items())
    if not families:
        return None
    if not metrics:
        warn_at_app(
            f"{key} is set, but {prefix}_METRICS is off, so nothing reads it: turn the"
            " metrics on, or remove the key",
            UnreadKeyWarning,
        )
        return None
    return families


def _key_family(key: str, name: Any, globs: Any) -> tuple[str, tuple[str, ...]]:
    """One family of ``PREFIX_METRICS_KEY_FAMILIES``, checked."""
    if not isinstance(name, str) or not _FAMILY_NAME.fullmatch(name):
        raise ValueError(
            f"{key} has a family named {shown(key, name)}: a name must be 1 to 64 letters,"
            " digits or any of _ . : - (it is a label value)"
        )
    if name.lower() in _RESERVED_FAMILIES:
        raise ValueError(
            f"{key} has a family named {name!r}: 'other' (no family matched) and 'none'"
            " (no key) are the extension's own, name it otherwise"
        )
    listed = (globs,) if isinstance(globs, str) else globs
    if (
        not isinstance(listed, (list, tuple))
        or not listed
        or not all(isinstance(glob, str) for glob in listed)
    ):
        raise TypeError(
            f"{key} has family {name!r} of {shown(key, globs)}: it must be a key pattern"
            " (glob, a str) or a non-empty list of them"
        )
    return name, tuple(listed)


def _is_registry(value: Any) -> bool:
    """Whether ``value`` is a registry of prometheus-client (an instance, not the class)."""
    registry_class = class_named("prometheus_client.registry.CollectorRegistry")
    if registry_class is not None:
        return isinstance(value, registry_class)
    return not isinstance(value, type) and callable(getattr(value, "register", None))


def _recording_settings(config: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    key = f"{prefix}_RECORD_CALLS"
    record = None if config.get(key) is None else _flag(config, key, False)
    key = f"{prefix}_RECORD_CALLS_MAX"
    value = config.get(key)
    most = 1000 if value is None else count_setting(key, value)
    key = f"{prefix}_RECORD_REDACT_KEYS"
    globs = config.get(key, ())
    globs = (globs,) if isinstance(globs, str) else globs
    if not isinstance(globs, (list, tuple, set, frozenset)) or not all(
        isinstance(glob, str) for glob in globs
    ):
        raise TypeError(f"{key} must be a list of key patterns (globs), got {shown(key, globs)}")
    key = f"{prefix}_SLOW_LOG_THRESHOLD"
    value = config.get(key)
    threshold = None if value is None else seconds_setting(key, value)
    return {
        "record_calls": record,
        "record_calls_max": most,
        "record_stack": _flag(config, f"{prefix}_RECORD_STACK", False),
        "redact_keys": tuple(globs),
        "server_timing": _flag(config, f"{prefix}_SERVER_TIMING", False),
        "slow_log_threshold": threshold,
    }
