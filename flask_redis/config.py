"""Read a config prefix's ``PREFIX_*`` settings into a client class and its keyword arguments.

Every error raised here names the config key at fault and what was expected. Values of keys
that may hold a secret (``*_PASSWORD``, ``*_URL``) are never put into a message.
"""

from __future__ import annotations

import importlib.util
import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Tuple
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from werkzeug.utils import ImportStringError, import_string

DEFAULT_PREFIX = "REDIS"

#: Keys of 1.0 that redis-py renamed, mapped to today's argument names.
_LEGACY_KEYS = {"CHARSET": "encoding", "ERRORS": "encoding_errors"}

#: Arguments never read from a key of their own: the legacy names above, which redis-py 5
#: still accepts (deprecated) and which are read through their 1.0 keys instead.
_NOT_KEYS = frozenset(name.lower() for name in _LEGACY_KEYS)

_URL_SCHEMES = ("redis", "rediss", "unix")


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
         "protocol"),
        _INTEGER,
    ),
    **dict.fromkeys(("socket_timeout", "socket_connect_timeout"), _NUMBER),
    **dict.fromkeys(
        ("decode_responses", "ssl", "ssl_check_hostname", "ssl_validate_ocsp",
         "ssl_validate_ocsp_stapled", "retry_on_timeout", "socket_keepalive",
         "single_connection_client"),
        _BOOLEAN,
    ),
}  # fmt: skip


def _is_secret(key: str) -> bool:
    return key.endswith(("PASSWORD", "_URL"))


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

    def create(self) -> Any:
        """Create the client."""
        return self.client_class(**self.kwargs)


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


def _client_class(config: Mapping[str, Any], key: str) -> type[Any]:
    value = config.get(key, redis.Redis)
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
            f"{key} must be a redis://, rediss:// or unix:// URL, got scheme {parts.scheme!r}"
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
    for name, value in parse_qsl(parts.query):
        if name not in accepted:
            raise ValueError(f"{key} has a query argument {name!r} that the client does not take")
        kwargs[name] = _convert(f"{key} (query argument {name!r})", name, value)
    return kwargs


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
    client_class = _client_class(config, f"{prefix}_CLASS")
    names = client_arguments(client_class)
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

    socket_path = _unix_socket_host(kwargs.get("host"))
    if socket_path is not None:
        kwargs["unix_socket_path"] = socket_path
        del kwargs["host"]

    url_key = f"{prefix}_URL"
    url = config.get(url_key)
    if url is not None:
        if "connection_pool" in kwargs:
            raise ValueError(
                f"{url_key} and {prefix}_CONNECTION_POOL are both set: a ready pool ignores"
                " the URL, keep only one"
            )
        url_kwargs = _url_arguments(url_key, url, set(names))
        # The URL says which transport to use; separate keys for the other one would win
        # inside redis-py, so they go. Values given in the URL win over separate keys (1.0).
        transport = ("host", "port") if "unix_socket_path" in url_kwargs else ("unix_socket_path",)
        for name in transport:
            kwargs.pop(name, None)
        kwargs.update(url_kwargs)

    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        raise TypeError(
            f"{client_class.__module__}.{client_class.__qualname__} takes no argument"
            f" {unknown[0]!r}, set by {prefix}_{unknown[0].upper()} or {url_key}"
        )
    _check_types(prefix, kwargs)
    return ClientConfig(
        prefix, client_class, kwargs,
        **_metrics_settings(config, prefix), **_recording_settings(config, prefix),
    )  # fmt: skip


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
