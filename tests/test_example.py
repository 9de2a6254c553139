"""The example app in ``examples/comments.py``: run as a script, and through ``create_app``."""

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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask

from .examples import imported
from .servers import RedisServer

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "comments.py"
SERVING = re.compile(
    r"Serving on (http://127\.0\.0\.1:\d+/) \(Redis at redis://127\.0\.0\.1:(\d+)\)"
)
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
SCRIPT_TAG = "<script>alert(1)</script>"


@dataclass
class RunningScript:
    """``python examples/comments.py --port 0``, serving."""

    process: subprocess.Popen[str]
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


@pytest.fixture()
def script(tmp_path: Path) -> Iterator[RunningScript]:
    """The example started as a script, with a temporary folder of its own as ``TMPDIR``."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--port", "0"],
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
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            assert line is not None, f"the script exited with code {process.wait()}"
            match = SERVING.match(line)
            if match:
                break
        yield RunningScript(process, match[1], int(match[2]), tmpdir)
    finally:
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


@pytest.fixture()
def example_app(
    comments: ModuleType, redis_server: RedisServer, plain: Any
) -> Iterator[Flask]:
    """``create_app`` on the test suite's server, every database of it empty."""
    app: Flask = comments.create_app(redis_server.url)
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
