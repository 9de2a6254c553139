"""The ``flask redis`` commands: whether the server of each config prefix answers, and
what it is.

Flask finds the group through the package's ``flask.commands`` entry point, so
``flask --app myapp redis ping`` works without the extension touching ``app.cli``.

The commands talk to the servers through connections of their own, made from each
prefix's settings with no retries, and closed when they are done; with the classes of the
prefix's client library, redis-py or valkey-py. Their round trips are none of the app's:
the metrics, the recorded calls and the slow log do not see them, and the app's connection
pools are left as they were. Each prefix is checked on a thread of its own, all at once,
and the command stops waiting at its deadline, ``--timeout`` seconds after it started.

What they print is built from the parsed hosts and ports, never from a value that may hold
a password; a text of the client library or of a server that holds one is not shown.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import monotonic, perf_counter
from typing import Any
from urllib.parse import quote, unquote

import click
import redis
from flask import current_app
from flask.cli import AppGroup

from .._commands import printable
from .._config import ClientLibrary, library_of
from .._pools import connection_counts
from .._topology import CLUSTER, SENTINEL, SERVER

#: Seconds that a command may take, unless ``--timeout`` says otherwise.
DEFAULT_TIMEOUT = 5.0
#: The most ``--timeout`` may be: an hour.
MAX_TIMEOUT = 3600.0

#: The name of each topology in the output.
_MODE_NAMES = {SERVER: "standalone", SENTINEL: "sentinel", CLUSTER: "cluster"}

#: Arguments that redis-py's pools, Sentinel and Cluster add to a pool's connection
#: arguments themselves, bound to that pool or client: a pool of the commands' own makes
#: its own or does without.
_BOUND_ARGUMENTS = frozenset({
    "connection_pool", "redis_connect_func", "valkey_connect_func", "himport_registry",
    "maint_notifications_pool_handler", "oss_cluster_maint_notifications_handler",
    "orig_host_address", "orig_socket_timeout", "orig_socket_connect_timeout",
})  # fmt: skip

#: What a pool's ``max_connections`` is when nothing limits it (redis-py 5 to 7).
_NO_LIMIT = 2**31

Report = dict[str, Any]


def _check_installed() -> None:
    """Stop with the repair if the package lost its ``__init__.py``: flask-redis installs
    the module ``flask_redis`` too, and uninstalling it deletes the file, after which
    ``import flask_redis`` finds a namespace package with nothing in it. The commands are
    still found, through the entry point, and can say so."""
    package = sys.modules.get(__name__.partition(".")[0])  # flask_redis, not flask_redis._cli
    if package is not None and getattr(package, "__file__", None) is None:
        raise click.ClickException(
            "flask_redis/__init__.py is missing: uninstalling flask-redis, which installs"
            " the module flask_redis too, deleted it. Repair Flask-And-Redis with: pip"
            " install --force-reinstall --no-deps Flask-And-Redis"
        )


redis_group = AppGroup(
    "redis",
    help="Check the Redis servers of the app's config prefixes (Flask-And-Redis).",
    short_help="Check the app's Redis servers.",
    callback=_check_installed,
)


# -- Reaching the servers of a prefix -------------------------------------------------------


@dataclass
class _Server:
    """A server that a command talks to, through a client of the command's own."""

    #: ``"server"`` (standalone), ``"master"`` (Sentinel) or ``"primary"`` (Cluster).
    role: str
    #: ``host:port``, ``[ipv6]:port`` or ``unix:/path``.
    address: str
    #: A client of the prefix's library (``redis.Redis`` or ``valkey.Valkey``).
    client: Any


@dataclass
class _Prefix:
    """A config prefix: how to reach its servers, and what the report says of it."""

    prefix: str
    mode: str
    #: The database of its client; ``None`` for a cluster, or an unknown one.
    db: int | None = None
    tls: bool = False
    servers: list[_Server] = field(default_factory=list)
    #: Sentinel: the service, and the addresses of its sentinels.
    service: str | None = None
    sentinels: list[str] = field(default_factory=list)
    #: Sentinel and Cluster: the replicas, listed but not asked.
    replicas: list[str] = field(default_factory=list)
    #: Why the servers could not be found (no master from the sentinels...), if so.
    error: str | None = None

    def head(self) -> Report:
        """The report's first fields, the same for every command."""
        return {
            "prefix": self.prefix,
            "mode": _MODE_NAMES[self.mode],
            "ok": True,
            "error": self.error,
            "db": self.db,
            "tls": self.tls,
            "service": self.service,
            "sentinels": self.sentinels,
            "replicas": self.replicas,
        }


def _library(client: Any) -> ClientLibrary:
    """The library of an app's client: redis-py's or valkey-py's."""
    return library_of(type(client))


def _module(library: ClientLibrary) -> Any:
    """The package of ``library``: :mod:`redis`, or ``valkey``."""
    return importlib.import_module(library.name)


def _errors(*others: type[BaseException]) -> tuple[type[BaseException], ...]:
    """The base classes of the errors of the client libraries imported, and ``others``."""
    found: list[type[BaseException]] = [redis.RedisError, *others]
    valkey = sys.modules.get("valkey")
    if valkey is not None:  # a prefix of valkey-py's: its errors are ValkeyError's
        found.append(valkey.ValkeyError)
    return tuple(found)


def _mode(client: Any) -> str:
    """The topology of an app's client, as :func:`~.extension._connect` made it."""
    library = _library(client)
    if isinstance(client, library.cluster):
        return CLUSTER
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, _module(library).sentinel.SentinelConnectionPool):
        return SENTINEL
    return SERVER


def _bounded(timeout: float, library: ClientLibrary) -> dict[str, Any]:
    """Connection arguments that give up after ``timeout`` seconds, and never retry."""
    module = _module(library)
    importlib.import_module(f"{library.name}.backoff")
    importlib.import_module(f"{library.name}.retry")
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": module.retry.Retry(module.backoff.NoBackoff(), 0),
    }


# -- Where the servers are, without the passwords ---------------------------------------------

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


def _address(host: Any, port: Any) -> str:
    """``host:port`` or ``[ipv6]:port``; a user name and password in ``host`` as ``***``."""
    head, name = _masked(host)
    return f"{head}[{name}]:{port}" if ":" in name else f"{head}{name}:{port}"


def _pool_address(kwargs: dict[str, Any]) -> str:
    path = kwargs.get("path")
    if path is not None:
        return "unix:" + "".join(_masked(path))
    return _address(kwargs.get("host", "localhost"), kwargs.get("port", 6379))


@dataclass
class _Secrets:
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
        if isinstance(error, _errors(OSError)):
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


def _secrets_of(client: Any) -> _Secrets:
    """The passwords, hosts and socket paths that an app's client was given, wherever
    redis-py keeps them: of its server, its sentinels, its cluster's nodes."""
    secrets = _Secrets()
    pool = getattr(client, "connection_pool", None)
    secrets.add(getattr(pool, "connection_kwargs", None))
    manager = getattr(pool, "sentinel_manager", None)
    if manager is not None:
        secrets.add(manager.connection_kwargs)
        secrets.add(manager.sentinel_kwargs)
        for sentinel in manager.sentinels:
            secrets.add(sentinel.connection_pool.connection_kwargs)
    library = _library(client)
    if isinstance(client, library.cluster):
        nodes = client.nodes_manager
        secrets.add(getattr(nodes, "connection_kwargs", None))
        for node in [*client.get_nodes(), *getattr(nodes, "startup_nodes", {}).values()]:
            secrets.add_location(node.host)
        for _node, pool in library.node_pools(client.get_nodes()):
            secrets.add(pool.connection_kwargs)
    return secrets


# -- Reaching the servers, on connections of the command's own ---------------------------------


def _is_tls(connection_class: Any, library: ClientLibrary) -> bool:
    return isinstance(connection_class, type) and issubclass(
        connection_class, _module(library).connection.SSLConnection
    )


def _own_client(pool: Any, check: _Check, library: ClientLibrary) -> Any:
    """A plain client of ``library`` with a pool of its own that connects as ``pool`` does,
    but within the check's timeout; its connections are closed with the check's."""
    kwargs = {
        name: value
        for name, value in pool.connection_kwargs.items()
        if name not in _BOUND_ARGUMENTS
    }
    kwargs.update(_bounded(check.timeout, library))
    own = _module(library).ConnectionPool(connection_class=pool.connection_class, **kwargs)
    check.closer.add(own.disconnect)
    return library.client(connection_pool=own)


def _reach(check: _Check) -> _Prefix:
    """How to reach the servers of the check's prefix: one server, the master that the
    sentinels report, or each primary that the cluster client knows."""
    prefix, client = check.prefix, check.client
    mode = _mode(client)
    library = _library(client)
    if mode == CLUSTER:
        return _reach_cluster(check, library)
    if mode == SENTINEL:
        return _reach_sentinel(check, client.connection_pool, library)
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return _Prefix(
            prefix,
            mode,
            error=f"its client, of class {_class_name(type(client))}, has no connection pool"
            " to take the server's address from",
        )
    kwargs = pool.connection_kwargs
    own = _own_client(pool, check, library)
    server = _Server("server", _pool_address(kwargs), own)
    return _Prefix(
        prefix,
        mode,
        db=int(kwargs.get("db") or 0),
        tls=_is_tls(pool.connection_class, library),
        servers=[server],
    )


def _reach_sentinel(check: _Check, pool: Any, library: ClientLibrary) -> _Prefix:
    """The master of a Sentinel prefix, asked of its sentinels; and its replicas. Each
    sentinel is given an equal share of the timeout, and one is left for the master."""
    manager = pool.sentinel_manager
    service = str(pool.service_name)
    addresses = [
        (each.connection_pool.connection_kwargs.get("host", "localhost"),
         each.connection_pool.connection_kwargs.get("port", 26379))
        for each in manager.sentinels
    ]  # fmt: skip
    kwargs = {**manager.connection_kwargs, **_bounded(check.timeout, library)}
    share = _bounded(check.timeout / (len(addresses) + 1), library)
    sentinel = library.sentinel(
        addresses,
        min_other_sentinels=manager.min_other_sentinels,
        sentinel_kwargs={**manager.sentinel_kwargs, **share},
        **kwargs,
    )
    for each in sentinel.sentinels:
        check.closer.add(each.connection_pool.disconnect)
    found = _Prefix(
        check.prefix,
        SENTINEL,
        db=int(kwargs.get("db") or 0),
        tls=bool(kwargs.get("ssl")),
        service=service,
        sentinels=[_address(host, port) for host, port in addresses],
    )
    master_address = _ask_sentinels(check, sentinel, found, library)
    if master_address is None:
        return found
    host, port = master_address
    replicas = sentinel.discover_slaves(service)  # a sentinel that fails is skipped
    master = sentinel.master_for(service)
    check.closer.add(master.connection_pool.disconnect)
    found.servers = [_Server("master", _address(host, port), master)]
    found.replicas = [_address(*each) for each in replicas]
    return found


def _ask_sentinels(
    check: _Check, sentinel: Any, found: _Prefix, library: ClientLibrary
) -> tuple[Any, Any] | None:
    """The address of the master that the first sentinel of ``sentinel`` with a valid
    answer reports, as the library's ``discover_master()`` finds it; else ``None``, with
    ``found.error`` saying what each sentinel answered (the library's error lists the
    repr of each sentinel's client)."""
    service = found.service
    answers = []
    for address, client in zip(found.sentinels, sentinel.sentinels):
        check.on_time()
        try:
            state = client.sentinel_masters().get(service)
        except _errors(OSError) as error:
            answers.append(f"{address} {check.secrets.error(error)}")
            if isinstance(error, _module(library).ResponseError):
                answers[-1] += " (is it a sentinel?)"
            continue
        if state is None:
            answers.append(f"{address} does not monitor it")
        elif not sentinel.check_master_state(state, service):
            answers.append(f"{address} reports it down, or too few other sentinels")
        else:
            return state["ip"], state["port"]
    found.error = f"no sentinel reports a master of service {service!r}: {'; '.join(answers)}"
    return None


def _reach_cluster(check: _Check, library: ClientLibrary) -> _Prefix:
    """Each primary that a cluster client knows, and the replicas."""
    client = check.client
    found = _Prefix(check.prefix, CLUSTER)
    for node, pool in library.node_pools(client.get_primaries()):
        found.tls = found.tls or _is_tls(pool.connection_class, library)
        own = _own_client(pool, check, library)
        found.servers.append(_Server("primary", _address(node.host, node.port), own))
    found.replicas = [_address(node.host, node.port) for node in client.get_replicas()]
    if not found.servers:
        found.error = "the cluster client knows no primary node"
    return found


# -- Checking the prefixes, all at once, within the deadline -----------------------------------


class _Closer:
    """Closes the connections of one check: when the check is done, and when the command
    stops waiting for it, which ends any read it waits on. Thread-safe; closing again
    closes what was opened since (each pool's ``disconnect()``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closes: list[Callable[[], object]] = []

    def add(self, close: Callable[[], object]) -> None:
        with self._lock:
            self._closes.append(close)

    def close(self) -> None:
        with self._lock:
            closes = list(self._closes)
        for close in reversed(closes):
            close()


class _Late(Exception):
    """Raised in a check that goes on past the deadline: the command reports what it did
    not do as timed out, and its thread ends."""


@dataclass(frozen=True)
class _Command:
    """What a command asks of each server of a prefix, and what else it reports."""

    #: The fields of a server's report that the command fills, as they are for a server
    #: that did not answer.
    unanswered: Report
    #: Asks a server of a prefix; gives those fields. Raises what the client raises.
    ask: Callable[[_Check, _Prefix, _Server], Report]
    #: Fields that it adds to a prefix's report from the app's client, with no round
    #: trip: ``(prefix, client) -> fields``. Called on the command's thread.
    extra: Callable[[str, Any], Report] | None = None


def _late(timeout: float) -> str:
    return f"TimeoutError: not done within the --timeout of {timeout:g} s"


class _Check(threading.Thread):
    """The check of one prefix, on a thread of its own, so that the command can stop
    waiting for it at the deadline whatever its servers do: connect slowly, trickle their
    replies, resolve no name."""

    def __init__(
        self, prefix: str, client: Any, command: _Command, timeout: float, deadline: float
    ) -> None:
        super().__init__(name=f"flask-redis-check-{prefix}", daemon=True)
        self.prefix, self.client, self.command = prefix, client, command
        #: The ``--timeout``, and the :func:`~time.monotonic` time it ends at.
        self.timeout, self.deadline = timeout, deadline
        self.secrets = _secrets_of(client)
        self.closer = _Closer()
        self._lock = threading.Lock()
        self._found: _Prefix | None = None
        self._servers: list[Report] = []
        self._failure: Exception | None = None
        self._done = False

    def on_time(self) -> None:
        """Raise :class:`_Late` once the deadline has passed."""
        if monotonic() >= self.deadline:
            raise _Late

    def run(self) -> None:
        try:
            try:
                found = _reach(self)
            except _errors(TypeError, ValueError) as error:
                # Settings that redis-py refuses only when it connects.
                found = _Prefix(self.prefix, _mode(self.client), error=self.secrets.error(error))
            with self._lock:
                self._found = found
            for server in found.servers:
                self.on_time()
                report = _server_report(self, found, server)
                with self._lock:
                    self._servers.append(report)
        except _Late:
            pass  # the command reports what is not done
        except Exception as error:  # a failure of the command's own: the command raises it
            self._failure = error
        finally:
            self.closer.close()
            with self._lock:
                self._done = True

    def report(self) -> Report:
        """The prefix's report, once the check is done or the deadline has passed: what is
        not done by then is down, with a ``TimeoutError``."""
        self.join(max(self.deadline - monotonic(), 0.0))
        with self._lock:
            done, found, servers = self._done, self._found, list(self._servers)
        if not done:
            self.closer.close()  # ends the read that the thread waits on, if any
        elif self._failure is not None:
            raise self._failure
        late = _late(self.timeout)
        if found is None:
            found = _Prefix(self.prefix, _mode(self.client), error=late)
        report = found.head()
        unanswered = found.servers[len(servers) :]
        report["servers"] = servers + [_server_head(s, self.command, late) for s in unanswered]
        if self.command.extra is not None:
            report.update(self.command.extra(self.prefix, self.client))
        report["ok"] = report["error"] is None and all(s["ok"] for s in report["servers"])
        return report


def _server_head(server: _Server, command: _Command, error: str | None) -> Report:
    """The report of a server that did not answer (yet)."""
    return {"role": server.role, "address": server.address, "ok": False, "error": error,
            **command.unanswered}  # fmt: skip


def _server_report(check: _Check, found: _Prefix, server: _Server) -> Report:
    """Ask ``server`` what the check's command asks; its report."""
    report = _server_head(server, check.command, None)
    try:
        report.update(check.command.ask(check, found, server))
    except _Late:
        raise
    except Exception as error:  # the library's, or its failure on a reply it did not expect
        report["error"] = check.secrets.failure(error)
        return report
    report["ok"] = True
    return report


def _run(names: Sequence[str], timeout: float, command: _Command) -> list[Report]:
    """Check the chosen prefixes, all at once, each on a thread of its own; their reports,
    in order, when all are done or ``timeout`` seconds have passed, whichever is first."""
    deadline = monotonic() + timeout
    chosen = _chosen(names)
    clients = current_app.extensions["redis"]
    checks = [_Check(prefix, clients[prefix], command, timeout, deadline) for prefix in chosen]
    for check in checks:
        check.start()
    return [check.report() for check in checks]


# -- What is shown ----------------------------------------------------------------------------


def _class_name(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _say(line: str, err: bool = False) -> None:
    """Write one line: a character that a terminal would act on, or that would hide what
    follows (escapes, newlines, bidirectional overrides), is written as its escape."""
    click.echo(printable(line), err=err)


def _milliseconds(seconds: float) -> float:
    return round(seconds * 1000, 3)


# -- Choosing the prefixes --------------------------------------------------------------------


def _chosen(names: Sequence[str]) -> list[str]:
    """The prefixes named (case-insensitively when that is unambiguous), else all of the
    app's, in the order the app set them up."""
    app = current_app
    prefixes = list(app.extensions.get("redis", {}))
    if not prefixes:
        raise click.ClickException(
            f"No Redis client is set up on app {app.name!r}, so there is nothing to check:"
            " set one up with Redis(app) or Redis().init_app(app)"
        )
    chosen: list[str] = []
    for name in names:
        found = name if name in prefixes else None
        if found is None:
            folded = [prefix for prefix in prefixes if prefix.casefold() == name.casefold()]
            found = folded[0] if len(folded) == 1 else None
        if found is None:
            raise click.BadParameter(
                f"no config prefix {name!r} is set up on app {app.name!r}; its prefixes:"
                f" {', '.join(prefixes)}",
                param_hint="'[PREFIX]...'",
            )
        if found not in chosen:
            chosen.append(found)
    return chosen or prefixes


def _finish(reports: list[Report], as_json: bool, show: Callable[[Report], None]) -> None:
    """Write the reports; exit with status 1 if a prefix is not ok."""
    if as_json:
        click.echo(json.dumps({"ok": all(r["ok"] for r in reports), "prefixes": reports},
                              indent=2))  # fmt: skip
    else:
        for report in reports:
            show(report)
    down = [report["prefix"] for report in reports if not report["ok"]]
    if down:
        if not as_json:  # the JSON says it; stdout stays JSON only
            _say(f"Error: not ok: {', '.join(down)}", err=True)
        raise click.exceptions.Exit(1)


def _header(report: Report) -> str:
    details = [report["mode"]]
    if report["service"] is not None:
        details.append(f"service {report['service']}")
    if report["db"] is not None:
        details.append(f"db {report['db']}")
    if report["tls"]:
        details.append("TLS")
    return f"{report['prefix']} ({', '.join(details)}): {'ok' if report['ok'] else 'DOWN'}"


def _show_topology(report: Report) -> None:
    if report["error"] is not None:
        _say(f"  error: {report['error']}")
    if report["sentinels"]:
        _say(f"  sentinels: {', '.join(report['sentinels'])}")


def _show_replicas(report: Report) -> None:
    for address in report["replicas"]:
        _say(f"  {'replica':<8} {address}  (not asked)")


# -- flask redis ping ---------------------------------------------------------------------------

_prefixes_argument = click.argument("prefixes", metavar="[PREFIX]...", nargs=-1)
_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Write the report as JSON, for scripts."
)


class _Seconds(click.FloatRange):
    """A number of seconds above 0 and :data:`MAX_TIMEOUT` at most; not NaN, which no
    range refuses."""

    def __init__(self) -> None:
        super().__init__(min=0, max=MAX_TIMEOUT, min_open=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if math.isnan(seconds):
            self.fail(f"{value!r} is not a number of seconds.", param, ctx)
        return seconds


_timeout_option = click.option(
    "--timeout",
    type=_Seconds(),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds that the command may take at most, whatever the servers do; a server not"
    f" checked by then is down. At most {MAX_TIMEOUT:g}.",
)


@redis_group.command("ping")  # type: ignore[untyped-decorator,no-untyped-call,unused-ignore]
@_prefixes_argument
@click.option(
    "--count",
    type=click.IntRange(1, 1000),
    default=3,
    show_default=True,
    help="PINGs to time on each server.",
)
@_timeout_option
@_json_option
def ping_command(prefixes: tuple[str, ...], count: int, timeout: float, as_json: bool) -> None:
    """Time PINGs to the server of each prefix.

    The prefixes named, else all of the app's. Shows the round-trip time, the server's
    address and the topology: for Sentinel, the master that the sentinels report; for a
    Cluster, each primary node. Exits with status 1 if a server does not answer.
    """

    command = _Command(
        {"pings": 0, "ms": None}, lambda check, found, server: _ping(check, server, count)
    )
    _finish(_run(prefixes, timeout, command), as_json, _show_ping)


def _ping(check: _Check, server: _Server, count: int) -> Report:
    """PING ``server`` ``count`` times, after the PING that opens the connection."""
    server.client.ping()  # opens the connection: its time is no round trip's
    times: list[float] = []
    for _ in range(count):
        check.on_time()
        start = perf_counter()
        server.client.ping()
        times.append(perf_counter() - start)
    return {
        "pings": len(times),
        "ms": {
            "min": _milliseconds(min(times)),
            "avg": _milliseconds(sum(times) / len(times)),
            "max": _milliseconds(max(times)),
        },
    }


def _show_ping(report: Report) -> None:
    _say(_header(report))
    _show_topology(report)
    for server in report["servers"]:
        start = f"  {server['role']:<8} {server['address']}"
        if server["ok"]:
            ms = server["ms"]
            _say(
                f"{start}  {ms['avg']:.3f} ms (min {ms['min']:.3f}, max {ms['max']:.3f},"
                f" {server['pings']} PINGs)"
            )
        else:
            _say(f"{start}  DOWN: {server['error']}")
    _show_replicas(report)


# -- flask redis info ---------------------------------------------------------------------------


@redis_group.command("info")  # type: ignore[untyped-decorator,no-untyped-call,unused-ignore]
@_prefixes_argument
@_timeout_option
@_json_option
def info_command(prefixes: tuple[str, ...], timeout: float, as_json: bool) -> None:
    """Show the server and the client of each prefix.

    The prefixes named, else all of the app's. Shows what the server says of itself in
    INFO: version, role, memory, clients, the keys of the client's database and the hit
    ratio; and the app's client: its class and its connection pools. For Sentinel, the
    master that the sentinels report; for a Cluster, each primary node. Exits with status
    1 if a server does not answer.
    """

    command = _Command(
        _NO_INFO, _info, lambda prefix, client: {"client": _client_side(prefix, client)}
    )
    _finish(_run(prefixes, timeout, command), as_json, _show_info)


#: What ``info`` says of a server that did not answer.
_NO_INFO = dict.fromkeys(("version", "server_role", "memory", "clients", "keyspace", "stats"))


def _info(check: _Check, found: _Prefix, server: _Server) -> Report:
    """What ``server`` says of itself in INFO; a text that holds a password is withheld."""
    db = 0 if found.db is None else found.db
    info: dict[str, Any] = server.client.info()  # type: ignore[assignment,unused-ignore]
    keyspace = info.get(f"db{db}")
    keyspace = keyspace if isinstance(keyspace, dict) else {}
    hits, misses = info.get("keyspace_hits"), info.get("keyspace_misses")
    ratio = None
    if isinstance(hits, int) and isinstance(misses, int) and hits + misses:
        ratio = round(hits / (hits + misses), 4)
    fields: Report = check.secrets.values({
        "version": info.get("redis_version"),
        "server_role": info.get("role"),
        "memory": {
            "used": info.get("used_memory"),
            "used_human": info.get("used_memory_human"),
            "max": info.get("maxmemory"),
            "max_human": info.get("maxmemory_human"),
        },
        "clients": {
            "connected": info.get("connected_clients"),
            "blocked": info.get("blocked_clients"),
        },
        "keyspace": {
            "db": db, "keys": keyspace.get("keys", 0), "expires": keyspace.get("expires", 0),
        },
        "stats": {
            "hits": hits,
            "misses": misses,
            "hit_ratio": ratio,
        },
    })  # fmt: skip
    return fields


def _client_side(prefix: str, client: Any) -> Report:
    """The app's client of ``prefix``: its class, and each of its connection pools with
    the connections of this process that it holds."""
    pools: list[tuple[str, Any]]
    library = _library(client)
    if isinstance(client, library.cluster):
        nodes = library.node_pools(client.get_nodes())
        pools = [(_address(node.host, node.port), pool) for node, pool in nodes]
    elif _mode(client) == SENTINEL:
        replica = current_app.extensions.get("redis_replicas", {}).get(prefix)
        pools = [("master", client.connection_pool)]
        if replica is not None:
            pools.append(("replicas", replica.connection_pool))
    else:
        pools = [("server", getattr(client, "connection_pool", None))]
    return {
        "class": _class_name(type(client)),
        "pools": [_pool_report(name, pool) for name, pool in pools if pool is not None],
    }


def _pool_report(name: str, pool: Any) -> Report:
    most = getattr(pool, "max_connections", None)
    counts = connection_counts(pool)
    return {
        "of": name,
        "class": _class_name(type(pool)),
        "max_connections": None if not isinstance(most, int) or most >= _NO_LIMIT else most,
        "in_use": None if counts is None else counts[0],
        "idle": None if counts is None else counts[1],
    }


def _show_info(report: Report) -> None:
    _say(_header(report))
    _show_topology(report)
    for server in report["servers"]:
        _say(f"  {server['role']:<8} {server['address']}")
        if not server["ok"]:
            _say(f"    DOWN: {server['error']}")
            continue
        memory, clients = server["memory"], server["clients"]
        keyspace, stats = server["keyspace"], server["stats"]
        most = memory["max_human"] if memory["max"] else "no limit"
        ratio = stats["hit_ratio"]
        hits = "no lookups yet" if ratio is None else f"{ratio:.1%}"
        _say(f"    version    {server['version']}, role {server['server_role']}")
        _say(f"    memory     {memory['used_human']} used, maxmemory {most}")
        _say(f"    clients    {clients['connected']} connected, {clients['blocked']} blocked")
        _say(f"    keyspace   db{keyspace['db']}: {keyspace['keys']} keys,"
             f" {keyspace['expires']} with a TTL")  # fmt: skip
        _say(f"    hit ratio  {hits} (hits {stats['hits']}, misses {stats['misses']})")
    _show_replicas(report)
    client = report["client"]
    _say(f"  client   {client['class']}")
    for pool in client["pools"]:
        most = pool["max_connections"]
        limit = "no limit" if most is None else f"at most {most}"
        counts = ("connections unknown" if pool["in_use"] is None
                  else f"{pool['in_use']} in use, {pool['idle']} idle")  # fmt: skip
        _say(f"    pool of {pool['of']}: {pool['class']}, {limit}; {counts}")
