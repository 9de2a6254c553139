"""Pages that make Redis hurt, for the tests of the incident metrics under gunicorn.

:func:`add_incident_pages` gives an app four prefixes more, each with a page that makes
one kind of trouble happen for real, against a real server, once per request:

``/incident/exhausted`` (prefix ``TIGHT``, a ``ConnectionPool`` of one connection)
    holds the pool's connection with a WATCH, so that a GET finds none: refused; then
    UNWATCH (the pipeline's reset) gives it back and the GET is sent again.
``/incident/wait`` (prefix ``QUEUE``, a ``BlockingConnectionPool`` of one connection)
    a thread holds the connection :data:`HOLD` seconds with a WATCH while the view's GET
    waits for it.
``/incident/killed`` (prefix ``RETRY``, one retry on ``ConnectionError``)
    a BLPOP that an operator's client kills while it blocks, which redis-py retries; then
    the idle connection is killed too, and a PING finds it dead and opens another.
    Requested one at a time: the operator finds the BLPOP by the client's name.
``/incident/bulk`` (prefix ``BULK``)
    SETs and GETs a value of :data:`BULK_SIZE` bytes, and sends an EVALSHA of a script
    the server does not have (``NOSCRIPT``).
``/incident/cached`` (prefix ``CACHED``, only with a ``cached_url``: RESP3 and a
    client-side cache, which needs Redis 7.4 or later)
    SETs two new keys, GETs the first :data:`CACHED_READS` times (a miss, then hits) and
    the second once (a miss): the cache holds one entry, so each miss evicts the entry
    before it, but the very first of a process.

Each page answers 200 with a JSON object that says what happened.
"""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.connection
from flask import Blueprint, Flask
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_redis import Redis

#: Seconds the thread of ``/incident/wait`` holds the connection.
HOLD = 0.2
#: The size of the value of ``/incident/bulk``.
BULK_SIZE = 100_000
#: The key family of the ``BULK`` prefix, of the keys ``incident:bulk*``.
BULK_FAMILY = "bulk"
#: The GETs of ``/incident/cached``: the first misses, the others hit.
CACHED_READS = 3
#: The class of the error of a refused checkout: ``MaxConnectionsError`` (a
#: ``ConnectionError``) where redis-py's pools raise it, as their module then imports it.
REFUSED = (
    "MaxConnectionsError" if hasattr(redis.connection, "MaxConnectionsError") else "ConnectionError"
)
#: The client name of the ``RETRY`` prefix, which the operator's client looks for.
RETRY_NAME = "incident-retry"
#: How long the operator waits for what it looks for in ``CLIENT LIST``.
OPERATOR_TIMEOUT = 5.0
#: The prefixes this module adds, lower-cased as the metrics label them.
PREFIXES = ("tight", "queue", "retry", "bulk")
CACHED_PREFIX = "cached"


def add_incident_pages(app: Flask, redis_url: str, cached_url: str | None = None) -> None:
    """Add the prefixes and pages of this module to ``app``: on database 2 of the server
    at ``redis_url``, and the client-side cache's on the server at ``cached_url``. Their
    metrics go to the registry of ``REDIS_METRICS_REGISTRY``, if set."""
    config = app.config
    registry = config.get("REDIS_METRICS_REGISTRY")
    prefixes = [prefix.upper() for prefix in PREFIXES]
    url = _database(redis_url, 2)
    for prefix in prefixes:
        config[f"{prefix}_URL"] = url
        config[f"{prefix}_METRICS"] = True
        if registry is not None:
            config[f"{prefix}_METRICS_REGISTRY"] = registry
    config["BULK_METRICS_KEY_FAMILIES"] = {BULK_FAMILY: "incident:bulk*"}
    config["TIGHT_MAX_CONNECTIONS"] = 1
    config["RETRY_CLIENT_NAME"] = RETRY_NAME
    config["RETRY_RETRY"] = Retry(NoBackoff(), 1)
    config["RETRY_RETRY_ON_ERROR"] = [redis.ConnectionError]
    # The URL and a pool are exclusive: the blocking pool says the address itself.
    del config["QUEUE_URL"]
    config["QUEUE_CONNECTION_POOL"] = redis.BlockingConnectionPool.from_url(
        url, max_connections=1, timeout=10
    )
    clients = {prefix.lower(): Redis(app, config_prefix=prefix) for prefix in prefixes}
    if cached_url is not None:
        from redis.cache import CacheConfig

        config.update(
            CACHED_URL=cached_url,
            CACHED_METRICS=True,
            CACHED_PROTOCOL=3,
            CACHED_CACHE_CONFIG=CacheConfig(max_size=1),
        )
        if registry is not None:
            config["CACHED_METRICS_REGISTRY"] = registry
        clients[CACHED_PREFIX] = Redis(app, config_prefix=CACHED_PREFIX.upper())
    app.register_blueprint(_pages(clients, url))


def _database(url: str, number: int) -> str:
    """``url`` with the database ``number``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{number}"))


def _pages(clients: dict[str, Redis], url: str) -> Blueprint:
    bp = Blueprint("incident", __name__, url_prefix="/incident")

    @bp.get("/exhausted")
    def exhausted() -> dict[str, Any]:
        tight = clients["tight"]
        with tight.pipeline() as pipe:
            pipe.watch("incident:tight")  # holds the pool's only connection
            try:
                tight.get("incident:tight")
            except redis.ConnectionError:
                refused = True
            else:  # pragma: no cover - the pool has no room
                refused = False
        return {"refused": refused, "value": tight.get("incident:tight")}

    @bp.get("/wait")
    def wait() -> dict[str, Any]:
        queue = clients["queue"]
        held = threading.Event()

        def hold() -> None:
            with queue.pipeline() as pipe:
                pipe.watch("incident:queue")
                held.set()
                time.sleep(HOLD)

        thread = threading.Thread(target=hold)
        thread.start()
        held.wait(OPERATOR_TIMEOUT)
        start = time.perf_counter()
        queue.get("incident:queue")
        waited = time.perf_counter() - start
        thread.join()
        return {"waited": waited}

    @bp.get("/killed")
    def killed() -> dict[str, Any]:
        retry = clients["retry"]
        operator = redis.Redis.from_url(url)
        try:
            popped: list[Any] = []
            thread = threading.Thread(
                target=lambda: popped.append(retry.blpop(["incident:list"], timeout=10))
            )
            thread.start()
            first = _blocked_client(operator)
            operator.client_kill_filter(_id=str(first))
            second = _blocked_client(operator, other_than=first)  # the retry blocks again
            operator.lpush("incident:list", "done")
            thread.join()
            # The idle connection, killed: the next checkout finds it closed.
            operator.client_kill_filter(_id=str(second))
            _wait_gone(operator, second)
            retry.ping()
        finally:
            operator.close()
        return {"popped": popped[0][1].decode(), "killed": [first, second]}

    @bp.get("/bulk")
    def bulk() -> dict[str, Any]:
        client = clients["bulk"]
        client.set("incident:bulk", b"x" * BULK_SIZE)
        size = len(client.get("incident:bulk") or b"")
        try:
            client.evalsha("0" * 40, 0)
        except redis.ResponseError:
            failed = True
        else:  # pragma: no cover - no such script
            failed = False
        return {"size": size, "failed": failed}

    @bp.get("/cached")
    def cached() -> dict[str, Any]:
        client = clients[CACHED_PREFIX]
        first, second = (f"incident:cached:{uuid.uuid4().hex}" for _ in range(2))
        client.mset({first: "first", second: "second"})
        values = [client.get(first) for _ in range(CACHED_READS)]
        values.append(client.get(second))
        return {"values": [value.decode() if value else None for value in values]}

    return bp


def _retry_clients(operator: redis.Redis, command: str | None) -> list[int]:
    return [
        int(client["id"])
        for client in operator.client_list()
        if client.get("name") == RETRY_NAME and command in (None, client.get("cmd"))
    ]


def _blocked_client(operator: redis.Redis, other_than: int | None = None) -> int:
    """The id of the ``RETRY`` connection blocked in BLPOP, once there is one."""
    deadline = time.monotonic() + OPERATOR_TIMEOUT
    while time.monotonic() < deadline:
        found = [id_ for id_ in _retry_clients(operator, "blpop") if id_ != other_than]
        if found:
            return found[0]
        time.sleep(0.01)
    raise TimeoutError("no BLPOP of the RETRY prefix blocks")


def _wait_gone(operator: redis.Redis, client_id: int) -> None:
    deadline = time.monotonic() + OPERATOR_TIMEOUT
    while client_id in _retry_clients(operator, None):
        if time.monotonic() > deadline:
            raise TimeoutError(f"client {client_id} is still there")
        time.sleep(0.01)


def showcase(redis_url: str, cached_url: str | None = None) -> Flask:
    """The showcase (``examples/comments.py``, imported as ``comments``: gunicorn's
    ``--chdir`` puts its folder on the path) in production mode, with the pages of this
    module."""
    app: Flask = importlib.import_module("comments").create_app(redis_url, debug=False)
    add_incident_pages(app, redis_url, cached_url)
    return app
