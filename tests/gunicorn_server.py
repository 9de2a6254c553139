"""A real gunicorn for the tests, in multiprocess mode, started on a free loopback port.

:func:`start_gunicorn` serves any WSGI app spec (``module:app`` or a factory call such as
``module:create_app(debug=False)``) with sync workers, a fresh and empty
``PROMETHEUS_MULTIPROC_DIR`` and the ``child_exit`` hook that prometheus-client documents;
:meth:`Gunicorn.stop` stops it. Only the gunicorn process gets the environment given: the
pytest process's own is left alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from .servers import free_port
from .waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
HTTP_TIMEOUT = 10.0
ATTEMPTS = 3

#: The gunicorn config file: the hook is the one prometheus-client documents for
#: multiprocess mode. gunicorn 25.1+ would also open a control socket in ~/.gunicorn,
#: shared by every gunicorn of the user; older releases ignore the unknown setting.
GUNICORN_CONFIG = """\
from prometheus_client import multiprocess

control_socket_disable = True


def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
"""


@dataclass
class Gunicorn:
    """A running gunicorn: its address, master process, log and metrics folder."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    multiproc_dir: Path

    def log_text(self) -> str:
        """What gunicorn and its workers logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"

    def stop(self) -> None:
        """SIGTERM to the master, which stops its workers; SIGKILL to its group if it
        hangs."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
                try:
                    os.killpg(process.pid, signal.SIGKILL)  # its own session: all of it
                except ProcessLookupError:
                    pass
                process.wait(timeout=STOP_TIMEOUT)


def get(url: str) -> tuple[int, str]:
    """GET ``url``: the status and the body, as text."""
    # A new connection per request: urllib sends "Connection: close".
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:
        return response.status, response.read().decode()


def start_gunicorn(
    directory: Path,
    app: str,
    *,
    workers: int,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/health",
    chdir: Path = ROOT,
    preload: bool = False,
) -> Gunicorn:
    """Start gunicorn serving ``app`` with ``workers`` sync workers, and wait until every
    worker has booted and ``ready_path`` answers 200.

    Its files go to ``directory``: the config, and a folder per attempt with its log and
    a new, empty ``PROMETHEUS_MULTIPROC_DIR``. ``env`` is added to this process's
    environment, and the project's root to ``PYTHONPATH``; ``chdir`` is the folder the app
    is imported from; ``preload`` loads the app before the fork. A port that was free can
    be taken before gunicorn binds it, so a gunicorn that exits before answering is tried
    again on another port.
    """
    config = directory / "gunicorn.conf.py"
    config.write_text(GUNICORN_CONFIG)
    log = directory / "gunicorn.log"
    for _attempt in range(ATTEMPTS):
        server = _launch(directory, config, app, workers, env or {}, chdir, preload)
        if _wait_until_ready(server, workers, ready_path):
            return server
        log = server.log
    pytest.fail(f"gunicorn did not start in {ATTEMPTS} attempts:\n{_read(log)}")


def _launch(
    directory: Path,
    config: Path,
    app: str,
    workers: int,
    env: Mapping[str, str],
    chdir: Path,
    preload: bool,
) -> Gunicorn:
    attempt = Path(tempfile.mkdtemp(prefix="gunicorn-", dir=directory))
    multiproc_dir = attempt / "prometheus"
    multiproc_dir.mkdir()  # fresh and empty, as prometheus-client wants it at start
    log = attempt / "gunicorn.log"
    port = free_port()
    environ = dict(
        os.environ,
        **env,
        PROMETHEUS_MULTIPROC_DIR=str(multiproc_dir),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    command = [
        sys.executable, "-m", "gunicorn",
        "--config", str(config),
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--worker-class", "sync",
        "--timeout", "30",
        "--graceful-timeout", "5",
        "--chdir", str(chdir),
        *(["--preload"] if preload else []),
        app,
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=environ, stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return Gunicorn(f"http://127.0.0.1:{port}", process, log, multiproc_dir)


def _wait_until_ready(server: Gunicorn, workers: int, ready_path: str) -> bool:
    """Whether ``server`` answers; ``False`` if it exited first (port taken).

    :raises TimeoutError: it neither answered nor exited within :data:`START_TIMEOUT`.
    """

    def outcome() -> str | None:
        if server.process.poll() is not None:
            return "exited"
        # Ready: every worker booted, and one of them answers.
        if server.log_text().count("Booting worker") >= workers:
            try:
                if get(server.url + ready_path)[0] == 200:
                    return "ready"
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
        return None

    try:
        what = f"gunicorn to answer {ready_path}"
        found = wait_for(outcome, what, START_TIMEOUT, interval=0.1, detail=server.log_text)
    except TimeoutError:
        server.stop()
        raise
    return found == "ready"


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else "(no log)"
