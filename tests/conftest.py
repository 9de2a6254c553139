from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask

from .servers import RedisServer

SECRET = "s3cret-Pa55word"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session, on a free loopback port and a unix socket."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def secured_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server that wants the password :data:`SECRET`."""
    server = RedisServer(tmp_path_factory.mktemp("redis-auth"), "--requirepass", SECRET).start()
    yield server
    server.stop()


@pytest.fixture()
def plain(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain redis-py client of :func:`redis_server` (database 0), every database empty."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture()
def app(redis_server: RedisServer, plain: redis.Redis) -> Flask:
    """An app whose ``REDIS_*`` keys point at :func:`redis_server`."""
    app = Flask(__name__, root_path=str(Path(__file__).parent))
    app.config.update(TESTING=True, REDIS_HOST="127.0.0.1", REDIS_PORT=redis_server.port)
    return app


@pytest.fixture()
def new_app() -> Flask:
    """An app with no Redis configuration at all."""
    return Flask(__name__, root_path=str(Path(__file__).parent))
