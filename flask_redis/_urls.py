"""Read the URLs of ``PREFIX_URL`` (``redis://``, ``rediss://``, ``unix://``,
``redis+sentinel://``, ``redis+cluster://``, and the same with ``valkey`` for ``redis``) and
the ``host:port`` addresses of the sentinels and startup nodes, into what they decide, and
let it win over the separate keys; no message shows any part of them. The schemes and the
topology and client library each asks for are known here only."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, unquote_plus

from ._checks import MAX_DB, checked_value, is_secret, may_hold_credentials, shown
from ._config_warnings import IgnoredKeyWarning, warn_at_app
from ._topology import CLUSTER, REDIS_PY, SENTINEL, VALKEY_PY

#: Schemes of one server over TCP, the one of TLS last: their ``+sentinel`` and
#: ``+cluster`` forms name the other topologies.
_SERVER_SCHEMES = {REDIS_PY: ("redis", "rediss"), VALKEY_PY: ("valkey", "valkeys")}
#: Schemes that turn TLS on, in all their forms.
_TLS_SCHEMES = frozenset(
    f"{tls}{form}" for _, tls in _SERVER_SCHEMES.values() for form in ("", "+sentinel", "+cluster")
)
#: URL schemes of Sentinel and Cluster, and the mode each asks for.
_TOPOLOGY_SCHEMES = {
    f"{scheme}+{mode}": mode
    for schemes in _SERVER_SCHEMES.values()
    for scheme in schemes
    for mode in (SENTINEL, CLUSTER)
}
#: The port of an address given without one.
_DEFAULT_PORTS = {SENTINEL: 26379, CLUSTER: 6379}
#: The schemes of the URLs read, and how messages list them.
_ONE_SERVER_SCHEMES = tuple(scheme for pair in _SERVER_SCHEMES.values() for scheme in pair)
_SCHEMES = (*_ONE_SERVER_SCHEMES, "unix", *_TOPOLOGY_SCHEMES)
_SCHEMES_TEXT = (
    "redis://, rediss://, unix://, valkey://, valkeys://, or redis+sentinel://,"
    " redis+cluster:// and their rediss+, valkey+ and valkeys+ forms"
)
#: An address of a sentinel or a cluster node: ``(host, port)``.
Address = tuple[str, int]


def _scheme(url: Any) -> str:
    return url.partition("://")[0].lower() if isinstance(url, str) else ""


def url_topology(url: Any) -> str | None:
    """The topology that the scheme of ``url`` asks for: :data:`~._topology.SENTINEL` or
    :data:`~._topology.CLUSTER`; ``None`` for a URL of one server, or no URL."""
    return _TOPOLOGY_SCHEMES.get(_scheme(url))


def url_library(url: Any) -> str:
    """The client library whose class a URL picks when no class is set:
    :data:`~._topology.VALKEY_PY` for ``valkey://``, ``valkeys://`` and their forms, else
    :data:`~._topology.REDIS_PY` (also without a URL)."""
    base = _scheme(url).partition("+")[0]
    return VALKEY_PY if base in _SERVER_SCHEMES[VALKEY_PY] else REDIS_PY


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
        raise TypeError(f"{key} must be a string, got {shown(key, url)}")
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
#: What a URL decides even when it leaves it out (then the default: 1.0 overwrote the
#: keys with the URL's host, port, user name, password and database, or their defaults).
_URL_DEFAULTS: dict[str, Any] = {
    "host": "localhost", "port": 6379, "db": 0, "username": None, "password": None,
}  # fmt: skip


@dataclass
class UrlSettings:
    """What the URL of ``key`` decides: the parts of its address, its query arguments and,
    for Sentinel and Cluster, its addresses and service name."""

    key: str
    #: Per part of the address (``host``, ``port``, ``db``, ...), its value, or a marker
    #: of one left out (then its default applies) or not used by this kind of URL.
    owned: dict[str, Any]
    #: The arguments of its query string, converted and checked.
    query: dict[str, Any]
    #: Sentinel: the sentinels; Cluster: the startup nodes.
    addresses: list[Address] = field(default_factory=list)
    #: Sentinel: the name of the service, from the path, if given.
    service: str | None = None

    def apply(self, kwargs: dict[str, Any], sources: dict[str, str]) -> None:
        """Let what the URL decides win over the separate keys, in ``kwargs`` (and the key
        of each argument in ``sources``): the parts of its address (their defaults when
        left out), then its query arguments. A separate key that gives something else is
        ignored with an :class:`~._config_warnings.IgnoredKeyWarning` naming it."""
        for name, value in self.owned.items():
            if name in kwargs:
                self._override(name, value, kwargs.pop(name), sources.pop(name))
            if value is not _LEFT_OUT and value is not _NOT_USED:
                kwargs[name], sources[name] = value, self.key
        for name, value in self.query.items():
            if name in kwargs and kwargs[name] != value:
                warn_at_app(
                    f"{sources[name]} is ignored: {self.key} sets {name!r} as a query"
                    " argument, and the URL wins",
                    IgnoredKeyWarning,
                )
            kwargs[name], sources[name] = value, self.key

    def _override(self, name: str, value: Any, given: Any, key: str) -> None:
        """Warn that the URL's ``value`` of ``name`` wins over ``given``, of ``key``."""
        said = _URL_DEFAULTS.get(name) if value is _LEFT_OUT else value
        if value is _NOT_USED:
            transport = "a unix socket" if name in ("host", "port") else "TCP"
            warn_at_app(
                f"{key} is ignored: {self.key} is set, and connects over {transport}",
                IgnoredKeyWarning,
            )
        elif (given or None) != (said or None):  # "" and None are both no password
            what = _WHAT[name]
            warn_at_app(
                f"{key} is ignored: {self.key} is set, and decides the {what} also when it"
                " leaves it out (then the default applies), as in Flask-And-Redis 1.0."
                f" Give the {what} in {self.key}, or remove {key}",
                IgnoredKeyWarning,
            )


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
        value = checked_value(
            f"{key} (query argument {name!r})", name, _unquote(key, raw_value, True), library
        )
        kwargs[name] = value
    return kwargs


def _database(key: str, segment: str) -> int:
    """The database number that a path segment of a URL gives."""
    text = _unquote(key, segment)
    if not re.fullmatch("[0-9]+", text) or int(text) > MAX_DB:
        raise ValueError(f"{key} must give the database as a number from 0 to {MAX_DB} in its path")
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


def server_url(
    key: str, text: Any, accepted: Collection[str], taker: str, library: str = REDIS_PY
) -> UrlSettings:
    """Read the ``redis://``, ``rediss://``, ``valkey://``, ``valkeys://`` or ``unix://`` URL
    ``text`` of ``key``: what its address decides and its query arguments, each of
    ``accepted``, the arguments of ``taker`` (for messages), a client of ``library``."""
    url = _split_url(key, text)
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
    return UrlSettings(key, owned, query)


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


def topology_url(
    key: str,
    text: Any,
    mode: str,
    accepted: Collection[str],
    taker: str,
    library: str = REDIS_PY,
) -> UrlSettings:
    """Read the ``redis+sentinel://`` or ``redis+cluster://`` URL ``text`` of ``key`` (or a
    ``rediss+``, ``valkey+`` or ``valkeys+`` one) for a client of ``mode``: its addresses,
    its service name (Sentinel), what its address decides and its query arguments, as
    :func:`server_url` reads them."""
    url = _split_url(key, text)
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
    found = addresses(key, url.hosts, mode)
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
    return UrlSettings(key, owned, query, found, service)


def addresses(key: str, value: Any, mode: str) -> list[Address]:
    """``(host, port)`` pairs from ``"h1:p1,h2:p2"``, or from a list of ``"host:port"``
    strings, ``(host, port)`` pairs or objects with ``host`` and ``port`` attributes; an
    address without a port has the default port of ``mode``."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise TypeError(
            f'{key} must be a list of (host, port) pairs or a string "host:port,host:port",'
            f" got {shown(key, value)}"
        )
    if isinstance(value, str):  # as a whole: a password may have a ","
        _refuse_credentials(key, value)
    found: list[Address] = []
    for item in items:
        if isinstance(item, str):
            _refuse_credentials(key, item)
            if not item.strip():
                continue  # "h1:p1,h2:p2," from an environment variable
        found.append(_address(key, item, _DEFAULT_PORTS[mode]))
    if not found:
        raise ValueError(f"{key} must name at least one host:port address")
    return found


def _address(key: str, item: Any, default_port: int) -> Address:
    """One address of :func:`addresses`: ``"host:port"``, a pair, or a ``ClusterNode``."""
    if isinstance(item, str):
        host, port = _split_address(key, item.strip(), default_port)
    elif isinstance(item, (list, tuple)) and len(item) == 2:
        host, port = item
    elif hasattr(item, "host") and hasattr(item, "port"):  # redis-py's ClusterNode
        host, port = item.host, item.port
    else:
        raise TypeError(
            f'{key} has an entry {shown(key, item)} that is neither "host:port"'
            " nor a (host, port) pair"
        )
    if not isinstance(host, str) or not host:
        raise ValueError(f"{key} has an address whose host is {shown(key, host)}")
    _refuse_credentials(key, host)
    return host, _port(key, host, port)


def _port(key: str, host: str, port: Any) -> int:
    """The port of an address of ``host``: an integer from 1 to 65535, or its digits."""
    secret = is_secret(key)
    label = key if secret else f"{key} (port of {host})"
    if isinstance(port, str):
        if not re.fullmatch("[0-9]+", port.strip()):
            raise ValueError(f"{label} must be an integer, got {shown(label, port)}")
        port = int(port)  # ASCII digits, as the check of text integers takes them
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(
            f"{key} has an address whose port is not a number from 1 to 65535"
            + ("" if secret else f": {host}:{shown(key, port)}")
        )
    return port


def _refuse_credentials(key: str, text: str) -> None:
    """Raise where the addresses of ``key`` (or one's host) have an ``@`` or a ``:/``: a
    URL, or a user name and password, which are never shown."""
    if may_hold_credentials(text):
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
            raise ValueError(f"{key} has an address that is not host:port: {shown(key, text)}")
        return host, rest[1:] if rest else default_port
    host, colon, port = text.rpartition(":")
    if not colon:
        return text, default_port
    if ":" in host:
        raise ValueError(f"{key} has an IPv6 address without brackets: write it as [address]:port")
    return host, port


def unix_socket_host(host: Any) -> str | None:
    """The socket path when ``PREFIX_HOST`` holds one (``/path/x.sock``, ``file:///path/x.sock``)."""
    if not isinstance(host, str):
        return None
    if host.startswith("file://"):
        return unquote(host[len("file://") :].partition("?")[0])
    return host if host.startswith("/") else None
