"""The ``flask redis`` commands: whether the server of each config prefix answers, and
what it is.

Flask finds the group through the package's ``flask.commands`` entry point, so
``flask --app myapp redis ping`` works without the extension touching ``app.cli``.

The commands talk to the servers through connections of their own, made from each
prefix's settings with a timeout of their own and no retries, and closed when they are
done; with the classes of the prefix's client library, redis-py or valkey-py. Their round
trips are none of the app's: the metrics, the recorded calls and the slow log do not see
them, and the app's connection pools are left as they were.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any
from urllib.parse import quote

import click
import redis
from flask import current_app
from flask.cli import AppGroup

from .config import ClientLibrary, library_of
from .pools import connection_counts
from .recording import printable
from .topology import CLUSTER, SENTINEL, SERVER

#: Seconds to wait for a connection or a reply, unless ``--timeout`` says otherwise.
DEFAULT_TIMEOUT = 5.0

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
    package = sys.modules.get(__name__.rpartition(".")[0])
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


def _address(host: Any, port: Any) -> str:
    host = str(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _pool_address(kwargs: dict[str, Any]) -> str:
    path = kwargs.get("path")
    if path is not None:
        return f"unix:{path}"
    return _address(kwargs.get("host", "localhost"), kwargs.get("port", 6379))


def _is_tls(connection_class: Any, library: ClientLibrary) -> bool:
    return isinstance(connection_class, type) and issubclass(
        connection_class, _module(library).connection.SSLConnection
    )


def _password(kwargs: dict[str, Any] | None) -> list[str]:
    password = (kwargs or {}).get("password")
    return [str(password)] if password else []


def _own_client(pool: Any, timeout: float, stack: ExitStack, library: ClientLibrary) -> Any:
    """A plain client of ``library`` with a pool of its own that connects as ``pool`` does,
    but within ``timeout``; its connections are closed when ``stack`` closes."""
    kwargs = {
        name: value
        for name, value in pool.connection_kwargs.items()
        if name not in _BOUND_ARGUMENTS
    }
    kwargs.update(_bounded(timeout, library))
    own = _module(library).ConnectionPool(connection_class=pool.connection_class, **kwargs)
    stack.callback(own.disconnect)
    return library.client(connection_pool=own)


def _reach(prefix: str, client: Any, timeout: float, stack: ExitStack) -> _Prefix:
    """How to reach the servers of ``prefix``'s ``client``: one server, the master that
    the sentinels report, or each primary that the cluster client knows."""
    mode = _mode(client)
    library = _library(client)
    if mode == CLUSTER:
        return _reach_cluster(prefix, client, timeout, stack, library)
    if mode == SENTINEL:
        return _reach_sentinel(prefix, client.connection_pool, timeout, stack, library)
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return _Prefix(
            prefix,
            mode,
            error=f"its client, of class {_class_name(type(client))}, has no connection pool"
            " to take the server's address from",
        )
    kwargs = pool.connection_kwargs
    own = _own_client(pool, timeout, stack, library)
    server = _Server("server", _pool_address(kwargs), own)
    return _Prefix(
        prefix,
        mode,
        db=int(kwargs.get("db") or 0),
        tls=_is_tls(pool.connection_class, library),
        servers=[server],
    )


def _reach_sentinel(
    prefix: str, pool: Any, timeout: float, stack: ExitStack, library: ClientLibrary
) -> _Prefix:
    """The master of a Sentinel prefix, asked of its sentinels; and its replicas."""
    manager = pool.sentinel_manager
    service = str(pool.service_name)
    addresses = [
        (each.connection_pool.connection_kwargs.get("host", "localhost"),
         each.connection_pool.connection_kwargs.get("port", 26379))
        for each in manager.sentinels
    ]  # fmt: skip
    kwargs = {**manager.connection_kwargs, **_bounded(timeout, library)}
    sentinel = library.sentinel(
        addresses,
        min_other_sentinels=manager.min_other_sentinels,
        sentinel_kwargs={**manager.sentinel_kwargs, **_bounded(timeout, library)},
        **kwargs,
    )
    for each in sentinel.sentinels:
        stack.callback(each.connection_pool.disconnect)
    found = _Prefix(
        prefix,
        SENTINEL,
        db=int(kwargs.get("db") or 0),
        tls=bool(kwargs.get("ssl")),
        service=service,
        sentinels=[_address(host, port) for host, port in addresses],
    )
    master_address = _ask_sentinels(sentinel, found, library)
    if master_address is None:
        return found
    host, port = master_address
    replicas = sentinel.discover_slaves(service)  # a sentinel that fails is skipped
    master = sentinel.master_for(service)
    stack.callback(master.connection_pool.disconnect)
    found.servers = [_Server("master", _address(host, port), master)]
    found.replicas = [_address(*each) for each in replicas]
    return found


def _ask_sentinels(sentinel: Any, found: _Prefix, library: ClientLibrary) -> tuple[Any, Any] | None:
    """The address of the master that the first sentinel of ``sentinel`` with a valid
    answer reports, as the library's ``discover_master()`` finds it; else ``None``, with
    ``found.error`` saying what each sentinel answered (the library's error lists the
    repr of each sentinel's client)."""
    service = found.service
    answers = []
    for address, client in zip(found.sentinels, sentinel.sentinels):
        try:
            state = client.sentinel_masters().get(service)
        except _errors(OSError) as error:
            answers.append(f"{address} {_error_text(error)}")
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


def _reach_cluster(
    prefix: str, client: Any, timeout: float, stack: ExitStack, library: ClientLibrary
) -> _Prefix:
    """Each primary that a cluster client knows, and the replicas."""
    found = _Prefix(prefix, CLUSTER)
    for node, pool in library.node_pools(client.get_primaries()):
        found.tls = found.tls or _is_tls(pool.connection_class, library)
        own = _own_client(pool, timeout, stack, library)
        found.servers.append(_Server("primary", _address(node.host, node.port), own))
    found.replicas = [_address(node.host, node.port) for node in client.get_replicas()]
    if not found.servers:
        found.error = "the cluster client knows no primary node"
    return found


# -- What is shown ----------------------------------------------------------------------------


def _error_text(error: BaseException) -> str:
    """``"ClassName: message"``, as the caller of the command would have seen it."""
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _failure_text(error: BaseException) -> str:
    """What a server that did not answer as it should gets in a report: the library's error,
    or the client's own failure on what the server sent (a server that answers ``+OK`` to
    ``HELLO`` breaks the library's handshake with an ``AttributeError``)."""
    if isinstance(error, _errors(OSError)):
        return _error_text(error)
    return f"the client failed on the server's reply: {_error_text(error)}"


def _class_name(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _scrubbed(value: Any, secrets: Sequence[str]) -> Any:
    """``value`` (a report) with each of ``secrets`` replaced by ``***`` in every text."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {key: _scrubbed(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrubbed(item, secrets) for item in value]
    return value


def _secret_forms(passwords: Iterable[str]) -> list[str]:
    """Each password, and each form a URL or a message may quote it in; longest first, so
    that a password holding another is replaced whole."""
    forms = {form for password in passwords
             for form in (password, quote(password, safe=""), repr(password)[1:-1])}  # fmt: skip
    return sorted((form for form in forms if form), key=len, reverse=True)


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


def _run(
    names: Sequence[str],
    timeout: float,
    check: Callable[[_Prefix, Any], Report],
) -> Iterator[Report]:
    """Reach each chosen prefix's servers and ``check`` them; each report is scrubbed of
    the prefix's passwords. The connections are closed before the next prefix."""
    for prefix in _chosen(names):
        client = current_app.extensions["redis"][prefix]
        with ExitStack() as stack:
            try:
                found = _reach(prefix, client, timeout, stack)
            except _errors(TypeError, ValueError) as error:
                # Settings that redis-py refuses only when it connects.
                found = _Prefix(prefix, _mode(client), error=_error_text(error))
            report = check(found, client)
        report["ok"] = report["error"] is None and all(s["ok"] for s in report["servers"])
        yield _scrubbed(report, _secret_forms(_secrets_of(client)))


def _secrets_of(client: Any) -> list[str]:
    """The passwords that an app's client was given, wherever redis-py keeps them: of
    its server, its sentinels, its cluster's nodes."""
    pool = getattr(client, "connection_pool", None)
    found = _password(getattr(pool, "connection_kwargs", None))
    manager = getattr(pool, "sentinel_manager", None)
    if manager is not None:
        found += _password(manager.connection_kwargs) + _password(manager.sentinel_kwargs)
    library = _library(client)
    if isinstance(client, library.cluster):
        found += _password(getattr(client.nodes_manager, "connection_kwargs", None))
        for _node, pool in library.node_pools(client.get_nodes()):
            found += _password(pool.connection_kwargs)
    return found


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
_timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait for a connection, and for each reply.",
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

    def check(found: _Prefix, client: Any) -> Report:
        report = found.head()
        report["servers"] = [_ping(server, count) for server in found.servers]
        return report

    _finish(list(_run(prefixes, timeout, check)), as_json, _show_ping)


def _ping(server: _Server, count: int) -> Report:
    report: Report = {"role": server.role, "address": server.address, "ok": False,
                      "error": None, "pings": 0, "ms": None}  # fmt: skip
    times: list[float] = []
    try:
        server.client.ping()  # opens the connection: its time is no round trip's
        for _ in range(count):
            start = perf_counter()
            server.client.ping()
            times.append(perf_counter() - start)
    except Exception as error:  # the library's, or its failure on a reply it did not expect
        report["error"] = _failure_text(error)
        return report
    report["ok"], report["pings"] = True, len(times)
    report["ms"] = {
        "min": _milliseconds(min(times)),
        "avg": _milliseconds(sum(times) / len(times)),
        "max": _milliseconds(max(times)),
    }
    return report


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

    def check(found: _Prefix, client: Any) -> Report:
        report = found.head()
        db = 0 if found.db is None else found.db
        report["servers"] = [_info(server, db) for server in found.servers]
        report["client"] = _client_side(found.prefix, client)
        return report

    _finish(list(_run(prefixes, timeout, check)), as_json, _show_info)


#: What ``info`` says of a server that did not answer.
_NO_INFO = dict.fromkeys(("version", "server_role", "memory", "clients", "keyspace", "stats"))


def _info(server: _Server, db: int) -> Report:
    report: Report = {"role": server.role, "address": server.address, "ok": False,
                      "error": None, **_NO_INFO}  # fmt: skip
    try:
        info: dict[str, Any] = server.client.info()  # type: ignore[assignment,unused-ignore]
    except Exception as error:  # the library's, or its failure on a reply it did not expect
        report["error"] = _failure_text(error)
        return report
    keyspace = info.get(f"db{db}")
    keyspace = keyspace if isinstance(keyspace, dict) else {}
    hits, misses = info.get("keyspace_hits"), info.get("keyspace_misses")
    ratio = None
    if isinstance(hits, int) and isinstance(misses, int) and hits + misses:
        ratio = round(hits / (hits + misses), 4)
    report.update({
        "ok": True,
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
    return report


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
