"""The ``flask redis`` group and its commands, ``ping`` and ``info``: the prefixes chosen,
the ``--timeout`` checked, and the reports written as text or as JSON."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from .._commands import printable
from .._pools import connection_counts
from .._topology import SENTINEL
from .library import class_name, library_of_client, topology_of
from .reach import Check, Command, Prefix, Report, Server, run
from .secrets import host_address

#: Seconds that a command may take, unless ``--timeout`` says otherwise.
DEFAULT_TIMEOUT = 5.0
#: The most ``--timeout`` may be: an hour.
MAX_TIMEOUT = 3600.0

#: What a pool's ``max_connections`` is when nothing limits it (redis-py 5 to 7).
_NO_LIMIT = 2**31


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


# -- What is shown ----------------------------------------------------------------------------


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

    command = Command(
        {"pings": 0, "ms": None}, lambda check, found, server: _ping(check, server, count)
    )
    _finish(run(_chosen(prefixes), timeout, command), as_json, _show_ping)


def _ping(check: Check, server: Server, count: int) -> Report:
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

    command = Command(
        _NO_INFO, _info, lambda prefix, client: {"client": _client_side(prefix, client)}
    )
    _finish(run(_chosen(prefixes), timeout, command), as_json, _show_info)


#: What ``info`` says of a server that did not answer.
_NO_INFO = dict.fromkeys(("version", "server_role", "memory", "clients", "keyspace", "stats"))


def _info(check: Check, found: Prefix, server: Server) -> Report:
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
    library = library_of_client(client)
    if isinstance(client, library.cluster):
        nodes = library.node_pools(client.get_nodes())
        pools = [(host_address(node.host, node.port), pool) for node, pool in nodes]
    elif topology_of(client) == SENTINEL:
        replica = current_app.extensions.get("redis_replicas", {}).get(prefix)
        pools = [("master", client.connection_pool)]
        if replica is not None:
            pools.append(("replicas", replica.connection_pool))
    else:
        pools = [("server", getattr(client, "connection_pool", None))]
    return {
        "class": class_name(type(client)),
        "pools": [_pool_report(name, pool) for name, pool in pools if pool is not None],
    }


def _pool_report(name: str, pool: Any) -> Report:
    most = getattr(pool, "max_connections", None)
    counts = connection_counts(pool)
    return {
        "of": name,
        "class": class_name(type(pool)),
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
