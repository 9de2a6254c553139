"""The app that :mod:`tests.test_multiprocess` serves with gunicorn, one copy per worker.

Not imported by the test process itself: that would register its metrics in pytest's
default registry. The commands of ``/work`` are listed in ``WORK_COMMANDS`` there;
``/background`` sends one ECHO outside a request; ``/async-work``, an async view, one
INCRBY through the asyncio client (:mod:`tests.test_async`). The pages of
:mod:`tests.incident_pages` (``/incident/...``) make Redis hurt, on prefixes of their own.

Read from the environment: ``FLASK_REDIS_TEST_PORT``, the port of the suite's
redis-server, and ``FLASK_REDIS_TEST_WRITE_INTERVAL``, the seconds between two writes of a
worker's metrics to the files. Metrics go to prometheus-client's default registry and are served at
``/metrics``; with ``PROMETHEUS_MULTIPROC_DIR`` set, that view reads all workers' files.
"""

from __future__ import annotations

import os
import threading
import time

from flask import Flask

import flask_redis._multiprocess
from flask_redis import Redis

from .incident_pages import add_incident_pages

flask_redis._multiprocess.INTERVAL = float(os.environ["FLASK_REDIS_TEST_WRITE_INTERVAL"])

app = Flask(__name__)
app.config.update(
    REDIS_HOST="127.0.0.1",
    REDIS_PORT=os.environ["FLASK_REDIS_TEST_PORT"],  # text: converted to an integer
    REDIS_METRICS_PATH="/metrics",
)
redis = Redis(app)
add_incident_pages(app, f"redis://127.0.0.1:{app.config['REDIS_PORT']}/0")
redis.ping()  # once per process that loads the app: gunicorn's master with --preload


@app.route("/health")
def health() -> str:
    """Answers without touching Redis: the test polls it until the server is up."""
    return "ok"


@app.route("/work")
def work() -> str:
    """Two SETs, one GET and a pipeline (no transaction) of INCRBY, HSET and LPUSH; answers
    with the pid of the worker that served it."""
    pid = str(os.getpid())
    redis.set("mp:a", pid)
    redis.set("mp:b", pid)
    redis.get("mp:a")
    pipe = redis.pipeline(transaction=False)
    pipe.incrby("mp:counter", 1)
    pipe.hset("mp:hash", "pid", pid)
    pipe.lpush("mp:list", pid)
    pipe.execute()
    # Hold the worker a moment, so that concurrent requests go to the other workers.
    time.sleep(0.02)
    return pid


@app.route("/background")
def background() -> str:
    """One ECHO from a thread of its own, outside any request, as a job runner sends it;
    answers with the pid of the worker that served it."""
    thread = threading.Thread(target=redis.echo, args=("from a thread",))
    thread.start()
    thread.join()
    return str(os.getpid())


@app.route("/async-work")
async def async_work() -> str:
    """One INCRBY through the asyncio client, in the loop Flask runs the view in; answers
    with the pid of the worker that served it."""
    await redis.async_connection.incr("mp:async")
    return str(os.getpid())
