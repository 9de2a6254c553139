"""Reaching the servers of each prefix, and asking them, on threads of their own within the
command's deadline.

Each prefix is checked on a thread of its own, through clients of the command's own made
from the prefix's settings with no retries; the command stops waiting at its deadline,
and what is not done by then is down with a ``TimeoutError``. Closing a check's
connections ends any read that its thread waits on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from flask import current_app

from .._connections import configured_class
from .._libraries import ClientLibrary
from .._topology import CLUSTER, SENTINEL, SERVER
from .library import (
    bounded_arguments,
    class_name,
    library_errors,
    library_of_client,
    package_of,
    topology_of,
)
from .secrets import host_address, pool_address, secrets_of

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

#: A report, of a prefix or of one of its servers, as the JSON output has it.
Report = dict[str, Any]


@dataclass
class Server:
    """A server that a command talks to, through a client of the command's own."""

    #: ``"server"`` (standalone), ``"master"`` (Sentinel) or ``"primary"`` (Cluster).
    role: str
    #: ``host:port``, ``[ipv6]:port`` or ``unix:/path``.
    address: str
    #: A client of the prefix's library (``redis.Redis`` or ``valkey.Valkey``).
    client: Any


@dataclass
class Prefix:
    """A config prefix: how to reach its servers, and what the report says of it."""

    prefix: str
    mode: str
    #: The database of its client; ``None`` for a cluster, or an unknown one.
    db: int | None = None
    tls: bool = False
    servers: list[Server] = field(default_factory=list)
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


# -- Reaching the servers of a prefix, on connections of the command's own ---------------------


def _is_tls(connection_class: Any, library: ClientLibrary) -> bool:
    return isinstance(connection_class, type) and issubclass(
        connection_class, package_of(library).connection.SSLConnection
    )


def _own_client(pool: Any, check: Check, library: ClientLibrary) -> Any:
    """A plain client of ``library`` with a pool of its own that connects as ``pool`` does,
    but within the check's timeout; its connections are closed with the check's."""
    kwargs = {
        name: value
        for name, value in pool.connection_kwargs.items()
        if name not in _BOUND_ARGUMENTS
    }
    kwargs.update(bounded_arguments(check.timeout, library))
    # The connections of the prefix's own class, which report to no metrics of the app.
    connection_class = configured_class(pool.connection_class)
    own = package_of(library).ConnectionPool(connection_class=connection_class, **kwargs)
    check.closer.add(own.disconnect)
    return library.client(connection_pool=own)


def _reach(check: Check) -> Prefix:
    """How to reach the servers of the check's prefix: one server, the master that the
    sentinels report, or each primary that the cluster client knows."""
    prefix, client = check.prefix, check.client
    mode = topology_of(client)
    library = library_of_client(client)
    if mode == CLUSTER:
        return _reach_cluster(check, library)
    if mode == SENTINEL:
        return _reach_sentinel(check, client.connection_pool, library)
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return Prefix(
            prefix,
            mode,
            error=f"its client, of class {class_name(type(client))}, has no connection pool"
            " to take the server's address from",
        )
    kwargs = pool.connection_kwargs
    own = _own_client(pool, check, library)
    server = Server("server", pool_address(kwargs), own)
    return Prefix(
        prefix,
        mode,
        db=int(kwargs.get("db") or 0),
        tls=_is_tls(pool.connection_class, library),
        servers=[server],
    )


def _reach_sentinel(check: Check, pool: Any, library: ClientLibrary) -> Prefix:
    """The master of a Sentinel prefix, asked of its sentinels; and its replicas. Each
    sentinel is given an equal share of the timeout, and one is left for the master."""
    manager = pool.sentinel_manager
    service = str(pool.service_name)
    addresses = [
        (each.connection_pool.connection_kwargs.get("host", "localhost"),
         each.connection_pool.connection_kwargs.get("port", 26379))
        for each in manager.sentinels
    ]  # fmt: skip
    kwargs = {**manager.connection_kwargs, **bounded_arguments(check.timeout, library)}
    share = bounded_arguments(check.timeout / (len(addresses) + 1), library)
    sentinel = library.sentinel(
        addresses,
        min_other_sentinels=manager.min_other_sentinels,
        sentinel_kwargs={**manager.sentinel_kwargs, **share},
        **kwargs,
    )
    for each in sentinel.sentinels:
        check.closer.add(each.connection_pool.disconnect)
    found = Prefix(
        check.prefix,
        SENTINEL,
        db=int(kwargs.get("db") or 0),
        tls=bool(kwargs.get("ssl")),
        service=service,
        sentinels=[host_address(host, port) for host, port in addresses],
    )
    master_address = _ask_sentinels(check, sentinel, found, library)
    if master_address is None:
        return found
    host, port = master_address
    replicas = sentinel.discover_slaves(service)  # a sentinel that fails is skipped
    master = sentinel.master_for(service)
    check.closer.add(master.connection_pool.disconnect)
    found.servers = [Server("master", host_address(host, port), master)]
    found.replicas = [host_address(*each) for each in replicas]
    return found


def _ask_sentinels(
    check: Check, sentinel: Any, found: Prefix, library: ClientLibrary
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
        except library_errors(OSError) as error:
            answers.append(f"{address} {check.secrets.error(error)}")
            if isinstance(error, package_of(library).ResponseError):
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


def _reach_cluster(check: Check, library: ClientLibrary) -> Prefix:
    """Each primary that a cluster client knows, and the replicas."""
    client = check.client
    found = Prefix(check.prefix, CLUSTER)
    for node, pool in library.node_pools(client.get_primaries()):
        found.tls = found.tls or _is_tls(pool.connection_class, library)
        own = _own_client(pool, check, library)
        found.servers.append(Server("primary", host_address(node.host, node.port), own))
    found.replicas = [host_address(node.host, node.port) for node in client.get_replicas()]
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
class Command:
    """What a command asks of each server of a prefix, and what else it reports."""

    #: The fields of a server's report that the command fills, as they are for a server
    #: that did not answer.
    unanswered: Report
    #: Asks a server of a prefix; gives those fields. Raises what the client raises.
    ask: Callable[[Check, Prefix, Server], Report]
    #: Fields that it adds to a prefix's report from the app's client, with no round
    #: trip: ``(prefix, client) -> fields``. Called on the command's thread.
    extra: Callable[[str, Any], Report] | None = None


def _late(timeout: float) -> str:
    return f"TimeoutError: not done within the --timeout of {timeout:g} s"


class Check(threading.Thread):
    """The check of one prefix, on a thread of its own, so that the command can stop
    waiting for it at the deadline whatever its servers do: connect slowly, trickle their
    replies, resolve no name."""

    def __init__(
        self, prefix: str, client: Any, command: Command, timeout: float, deadline: float
    ) -> None:
        super().__init__(name=f"flask-redis-check-{prefix}", daemon=True)
        self.prefix, self.client, self.command = prefix, client, command
        #: The ``--timeout``, and the :func:`~time.monotonic` time it ends at.
        self.timeout, self.deadline = timeout, deadline
        self.secrets = secrets_of(client)
        self.closer = _Closer()
        self._lock = threading.Lock()
        self._found: Prefix | None = None
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
            except library_errors(TypeError, ValueError) as error:
                # Settings that redis-py refuses only when it connects.
                mode = topology_of(self.client)
                found = Prefix(self.prefix, mode, error=self.secrets.error(error))
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
            found = Prefix(self.prefix, topology_of(self.client), error=late)
        report = found.head()
        unanswered = found.servers[len(servers) :]
        report["servers"] = servers + [_server_head(s, self.command, late) for s in unanswered]
        if self.command.extra is not None:
            report.update(self.command.extra(self.prefix, self.client))
        report["ok"] = report["error"] is None and all(s["ok"] for s in report["servers"])
        return report


def _server_head(server: Server, command: Command, error: str | None) -> Report:
    """The report of a server that did not answer (yet)."""
    return {"role": server.role, "address": server.address, "ok": False, "error": error,
            **command.unanswered}  # fmt: skip


def _server_report(check: Check, found: Prefix, server: Server) -> Report:
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


def run(prefixes: Sequence[str], timeout: float, command: Command) -> list[Report]:
    """Check ``prefixes`` of the current app, all at once, each on a thread of its own;
    their reports, in order, when all are done or ``timeout`` seconds have passed,
    whichever is first."""
    deadline = monotonic() + timeout
    clients = current_app.extensions["redis"]
    checks = [Check(prefix, clients[prefix], command, timeout, deadline) for prefix in prefixes]
    for check in checks:
        check.start()
    return [check.report() for check in checks]
