"""Read a config prefix's ``PREFIX_*`` settings into a client class and its keyword arguments.

Every error raised here names the config key at fault and what was expected. Values of keys
that may hold a secret (``*_PASSWORD``, ``*_URL``) are never put into a message.
"""

from __future__ import annotations

import importlib.util
import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Tuple
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from redis.cluster import REDIS_ALLOWED_KEYS, RedisCluster
from redis.sentinel import SentinelManagedSSLConnection
from werkzeug.utils import ImportStringError, import_string

try:
    from redis.cluster import LoadBalancingStrategy as _LoadBalancingStrategy
except ImportError:  # pragma: no cover - redis-py before 5.1
    _LoadBalancingStrategy = None  # type: ignore[assignment,misc]

DEFAULT_PREFIX = "REDIS"

#: Keys of 1.0 that redis-py renamed, mapped to today's argument names.
_LEGACY_KEYS = {"CHARSET": "encoding", "ERRORS": "encoding_errors"}

#: Arguments never read from a key of their own: the legacy names above, which redis-py 5
#: still accepts (deprecated) and which are read through their 1.0 keys instead.
_NOT_KEYS = frozenset(name.lower() for name in _LEGACY_KEYS)

_URL_SCHEMES = ("redis", "rediss", "unix")

#: The topologies: one server, a Sentinel-managed master, a Cluster.
SERVER, SENTINEL, CLUSTER = "server", "sentinel", "cluster"
#: URL schemes of Sentinel and Cluster, and the mode each asks for.
_TOPOLOGY_SCHEMES = {
    "redis+sentinel": SENTINEL, "rediss+sentinel": SENTINEL,
    "redis+cluster": CLUSTER, "rediss+cluster": CLUSTER,
}  # fmt: skip
#: The port of an address given without one.
_DEFAULT_PORTS = {SENTINEL: 26379, CLUSTER: 6379}
#: Arguments that the topology sets itself: as keys, they are an error in that mode.
_NOT_IN_MODE = {
    SENTINEL: ("host", "port", "unix_socket_path", "connection_pool"),
    CLUSTER: ("db", "unix_socket_path", "connection_pool"),
}
#: Arguments of a Sentinel-managed connection pool beside its connections' arguments.
_SENTINEL_POOL_ARGUMENTS = ("ssl", "max_connections")
#: Address = (host, port)
Address = Tuple[str, int]


def _to_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(text)


# Converters of text values: the function, and what a bad value should have been.
_Converter = Tuple[Callable[[str], Any], str]
_INTEGER: _Converter = (int, "an integer")
_NUMBER: _Converter = (float, "a number")
_BOOLEAN: _Converter = (_to_bool, "a boolean (true/false, yes/no, 1/0)")

# Arguments whose value may come as text (environment variables, URL query strings) and is
# converted to the type redis-py expects.
_CONVERTERS: dict[str, _Converter] = {
    **dict.fromkeys(
        ("port", "db", "max_connections", "health_check_interval", "socket_read_size",
         "protocol", "reinitialize_steps", "cluster_error_retry_attempts"),
        _INTEGER,
    ),
    **dict.fromkeys(("socket_timeout", "socket_connect_timeout"), _NUMBER),
    **dict.fromkeys(
        ("decode_responses", "ssl", "ssl_check_hostname", "ssl_validate_ocsp",
         "ssl_validate_ocsp_stapled", "retry_on_timeout", "socket_keepalive",
         "single_connection_client", "read_from_replicas", "require_full_coverage",
         "dynamic_startup_nodes"),
        _BOOLEAN,
    ),
}  # fmt: skip
if _LoadBalancingStrategy is not None:  # redis-py 5.1 and later
    _CONVERTERS["load_balancing_strategy"] = (
        _LoadBalancingStrategy,
        "one of " + ", ".join(repr(member.value) for member in _LoadBalancingStrategy),
    )


def _is_secret(key: str) -> bool:
    # "REDIS_URL (query argument 'db')" is a part of a secret key's value: secret too.
    return key.split(" (", 1)[0].endswith(("PASSWORD", "_URL", "_SENTINEL_KWARGS"))


def _shown(key: str, value: object) -> str:
    """What an error message may say of ``value``: its repr, or only its type for a secret."""
    if _is_secret(key):
        return f"a value of type {type(value).__name__}"
    return repr(value)


@dataclass
class ClientConfig:
    """What one config prefix asks for: the client class and the keyword arguments to call
    it with, and whether and where to keep its metrics."""

    prefix: str
    client_class: type[Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: What the client talks to: :data:`SERVER`, :data:`SENTINEL` or :data:`CLUSTER`.
    mode: str = SERVER
    #: Sentinel: the sentinels; Cluster: the startup nodes. ``(host, port)`` pairs.
    addresses: List[Address] = field(default_factory=list)
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



def client_arguments(client_class: type[Any]) -> list[str]:
    """The keyword arguments ``client_class`` accepts, in the order of its signature.

    Where an ``__init__`` takes ``**kwargs``, the arguments of the ``__init__`` it passes them
    on to (the next one in the MRO) are added, so a subclass of :class:`redis.Redis` with
    arguments of its own accepts all of redis-py's as well.
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
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportStringError as error:
            raise ValueError(
                f"{key} must be a class or the dotted path of one; {value!r} does not"
                f" import: {error.exception}"
            ) from None
    if not isinstance(value, type):
        raise TypeError(f"{key} must be a class or the dotted path of one, got {value!r}")
    return value


def _convert(key: str, name: str, value: Any) -> Any:
    """Convert the text value of argument ``name`` (read from ``key``) to its type."""
    converter = _CONVERTERS.get(name)
    return value if converter is None else _convert_with(key, value, converter)


def _convert_with(key: str, value: Any, converter: _Converter) -> Any:
    """Convert ``value``, read from ``key``, if it is text; other values pass unchanged."""
    if not isinstance(value, str):
        return value
    try:
        return converter[0](value)
    except ValueError:
        raise ValueError(f"{key} must be {converter[1]}, got {_shown(key, value)}") from None


def _check_types(prefix: str, kwargs: dict[str, Any]) -> None:
    for name in ("port", "db"):
        value = kwargs.get(name)
        if name in kwargs and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{prefix}_{name.upper()} must be an integer, got {value!r}")
    port = kwargs.get("port")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{prefix}_PORT must be between 1 and 65535, got {port!r}")


def _url_arguments(key: str, url: Any, accepted: set[str]) -> dict[str, Any]:
    """Parse a ``redis://``, ``rediss://`` or ``unix://`` URL into keyword arguments."""
    if not isinstance(url, str):
        raise TypeError(f"{key} must be a string, got {_shown(key, url)}")
    parts = urlsplit(url)
    if parts.scheme not in _URL_SCHEMES:
        raise ValueError(
            f"{key} must be a redis://, rediss://, unix://, redis[s]+sentinel:// or"
            f" redis[s]+cluster:// URL, got scheme {parts.scheme!r}"
        )
    kwargs: dict[str, Any] = {}
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    path = unquote(parts.path)
    if parts.scheme == "unix":
        kwargs["unix_socket_path"] = path
    else:
        if parts.hostname:
            kwargs["host"] = unquote(parts.hostname)
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{key} has a port that is not a number from 0 to 65535") from None
        if port is not None:
            kwargs["port"] = port
        db = path.strip("/")  # 1.0 accepted redis://host:6379/12/
        if db:
            kwargs["db"] = _convert(f"{key} (database path)", "db", db)
        if parts.scheme == "rediss":
            kwargs["ssl"] = True
    kwargs.update(_query_arguments(key, parts.query, accepted))
    return kwargs


def _query_arguments(key: str, query: str, accepted: set[str]) -> dict[str, Any]:
    """The arguments of a URL's query string, converted from text."""
    kwargs: dict[str, Any] = {}
    for name, value in parse_qsl(query):
        if name not in accepted:
            raise ValueError(f"{key} has a query argument {name!r} that the client does not take")
        kwargs[name] = _convert(f"{key} (query argument {name!r})", name, value)
    return kwargs


def _topology_url(
    key: str, url: str, mode: str, accepted: set[str]
) -> tuple[List[Address], str | None, dict[str, Any]]:
    """Parse a ``redis+sentinel://`` or ``redis+cluster://`` URL: its addresses, its service
    name (Sentinel) and the keyword arguments it sets.

    The user name and password end at the last ``@``, so a password that was not
    percent-encoded is still read whole; what follows is the comma-separated addresses,
    then the path and the query string.
    """
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if _TOPOLOGY_SCHEMES.get(scheme, CLUSTER if scheme in ("redis", "rediss") else None) != mode:
        raise ValueError(
            f"{key} must be a redis+{mode}:// or rediss+{mode}:// URL for a {mode} client,"
            f" got scheme {scheme!r}"
        )
    userinfo, at, rest = rest.rpartition("@")
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    hosts, path = rest[:end], rest[end:]
    path, _, query = path.partition("?")
    kwargs: dict[str, Any] = {}
    if at:
        username, colon, password = userinfo.partition(":")
        if username:
            kwargs["username"] = unquote(username)
        if colon:
            kwargs["password"] = unquote(password)
    if scheme.startswith("rediss"):  # rediss+sentinel, rediss+cluster, rediss
        kwargs["ssl"] = True
    addresses = _addresses(key, hosts, _DEFAULT_PORTS[mode])
    segments = [unquote(segment) for segment in path.split("/") if segment]
    service = None
    if mode == SENTINEL:
        if len(segments) > 2:
            raise ValueError(f"{key} must have the path /service or /service/db")
        if segments:
            service = segments[0]
        if len(segments) == 2:
            kwargs["db"] = _convert(f"{key} (database path)", "db", segments[1])
    elif segments:
        raise ValueError(f"{key} cannot have a path: a cluster has database 0 only")
    kwargs.update(_query_arguments(key, query, accepted))
    return addresses, service, kwargs


def _addresses(key: str, value: Any, default_port: int) -> List[Address]:
    """``(host, port)`` pairs from ``"h1:p1,h2:p2"``, or from a list of ``"host:port"``
    strings, ``(host, port)`` pairs or objects with ``host`` and ``port`` attributes."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise TypeError(
            f"{key} must be a list of (host, port) pairs or a string \"host:port,host:port\","
            f" got {_shown(key, value)}"
        )
    addresses: List[Address] = []
    for item in items:
        if isinstance(item, str):
            if not item.strip():
                continue  # "h1:p1,h2:p2," from an environment variable
            host, port = _split_address(key, item.strip(), default_port)
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            host, port = item
        elif hasattr(item, "host") and hasattr(item, "port"):  # redis-py's ClusterNode
            host, port = item.host, item.port
        else:
            raise TypeError(
                f"{key} has an entry {_shown(key, item)} that is neither \"host:port\""
                " nor a (host, port) pair"
            )
        if not isinstance(host, str) or not host:
            raise ValueError(f"{key} has an address whose host is {_shown(key, host)}")
        port = _convert_with(f"{key} (port of {host})", port, _INTEGER)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(
                f"{key} has an address whose port is not a number from 1 to 65535"
                + ("" if _is_secret(key) else f": {host}:{port!r}")
            )
        addresses.append((host, port))
    if not addresses:
        raise ValueError(f"{key} must name at least one host:port address")
    return addresses


def _split_address(key: str, text: str, default_port: int) -> tuple[str, Any]:
    """``"host:port"``, ``"[::1]:port"`` or ``"host"`` as a host and a port."""
    if text.startswith("["):  # an IPv6 address
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{key} has an address that is not host:port: {_shown(key, text)}")
        return host, rest[1:] if rest else default_port
    host, colon, port = text.rpartition(":")
    if not colon:
        return text, default_port
    if ":" in host:
        raise ValueError(
            f"{key} has an IPv6 address without brackets: write it as [address]:port"
        )
    return host, port


def _unix_socket_host(host: Any) -> str | None:
    """The socket path when ``PREFIX_HOST`` holds one (``/path/x.sock``, ``file:///path/x.sock``)."""
    if not isinstance(host, str):
        return None
    if host.startswith("file://"):
        return unquote(urlsplit(host).path)
    return host if host.startswith("/") else None


def read_config(config: Mapping[str, Any], prefix: str = DEFAULT_PREFIX) -> ClientConfig:
    """Read the settings of ``prefix`` from ``config`` (a Flask ``app.config``).

    :raises ValueError: a value is not what its key expects.
    :raises TypeError: a value has the wrong type.
    """
    url_key = f"{prefix}_URL"
    url = config.get(url_key)
    class_key = f"{prefix}_CLASS"
    client_class = _client_class(config, class_key)
    mode, cause = _mode(config, prefix, url, client_class)
    if client_class is None:
        client_class = RedisCluster if mode == CLUSTER else redis.Redis
    _check_class(mode, client_class, class_key, cause)
    names = _arguments(mode, client_class)
    kwargs: dict[str, Any] = {}
    for name in names:
        key = f"{prefix}_{name.upper()}"
        if key in config:
            kwargs[name] = _convert(key, name, config[key])

    for old, name in _LEGACY_KEYS.items():
        old_key, new_key = f"{prefix}_{old}", f"{prefix}_{name.upper()}"
        if old_key not in config:
            continue
        if new_key in config:
            raise ValueError(f"{old_key} and {new_key} are both set: keep only {new_key}")
        warnings.warn(
            f"{old_key} is deprecated; use {new_key}", DeprecationWarning, stacklevel=3
        )
        kwargs[name] = config[old_key]

    topology: dict[str, Any] = {}
    if mode == SERVER:
        _server_url(config, prefix, url, set(names), kwargs)
    else:
        topology = _topology(config, prefix, mode, cause, url, set(names), kwargs)

    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        raise TypeError(
            f"{client_class.__module__}.{client_class.__qualname__} takes no argument"
            f" {unknown[0]!r}, set by {prefix}_{unknown[0].upper()} or {url_key}"
        )
    _check_types(prefix, kwargs)
    return ClientConfig(
        prefix, client_class, kwargs, mode=mode, **topology,
        **_metrics_settings(config, prefix), **_recording_settings(config, prefix),
    )  # fmt: skip


def _server_url(
    config: Mapping[str, Any], prefix: str, url: Any, names: set[str], kwargs: dict[str, Any]
) -> None:
    """Add what ``PREFIX_HOST`` and ``PREFIX_URL`` say of one server to ``kwargs``."""
    socket_path = _unix_socket_host(kwargs.get("host"))
    if socket_path is not None:
        kwargs["unix_socket_path"] = socket_path
        del kwargs["host"]
    if url is None:
        return
    url_key = f"{prefix}_URL"
    if "connection_pool" in kwargs:
        raise ValueError(
            f"{url_key} and {prefix}_CONNECTION_POOL are both set: a ready pool ignores"
            " the URL, keep only one"
        )
    url_kwargs = _url_arguments(url_key, url, names)
    # The URL says which transport to use; separate keys for the other one would win
    # inside redis-py, so they go. Values given in the URL win over separate keys (1.0).
    transport = ("host", "port") if "unix_socket_path" in url_kwargs else ("unix_socket_path",)
    for name in transport:
        kwargs.pop(name, None)
    kwargs.update(url_kwargs)


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
    if client_class is not None and issubclass(client_class, RedisCluster):
        return CLUSTER, f"{prefix}_CLASS"
    for name in ("SENTINEL_MASTER", "SENTINEL_KWARGS", "SENTINEL_WATCH"):
        if config.get(f"{prefix}_{name}") is not None:
            raise ValueError(
                f"{prefix}_{name} is set, but neither {keys[SENTINEL]} nor a"
                f" redis+sentinel:// {url_key}: set the sentinels too"
            )
    return SERVER, ""


def _check_class(mode: str, client_class: type[Any], key: str, cause: str) -> None:
    """Raise if ``client_class`` cannot be the client of ``mode``."""
    if mode == CLUSTER and not issubclass(client_class, RedisCluster):
        raise TypeError(
            f"{key} must be redis.cluster.RedisCluster or a subclass of it with {cause},"
            f" got {client_class.__module__}.{client_class.__qualname__}"
        )
    if mode == SENTINEL and not issubclass(client_class, redis.Redis):
        raise TypeError(
            f"{key} must be redis.Redis or a subclass of it with {cause},"
            f" got {client_class.__module__}.{client_class.__qualname__}"
        )


def _arguments(mode: str, client_class: type[Any]) -> list[str]:
    """The keyword arguments that keys may set in ``mode``."""
    if mode == SERVER:
        return client_arguments(client_class)
    if mode == SENTINEL:
        # Sentinel hands them to the pool of the master, which hands them to each
        # connection: the client class's own arguments are not passed on.
        names = [*client_arguments(SentinelManagedSSLConnection), *_SENTINEL_POOL_ARGUMENTS]
    else:
        # RedisCluster's own arguments, and those it passes on to the client of each node.
        node_arguments = [name for name in client_arguments(redis.Redis)
                          if name in REDIS_ALLOWED_KEYS]  # fmt: skip
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
    service = None
    if url is not None:
        if not isinstance(url, str):
            raise TypeError(f"{url_key} must be a string, got {_shown(url_key, url)}")
        addresses, service, url_kwargs = _topology_url(url_key, url, mode, names)
        kwargs.update(url_kwargs)  # values in the URL win over separate keys
    elif config.get(addresses_key) is not None:
        addresses = _addresses(addresses_key, config[addresses_key], _DEFAULT_PORTS[mode])
    else:
        addresses = []  # RedisCluster of PREFIX_CLASS, from PREFIX_HOST and PREFIX_PORT
    if mode == CLUSTER:
        return {"addresses": addresses}
    master_key = f"{prefix}_SENTINEL_MASTER"
    if service is None:
        service = config.get(master_key)
    if not isinstance(service, str) or not service:
        raise ValueError(
            f"{master_key} must be the name of the service that the sentinels monitor,"
            f" got {service!r}" + (f" (or give it as the path of {url_key})" if url else "")
        )
    return {
        "addresses": addresses,
        "service": service,
        "sentinel_kwargs": _sentinel_kwargs(config, f"{prefix}_SENTINEL_KWARGS"),
        "sentinel_watch": _flag(config, f"{prefix}_SENTINEL_WATCH", True),
    }


def _sentinel_kwargs(config: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """The arguments of the sentinels' own connections (``PREFIX_SENTINEL_KWARGS``)."""
    value = config.get(key)
    if value is None:
        return None  # redis-py then uses the socket_* arguments of the master's
    if not isinstance(value, Mapping):
        raise TypeError(f"{key} must be a dict of redis.Redis arguments, got {_shown(key, value)}")
    accepted = client_arguments(redis.Redis)
    kwargs: dict[str, Any] = {}
    for name, item in value.items():
        if name not in accepted:
            raise ValueError(f"{key} has {name!r}, which is not an argument of redis.Redis")
        kwargs[name] = _convert(f"{key} ({name!r})", name, item)
    return kwargs


def _flag(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = _convert_with(key, config.get(key, default), _BOOLEAN)
    if not isinstance(value, bool):
        raise TypeError(f"{key} must be {_BOOLEAN[1]}, got {value!r}")
    return value


def _metrics_settings(config: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    key = f"{prefix}_METRICS"
    available = importlib.util.find_spec("prometheus_client") is not None
    enabled = _flag(config, key, available)
    if enabled and not available:
        raise ValueError(
            f"{key} is on, but prometheus-client is not installed:"
            " pip install 'Flask-And-Redis[metrics]'"
        )
    registry = config.get(f"{prefix}_METRICS_REGISTRY")
    if registry is not None and not callable(getattr(registry, "register", None)):
        raise TypeError(
            f"{prefix}_METRICS_REGISTRY must be a prometheus_client.CollectorRegistry,"
            f" got {registry!r}"
        )
    path_key = f"{prefix}_METRICS_PATH"
    path = config.get(path_key)
    if path is not None and not (isinstance(path, str) and path.startswith("/")):
        raise ValueError(f"{path_key} must be a URL path starting with '/', got {path!r}")
    return {"metrics": enabled, "metrics_registry": registry, "metrics_path": path}


def _recording_settings(config: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    key = f"{prefix}_RECORD_CALLS"
    record = None if config.get(key) is None else _flag(config, key, False)
    key = f"{prefix}_RECORD_CALLS_MAX"
    most = _convert_with(key, config.get(key, 1000), _INTEGER)
    if isinstance(most, bool) or not isinstance(most, int) or most < 0:
        raise ValueError(f"{key} must be a whole number of calls (0 or more), got {most!r}")
    key = f"{prefix}_RECORD_REDACT_KEYS"
    globs = config.get(key, ())
    globs = (globs,) if isinstance(globs, str) else globs
    if not isinstance(globs, (list, tuple, set, frozenset)) or not all(
        isinstance(glob, str) for glob in globs
    ):
        raise TypeError(f"{key} must be a list of key patterns (globs), got {globs!r}")
    key = f"{prefix}_SLOW_LOG_THRESHOLD"
    threshold = _convert_with(key, config.get(key), _NUMBER)
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not 0 <= threshold < float("inf")  # NaN too
    ):
        raise ValueError(f"{key} must be a number of seconds (0 or more), got {threshold!r}")
    return {
        "record_calls": record,
        "record_calls_max": most,
        "record_stack": _flag(config, f"{prefix}_RECORD_STACK", False),
        "redact_keys": tuple(globs),
        "server_timing": _flag(config, f"{prefix}_SERVER_TIMING", False),
        "slow_log_threshold": None if threshold is None else float(threshold),
    }
