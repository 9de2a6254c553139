"""Addresses and texts as the reports may show them: without the passwords of a prefix,
or the user names and passwords in its hosts and socket paths.

An address is built from a parsed host and port, with any user name and password as
``***``; a text of the client library or of a server that holds a password is withheld
as a whole, never scrubbed in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from .library import library_errors, library_of_client

#: A URL's scheme at the start of a host or a socket path (``redis://``).
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")

#: What the reports show instead of a text of the client library or of a server that
#: holds a password.
_WITHHELD = "(not shown: it holds the text of a password)"


def _split_userinfo(location: str) -> tuple[str, str | None, str]:
    """A host or a socket path as what comes before a user name and password in it (a URL's
    scheme), them, and what follows their ``@``: ``"redis://:pw@10.0.0.1"`` gives
    ``("redis://", ":pw", "10.0.0.1")``. One without ``@``, and an absolute socket path,
    holds none: ``("", None, location)``."""
    if "@" not in location or location.startswith("/"):
        return "", None, location
    scheme = _SCHEME.match(location)
    start = scheme.end() if scheme else 0
    userinfo, _, rest = location[start:].rpartition("@")
    return location[:start], userinfo, rest


def _masked(location: Any) -> tuple[str, str]:
    """A host or a socket path as the reports show it, in two parts: what comes before the
    host or path, with ``***@`` for a user name and password; and the host or path."""
    head, userinfo, rest = _split_userinfo(str(location))
    return (head if userinfo is None else f"{head}***@"), rest


def host_address(host: Any, port: Any) -> str:
    """``host:port`` or ``[ipv6]:port``; a user name and password in ``host`` as ``***``."""
    head, name = _masked(host)
    return f"{head}[{name}]:{port}" if ":" in name else f"{head}{name}:{port}"


def pool_address(kwargs: dict[str, Any]) -> str:
    """The address of a pool's server, from its connection arguments: ``host:port``, or
    ``unix:/path`` for a socket; a user name and password in either as ``***``."""
    path = kwargs.get("path")
    if path is not None:
        return "unix:" + "".join(_masked(path))
    return host_address(kwargs.get("host", "localhost"), kwargs.get("port", 6379))


@dataclass
class Secrets:
    """What the reports of a prefix must not show: its passwords, and the user names and
    passwords in its hosts and socket paths."""

    #: Each of them, in each form that a message may quote it in.
    forms: set[str] = field(default_factory=set)
    #: Each host or socket path that holds a user name and password, and how it is shown.
    locations: dict[str, str] = field(default_factory=dict)

    def add(self, kwargs: dict[str, Any] | None) -> None:
        """Add the password, the host and the socket path of connection arguments."""
        kwargs = kwargs or {}
        self.add_password(kwargs.get("password"))
        for name in ("host", "path"):
            if kwargs.get(name) is not None:
                self.add_location(kwargs[name])

    def add_password(self, password: Any) -> None:
        if password:  # "" and None are no password
            text = (
                password.decode(errors="replace") if isinstance(password, bytes) else str(password)
            )
            self.forms |= {text, quote(text, safe=""), unquote(text), repr(text)[1:-1]} - {""}

    def add_location(self, location: Any) -> None:
        text = str(location)
        head, userinfo, rest = _split_userinfo(text)
        if userinfo is not None:
            self.locations[text] = f"{head}***@{rest}"
            self.add_password(userinfo)
            self.add_password(userinfo.partition(":")[2])

    def text(self, text: str) -> str | None:
        """A text of the client library or of a server, with each location that holds a
        password as it is shown; ``None`` if it still holds a password, in any form. It is
        not replaced by ``***`` there, which shows where it was and so what it is (``"1"``
        in ``127.0.0.1``, ``"password"`` in ``"invalid username-password pair"``)."""
        for location in sorted(self.locations, key=len, reverse=True):
            text = text.replace(location, self.locations[location])
        return None if any(form in text for form in self.forms) else text

    def error(self, error: BaseException) -> str:
        """``"ClassName: message"``, as the caller of the command would have seen it; the
        class and :data:`_WITHHELD` if the message holds a password."""
        name = type(error).__name__
        message = self.text(str(error))
        if message is None:
            return f"{name} {_WITHHELD}"
        return f"{name}: {message}" if message else name

    def failure(self, error: BaseException) -> str:
        """What a server that did not answer as it should gets in a report: the library's
        error, or the client's own failure on what the server sent (a server that answers
        ``+OK`` to ``HELLO`` breaks the library's handshake with an ``AttributeError``)."""
        if isinstance(error, library_errors(OSError)):
            return self.error(error)
        return f"the client failed on the server's reply: {self.error(error)}"

    def values(self, value: Any) -> Any:
        """``value``, of a server's reply, with each text that holds a password as
        :data:`_WITHHELD`; in dicts too."""
        if isinstance(value, dict):
            return {key: self.values(item) for key, item in value.items()}
        if isinstance(value, str):
            shown = self.text(value)
            return _WITHHELD if shown is None else shown
        return value


def secrets_of(client: Any) -> Secrets:
    """The passwords, hosts and socket paths that an app's client was given, wherever
    redis-py keeps them: of its server, its sentinels, its cluster's nodes."""
    secrets = Secrets()
    pool = getattr(client, "connection_pool", None)
    secrets.add(getattr(pool, "connection_kwargs", None))
    manager = getattr(pool, "sentinel_manager", None)
    if manager is not None:
        secrets.add(manager.connection_kwargs)
        secrets.add(manager.sentinel_kwargs)
        for sentinel in manager.sentinels:
            secrets.add(sentinel.connection_pool.connection_kwargs)
    library = library_of_client(client)
    if isinstance(client, library.cluster):
        nodes = client.nodes_manager
        secrets.add(getattr(nodes, "connection_kwargs", None))
        for node in [*client.get_nodes(), *getattr(nodes, "startup_nodes", {}).values()]:
            secrets.add_location(node.host)
        for _node, pool in library.node_pools(client.get_nodes()):
            secrets.add(pool.connection_kwargs)
    return secrets
