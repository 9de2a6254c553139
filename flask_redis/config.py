"""Read a config prefix's ``PREFIX_*`` settings into a client class and its keyword arguments.

The contract: a setting that is not what its key expects is a :exc:`ValueError` or a
:exc:`TypeError` whose message names the key and what was expected, raised before any
client exists. Values of keys that may hold a secret (``*_PASSWORD``, ``*_URL``,
``*_SENTINEL_KWARGS``) are never put into a message, and no message shows any part of a
URL. A key that looks like a setting but that nothing reads is a :class:`UnreadKeyWarning`.
"""

from __future__ import annotations

import codecs
import difflib
import functools
import importlib.util
import inspect
import os
import re
import ssl
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Dict, Iterable, List, Mapping, Optional, Tuple
from urllib.parse import unquote, unquote_plus

import redis
from flask import Flask
from redis.cluster import REDIS_ALLOWED_KEYS, RedisCluster
from redis.sentinel import SentinelManagedSSLConnection
from werkzeug.utils import import_string

try:
    from redis.cluster import LoadBalancingStrategy as _LoadBalancingStrategy
except ImportError:  # pragma: no cover - redis-py before 5.1
    _LoadBalancingStrategy = None  # type: ignore[assignment,misc]

DEFAULT_PREFIX = "REDIS"


class ConfigWarning(UserWarning):
    """A setting of ``app.config`` that does not do what it seems to."""


class UnreadKeyWarning(ConfigWarning):
    """A key with the extension's prefix that nothing reads: a misspelled key, a key of
    another topology or client class, or a key of another library that shares the prefix."""


class IgnoredKeyWarning(ConfigWarning):
    """A separate key that ``PREFIX_URL`` overrides with a value of its own or its default,
    as Flask-And-Redis 1.0 did."""


#: Keys of 1.0 that redis-py renamed, mapped to today's argument names.
_LEGACY_KEYS = {"CHARSET": "encoding", "ERRORS": "encoding_errors"}

#: Arguments never read from a key of their own: the legacy names above, which redis-py 5
#: still accepts (deprecated) and which are read through their 1.0 keys instead.
_NOT_KEYS = frozenset(name.lower() for name in _LEGACY_KEYS)

#: The topologies: one server, a Sentinel-managed master, a Cluster.
SERVER, SENTINEL, CLUSTER = "server", "sentinel", "cluster"
#: URL schemes of Sentinel and Cluster, and the mode each asks for.
_TOPOLOGY_SCHEMES = {
    "redis+sentinel": SENTINEL, "rediss+sentinel": SENTINEL,
    "redis+cluster": CLUSTER, "rediss+cluster": CLUSTER,
}  # fmt: skip
_SCHEMES = ("redis", "rediss", "unix", *_TOPOLOGY_SCHEMES)
_SCHEMES_TEXT = "redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://"
#: The port of an address given without one.
_DEFAULT_PORTS = {SENTINEL: 26379, CLUSTER: 6379}
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
#: Address = (host, port)
Address = Tuple[str, int]


def _warn(message: str, category: type[Warning]) -> None:
    """Warn at the first frame outside this package: the app's ``Redis(app)`` or
    ``init_app()`` call."""
    level, frame = 2, sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        "flask_redis."
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


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
         "dynamic_startup_nodes", "legacy_responses"),
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
    """What a message may say of ``value``: the repr of a plain value of a key that holds
    no secret, else only its type (an object's repr may hold anything, or fail)."""
    if _is_secret(key) or not isinstance(value, (str, int, float, type(None))):
        return f"a value of type {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- Checks of the values of redis-py's arguments ------------------------------------------


class _Check:
    """What the value of one argument must be, after its conversion from text.

    :param expected: What it must be, for the message: ``"an integer from 1 to 65535"``.
    :param kind: Whether a value has the right type; a value without is a :exc:`TypeError`.
    :param valid: Whether a value of the right type is right; else a :exc:`ValueError`.
    :param none: ``None`` is a value of its own (``socket_timeout=None``: no timeout);
        else a key set to ``None`` counts as not set.
    :param normal: Makes an accepted value what redis-py takes (``os.PathLike`` -> ``str``).
    """

    def __init__(
        self,
        expected: str,
        kind: Callable[[Any], bool],
        valid: Optional[Callable[[Any], bool]] = None,
        none: bool = True,
        normal: Optional[Callable[[Any], Any]] = None,
    ) -> None:
        self.expected, self.kind, self.valid = expected, kind, valid
        self.none, self.normal = none, normal

    def __call__(self, key: str, value: Any) -> Any:
        if not self.kind(value):
            raise TypeError(f"{key} must be {self.expected}, got {_shown(key, value)}")
        if self.valid is not None and not _succeeds(self.valid, value):
            raise ValueError(f"{key} must be {self.expected}, got {_shown(key, value)}")
        return value if self.normal is None else self.normal(value)


def _succeeds(test: Callable[[Any], Any], value: Any) -> bool:
    """Whether ``test(value)`` is true, an exception counting as false."""
    try:
        return bool(test(value))
    except Exception:
        return False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_path(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, os.PathLike) and _succeeds(lambda v: isinstance(os.fspath(v), str), value)
    )


def _integer(low: int, high: Optional[int] = None, none: bool = False) -> _Check:
    expected = f"an integer from {low} to {high}" if high else f"an integer of {low} or more"
    return _Check(expected, _is_int, lambda v: low <= v and (high is None or v <= high), none)


#: Longest time accepted, in seconds: far beyond any use, within what sockets take.
_MAX_SECONDS = 1e9


def _seconds(zero: bool, none: bool) -> _Check:
    expected = "a number of seconds, " + ("0 or more" if zero else "more than 0")
    return _Check(
        expected + f" and less than {_MAX_SECONDS:.0e}",
        _is_number,
        lambda v: (v >= 0 if zero else v > 0) and v < _MAX_SECONDS,  # NaN is neither
        none,
    )


def _boolean(none: bool = False) -> _Check:
    """True or false; the integers 1 and 0 too, which 1.0 passed on to redis-py."""
    return _Check(
        "a boolean (True or False)",
        lambda v: isinstance(v, bool) or (_is_int(v) and v in (0, 1)),
        none=none,
        normal=bool,
    )


def _text(expected: str = "a string", valid: Optional[Callable[[Any], bool]] = None) -> _Check:
    return _Check(expected, _is_text, valid)


def _file_path(expected: str = "a file path (a string)") -> _Check:
    return _Check(expected, _is_path, lambda v: bool(os.fspath(v)), normal=os.fspath)


@functools.lru_cache(maxsize=None)
def _class_named(*paths: str) -> Optional[type[Any]]:
    """The first class of ``paths`` that imports, if any (redis-py 5 lacks some)."""
    for path in paths:
        try:
            found = import_string(path)
        except Exception:
            continue
        if isinstance(found, type):
            return found
    return None


def _instance(*paths: str, none: bool = True) -> _Check:
    """An instance of the class at the first of ``paths`` that imports."""
    expected = f"an instance of {paths[0]}"

    def kind(value: Any) -> bool:
        wanted = _class_named(*paths)
        return wanted is not None and isinstance(value, wanted)

    if not _class_named(*paths) and paths[0].startswith("OpenSSL."):
        expected += " (pip install pyOpenSSL)"
    return _Check(expected, kind, none=none)


def _list_of(expected: str, item: Callable[[Any], bool], none: bool = True) -> _Check:
    def kind(value: Any) -> bool:
        return isinstance(value, (list, tuple)) and all(item(each) for each in value)

    return _Check(expected, kind, none=none)


def _text_encoding(name: str) -> bool:
    """Whether ``name`` is a codec of text, which :meth:`str.encode` takes."""
    return isinstance("".encode(name), bytes) and isinstance(b"".decode(name), str)


def _cipher_list(value: str) -> bool:
    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).set_ciphers(value)
    return True


def _printable(value: str) -> bool:
    """Redis refuses client names with spaces, line breaks or other special characters."""
    return all("!" <= character <= "~" for character in value)


_TEXT_OR_BYTES = _Check("a string", lambda v: isinstance(v, (str, bytes)))
_CALLABLE = _Check("a function (a callable)", callable)
_NO_NONE = functools.partial(_Check, none=False)

#: Per argument of redis-py's clients (redis.Redis, RedisCluster, a Sentinel master's
#: connection and pool), what its value must be. An argument missing here (one of a
#: client class of the app's own) is passed on as it is.
_CHECKS: Dict[str, _Check] = {
    "host": _NO_NONE("a host name or IP address (a string)", _is_text, lambda v: v.strip() != ""),
    "port": _integer(1, 65535),
    "db": _integer(0),
    "password": _TEXT_OR_BYTES,
    "username": _TEXT_OR_BYTES,
    "socket_timeout": _seconds(zero=False, none=True),
    "socket_connect_timeout": _seconds(zero=False, none=True),
    "socket_read_size": _integer(1),
    "socket_keepalive": _boolean(none=True),
    "socket_keepalive_options": _Check(
        "a dict of socket options (integers) to integers or bytes",
        lambda v: isinstance(v, Mapping)
        and all(_is_int(k) and (_is_int(o) or isinstance(o, bytes)) for k, o in v.items()),
    ),
    "connection_pool": _instance("redis.connection.ConnectionPool", none=False),
    "unix_socket_path": _file_path("a socket path (a string)"),
    "encoding": _NO_NONE("the name of a text encoding, such as 'utf-8'", _is_text, _text_encoding),
    "encoding_errors": _NO_NONE(
        "the name of an error handler, such as 'strict' or 'replace'", _is_text,
        lambda v: callable(codecs.lookup_error(v)),
    ),  # fmt: skip
    "decode_responses": _boolean(),
    "retry_on_timeout": _boolean(),
    "retry": _instance("redis.retry.AbstractRetry", "redis.retry.Retry"),
    "retry_on_error": _list_of(
        "a list of exception classes",
        lambda v: isinstance(v, type) and issubclass(v, BaseException),
        none=False,  # a Sentinel master's connection takes a list only
    ),
    "ssl": _boolean(),
    "ssl_keyfile": _file_path(),
    "ssl_certfile": _file_path(),
    "ssl_cert_reqs": _Check(
        "'none', 'optional', 'required' or an ssl.VerifyMode",
        lambda v: isinstance(v, (str, ssl.VerifyMode)),
        lambda v: isinstance(v, ssl.VerifyMode) or v in ("none", "optional", "required"),
    ),
    "ssl_include_verify_flags": _list_of(
        "a list of ssl.VerifyFlags", lambda v: isinstance(v, ssl.VerifyFlags)
    ),
    "ssl_exclude_verify_flags": _list_of(
        "a list of ssl.VerifyFlags", lambda v: isinstance(v, ssl.VerifyFlags)
    ),
    "ssl_ca_certs": _file_path(),
    "ssl_ca_path": _file_path("a directory path (a string)"),
    "ssl_ca_data": _TEXT_OR_BYTES,
    "ssl_check_hostname": _boolean(),
    "ssl_password": _Check(
        "a string or a function returning one", lambda v: isinstance(v, (str, bytes)) or callable(v)
    ),
    "ssl_validate_ocsp": _boolean(),
    "ssl_validate_ocsp_stapled": _boolean(),
    "ssl_ocsp_context": _instance("OpenSSL.SSL.Context"),
    "ssl_ocsp_expected_cert": _TEXT_OR_BYTES,
    "ssl_min_version": _Check("an ssl.TLSVersion", lambda v: isinstance(v, ssl.TLSVersion)),
    "ssl_ciphers": _text("an OpenSSL cipher list", _cipher_list),
    "max_connections": _integer(1, none=True),
    "single_connection_client": _boolean(),
    "health_check_interval": _seconds(zero=True, none=False),
    "client_name": _text("a name without spaces or special characters", _printable),
    "lib_name": _text(),
    "lib_version": _text(),
    "driver_info": _instance("redis.driver_info.DriverInfo"),
    "redis_connect_func": _CALLABLE,
    "credential_provider": _instance("redis.credentials.CredentialProvider"),
    "protocol": _Check("2 or 3", _is_int, lambda v: v in (2, 3)),
    "legacy_responses": _boolean(),
    "cache": _instance("redis.cache.CacheInterface"),
    "cache_config": _instance("redis.cache.CacheConfig"),
    "event_dispatcher": _instance("redis.event.EventDispatcherInterface"),
    "maint_notifications_config": _instance("redis.maint_notifications.MaintNotificationsConfig"),
    "oss_cluster_maint_notifications_handler": _instance(
        "redis.maint_notifications.OSSMaintNotificationsHandler"
    ),
    # RedisCluster's own.
    "address_remap": _CALLABLE,
    "cluster_error_retry_attempts": _integer(0),
    "dynamic_startup_nodes": _boolean(),
    "load_balancing_strategy": _instance("redis.cluster.LoadBalancingStrategy"),
    "policy_resolver": _instance("redis.commands.policies.PolicyResolver"),
    "read_from_replicas": _boolean(),
    "reinitialize_steps": _integer(0),
    "require_full_coverage": _boolean(),
}


class _Unset:
    """A key set to ``None`` where ``None`` is no value of the argument: as if not set."""


_UNSET = _Unset()


def _value(key: str, name: str, value: Any) -> Any:
    """The value of argument ``name`` that ``key`` gives: converted from text and checked;
    :data:`_UNSET` for a ``None`` that means "not set"."""
    check = _CHECKS.get(name)
    if value is None:
        return value if check is None or check.none else _UNSET
    value = _convert(key, name, value)
    return value if check is None else check(key, value)


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
    expected = "a class, such as redis.Redis, or the dotted path of one"
    if isinstance(value, str):
        try:
            value = import_string(value)
        except Exception as error:  # ImportStringError, ValueError of "", the module's own
            cause = getattr(error, "exception", error)
            raise ValueError(
                f"{key} must be {expected}; {_shown(key, config.get(key))} does not import:"
                f" {type(cause).__name__}"
            ) from None
    if not isinstance(value, type):
        raise TypeError(f"{key} must be {expected}, got {_shown(key, value)}")
    name = f"{value.__module__}.{value.__qualname__}"
    if value.__module__ == "builtins" or inspect.isabstract(value):
        raise TypeError(f"{key} must be {expected}, got {name}")
    try:  # the instrumented client is a subclass of it
        type("Probe", (value,), {})
    except TypeError:
        raise TypeError(f"{key} must be {expected} that can be subclassed, got {name}") from None
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


# -- URLs ----------------------------------------------------------------------------------


@dataclass
class _Url:
    """A URL cut into its parts; the user name and password decoded, the rest not yet."""

    scheme: str
    username: Optional[str]
    password: Optional[str]
    hosts: str
    path: str
    query: str


def _unquote(key: str, text: str, plus: bool = False) -> str:
    try:
        return (unquote_plus if plus else unquote)(text, errors="strict")
    except UnicodeDecodeError:
        raise ValueError(f"{key} has a %XX escape that is not UTF-8") from None


def _split_url(key: str, url: Any) -> _Url:
    """Cut a URL of any scheme into its parts, or raise if it is ambiguous.

    The user name and password end at the last ``@`` before the path, as Python's
    :func:`~urllib.parse.urlsplit` reads them; a ``/``, ``?`` or ``#`` in them must be
    percent-encoded, else the host that follows would be read from the wrong place. None
    of the URL is put into a message.
    """
    if not isinstance(url, str):
        raise TypeError(f"{key} must be a string, got {_shown(key, url)}")
    if any(character < " " or character == "\x7f" for character in url):
        raise ValueError(f"{key} has a control character, such as a line break: remove it")
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in _SCHEMES:
        raise ValueError(f"{key} must be a URL that starts with {_SCHEMES_TEXT}")
    if "#" in rest:
        raise ValueError(
            f"{key} has a '#', but a Redis URL has no fragment: percent-encode a '#' in the"
            " password as %23"
        )
    if re.search("%(?![0-9A-Fa-f]{2})", rest):
        raise ValueError(
            f"{key} has a '%' that starts no %XX escape: percent-encode a '%' in the password"
            " as %25"
        )
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in tail:
        raise ValueError(
            f"{key} has an '@' after its host: percent-encode a '/', '?' or '@' in the user"
            " name and password (%2F, %3F, %40), and an '@' in the path or query (%40)"
        )
    userinfo, at, hosts = authority.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = _unquote(key, user) or None
        password = _unquote(key, secret) if colon and secret else None
    path, _, query = tail.partition("?")
    return _Url(scheme.lower(), username, password, hosts, path, query)


#: What a URL decides even when it leaves it out (then the default: 1.0 overwrote the
#: keys with the URL's host, port, user name, password and database, or their defaults).
_URL_DEFAULTS: Dict[str, Any] = {
    "host": "localhost", "port": 6379, "db": 0, "username": None, "password": None,
}  # fmt: skip
#: A part of the address that a URL leaves out, and one that its kind of URL has not.
_LEFT_OUT, _NOT_USED = object(), object()
#: Arguments that are part of a URL's address: no query argument may set them.
_ADDRESS = ("host", "port", "username", "password", "unix_socket_path")
#: How warnings name what a URL decides.
_WHAT = {
    "host": "host", "port": "port", "db": "database", "username": "user name",
    "password": "password", "unix_socket_path": "unix socket path", "ssl": "use of TLS",
}  # fmt: skip


def _query_arguments(key: str, query: str, accepted: Collection[str], taker: str) -> dict[str, Any]:
    """The arguments of a URL's query string, converted from text and checked."""
    kwargs: dict[str, Any] = {}
    for part in query.split("&"):
        if not part:
            continue
        raw_name, equals, raw_value = part.partition("=")
        name = _unquote(key, raw_name, plus=True)
        if not equals:
            raise ValueError(f"{key} has a query argument without a value: write name=value")
        if name not in accepted:
            near = difflib.get_close_matches(name, list(accepted), n=1)
            raise ValueError(
                f"{key} has a query argument that {taker} does not take"
                + (f" (the nearest one it takes is {near[0]!r})" if near else "")
            )
        if name in _ADDRESS:
            raise ValueError(
                f"{key} has the query argument {name!r}: give the {_WHAT[name]} in the"
                " URL's address instead"
            )
        if name in kwargs:
            raise ValueError(f"{key} has the query argument {name!r} twice")
        value = _value(f"{key} (query argument {name!r})", name, _unquote(key, raw_value, True))
        kwargs[name] = value
    return kwargs


def _database(key: str, segment: str) -> int:
    """The database number that a path segment of a URL gives."""
    text = _unquote(key, segment)
    if not re.fullmatch("[0-9]+", text):
        raise ValueError(f"{key} must give the database as a number of 0 or more in its path")
    return int(text)


def _url_database(key: str, path_db: Any, query: dict[str, Any], left_out: Any) -> Any:
    """The database of a URL given in its path and/or its query: both must agree, the path
    left out counting as ``left_out`` (``None``: the query then decides)."""
    if "db" not in query:
        return path_db
    query_db = query.pop("db")
    if path_db is _LEFT_OUT and left_out is None:
        return query_db
    if query_db != (left_out if path_db is _LEFT_OUT else path_db):
        raise ValueError(
            f"{key} gives a database as a query argument that is not the one of its path"
            f" ({'database 0 when it has none, ' if left_out == 0 else ''}as Flask-And-Redis"
            " 1.0 read it): give the database in the path only, such as redis://host/2"
        )
    return query_db


def _server_url(
    key: str, url: _Url, accepted: Collection[str], taker: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a ``redis://``, ``rediss://`` or ``unix://`` URL: what its address decides
    (each value, :data:`_LEFT_OUT` or :data:`_NOT_USED`), and its query arguments."""
    query = _query_arguments(key, url.query, accepted, taker)
    owned: dict[str, Any] = {}
    if url.scheme == "unix":
        if url.hosts:
            raise ValueError(
                f"{key} has a host, but a unix:// URL has only a socket path:"
                " unix:///path/to/redis.sock"
            )
        socket_path = _unquote(key, url.path)
        if socket_path.strip("/") == "":
            raise ValueError(f"{key} must have the socket path as its path")
        owned.update(unix_socket_path=socket_path, host=_NOT_USED, port=_NOT_USED)
        owned["db"] = query.pop("db", _LEFT_OUT)
    else:
        if "," in url.hosts:
            raise ValueError(
                f"{key} has more than one host: use a redis+sentinel:// or redis+cluster://"
                " URL for several"
            )
        host, port = _url_host(key, url.hosts)
        path = url.path.strip("/")  # 1.0 accepted redis://host:6379/12/
        db = _database(key, path) if path else _LEFT_OUT
        owned.update(host=host, port=port, unix_socket_path=_NOT_USED)
        owned["db"] = _url_database(key, db, query, 0)
        if url.scheme == "rediss":
            owned["ssl"] = True
    owned.update(
        username=_LEFT_OUT if url.username is None else url.username,
        password=_LEFT_OUT if url.password is None else url.password,
    )
    return owned, query


def _url_host(key: str, text: str) -> tuple[Any, Any]:
    """The host and port of a URL's address, each :data:`_LEFT_OUT` when not given."""
    if text.startswith("["):  # an IPv6 address
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{key} has an IPv6 address without its closing ']'")
        port = rest[1:]
    else:
        host, _, port = text.partition(":")
        if ":" in port:
            raise ValueError(f"{key} has an IPv6 address without brackets: write [address]")
    if port and not (re.fullmatch("[0-9]{1,5}", port) and 0 < int(port) < 65536):
        raise ValueError(f"{key} has a port that is not a number from 1 to 65535")
    host = _unquote(key, host).lower()
    return host or _LEFT_OUT, int(port) if port else _LEFT_OUT


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


def _topology_url(
    key: str, url: _Url, mode: str, accepted: Collection[str], taker: str
) -> tuple[List[Address], str | None, dict[str, Any], dict[str, Any]]:
    """Read a ``redis+sentinel://`` or ``redis+cluster://`` URL: its addresses, its service
    name (Sentinel), what its address decides and its query arguments."""
    scheme = url.scheme
    if _TOPOLOGY_SCHEMES.get(scheme, CLUSTER if scheme in ("redis", "rediss") else None) != mode:
        raise ValueError(
            f"{key} must be a redis+{mode}:// or rediss+{mode}:// URL for a {mode} client"
        )
    query = _query_arguments(key, url.query, accepted, taker)
    owned: dict[str, Any] = {
        "username": _LEFT_OUT if url.username is None else url.username,
        "password": _LEFT_OUT if url.password is None else url.password,
    }
    if scheme.startswith("rediss"):  # rediss+sentinel, rediss+cluster, rediss
        owned["ssl"] = True
    addresses = _addresses(key, url.hosts, _DEFAULT_PORTS[mode])
    segments = [segment for segment in url.path.split("/") if segment]
    service = None
    if mode == SENTINEL:
        if len(segments) > 2:
            raise ValueError(f"{key} must have the path /service or /service/db")
        if segments:
            service = _unquote(key, segments[0])
        db = _database(key, segments[1]) if len(segments) == 2 else _LEFT_OUT
        owned["db"] = _url_database(key, db, query, None)
    elif segments:
        raise ValueError(f"{key} cannot have a path: a cluster has database 0 only")
    return addresses, service, owned, query


def _addresses(key: str, value: Any, default_port: int) -> List[Address]:
    """``(host, port)`` pairs from ``"h1:p1,h2:p2"``, or from a list of ``"host:port"``
    strings, ``(host, port)`` pairs or objects with ``host`` and ``port`` attributes."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise TypeError(
            f"{key} must be a list of (host, port) pairs or a string \"host:port,host:port\","
            f" got {_shown(key, value)}"
        )
    secret = _is_secret(key)
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
        label = key if secret else f"{key} (port of {host})"
        if isinstance(port, str) and not re.fullmatch("[0-9]+", port.strip()):
            raise ValueError(f"{label} must be an integer, got {_shown(label, port)}")
        port = _convert_with(label, port, _INTEGER)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(
                f"{key} has an address whose port is not a number from 1 to 65535"
                + ("" if secret else f": {host}:{_shown(key, port)}")
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
        return unquote(host[len("file://"):].partition("?")[0])
    return host if host.startswith("/") else None


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
        client_class = RedisCluster if mode == CLUSTER else redis.Redis
    _check_class(mode, client_class, class_key, cause)
    names = _arguments(mode, client_class)
    kwargs: dict[str, Any] = {}
    sources: dict[str, str] = {}  # the key each argument comes from
    for name in names:
        key = f"{prefix}_{name.upper()}"
        if key in config:
            _keep(kwargs, sources, name, key, config[key])

    for old, name in _LEGACY_KEYS.items():
        old_key, new_key = f"{prefix}_{old}", f"{prefix}_{name.upper()}"
        if old_key not in config:
            continue
        if new_key in config:
            raise ValueError(f"{old_key} and {new_key} are both set: keep only {new_key}")
        _warn(f"{old_key} is deprecated; use {new_key}", DeprecationWarning)
        _keep(kwargs, sources, name, old_key, config[old_key])

    taker = _taker(mode, client_class)
    topology: dict[str, Any] = {}
    if mode == SERVER:
        _server(prefix, url, set(names), kwargs, sources, taker)
    else:
        topology = _topology(config, prefix, mode, cause, url, set(names), kwargs, sources, taker)

    _drop_tls_arguments(kwargs, sources, prefix)
    unknown = sorted(set(kwargs) - set(names))
    if unknown:  # what a URL's address gives: a key of its own would not have been read
        name = unknown[0]
        raise TypeError(f"{sources[name]} sets {name!r}, which {taker} does not take")
    _check_together(kwargs, lambda name: sources.get(name, f"{prefix}_{name.upper()}"))
    settings = {**_metrics_settings(config, prefix), **_recording_settings(config, prefix)}
    read = {f"{prefix}_{name.upper()}" for name in names}
    read.update(f"{prefix}_{name}" for name in _SETTINGS)
    _warn_unread(config, prefix, read, other_prefixes, taker)
    return ClientConfig(prefix, client_class, kwargs, mode=mode, **topology, **settings)


def _keep(kwargs: dict[str, Any], sources: dict[str, str], name: str, key: str, value: Any) -> None:
    """Add argument ``name`` as ``key`` gives it, unless that is "not set"."""
    value = _value(key, name, value)
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
    owned, query = _server_url(url_key, _split_url(url_key, url), names, taker)
    _apply_url(kwargs, sources, url_key, owned, query)


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


def _check_together(kwargs: dict[str, Any], key: Callable[[str], str]) -> None:
    """Raise for arguments that redis-py refuses together, naming their keys: ``key(name)``
    is the key of argument ``name``, set or not.
    """

    protocol = kwargs.get("protocol")
    pool = kwargs.get("connection_pool")
    if pool is not None:
        protocol = getattr(pool, "connection_kwargs", {}).get("protocol")
    if protocol is None:
        protocol = getattr(redis.utils, "DEFAULT_RESP_VERSION", 2)
    resp3 = _succeeds(lambda p: int(p) == 3, protocol)
    needs = (
        f"protocol 3 (RESP3), which {key('protocol')} does not give"
        if "protocol" in kwargs or pool is not None
        else f"{key('protocol')} = 3"
    )
    for name in ("cache", "cache_config"):
        if kwargs.get(name) is not None and not resp3:
            raise ValueError(f"{key(name)} needs {needs}: redis-py caches over RESP3 only")
    notifications = kwargs.get("maint_notifications_config")
    if notifications is not None and getattr(notifications, "enabled", False):
        if not resp3:
            raise ValueError(
                f"{key('maint_notifications_config')} turns maintenance notifications on,"
                f" which need {needs}"
            )
        if notifications.enabled is True and kwargs.get("unix_socket_path") is not None:
            raise ValueError(
                f"{key('maint_notifications_config')} turns maintenance notifications on,"
                f" which a unix socket ({key('unix_socket_path')}) does not have"
            )
    if kwargs.get("credential_provider") is not None:
        for name in ("username", "password"):
            if kwargs.get(name):
                raise ValueError(
                    f"{key(name)} and {key('credential_provider')} are both set: the provider"
                    " gives the user name and password, keep only one"
                )
    if kwargs.get("ssl_validate_ocsp") and kwargs.get("ssl_validate_ocsp_stapled"):
        raise ValueError(
            f"{key('ssl_validate_ocsp')} and {key('ssl_validate_ocsp_stapled')} are both on:"
            " redis-py validates one kind of OCSP response only"
        )
    needed = (("ssl_validate_ocsp", "cryptography", "cryptography"),
              ("ssl_validate_ocsp_stapled", "OpenSSL", "pyOpenSSL"))  # fmt: skip
    for name, module, package in needed:
        if kwargs.get(name) and importlib.util.find_spec(module) is None:
            raise ValueError(f"{key(name)} is on, but {package} is not installed")


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
        # connection: the client class's own arguments are not passed on, nor are the
        # connection's internal ones that redis.Redis does not take either.
        connection = set(client_arguments(SentinelManagedSSLConnection))
        names = [name for name in client_arguments(redis.Redis) if name in connection]
        names += _SENTINEL_POOL_ARGUMENTS
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
    sources: dict[str, str],
    taker: str,
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
            url_key, _split_url(url_key, url), mode, names, taker
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
    sources: dict[str, str] = {}
    for name, item in value.items():
        if name not in accepted:
            raise ValueError(
                f"{key} has {_shown('', name)}, which is not an argument of redis.Redis"
            )
        _keep(kwargs, sources, name, f"{key} ({name!r})", item)
    _check_together(kwargs, lambda name: f"{key} ({name!r})")
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
    if path is not None and not (
        isinstance(path, str) and re.fullmatch(r"/[^\s<>?#%\\]*", path)
    ):
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


@functools.lru_cache(maxsize=None)
def _known_names() -> frozenset[str]:
    """Every key name (the part after the prefix) that some topology or redis-py client
    reads: a key of another prefix ends with one of them."""
    names = set(_SETTINGS)
    for mode, client_class in ((SERVER, redis.Redis), (SENTINEL, redis.Redis),
                               (CLUSTER, RedisCluster)):  # fmt: skip
        names.update(name.upper() for name in _arguments(mode, client_class))
    return frozenset(names)


def _warn_unread(
    config: Mapping[str, Any],
    prefix: str,
    read: set[str],
    other_prefixes: Iterable[str],
    taker: str,
) -> None:
    """Warn of each key of ``prefix`` that nothing reads (:class:`UnreadKeyWarning`).

    Not unread: the keys of a longer prefix that is set up (``other_prefixes``) or that
    looks like one (``REDIS_CACHE_URL``: a key name after a prefix ``REDIS_CACHE``), and
    keys of Flask and of a few libraries that share prefixes (:data:`_OTHER_LIBRARIES_KEYS`).
    """
    start = f"{prefix}_"
    longer = [f"{other}_" for other in other_prefixes if other.startswith(start)]
    known = _known_names()
    for key in list(config):
        if not isinstance(key, str) or not key.startswith(start) or key in read:
            continue
        if key in _OTHER_LIBRARIES_KEYS or key in Flask.default_config:
            continue
        if any(key.startswith(other) for other in longer):
            continue
        name = key[len(start):]
        if any(name[:i] and name[i + 1:] in known for i, c in enumerate(name) if c == "_"):
            continue  # PREFIX_OTHER_URL: a key of the prefix PREFIX_OTHER
        if name in known:
            hint = f"{taker} does not take it with these settings"
        else:
            near = difflib.get_close_matches(
                name, [each[len(start):] for each in read], n=1, cutoff=0.6
            )
            hint = f"did you mean {start}{near[0]}?" if near else "no setting has that name"
        _warn(
            f"{key} is set, but Flask-And-Redis does not read it ({hint}). If another"
            f" library reads it, ignore flask_redis.config.UnreadKeyWarning for it",
            UnreadKeyWarning,
        )
