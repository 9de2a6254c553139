"""Flask-DebugToolbar with the Redis panel, on a page that makes the calls it points out.

The front page reads and writes two Redis databases, through the ``REDIS`` and ``CACHE``
config prefixes, the way a real view might, mistakes included: it reads one key twice,
reads six keys one by one in a loop (an N+1 pattern), sends a pipeline and a transaction,
and catches a failing command. Open the "Redis" tab of the toolbar to see them. Run it as::

    python examples/toolbar.py [--port 5000] [--redis-url redis://127.0.0.1:6379]

Without ``--redis-url`` it starts a throw-away ``redis-server`` of its own (see
``comments.py``). It needs Flask-DebugToolbar: ``pip install Flask-DebugToolbar``.
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit, urlunsplit

import redis
from flask import Blueprint, Flask, Response, render_template_string
from flask_debugtoolbar import DebugToolbarExtension

from flask_redis import Redis

#: A key whose name is HTML: the panel must show it as text, never run it.
SCRIPT_KEY = "<script>alert(1)</script>"
#: A key with a space and quotes, which redis-cli needs quoted.
QUOTED_KEY = 'greeting "en"'
PRODUCTS = 6

#: Database 0 (``REDIS_*`` keys) and database 1 (``CACHE_*`` keys), set up by create_app.
db = Redis()
cache = Redis(config_prefix="CACHE")

bp = Blueprint("toolbar", __name__)

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Redis panel demo</title></head>
<body>
  <h1>{{ greeting }}</h1>
  <p>This page was viewed {{ views }} times. Open the <b>Redis</b> tab of the debug toolbar
  on the right to see the Redis calls it made.</p>
  <ul>
  {% for name, price in products %}<li>{{ name }}: {{ price }}</li>{% endfor %}
  </ul>
  <p>A failing command was caught: {{ failure }}</p>
</body>
</html>
"""


def _seed() -> None:
    """Keys for the page to read, written in one pipeline."""
    pipe = db.pipeline(transaction=False)
    pipe.set(QUOTED_KEY, "hello world")
    for number in range(PRODUCTS):
        pipe.set(f"product:{number}", f"{(number + 1) * 1.5:.2f}")
    pipe.set(SCRIPT_KEY, "a key that is HTML")
    pipe.execute()


@bp.get("/")
def index() -> str:
    """A page whose Redis calls show the panel's findings."""
    _seed()
    greeting = db.get(QUOTED_KEY)
    db.get(QUOTED_KEY)  # read again: a duplicate
    db.get(SCRIPT_KEY)
    # One GET per product, all from the next line: the panel hints at MGET.
    prices = [db.get(f"product:{number}") for number in range(PRODUCTS)]
    with db.pipeline() as transaction:  # MULTI ... EXEC
        transaction.incr("page:views")
        transaction.expire("page:views", 3600)
        views, _ = transaction.execute()
    cache.set("page:last-views", views, ex=60)
    try:
        db.lpush(QUOTED_KEY, "oops")  # a string is no list
    except redis.ResponseError as error:
        failure = str(error)
    else:  # pragma: no cover - the server always refuses
        failure = "none"
    products = [(f"product {number}", price) for number, price in enumerate(prices)]
    return render_template_string(
        PAGE, greeting=greeting, views=views, products=products, failure=failure
    )


@bp.get("/favicon.ico")
def favicon() -> Response:
    """No icon, without the 404 a browser would log as an error."""
    return Response(status=204)


def database(url: str, number: int) -> str:
    """``url`` with database ``number`` as its path."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


def create_app(redis_url: str) -> Flask:
    """The demo app on databases 0 and 1 of the Redis server at ``redis_url``, with the
    debug toolbar and its Redis panel."""
    app = Flask(__name__)
    app.debug = True  # before the extensions: recording calls is on when the app debugs
    app.config.update(
        SECRET_KEY="only-for-this-demo",
        DEBUG_TB_INTERCEPT_REDIRECTS=False,
        REDIS_URL=database(redis_url, 0),
        REDIS_DECODE_RESPONSES=True,
        CACHE_URL=database(redis_url, 1),
        CACHE_DECODE_RESPONSES=True,
    )
    db.init_app(app)
    cache.init_app(app)
    app.register_blueprint(bp)
    DebugToolbarExtension(app)
    app.config["DEBUG_TB_PANELS"] += ("flask_redis_panel.RedisPanel",)
    return app


def main(argv: list[str] | None = None) -> int:
    """Serve the demo app until stopped."""
    from comments import serve  # examples/ is sys.path[0]

    return serve(create_app, "Flask-DebugToolbar's Redis panel, live.", argv)


if __name__ == "__main__":
    sys.exit(main())
