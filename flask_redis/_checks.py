"""Check the value of each argument of redis-py's and valkey-py's clients, and of the
extension's own settings that are flags, counts or seconds, converted from text first, and
raise a :exc:`ValueError` or :exc:`TypeError` naming its key, which never shows a secret."""

from __future__ import annotations

import codecs
import functools
import importlib
import importlib.util
import inspect
import math
import os
import re
import ssl
import types
import typing
from collections.abc import Mapping
from typing import Any, Callable

from werkzeug.utils import import_string


@functools.cache
def class_named(*paths: str) -> type[Any] | None:
    """The first class of ``paths`` (dotted paths) that imports, if any: redis-py 5 lacks
    some, and the extras (prometheus-client, pyOpenSSL) may not be installed."""
    for path in paths:
        try:
            found = import_string(path)
        except Exception:
            continue
        if isinstance(found, type):
            return found
    return None


# -- What a message shows of a value -------------------------------------------------------


def is_secret(key: str) -> bool:
    """Whether the value of ``key`` may hold a secret (``*_PASSWORD``, ``*_URL``,
    ``*_SENTINEL_KWARGS``): no message shows any of it."""
    # "REDIS_URL (query argument 'db')" is a part of a secret key's value: secret too.
    return key.split(" (", 1)[0].endswith(("PASSWORD", "_URL", "_SENTINEL_KWARGS"))


def may_hold_credentials(text: str) -> bool:
    """Whether ``text`` has an ``@`` or a ``:/``, as a URL (``redis://``) and a user name
    and password (``user:password@host``) have."""
    return "@" in text or ":/" in text


#: What messages say instead of a value that may hold a password.
_NOT_SHOWN = "a value with an '@' or a ':/', not shown (it may hold a password)"


def shown(key: str, value: object) -> str:
    """What a message may say of ``value``: the repr of a plain value of a key that holds
    no secret, else only its type (an object's repr may hold anything, or fail); never
    text that may hold a password, whatever the key."""
    if isinstance(value, str) and may_hold_credentials(value):
        return _NOT_SHOWN
    if is_secret(key) or not isinstance(value, (str, int, float, type(None))):
        return f"a value of type {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


#: The arguments that a URL, or a ``user:password@host``, is put into by mistake: for
#: each, the error of a text value that holds one, and what the value must be instead.
_NOT_URLS: dict[str, tuple[type[Exception], str]] = {
    "host": (ValueError, "a host name, an IP address or a socket path"),
    "unix_socket_path": (ValueError, "a socket path"),
    "connection_pool": (TypeError, "a connection pool"),
}


def _holds_url(name: str, text: str) -> bool:
    """Whether ``text``, given as argument ``name`` of :data:`_NOT_URLS`, may be a URL or
    hold a user name and password. An absolute socket path may have an ``@`` (a folder
    named after a user): only one that starts with a single ``/`` counts as one, and a
    host takes one as a ``file://`` URL too."""
    if name == "host" and text.startswith("file://"):
        text = text[len("file://") :]
    is_path = text.startswith("/") and not text.startswith("//")
    return not (is_path and name != "connection_pool") and may_hold_credentials(text)


def _refuse_url(key: str, name: str, value: Any) -> None:
    """Raise where ``value``, read from ``key`` for argument ``name``, may be a URL or hold
    a password (see :func:`_holds_url`), naming the key of the prefix's URL."""
    if name not in _NOT_URLS:
        return
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str) or not _holds_url(name, text):
        return
    error, expected = _NOT_URLS[name]
    suffix = f"_{name.upper()}"
    prefix = key[: -len(suffix)] if key.endswith(suffix) else "PREFIX"
    raise error(
        f"{key} must be {expected}, not a URL or a user:password@host (the value is not"
        f" shown): give a URL as {prefix}_URL, a password as {prefix}_PASSWORD"
    )


# -- Values given as text ------------------------------------------------------------------


def _to_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(text)


def _to_int(text: str) -> int:
    """An integer written in ASCII digits, with a ``-`` at most (:class:`int` also reads
    ``6_379``, ``+6379`` and digits of other scripts)."""
    if not re.fullmatch("-?[0-9]+", text.strip()):
        raise ValueError(text)
    return int(text)


def _to_float(text: str) -> float:
    """A number as :class:`float` reads it, but in ASCII and without ``_``."""
    if "_" in text or not text.isascii():
        raise ValueError(text)
    return float(text)


# Converters of text values: the function, and what a bad value should have been.
_Converter = tuple[Callable[[str], Any], str]
_INTEGER: _Converter = (_to_int, "an integer")
_NUMBER: _Converter = (_to_float, "a number")
_BOOLEAN: _Converter = (_to_bool, "a boolean (true/false, yes/no, 1/0)")

#: Arguments whose value may come as text (environment variables, URL query strings) and is
#: converted to the type redis-py expects: the converter, and what a value should be (the
#: configuration reference lists them).
CONVERTERS: dict[str, _Converter] = {
    **dict.fromkeys(
        ("port", "db", "max_connections", "health_check_interval", "socket_read_size",
         "protocol", "reinitialize_steps", "cluster_error_retry_attempts", "cache_max_size",
         "cache_ttl"),
        _INTEGER,
    ),
    **dict.fromkeys(
        ("socket_timeout", "socket_connect_timeout", "topology_refresh_min_interval"), _NUMBER
    ),
    **dict.fromkeys(
        ("decode_responses", "ssl", "ssl_check_hostname", "ssl_validate_ocsp",
         "ssl_validate_ocsp_stapled", "retry_on_timeout", "socket_keepalive",
         "single_connection_client", "read_from_replicas", "require_full_coverage",
         "dynamic_startup_nodes", "legacy_responses", "cache_enabled"),
        _BOOLEAN,
    ),
}  # fmt: skip
_LoadBalancingStrategy = class_named("redis.cluster.LoadBalancingStrategy")
if _LoadBalancingStrategy is not None:  # redis-py 5.1 and later
    CONVERTERS["load_balancing_strategy"] = (
        _LoadBalancingStrategy,
        "one of " + ", ".join(repr(member.value) for member in _LoadBalancingStrategy),
    )


def _convert(key: str, name: str, value: Any, library: str = "redis") -> Any:
    """Convert the text value of argument ``name`` (read from ``key``) to its type: the
    one written here, else the one its annotation in ``library``'s signatures gives."""
    converter = CONVERTERS.get(name)
    if converter is None:
        converter = _signature_checks(library).get(name, (None, None))[0]
    return value if converter is None else _convert_with(key, value, converter)


def _convert_with(key: str, value: Any, converter: _Converter) -> Any:
    """Convert ``value``, read from ``key``, if it is text; other values pass unchanged."""
    if not isinstance(value, str):
        return value
    try:
        return converter[0](value)
    except ValueError:
        raise ValueError(f"{key} must be {converter[1]}, got {shown(key, value)}") from None


# -- Checks of the values of redis-py's arguments ------------------------------------------


class _Check:
    """What the value of one argument must be, after its conversion from text, for a client
    of a library (``"redis"`` or ``"valkey"``).

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
        valid: Callable[[Any], bool] | None = None,
        none: bool = True,
        normal: Callable[[Any], Any] | None = None,
    ) -> None:
        self.expected, self.kind, self.valid = expected, kind, valid
        self.none, self.normal = none, normal

    def __call__(self, key: str, value: Any, library: str = "redis") -> Any:
        if not self.kind(value):
            raise TypeError(f"{key} must be {self.expected}, got {shown(key, value)}")
        if self.valid is not None and not _succeeds(self.valid, value):
            raise ValueError(f"{key} must be {self.expected}, got {shown(key, value)}")
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


#: The highest database number: Redis counts its databases in a C ``int``.
MAX_DB = 2**31 - 1


def _integer(low: int, high: int | None = None, none: bool = False) -> _Check:
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


def _text(expected: str = "a string", valid: Callable[[Any], bool] | None = None) -> _Check:
    return _Check(expected, _is_text, valid)


def _file_path(expected: str = "a file path (a string)") -> _Check:
    return _Check(expected, _is_path, lambda v: bool(os.fspath(v)), normal=os.fspath)


class _Instance(_Check):
    """An instance of the class at the first of ``paths`` that imports, ``{lib}`` in them
    standing for the client's library: ``{lib}.retry.Retry`` is ``valkey.retry.Retry`` for
    a client of valkey-py."""

    def __init__(self, *paths: str, none: bool = True) -> None:
        super().__init__(f"an instance of {paths[0]}", lambda value: False, none=none)
        self.paths = paths

    def __call__(self, key: str, value: Any, library: str = "redis") -> Any:
        paths = tuple(path.format(lib=library) for path in self.paths)
        wanted = class_named(*paths)
        if wanted is None or not isinstance(value, wanted):
            # The path that imports (valkey-py has no AbstractRetry), else the first.
            found = [path for path in paths if class_named(path) is wanted] or [paths[0]]
            expected = f"an instance of {found[0] if wanted is not None else paths[0]}"
            if wanted is None and paths[0].startswith("OpenSSL."):
                expected += " (pip install pyOpenSSL)"
            raise TypeError(f"{key} must be {expected}, got {shown(key, value)}")
        return value


_instance = _Instance


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

#: Per argument of redis-py's and valkey-py's clients (redis.Redis, RedisCluster, a Sentinel
#: master's connection and pool; the same of valkey-py), what its value must be. An
#: argument missing here (one of a client class of the app's own) is passed on as it is.
_CHECKS: dict[str, _Check] = {
    "host": _NO_NONE("a host name or IP address (a string)", _is_text, lambda v: v.strip() != ""),
    "port": _integer(1, 65535),
    "db": _integer(0, MAX_DB),
    "password": _TEXT_OR_BYTES,
    "username": _TEXT_OR_BYTES,
    "socket_timeout": _seconds(zero=False, none=True),
    "socket_connect_timeout": _seconds(zero=False, none=True),
    "socket_read_size": _integer(1),
    "socket_keepalive": _boolean(none=True),
    "socket_keepalive_options": _Check(
        "a dict of socket options (integers) to integers or bytes",
        lambda v: (
            isinstance(v, Mapping)
            and all(_is_int(k) and (_is_int(o) or isinstance(o, bytes)) for k, o in v.items())
        ),
    ),
    "connection_pool": _instance("{lib}.connection.ConnectionPool", none=False),
    "unix_socket_path": _file_path("a socket path (a string)"),
    "encoding": _NO_NONE("the name of a text encoding, such as 'utf-8'", _is_text, _text_encoding),
    "encoding_errors": _NO_NONE(
        "the name of an error handler, such as 'strict' or 'replace'",
        _is_text,
        lambda v: callable(codecs.lookup_error(v)),
    ),
    "decode_responses": _boolean(),
    "retry_on_timeout": _boolean(),
    "retry": _instance("{lib}.retry.AbstractRetry", "{lib}.retry.Retry"),
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
    "valkey_connect_func": _CALLABLE,
    "credential_provider": _instance("{lib}.credentials.CredentialProvider"),
    "protocol": _Check("2 or 3", _is_int, lambda v: v in (2, 3)),
    "legacy_responses": _boolean(),
    "cache": _instance("redis.cache.CacheInterface"),
    "cache_config": _instance("redis.cache.CacheConfig"),
    "event_dispatcher": _instance("redis.event.EventDispatcherInterface"),
    "maint_notifications_config": _instance("redis.maint_notifications.MaintNotificationsConfig"),
    "oss_cluster_maint_notifications_handler": _instance(
        "redis.maint_notifications.OSSMaintNotificationsHandler"
    ),
    # valkey-py's client-side cache.
    "cache_enabled": _boolean(),
    "client_cache": _instance("valkey._cache.AbstractCache"),
    "cache_max_size": _integer(1),
    "cache_ttl": _integer(0),
    "cache_policy": _NO_NONE(
        "'lru', 'lfu' or 'random'", _is_text, lambda v: v in ("lru", "lfu", "random")
    ),
    "cache_deny_list": _list_of("a list of command names (strings)", _is_text, none=False),
    "cache_allow_list": _list_of("a list of command names (strings)", _is_text, none=False),
    # RedisCluster's own.
    "address_remap": _CALLABLE,
    "cluster_error_retry_attempts": _integer(0),
    "dynamic_startup_nodes": _boolean(),
    "load_balancing_strategy": _instance("redis.cluster.LoadBalancingStrategy"),
    "policy_resolver": _instance("redis.commands.policies.PolicyResolver"),
    "metadata_resolver": _instance("redis.commands.metadata.MetadataResolver"),
    "topology_refresh_min_interval": _seconds(zero=True, none=True),
    "read_from_replicas": _boolean(),
    "reinitialize_steps": _integer(0),
    "require_full_coverage": _boolean(),
}


class _Unset:
    """A key set to ``None`` where ``None`` is no value of the argument: as if not set."""


#: What :func:`checked_value` gives for a key set to ``None`` that counts as not set.
UNSET = _Unset()


def checked_value(key: str, name: str, value: Any, library: str = "redis") -> Any:
    """The value of argument ``name`` that ``key`` gives to a client of ``library``
    (``"redis"`` or ``"valkey"``): converted from text and checked; :data:`UNSET` for a
    ``None`` that means "not set"."""
    check = _CHECKS.get(name) or _signature_checks(library).get(name, (None, None))[1]
    if value is None:
        return value if check is None or check.none else UNSET
    _refuse_url(key, name, value)
    value = _convert(key, name, value, library)
    return value if check is None else check(key, value, library)


# -- The extension's own settings ------------------------------------------------------------


def boolean_setting(key: str, value: Any) -> bool:
    """The value of ``key``, a setting that is on or off: a boolean, 1 or 0, or text such
    as ``"yes"`` or ``"off"``."""
    return bool(_boolean()(key, _convert_with(key, value, _BOOLEAN)))


def count_setting(key: str, value: Any) -> int:
    """The value of ``key``, a setting that is an integer of 0 or more, or its text."""
    count: int = _integer(0)(key, _convert_with(key, value, _INTEGER))
    return count


def seconds_setting(key: str, value: Any) -> float:
    """The value of ``key``, a setting that is a number of seconds, 0 or more, or its
    text."""
    return float(_seconds(zero=True, none=False)(key, _convert_with(key, value, _NUMBER)))


# -- Checks read from the signatures, for arguments that a new release adds ------------------

#: The classes whose ``__init__`` arguments are keys, per library: the clients, and the
#: connections that a Sentinel master's pool makes.
_SIGNED_CLASSES = {
    "redis": ("redis.client.Redis", "redis.cluster.RedisCluster",
              "redis.connection.AbstractConnection", "redis.connection.Connection",
              "redis.connection.SSLConnection"),
    "valkey": ("valkey.client.Valkey", "valkey.cluster.ValkeyCluster",
               "valkey.connection.AbstractConnection", "valkey.connection.Connection",
               "valkey.connection.SSLConnection"),
}  # fmt: skip


@functools.cache
def _signature_checks(library: str) -> dict[str, tuple[_Converter | None, _Check | None]]:
    """Per argument of ``library``'s clients, the conversion from text and the check that
    its annotation gives (see :func:`_from_annotation`): for an argument that a release
    adds and :data:`_CHECKS` does not know yet, so that its key is converted and checked
    as the keys written out here are, and an error names it."""
    found: dict[str, tuple[_Converter | None, _Check | None]] = {}
    for path in _SIGNED_CLASSES.get(library, ()):
        klass = class_named(path)
        if klass is None:
            continue
        init = vars(klass).get("__init__")
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        for parameter in parameters:
            if parameter.name in found or parameter.kind not in _NAMED:
                continue
            annotation = _resolved(parameter.annotation, getattr(init, "__globals__", {}))
            found[parameter.name] = _from_annotation(annotation, parameter.default)
    return found


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _resolved(annotation: Any, names: dict[str, Any]) -> Any:
    """``annotation``, evaluated in ``names`` if written as text (``from __future__ import
    annotations``); the text itself where it does not evaluate (a name imported for type
    checking only, ``A | B`` before Python 3.10)."""
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, dict(names))  # the library's own annotation
    except Exception:
        return annotation


def _from_annotation(annotation: Any, default: Any) -> tuple[_Converter | None, _Check | None]:
    """The conversion from text and the check of an argument annotated ``annotation``
    (``float | None``, ``Optional[int]``, ``MetadataResolver``), or else of the type of its
    ``default``; ``(None, None)`` where neither says a class (``Any``, a text annotation
    that does not resolve): its value is passed on as it is."""
    if annotation is inspect.Parameter.empty:
        if not isinstance(default, (bool, int, float, str)):
            return None, None
        annotation = type(default)
    members = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    none = default is None or type(None) in members
    kinds = [typing.get_origin(each) or each for each in members if each is not type(None)]
    if not kinds or not all(isinstance(each, type) and each is not object for each in kinds):
        return None, None
    if kinds == [bool]:
        return _BOOLEAN, _boolean(none)
    if kinds == [int]:
        return _INTEGER, _Check("an integer", _is_int, none=none)
    if set(kinds) <= {int, float}:
        return _NUMBER, _Check("a finite number", _is_number, math.isfinite, none)
    expected = " or ".join(
        "a string" if each is str else f"an instance of {each.__module__}.{each.__qualname__}"
        for each in kinds
    )
    # The clients take bytes wherever they take text, whatever their annotations say.
    wanted = (*kinds, bytes) if str in kinds else tuple(kinds)
    return None, _Check(
        expected,
        # A boolean is an int to isinstance(), not to an argument that wants a number.
        lambda value: isinstance(value, wanted) and (bool in wanted or not isinstance(value, bool)),
        none=none,
    )


def _is_union(annotation: Any) -> bool:
    """Whether ``annotation`` is ``A | B``, ``Union[A, B]`` or ``Optional[A]``."""
    union_type = getattr(types, "UnionType", None)  # Python 3.10 and later
    origin = typing.get_origin(annotation)
    return origin is typing.Union or (union_type is not None and origin is union_type)


def _names(text: str, name: str) -> bool:
    """Whether a message names argument ``name``: quoted (``'db'``), or as a word if it
    has an underscore (``socket_timeout``), which no other word of a message has."""
    pattern = rf"['\"`]{re.escape(name)}['\"`]"
    if "_" in name:
        pattern += rf"|(?<!\w){re.escape(name)}(?!\w)"
    return re.search(pattern, text) is not None


def refusal(error: Exception, sources: Mapping[str, str], taker: str) -> ValueError | None:
    """A :exc:`ValueError` naming the key of the one argument that ``error``, raised by
    ``taker`` (the client class) as it was made, names: a check of the library's that
    none here makes yet (a release's new argument, or a new rule); ``None`` where the
    message names no argument given, or more than one. ``sources`` maps each argument
    given to its key. The library's message is quoted, but for a key that holds a secret,
    and where it has an ``@`` or a ``:/`` (it may quote a URL given)."""
    if any(each.__name__ in ("ConnectionError", "TimeoutError") for each in type(error).mro()):
        return None  # a server that cannot be reached (a cluster asks its nodes at once)
    text = str(error)
    named = [name for name in sources if _names(text, name)]
    if len(named) != 1:
        return None
    key = sources[named[0]]
    said = (
        "" if is_secret(key) or may_hold_credentials(text) else f": {type(error).__name__}: {text}"
    )
    return ValueError(f"{key} is refused by {taker}{said}")


# -- Arguments that redis-py refuses together ----------------------------------------------


def check_together(
    kwargs: dict[str, Any], key: Callable[[str], str], library: str = "redis"
) -> None:
    """Raise for arguments that the client of ``library`` refuses together, naming their
    keys: ``key(name)`` is the key of argument ``name``, set or not."""
    _check_resp3(kwargs, key, library)
    if kwargs.get("credential_provider") is not None:
        for name in ("username", "password"):
            if kwargs.get(name):
                raise ValueError(
                    f"{key(name)} and {key('credential_provider')} are both set: the provider"
                    " gives the user name and password, keep only one"
                )
    _check_ocsp(kwargs, key)


def _resp3(kwargs: dict[str, Any], library: str) -> bool:
    """Whether the client speaks RESP3: the protocol of the arguments, else of the pool
    given, else the library's default."""
    protocol = kwargs.get("protocol")
    pool = kwargs.get("connection_pool")
    if pool is not None:
        protocol = getattr(pool, "connection_kwargs", {}).get("protocol")
    if protocol is None:
        utils = importlib.import_module(f"{library}.utils")
        protocol = getattr(utils, "DEFAULT_RESP_VERSION", 2)
    return _succeeds(lambda p: int(p) == 3, protocol)


def _check_resp3(kwargs: dict[str, Any], key: Callable[[str], str], library: str) -> None:
    """Raise for the arguments that need RESP3 when the client does not speak it, and for
    maintenance notifications over a unix socket."""
    resp3 = _resp3(kwargs, library)
    needs = (
        f"protocol 3 (RESP3), which {key('protocol')} does not give"
        if "protocol" in kwargs or kwargs.get("connection_pool") is not None
        else f"{key('protocol')} = 3"
    )
    for name in ("cache", "cache_config"):
        if kwargs.get(name) is not None and not resp3:
            raise ValueError(f"{key(name)} needs {needs}: redis-py caches over RESP3 only")
    if kwargs.get("cache_enabled") and not resp3:
        raise ValueError(f"{key('cache_enabled')} needs {needs}: valkey-py caches over RESP3 only")
    notifications = kwargs.get("maint_notifications_config")
    if notifications is None or not getattr(notifications, "enabled", False):
        return
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


def _check_ocsp(kwargs: dict[str, Any], key: Callable[[str], str]) -> None:
    """Raise for both kinds of OCSP validation on, and for one whose package is missing."""
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
