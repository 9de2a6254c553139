"""Faults of a real server: the caller gets its client library's own error (redis-py's or
valkey-py's), the metrics count the call once and the panel records it with its error, and
the next call works again.

Each test has a server of its own, killed with SIGKILL in the middle of a command, a
pipeline or a transaction; or a timeout; or a blocking pool with no connection left. The
client library retries once underneath (no backoff): the caller still sees one call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
import redis
from flask import Flask
from prometheus_client import CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_redis import RecordedCalls, Redis, get_recorded_calls

from .conftest import Closing, close_clients
from .samples import Samples
from .servers import RedisServer
from .waiting import wait_for

#: A script that keeps the server busy until it is killed.
BUSY = "while true do end"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may kill."""
    own = RedisServer(tmp_path).start()
    yield own
    own.stop()


@pytest.fixture()
def app(
    server: RedisServer, registry: CollectorRegistry, client_module: ModuleType
) -> Iterator[Flask]:
    """An app with metrics and recording of ``REDIS`` on :func:`server`, retrying once
    without backoff (the ``Retry`` of the app's client library)."""
    app = Flask(__name__)
    app.config.update(
        REDIS_PORT=server.port,
        REDIS_METRICS_REGISTRY=registry,
        REDIS_RECORD_CALLS=True,
        REDIS_RETRY=client_module.retry.Retry(client_module.backoff.NoBackoff(), 1),
    )
    yield app
    close_clients(app)


@pytest.fixture()
def ext(app: Flask) -> Redis:
    return Redis(app)


class Outcome:
    """What a call made in a request of its own, in a thread, ended with."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.calls: RecordedCalls | None = None
        self.done = threading.Event()
        #: The status of the request, or what failed in its thread around the call.
        self.status: int | None = None
        self.failure: BaseException | None = None

    def wait(self, timeout: float = 30) -> Outcome:
        """Wait until the request has ended, and fail the test as its thread failed: an
        error in a thread is lost with it."""
        assert self.done.wait(timeout), f"the call did not end within {timeout} s"
        if self.failure is not None:
            raise self.failure
        assert self.status == 200, f"the request answered {self.status}"
        return self


def in_request(app: Flask, work: Callable[[], Any]) -> Outcome:
    """Start a request of ``app`` that calls ``work``, in a thread; its outcome, whose
    :meth:`Outcome.wait` waits for it."""
    outcome = Outcome()
    works: dict[int, tuple[Callable[[], Any], Outcome]] = app.extensions.setdefault("faults", {})
    if not works:  # before the app's first request

        def view(key: int) -> str:
            work, outcome = works[key]
            try:
                work()
            except BaseException as error:  # what the caller gets
                outcome.error = error
            outcome.calls = get_recorded_calls()
            return ""

        app.add_url_rule("/fault/<int:key>", "fault", view)
    key = len(works)
    works[key] = work, outcome
    client = app.test_client()

    def run() -> None:
        try:
            outcome.status = client.get(f"/fault/{key}").status_code
        except BaseException as failure:  # raised again in the test's thread by wait()
            outcome.failure = failure
        finally:
            outcome.done.set()

    threading.Thread(target=run, daemon=True).start()
    return outcome


def kill_while_busy(server: RedisServer, outcome: Outcome) -> None:
    """Kill ``server`` once the call of ``outcome`` keeps it busy, and wait for the call.
    The probe is a plain redis-py client, whatever the app's client library."""

    def busy() -> bool:
        try:
            return any(client.get("cmd") == "blpop" for client in probe.client_list())
        except redis.TimeoutError:  # the server does not answer: a script runs
            return True

    with server.client(socket_timeout=0.3, retry=Retry(NoBackoff(), 0)) as probe:
        wait_for(busy, "the call to keep the server busy", 10, interval=0.01)
    server.kill()
    outcome.wait()


def recovers(server: RedisServer, ext: Redis, samples: Samples) -> None:
    """Restart ``server``: the next call works and is counted."""
    server.restart()
    before = samples.commands("PING") or 0
    assert ext.ping() is True
    assert samples.commands("PING") == before + 1


def test_a_server_killed_mid_command(
    server: RedisServer, ext: Redis, app: Flask, samples: Samples, client_module: ModuleType
) -> None:
    outcome = in_request(app, lambda: ext.blpop(["queue"], timeout=20))
    kill_while_busy(server, outcome)
    assert isinstance(outcome.error, client_module.ConnectionError)
    assert samples.commands("BLPOP") == 1
    assert samples.errors("BLPOP", type(outcome.error).__name__) == 1
    assert outcome.calls is not None
    [call] = outcome.calls
    assert call.command == "BLPOP"
    assert call.error is not None and call.error.startswith(type(outcome.error).__name__)
    recovers(server, ext, samples)


@pytest.mark.parametrize("transaction", [False, True], ids=["pipeline", "transaction"])
def test_a_server_killed_mid_pipeline(
    server: RedisServer,
    ext: Redis,
    app: Flask,
    samples: Samples,
    client_module: ModuleType,
    transaction: bool,
) -> None:
    def work() -> None:
        with ext.pipeline(transaction=transaction) as pipe:
            pipe.set("a", 1).eval(BUSY, 0).get("a")
            pipe.execute()

    outcome = in_request(app, work)
    kill_while_busy(server, outcome)
    assert isinstance(outcome.error, client_module.ConnectionError)
    name = "MULTI" if transaction else "PIPELINE"
    assert samples.round_trips(name) == 1
    assert [samples.commands(command) for command in ("SET", "EVAL", "GET")] == [1, 1, 1]
    assert samples.errors(name, type(outcome.error).__name__) == 1
    assert outcome.calls is not None
    assert [call.command for call in outcome.calls] == ["SET", "EVAL", "GET"]
    assert all(call.error and call.transaction is transaction for call in outcome.calls)
    recovers(server, ext, samples)


def test_a_timeout(
    server: RedisServer, app: Flask, samples: Samples, client_module: ModuleType
) -> None:
    app.config["REDIS_SOCKET_TIMEOUT"] = 0.2
    ext = Redis(app)
    outcome = in_request(app, lambda: ext.blpop(["queue"], timeout=5)).wait()
    assert isinstance(outcome.error, client_module.TimeoutError)
    assert samples.commands("BLPOP") == 1
    assert samples.errors("BLPOP", "TimeoutError") == 1
    assert outcome.calls is not None and outcome.calls[0].error.startswith("TimeoutError")
    assert ext.ping() is True


def test_a_blocking_pool_with_no_connection_left(
    server: RedisServer,
    app: Flask,
    samples: Samples,
    client_module: ModuleType,
    closing: Closing,
) -> None:
    pool = closing(
        client_module.BlockingConnectionPool(port=server.port, max_connections=1, timeout=0.2)
    )
    app.config["REDIS_CONNECTION_POOL"] = pool
    ext = Redis(app)
    holder = in_request(app, lambda: ext.blpop(["queue"], timeout=1))
    wait_for(lambda: pool._connections, "the BLPOP to take the connection", 10, interval=0.01)
    time.sleep(0.1)
    outcome = in_request(app, ext.ping).wait()
    assert isinstance(outcome.error, client_module.ConnectionError)
    assert samples.errors("PING", "ConnectionError") == 1
    assert outcome.calls is not None and outcome.calls[0].error.startswith("ConnectionError")
    assert holder.wait().error is None  # BLPOP timed out on the server
    assert ext.ping() is True
