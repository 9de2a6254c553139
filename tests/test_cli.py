"""The ``flask redis`` commands against real servers: a standalone server, one stopped and
one frozen, one that wants a password, a Sentinel set and a Cluster; a server whose
replies hold what a terminal would act on; and the real ``flask`` executable, which finds
the commands through the package's entry point."""

from __future__ import annotations

import importlib
import json
import logging
import os
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import pytest
import redis
from click.testing import Result
from flask import Flask
from prometheus_client import CollectorRegistry

from flask_redis import Redis
from flask_redis._cli import redis_group
from flask_redis._libraries import ClientLibrary

from .conftest import SECRET, close_clients
from .samples import Samples
from .servers import ClusterNodes, RedisServer, SentinelSet, free_port

#: A round-trip time as the text shows it.
MS = r"\d+\.\d{3}"
#: The class the reports name for the client of a prefix, by client library.
CLIENT_CLASSES = {"redis-py": "redis.client.Redis", "valkey-py": "valkey.client.Valkey"}
#: The class the reports name for the client of a cluster prefix, by client library.
CLUSTER_CLASSES = {
    "redis-py": "redis.cluster.RedisCluster",
    "valkey-py": "valkey.cluster.ValkeyCluster",
}


def invoke(app: Flask, *args: str) -> Result:
    """``flask redis ARGS...`` on ``app``, in this process."""
    return app.test_cli_runner().invoke(redis_group, list(args))


def reported(result: Result) -> dict[str, Any]:
    """The JSON report of ``result``: all it wrote."""
    report: dict[str, Any] = json.loads(result.output)
    return report


@pytest.fixture()
def two_prefixes(quiet_app: Flask, redis_server: RedisServer) -> Flask:
    """:func:`quiet_app` with ``REDIS`` on database 0 and ``CACHE`` on database 1."""
    quiet_app.config.update(
        CACHE_HOST="127.0.0.1", CACHE_PORT=redis_server.port, CACHE_DB=1, CACHE_METRICS=False
    )
    Redis(quiet_app)
    Redis(quiet_app, "CACHE")
    return quiet_app


@pytest.fixture()
def url_app(quiet_app: Flask) -> Flask:
    """:func:`quiet_app` without ``REDIS_HOST`` and ``REDIS_PORT``, for a ``REDIS_URL``."""
    del quiet_app.config["REDIS_HOST"], quiet_app.config["REDIS_PORT"]
    return quiet_app


@pytest.fixture()
def stopped_server(tmp_path: Path) -> RedisServer:
    """A redis-server that was started, then stopped: nothing listens on its port."""
    server = RedisServer(tmp_path / "stopped").start()
    server.stop()
    return server


@pytest.fixture()
def refused(stopped_server: RedisServer, library: ClientLibrary, client_module: ModuleType) -> str:
    """What the client library says, as ``Class: message``, of a connection to
    :func:`stopped_server`: the commands show its own words."""
    importlib.import_module(f"{client_module.__name__}.backoff")
    no_retry = client_module.retry.Retry(client_module.backoff.NoBackoff(), 0)
    client = library.client(host="127.0.0.1", port=stopped_server.port, retry=no_retry)
    with pytest.raises(client_module.ConnectionError) as raised:
        client.ping()
    client.close()
    return f"{type(raised.value).__name__}: {raised.value}"


@pytest.fixture()
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may freeze."""
    server = RedisServer(tmp_path / "own").start()
    yield server
    if server.process is not None:
        server.process.send_signal(signal.SIGCONT)
    server.stop()


# -- ping ---------------------------------------------------------------------------------------


def test_ping_times_each_prefix_and_shows_its_server(
    two_prefixes: Flask, redis_server: RedisServer
) -> None:
    result = invoke(two_prefixes, "ping")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 4
    assert lines[0] == "REDIS (standalone, db 0): ok"
    server = rf"  server   127\.0\.0\.1:{redis_server.port}"
    assert re.fullmatch(rf"{server}  {MS} ms \(min {MS}, max {MS}, 3 PINGs\)", lines[1])
    assert lines[2] == "CACHE (standalone, db 1): ok"
    assert re.fullmatch(rf"{server}  {MS} ms \(min {MS}, max {MS}, 3 PINGs\)", lines[3])


def test_ping_json_gives_the_round_trip_times_of_the_pings_asked_for(
    two_prefixes: Flask, redis_server: RedisServer, plain: redis.Redis
) -> None:
    plain.config_resetstat()

    result = invoke(two_prefixes, "ping", "--json", "--count", "5", "CACHE")

    assert result.exit_code == 0, result.output
    # The server saw them: five timed, and the one that opened the connection.
    assert plain.info("commandstats")["cmdstat_ping"]["calls"] == 6
    report = reported(result)
    ms = report["prefixes"][0]["servers"][0].pop("ms")
    assert 0 < ms["min"] <= ms["avg"] <= ms["max"]
    assert report == {
        "ok": True,
        "prefixes": [{
            "prefix": "CACHE", "mode": "standalone", "ok": True, "error": None, "db": 1,
            "tls": False, "service": None, "sentinels": [], "replicas": [],
            "servers": [{
                "role": "server", "address": f"127.0.0.1:{redis_server.port}", "ok": True,
                "error": None, "pings": 5,
            }],
        }],
    }  # fmt: skip


def test_a_unix_socket_prefix_shows_the_socket_path(
    url_app: Flask, redis_server: RedisServer
) -> None:
    url_app.config["REDIS_URL"] = f"unix://{redis_server.unix_socket}?db=2"
    Redis(url_app)

    result = invoke(url_app, "ping", "--json")

    assert result.exit_code == 0, result.output
    [prefix] = reported(result)["prefixes"]
    assert prefix["db"] == 2
    assert prefix["servers"][0]["address"] == f"unix:{redis_server.unix_socket}"
    assert prefix["servers"][0]["ok"] is True


def test_prefixes_are_named_in_any_letter_case_and_checked_once(two_prefixes: Flask) -> None:
    result = invoke(two_prefixes, "ping", "--json", "cache", "REDIS", "CACHE")

    assert result.exit_code == 0, result.output
    assert [each["prefix"] for each in reported(result)["prefixes"]] == ["CACHE", "REDIS"]


def test_an_unknown_prefix_is_a_usage_error_that_names_the_apps_prefixes(
    two_prefixes: Flask,
) -> None:
    result = invoke(two_prefixes, "ping", "REDIS", "NOPE")

    assert result.exit_code == 2
    assert "no config prefix 'NOPE' is set up on app" in result.output
    assert "its prefixes: REDIS, CACHE" in result.output
    assert "): ok" not in result.output  # nothing was checked

    result = invoke(two_prefixes, "info", "\x1b[2J\u202e")

    assert result.exit_code == 2
    assert "no config prefix '\\x1b[2J\\u202e' is set up" in result.output


@pytest.mark.parametrize("command", ["ping", "info"])
def test_an_app_without_a_prefix_says_there_is_nothing_to_check(
    new_app: Flask, command: str
) -> None:
    result = invoke(new_app, command)

    assert result.exit_code == 1
    assert "No Redis client is set up on app" in result.output
    assert "Redis(app)" in result.output


@pytest.mark.parametrize(
    "args", [["ping", "--count", "0"], ["ping", "--timeout", "0"], ["info", "--timeout", "-1"]]
)
def test_options_out_of_range_are_usage_errors(two_prefixes: Flask, args: list[str]) -> None:
    result = invoke(two_prefixes, *args)

    assert result.exit_code == 2
    assert "Invalid value for '--" in result.output


def test_a_stopped_server_fails_with_the_redis_error_and_the_others_are_still_checked(
    two_prefixes: Flask, stopped_server: RedisServer, refused: str
) -> None:
    two_prefixes.config.update(
        GONE_HOST="127.0.0.1", GONE_PORT=stopped_server.port, GONE_METRICS=False
    )
    Redis(two_prefixes, "GONE")

    result = invoke(two_prefixes, "ping")

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "REDIS (standalone, db 0): ok"
    assert lines[2] == "CACHE (standalone, db 1): ok"
    assert lines[4] == "GONE (standalone, db 0): DOWN"
    assert lines[5] == f"  server   127.0.0.1:{stopped_server.port}  DOWN: {refused}"
    assert lines[6] == "Error: not ok: GONE"

    result = invoke(two_prefixes, "ping", "--json", "GONE")

    assert result.exit_code == 1
    report = reported(result)  # nothing but the JSON, also when a server is down
    assert report["ok"] is False
    [server] = report["prefixes"][0]["servers"]
    assert server["ok"] is False
    assert (server["pings"], server["ms"]) == (0, None)
    assert server["error"] == refused

    result = invoke(two_prefixes, "info", "--json", "GONE")

    assert result.exit_code == 1
    [server] = reported(result)["prefixes"][0]["servers"]
    assert server.pop("error") == refused
    assert server == {
        "role": "server", "address": f"127.0.0.1:{stopped_server.port}", "ok": False,
        "version": None, "server_role": None, "memory": None, "clients": None,
        "keyspace": None, "stats": None,
    }  # fmt: skip


def test_a_frozen_server_times_out_after_the_timeout_asked_for(
    quiet_app: Flask, own_server: RedisServer
) -> None:
    quiet_app.config.update(REDIS_PORT=own_server.port, REDIS_SOCKET_TIMEOUT=60)
    Redis(quiet_app)
    assert own_server.process is not None
    own_server.process.send_signal(signal.SIGSTOP)  # it accepts connections, never answers
    results: list[Result] = []
    start = time.monotonic()

    def run() -> None:
        results.append(invoke(quiet_app, "ping", "--timeout", "0.5"))
        results.append(invoke(quiet_app, "info", "--timeout", "0.5"))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(20)

    assert not thread.is_alive(), "the command waited for the frozen server"
    assert time.monotonic() - start < 5  # two commands of 0.5 s, not the client's 60 s
    for result in results:
        assert result.exit_code == 1
        assert "DOWN: TimeoutError: " in result.output


@pytest.fixture()
def trickling_servers() -> Iterator[list[ScriptedServer]]:
    """Two servers that write each reply a byte every 0.4 s: 24 s for HELLO's."""
    servers = [ScriptedServer({b"PING": b"+PONG\r\n"}, TricklingHandler) for _ in range(2)]
    yield servers
    for server in servers:
        server.close()


@pytest.mark.parametrize("command", ["ping", "info"])
def test_the_timeout_is_a_deadline_for_the_whole_command_also_when_servers_trickle(
    two_prefixes: Flask, trickling_servers: list[ScriptedServer], command: str
) -> None:
    # Each read gets a byte before a timeout of 1 s: the command ran for minutes.
    for prefix, server in zip(("SLOW", "SLOWER"), trickling_servers):
        two_prefixes.config.update({
            f"{prefix}_HOST": "127.0.0.1", f"{prefix}_PORT": server.port,
            f"{prefix}_METRICS": False,
        })  # fmt: skip
        Redis(two_prefixes, prefix)
    results: list[tuple[float, Result]] = []

    def run() -> None:
        for args in ([command, "--timeout", "1"], [command, "--json", "--timeout", "1"]):
            start = time.monotonic()
            result = invoke(two_prefixes, *args)
            results.append((time.monotonic() - start, result))

    thread = threading.Thread(target=run, daemon=True)
    try:
        thread.start()
        thread.join(20)
        assert not thread.is_alive(), "the command waited for the trickling servers"
    finally:
        close_clients(two_prefixes)

    (took, text), (json_took, as_json) = results
    # One deadline for the command, not one per prefix (two slow prefixes: 2 s).
    assert took < 1.8 and json_took < 1.8, (took, json_took)
    assert text.exit_code == as_json.exit_code == 1
    lines = text.output.splitlines()
    assert "REDIS (standalone, db 0): ok" in lines  # the others are checked meanwhile
    assert "CACHE (standalone, db 1): ok" in lines
    for prefix, server in zip(("SLOW", "SLOWER"), trickling_servers):
        assert f"{prefix} (standalone, db 0): DOWN" in lines
        address = f"  server   127.0.0.1:{server.port}"
        down = [line for line in lines if line.startswith(address)]
        if command == "info":
            down = [lines[lines.index(down[0]) + 1].strip()]
        assert len(down) == 1 and "DOWN: TimeoutError: " in down[0], lines
    assert lines[-1] == "Error: not ok: SLOW, SLOWER"
    report = reported(as_json)
    assert report["ok"] is False
    states = [(prefix["prefix"], prefix["ok"]) for prefix in report["prefixes"]]
    assert states == [("REDIS", True), ("CACHE", True), ("SLOW", False), ("SLOWER", False)]
    for prefix in report["prefixes"][2:]:
        [server] = prefix["servers"]
        assert server["ok"] is False
        assert server["error"].startswith("TimeoutError: ")


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e300", "3601"])
@pytest.mark.parametrize("command", ["ping", "info"])
def test_a_timeout_that_is_no_finite_number_of_seconds_within_an_hour_is_a_usage_error(
    two_prefixes: Flask, command: str, value: str
) -> None:
    for args in ([command, "--timeout", value], [command, "--json", f"--timeout={value}"]):
        result = invoke(two_prefixes, *args)

        assert result.exit_code == 2, (args, result.output, result.exception)
        assert "Invalid value for '--timeout'" in result.output
        assert "Traceback" not in result.output
        assert "): ok" not in result.output and "prefixes" not in result.output


# -- info ---------------------------------------------------------------------------------------


def test_info_reports_the_server_and_the_database_of_the_prefix(
    two_prefixes: Flask, plain: redis.Redis, redis_server: RedisServer, client_library: str
) -> None:
    cache = redis_server.client(db=1)
    try:
        cache.set("a", 1)
        cache.set("b", 2, ex=300)
        plain.config_resetstat()
        for key in ("a", "b", "a", "missing"):
            cache.get(key)
    finally:
        cache.close()
    version = plain.info("server")["redis_version"]

    result = invoke(two_prefixes, "info", "--json", "CACHE")

    assert result.exit_code == 0, result.output
    [prefix] = reported(result)["prefixes"]
    [server] = prefix["servers"]
    assert server["address"] == f"127.0.0.1:{redis_server.port}"
    assert (server["version"], server["server_role"]) == (version, "master")
    assert server["keyspace"] == {"db": 1, "keys": 2, "expires": 1}
    assert server["stats"] == {"hits": 3, "misses": 1, "hit_ratio": 0.75}
    assert server["memory"]["used"] > 0
    assert server["clients"]["connected"] >= 1
    assert prefix["client"]["class"] == CLIENT_CLASSES[client_library]

    result = invoke(two_prefixes, "info", "CACHE")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:3] == [
        "CACHE (standalone, db 1): ok",
        f"  server   127.0.0.1:{redis_server.port}",
        f"    version    {version}, role master",
    ]
    assert "    keyspace   db1: 2 keys, 1 with a TTL" in lines
    assert "    hit ratio  75.0% (hits 3, misses 1)" in lines


def test_info_shows_the_apps_own_pool_which_the_command_does_not_use(
    two_prefixes: Flask, client_module: ModuleType
) -> None:
    client = two_prefixes.extensions["redis"]["REDIS"]
    pipe = client.pipeline()
    pipe.watch("key")  # holds one connection of the app's pool
    try:
        result = invoke(two_prefixes, "info", "--json", "REDIS")
    finally:
        pipe.reset()

    assert result.exit_code == 0, result.output
    [pool] = reported(result)["prefixes"][0]["client"]["pools"]
    assert pool["of"] == "server"
    assert (pool["in_use"], pool["idle"]) == (1, 0)
    most = client.connection_pool.max_connections  # 2**31 before redis-py 8: no limit
    assert pool["max_connections"] == (None if most >= 2**31 else most)
    # The command's connections were its own, and are closed: the app's pool holds only
    # the connection the pipeline gave back.
    assert len(client.connection_pool._available_connections) == 1

    result = invoke(two_prefixes, "info", "REDIS")
    limit = "no limit" if most >= 2**31 else f"at most {most}"
    pool_class = f"{client_module.__name__}.connection.ConnectionPool"
    assert (
        f"    pool of server: {pool_class}, {limit}; 0 in use, 1 idle" in result.output.splitlines()
    )


def test_the_commands_round_trips_are_not_counted_in_the_apps_metrics(
    app: Flask, registry: CollectorRegistry, samples: Samples
) -> None:
    app.config.update(REDIS_METRICS=True, REDIS_METRICS_REGISTRY=registry)
    ext = Redis(app)
    try:
        assert ext.ping() is True
        assert samples.commands("PING") == 1

        assert invoke(app, "ping").exit_code == 0
        assert invoke(app, "info").exit_code == 0

        assert samples.commands("PING") == 1
        assert samples.commands("INFO") is None
    finally:
        close_clients(app)


# -- secrets and hostile replies ------------------------------------------------------------------


def test_a_password_is_shown_nowhere_also_when_its_server_fails(
    url_app: Flask, secured_server: RedisServer, stopped_server: RedisServer, refused: str
) -> None:
    other = "p@ss:w/rd%" + SECRET[::-1]  # quoted in its URL
    url_app.config.update(
        REDIS_URL=f"redis://:{SECRET}@127.0.0.1:{secured_server.port}/0",
        WRONG_URL=f"redis://:{quote(other, safe='')}@127.0.0.1:{secured_server.port}/0",
        WRONG_METRICS=False,
        GONE_URL=f"redis://default:{SECRET}@127.0.0.1:{stopped_server.port}/0",
        GONE_METRICS=False,
    )
    for prefix in ("REDIS", "WRONG", "GONE"):
        Redis(url_app, prefix)

    for args in (["ping"], ["ping", "--json"], ["info"], ["info", "--json"]):
        result = invoke(url_app, *args)

        assert result.exit_code == 1
        for secret in (SECRET, other, quote(other, safe=""), "p@ss"):
            assert secret not in result.output
        if "--json" in args:
            redis_ok, wrong, gone = reported(result)["prefixes"]
            assert redis_ok["ok"] is True
            assert wrong["servers"][0]["error"].startswith("AuthenticationError: ")
            assert gone["servers"][0]["error"] == refused
        else:
            assert "REDIS (standalone, db 0): ok" in result.output
            assert "DOWN: AuthenticationError: " in result.output  # WRONG
            assert f"DOWN: {refused}" in result.output  # GONE


#: The reply to ``HELLO 3`` of a server that speaks RESP3 (the clients' default since
#: redis-py 8.2): a map of which the clients read ``proto``.
HELLO_REPLY = b"%3\r\n+server\r\n+redis\r\n+version\r\n+7.0.0\r\n+proto\r\n:3\r\n"


class ScriptedServer(socketserver.ThreadingTCPServer):
    """A TCP server on 127.0.0.1 that speaks just enough of the Redis protocol: each command
    gets the reply :attr:`replies` has for its name, else :data:`HELLO_REPLY` to ``HELLO``
    and ``+OK`` to any other. It sends what no real server can be made to send."""

    daemon_threads = False  # server_close() waits for the connections to end

    def __init__(
        self, replies: dict[bytes, bytes], handler: type[ScriptedHandler] | None = None
    ) -> None:
        super().__init__(("127.0.0.1", 0), handler or ScriptedHandler)
        self.replies = {b"HELLO": HELLO_REPLY, **replies}
        self.port: int = self.server_address[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,))
        self.thread.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections.append(request)
        super().process_request(request, client_address)

    def close(self) -> None:
        """Stop serving; end the connections a client left open, and close them."""
        self.shutdown()
        self.thread.join()
        for connection in self.connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)  # its handler reads the end
            except OSError:  # closed already
                pass
        self.server_close()


class ScriptedHandler(socketserver.StreamRequestHandler):
    server: ScriptedServer

    def handle(self) -> None:
        while True:
            line = self.rfile.readline()
            if not line.startswith(b"*"):
                return  # the client closed the connection
            words = []
            for _ in range(int(line[1:])):
                size = int(self.rfile.readline()[1:])
                words.append(self.rfile.read(size + 2)[:-2])
            self.reply(self.server.replies.get(words[0].upper(), b"+OK\r\n"))

    def reply(self, data: bytes) -> None:
        self.wfile.write(data)


class TricklingHandler(ScriptedHandler):
    """Writes each reply a byte at a time, one every 0.4 s: a read of the client never
    waits long for the next byte, and a reply of a few bytes takes seconds."""

    def reply(self, data: bytes) -> None:
        for index in range(len(data)):
            try:
                self.wfile.write(data[index : index + 1])
            except OSError:  # the client closed the connection
                return
            time.sleep(0.4)


def hostile_info(fields: str) -> bytes:
    """The reply to INFO of a server whose INFO holds ``fields`` as its version and role."""
    info = (
        f"# Server\r\n{fields}\r\nused_memory:1\r\nused_memory_human:1B\r\nmaxmemory:0\r\n"
        "connected_clients:1\r\nblocked_clients:0\r\nkeyspace_hits:0\r\nkeyspace_misses:0\r\n"
    ).encode()
    return b"$%d\r\n%s\r\n" % (len(info), info)


@pytest.fixture()
def hostile_server() -> Iterator[ScriptedServer]:
    """A server whose errors and INFO hold terminal escapes, a bidirectional override and
    line breaks. (A bare ``\\n`` in an error line would make redis-py wait for the line's
    end: what the timeout is for.)"""
    replies = {
        b"PING": "-ERR \x1b[31mred\u202e evil\rforged\u2028line\r\n".encode(),
        b"INFO": hostile_info("redis_version:7.0.0\x1b]0;title\x07\r\nrole:master\u202e"),
    }
    server = ScriptedServer(replies)
    yield server
    server.close()


def test_what_a_server_replies_is_written_escaped(
    url_app: Flask, hostile_server: ScriptedServer
) -> None:
    url_app.config["REDIS_URL"] = f"redis://:{SECRET}@127.0.0.1:{hostile_server.port}/0"
    Redis(url_app)

    result = invoke(url_app, "ping")

    assert result.exit_code == 1
    assert result.output.splitlines()[1] == (
        f"  server   127.0.0.1:{hostile_server.port}  DOWN: ResponseError:"
        " \\x1b[31mred\\u202e evil\\rforged\\u2028line"
    )

    result = invoke(url_app, "ping", "--json")

    assert result.exit_code == 1
    assert result.output.isascii()  # JSON escapes the escape and the override
    [server] = reported(result)["prefixes"][0]["servers"]
    assert server["error"] == "ResponseError: \x1b[31mred\u202e evil\rforged\u2028line"

    result = invoke(url_app, "info")

    assert result.exit_code == 0, result.output
    assert "    version    7.0.0\\x1b]0;title\\x07, role master\\u202e" in result.output
    for output in (result.output, invoke(url_app, "ping").output):
        assert not any(char in output for char in "\x1b\x07\r\u202e\u2028")


#: What the reports show instead of a text that holds a password.
WITHHELD = "(not shown: it holds the text of a password)"


@pytest.mark.parametrize("password", [SECRET, "password", "1"])
def test_a_reply_that_quotes_the_password_is_not_shown_in_any_part(
    url_app: Flask, password: str
) -> None:
    # Replacing the password with *** showed where it was, and so what it was: "invalid
    # username-*** pair" for "password", "***27.0.0.***" for "1".
    server = ScriptedServer({
        b"PING": f"-ERR invalid username-password pair {password}\r\n".encode(),
        b"INFO": hostile_info(f"redis_version:7.0.{password}\r\nrole:master"),
    })  # fmt: skip
    try:
        url_app.config["REDIS_URL"] = f"redis://:{password}@127.0.0.1:{server.port}/0"
        Redis(url_app)
        pinged = [invoke(url_app, "ping"), invoke(url_app, "ping", "--json")]
        described = [invoke(url_app, "info"), invoke(url_app, "info", "--json")]
    finally:
        close_clients(url_app)
        server.close()

    for result in pinged + described:
        assert "***" not in result.output
    address = f"127.0.0.1:{server.port}"
    for result in pinged:
        assert password not in result.output.replace(WITHHELD, "").replace(address, "")
    assert pinged[0].output.splitlines()[1] == (
        f"  server   127.0.0.1:{server.port}  DOWN: ResponseError {WITHHELD}"
    )
    [reached] = reported(pinged[1])["prefixes"][0]["servers"]
    assert (reached["address"], reached["error"]) == (address, f"ResponseError {WITHHELD}")
    assert f"    version    {WITHHELD}, role master" in described[0].output.splitlines()
    [reached] = reported(described[1])["prefixes"][0]["servers"]
    assert (reached["version"], reached["server_role"]) == (WITHHELD, "master")


def test_a_short_password_is_not_given_away_where_it_is_part_of_the_address(
    quiet_app: Flask, stopped_server: RedisServer, refused: str
) -> None:
    # "1" is in "127.0.0.1": the address and the library's error were shown with *** for
    # each "1", ***27.0.0.***:6539.
    quiet_app.config.update(
        REDIS_PORT=stopped_server.port, REDIS_PASSWORD="1",
        OTHER_HOST="127.0.0.1", OTHER_PORT=stopped_server.port, OTHER_PASSWORD="elsewhere",
        OTHER_METRICS=False,
    )  # fmt: skip
    Redis(quiet_app)
    Redis(quiet_app, "OTHER")

    result = invoke(quiet_app, "ping")

    assert result.exit_code == 1
    address = f"127.0.0.1:{stopped_server.port}"
    assert result.output.splitlines()[:4] == [
        "REDIS (standalone, db 0): DOWN",
        f"  server   {address}  DOWN: ConnectionError {WITHHELD}",
        "OTHER (standalone, db 0): DOWN",
        f"  server   {address}  DOWN: {refused}",  # a password it does not quote
    ]

    for command in ("ping", "info"):
        result = invoke(quiet_app, command, "--json")

        assert result.exit_code == 1
        assert "***" not in result.output
        short, other = reported(result)["prefixes"]
        assert short["servers"][0]["address"] == other["servers"][0]["address"] == address
        assert short["servers"][0]["error"] == f"ConnectionError {WITHHELD}"
        assert other["servers"][0]["error"] == refused


# redis-py 5.0 leaves the socket of a unix connection that fails to connect open.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_user_name_and_password_in_a_host_or_a_socket_path_are_shown_nowhere(
    url_app: Flask, stopped_server: RedisServer, client_module: ModuleType, tmp_path: Path
) -> None:
    # Ready pools: the config may refuse a host of user:password@host, a pool takes it.
    userinfo = "admin:p@ss/w0rd"
    socket_path = tmp_path / "gone.sock"
    url_app.config.update(
        REDIS_CONNECTION_POOL=client_module.ConnectionPool(
            host=f"{userinfo}@127.0.0.1", port=stopped_server.port, password="1"
        ),
        SOCKET_CONNECTION_POOL=client_module.ConnectionPool(
            connection_class=client_module.UnixDomainSocketConnection,
            path=f"unix://{userinfo}@{socket_path}",
        ),
        SOCKET_METRICS=False,
    )
    Redis(url_app)
    Redis(url_app, "SOCKET")
    addresses = [f"***@127.0.0.1:{stopped_server.port}", f"unix:unix://***@{socket_path}"]

    for command in ("ping", "info"):
        text, as_json = invoke(url_app, command), invoke(url_app, command, "--json")

        for result in (text, as_json):
            assert result.exit_code == 1
            for secret in ("admin", "p@ss", "w0rd", quote(userinfo, safe="")):
                assert secret not in result.output
        lines = text.output.splitlines()
        for address in addresses:
            assert [line for line in lines if line.startswith(f"  server   {address}")]
        servers = [prefix["servers"][0] for prefix in reported(as_json)["prefixes"]]
        assert [server["address"] for server in servers] == addresses
        assert all(server["error"].startswith("ConnectionError") for server in servers)


def test_a_server_that_breaks_the_handshake_is_down_and_the_command_does_not_crash(
    url_app: Flask,
) -> None:
    # "+OK" to HELLO: redis-py 8.2 fails on it with an AttributeError of its own.
    server = ScriptedServer({b"HELLO": b"+OK\r\n"})
    try:
        url_app.config.update(REDIS_URL=f"redis://127.0.0.1:{server.port}/0", REDIS_PROTOCOL=3)
        Redis(url_app)
        results = [invoke(url_app, command, "--json") for command in ("ping", "info")]
    finally:
        close_clients(url_app)
        server.close()

    for result in results:
        assert result.exit_code == 1, result.output
        [prefix] = reported(result)["prefixes"]
        [reached] = prefix["servers"]
        assert (prefix["ok"], reached["ok"]) == (False, False)
        assert reached["error"]


# -- Sentinel and Cluster ---------------------------------------------------------------------


@pytest.fixture()
def sentinel_app(
    url_app: Flask, sentinel_set: SentinelSet, sentinel_master: redis.Redis
) -> Iterator[Flask]:
    """:func:`url_app` whose ``REDIS`` prefix is the Sentinel set's service."""
    url_app.config["REDIS_URL"] = sentinel_set.url
    yield url_app
    close_clients(url_app)


def test_a_sentinel_prefix_pings_the_master_the_sentinels_report(
    sentinel_app: Flask, sentinel_set: SentinelSet
) -> None:
    Redis(sentinel_app)
    master, replica = sentinel_set.master.address, sentinel_set.replica.address
    sentinels = [f"127.0.0.1:{port}" for _host, port in sentinel_set.sentinels]

    result = invoke(sentinel_app, "ping", "--json")

    assert result.exit_code == 0, result.output
    [prefix] = reported(result)["prefixes"]
    assert (prefix["mode"], prefix["service"], prefix["db"]) == ("sentinel", "mymaster", 0)
    assert prefix["sentinels"] == sentinels
    assert [(s["role"], s["address"], s["ok"]) for s in prefix["servers"]] == [
        ("master", f"127.0.0.1:{master[1]}", True)
    ]
    assert prefix["replicas"] == [f"127.0.0.1:{replica[1]}"]

    result = invoke(sentinel_app, "info")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:3] == [
        "REDIS (sentinel, service mymaster, db 0): ok",
        f"  sentinels: {', '.join(sentinels)}",
        f"  master   127.0.0.1:{master[1]}",
    ]
    assert f"  replica  127.0.0.1:{replica[1]}  (not asked)" in lines
    pools = [line.split(":")[0] for line in lines if line.startswith("    pool of")]
    assert pools == ["    pool of master", "    pool of replicas"]


def test_a_sentinel_prefix_whose_service_no_sentinel_knows_is_down(
    url_app: Flask, sentinel_set: SentinelSet
) -> None:
    url_app.config.update(
        REDIS_URL=sentinel_set.url.replace("/mymaster", "/nosuch"), REDIS_SENTINEL_WATCH=False
    )
    Redis(url_app)
    try:
        result = invoke(url_app, "ping", "--json")
    finally:
        close_clients(url_app)

    assert result.exit_code == 1
    [prefix] = reported(result)["prefixes"]
    assert prefix["ok"] is False
    answers = "; ".join(f"127.0.0.1:{port} does not monitor it"
                        for _host, port in sentinel_set.sentinels)  # fmt: skip
    assert prefix["error"] == f"no sentinel reports a master of service 'nosuch': {answers}"
    assert prefix["servers"] == []


def test_sentinels_that_cannot_be_reached_are_named_in_one_short_line_and_nothing_watches(
    url_app: Flask, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    closed = free_port()
    # A sentinel that does not listen, and a server that is no sentinel.
    url_app.config["REDIS_URL"] = (
        f"redis+sentinel://:{SECRET}@127.0.0.1:{closed},127.0.0.1:{redis_server.port}/mymaster"
    )
    before = set(threading.enumerate())
    Redis(url_app)
    try:
        with caplog.at_level(logging.INFO, "flask_redis"):
            result = invoke(url_app, "ping", "--timeout", "1")
    finally:
        close_clients(url_app)

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "REDIS (sentinel, service mymaster, db 0): DOWN"
    error = lines[1]
    assert error.startswith(
        f"  error: no sentinel reports a master of service 'mymaster': 127.0.0.1:{closed}"
        " ConnectionError: "
    )
    assert f"; 127.0.0.1:{redis_server.port} ResponseError: " in error
    assert error.endswith(" (is it a sentinel?)")
    assert len(error) < 400 and "<" not in error  # no repr of the library's objects
    assert SECRET not in result.output
    # The command's own connections did the asking: the app's client started no watch.
    assert [t.name for t in set(threading.enumerate()) - before
            if t.name.startswith("flask-redis-sentinel-")] == []  # fmt: skip
    assert caplog.records == []


def test_a_cluster_prefix_pings_each_primary_node_and_lists_the_replicas(
    new_app: Flask, redis_cluster_nodes: ClusterNodes, cluster_client: Any, client_library: str
) -> None:
    new_app.config.update(REDIS_URL=redis_cluster_nodes.url, REDIS_METRICS=False)
    Redis(new_app)
    client = new_app.extensions["redis"]["REDIS"]
    # The replicas the client learnt from CLUSTER SLOTS: redis-py 5.0 learns none from a
    # server that sends the networking metadata of Redis 7.
    known = sorted(node.name for node in client.get_replicas())
    try:
        pinged = invoke(new_app, "ping", "--json")
        described = invoke(new_app, "info", "--json")
    finally:
        close_clients(new_app)

    assert pinged.exit_code == 0, pinged.output
    [prefix] = reported(pinged)["prefixes"]
    assert (prefix["mode"], prefix["db"]) == ("cluster", None)
    primaries = sorted(f"127.0.0.1:{node.port}" for node in redis_cluster_nodes.masters)
    replicas = sorted(f"127.0.0.1:{node.port}" for node in redis_cluster_nodes.replicas)
    assert {server["role"] for server in prefix["servers"]} == {"primary"}
    assert sorted(server["address"] for server in prefix["servers"]) == primaries
    assert all(server["ok"] for server in prefix["servers"])
    assert sorted(prefix["replicas"]) == known
    assert set(known) <= set(replicas)

    assert described.exit_code == 0, described.output
    [prefix] = reported(described)["prefixes"]
    assert sorted(server["address"] for server in prefix["servers"]) == primaries
    assert {server["keyspace"]["db"] for server in prefix["servers"]} == {0}
    assert prefix["client"]["class"] == CLUSTER_CLASSES[client_library]
    assert sorted(pool["of"] for pool in prefix["client"]["pools"]) == sorted(primaries + known)


# -- The flask executable -----------------------------------------------------------------------


def test_the_flask_executable_finds_the_commands_through_the_entry_point(
    tmp_path: Path, secured_server: RedisServer, stopped_server: RedisServer
) -> None:
    (tmp_path / "cli_app.py").write_text(
        "from flask import Flask\n"
        "from flask_redis import Redis\n"
        "app = Flask(__name__)\n"
        f"app.config['REDIS_URL'] = 'redis://:{SECRET}@127.0.0.1:{secured_server.port}/0'\n"
        f"app.config['GONE_URL'] = 'redis://127.0.0.1:{stopped_server.port}/0'\n"
        "app.config['REDIS_METRICS'] = app.config['GONE_METRICS'] = False\n"
        "Redis(app)\n"
        "Redis(app, 'GONE')\n"
    )
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("FLASK_")}  # fmt: skip

    def flask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "cli_app:app", "redis", *args],
            cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip

    done = flask("ping", "REDIS")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("REDIS (standalone, db 0): ok\n")
    assert f"127.0.0.1:{secured_server.port}" in done.stdout
    assert SECRET not in done.stdout + done.stderr

    done = flask("ping", "GONE")
    assert done.returncode == 1
    assert "GONE (standalone, db 0): DOWN" in done.stdout
    assert "Error: not ok: GONE" in done.stderr

    done = flask("info", "NOPE")
    assert done.returncode == 2
    assert "no config prefix 'NOPE' is set up on app 'cli_app'" in done.stderr


def test_a_command_run_leaves_the_multiprocess_folder_as_it_found_it(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # docs/cli.rst offers ping as a health check run every few seconds: under
    # PROMETHEUS_MULTIPROC_DIR each run left two live gauge files behind.
    folder = tmp_path / "metrics"
    folder.mkdir()
    (tmp_path / "cli_app.py").write_text(
        "from flask import Flask\n"
        "from flask_redis import Redis\n"
        "app = Flask(__name__)\n"
        f"app.config['REDIS_URL'] = 'redis://127.0.0.1:{redis_server.port}/0'\n"
        "Redis(app)\n"
    )
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("FLASK_", "PROMETHEUS_", "prometheus_"))}  # fmt: skip
    environment["PROMETHEUS_MULTIPROC_DIR"] = str(folder)

    for command in ("ping", "info"):
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "cli_app:app", "redis", command],
            cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert sorted(path.name for path in folder.iterdir()) == []
