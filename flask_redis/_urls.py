"""Read the URLs of ``PREFIX_URL`` (``redis://``, ``rediss://``, ``unix://``,
``redis+sentinel://``, ``redis+cluster://``, and the same with ``valkey`` for ``redis``) and
the ``host:port`` addresses of the sentinels and startup nodes, into what they decide; no
message shows any part of them."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

from ._checks import (
    _INTEGER,
    _MAX_DB,
    _convert_with,
    _is_secret,
    _may_hold_credentials,
    _shown,
    _value,
)
from ._topology import (
    _DEFAULT_PORTS,
    _SERVER_SCHEMES,
    _TLS_SCHEMES,
    _TOPOLOGY_SCHEMES,
    CLUSTER,
    REDIS_PY,
    SENTINEL,
)

#: The schemes of the URLs read, and how messages list them.
_ONE_SERVER_SCHEMES = tuple(scheme for pair in _SERVER_SCHEMES.values() for scheme in pair)
_SCHEMES = (*_ONE_SERVER_SCHEMES, "unix", *_TOPOLOGY_SCHEMES)
_SCHEMES_TEXT = (
    "redis://, rediss://, unix://, valkey://, valkeys://, or redis+sentinel://,"
    " redis+cluster:// and their rediss+, valkey+ and valkeys+ forms"
)
#: Address = (host, port)
Address = tuple[str, int]


@dataclass
class _Url:
    """A URL cut into its parts; the user name and password decoded, the rest not yet."""

    scheme: str
    username: str | None
    password: str | None
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


#: A part of the address that a URL leaves out, and one that its kind of URL has not.
_LEFT_OUT, _NOT_USED = object(), object()
#: Arguments that are part of a URL's address: no query argument may set them.
_ADDRESS = ("host", "port", "username", "password", "unix_socket_path")
#: How messages name what a URL decides.
_WHAT = {
    "host": "host", "port": "port", "db": "database", "username": "user name",
    "password": "password", "unix_socket_path": "unix socket path", "ssl": "use of TLS",
}  # fmt: skip


def _query_arguments(
    key: str, query: str, accepted: Collection[str], taker: str, library: str = REDIS_PY
) -> dict[str, Any]:
    """The arguments of a URL's query string, converted from text and checked as arguments
    of ``library``'s client."""
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
        value = _value(
            f"{key} (query argument {name!r})", name, _unquote(key, raw_value, True), library
        )
        kwargs[name] = value
    return kwargs


def _database(key: str, segment: str) -> int:
    """The database number that a path segment of a URL gives."""
    text = _unquote(key, segment)
    if not re.fullmatch("[0-9]+", text) or int(text) > _MAX_DB:
        raise ValueError(
            f"{key} must give the database as a number from 0 to {_MAX_DB} in its path"
        )
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
    key: str, url: _Url, accepted: Collection[str], taker: str, library: str = REDIS_PY
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a ``redis://``, ``rediss://``, ``valkey://``, ``valkeys://`` or ``unix://`` URL:
    what its address decides (each value, :data:`_LEFT_OUT` or :data:`_NOT_USED`), and its
    query arguments."""
    query = _query_arguments(key, url.query, accepted, taker, library)
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
        if url.scheme in _TLS_SCHEMES:
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


def _topology_url(
    key: str, url: _Url, mode: str, accepted: Collection[str], taker: str, library: str = REDIS_PY
) -> tuple[list[Address], str | None, dict[str, Any], dict[str, Any]]:
    """Read a ``redis+sentinel://`` or ``redis+cluster://`` URL (or a ``rediss+``,
    ``valkey+`` or ``valkeys+`` one): its addresses, its service name (Sentinel), what its
    address decides and its query arguments."""
    scheme = url.scheme
    one_server = CLUSTER if scheme in _ONE_SERVER_SCHEMES else None
    if _TOPOLOGY_SCHEMES.get(scheme, one_server) != mode:
        raise ValueError(
            f"{key} must be a redis+{mode}:// or rediss+{mode}:// URL for a {mode} client"
            f" (or a valkey+{mode}:// or valkeys+{mode}:// one)"
        )
    query = _query_arguments(key, url.query, accepted, taker, library)
    owned: dict[str, Any] = {
        "username": _LEFT_OUT if url.username is None else url.username,
        "password": _LEFT_OUT if url.password is None else url.password,
    }
    if scheme in _TLS_SCHEMES:  # rediss+sentinel, rediss+cluster, rediss, valkeys...
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


def _addresses(key: str, value: Any, default_port: int) -> list[Address]:
    """``(host, port)`` pairs from ``"h1:p1,h2:p2"``, or from a list of ``"host:port"``
    strings, ``(host, port)`` pairs or objects with ``host`` and ``port`` attributes."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise TypeError(
            f'{key} must be a list of (host, port) pairs or a string "host:port,host:port",'
            f" got {_shown(key, value)}"
        )
    if isinstance(value, str):  # as a whole: a password may have a ","
        _refuse_credentials(key, value)
    secret = _is_secret(key)
    addresses: list[Address] = []
    for item in items:
        if isinstance(item, str):
            _refuse_credentials(key, item)
            if not item.strip():
                continue  # "h1:p1,h2:p2," from an environment variable
            host, port = _split_address(key, item.strip(), default_port)
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            host, port = item
        elif hasattr(item, "host") and hasattr(item, "port"):  # redis-py's ClusterNode
            host, port = item.host, item.port
        else:
            raise TypeError(
                f'{key} has an entry {_shown(key, item)} that is neither "host:port"'
                " nor a (host, port) pair"
            )
        if not isinstance(host, str) or not host:
            raise ValueError(f"{key} has an address whose host is {_shown(key, host)}")
        _refuse_credentials(key, host)
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


def _refuse_credentials(key: str, text: str) -> None:
    """Raise where the addresses of ``key`` (or one's host) have an ``@`` or a ``:/``: a
    URL, or a user name and password, which are never shown."""
    if _may_hold_credentials(text):
        prefix = key.rsplit("_", 1)[0]  # PREFIX_SENTINELS, PREFIX_CLUSTER
        raise ValueError(
            f"{key} must be host:port addresses, not URLs or user:password@host (the value"
            f" is not shown): give a URL as {prefix}_URL, a password as {prefix}_PASSWORD"
        )


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
        raise ValueError(f"{key} has an IPv6 address without brackets: write it as [address]:port")
    return host, port


def _unix_socket_host(host: Any) -> str | None:
    """The socket path when ``PREFIX_HOST`` holds one (``/path/x.sock``, ``file:///path/x.sock``)."""
    if not isinstance(host, str):
        return None
    if host.startswith("file://"):
        return unquote(host[len("file://") :].partition("?")[0])
    return host if host.startswith("/") else None
