"""The distributions as users and packagers get them.

The sdist and the wheel are built from a copy of the source tree with ``python -m build``
(the wheel from the sdist, as ``build`` does, so the sdist is known to build), checked with
``twine check --strict`` and listed; then the wheel is installed with its ``metrics`` and
``toolbar`` extras in a fresh virtualenv, where an app outside the source tree shows its
Redis calls in the debug toolbar's panel, serves ``/metrics`` and answers ``flask redis
ping``.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import Any, Union

import pytest

from .recorded import read_page
from .servers import RedisServer

pytestmark = [pytest.mark.one_kind, pytest.mark.tool]

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("flask_redis", "flask_redis_panel")

#: What a clean checkout has not: version control, virtualenvs, caches and build output,
#: left out of the copy that is built (``*.egg-info`` and any folder holding a
#: ``pyvenv.cfg`` too).
_NOT_IN_A_CHECKOUT = {
    ".git", ".venv", ".tox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis",
    "build", "dist",
}  # fmt: skip

#: Files of the top of the source tree that the sdist must hold.
SDIST_TOP_FILES = (
    "CHANGELOG.rst", "LICENSE", "MANIFEST.in", "PKG-INFO", "README.rst", "pyproject.toml",
    "setup.py", "tox.ini",
)  # fmt: skip

#: Folders the sdist must hold in full: the tests, and what they read (``examples/``,
#: ``docs/_static/``); the docs, to build them; the benchmarks that the README points to.
SDIST_FOLDERS = ("tests", "docs", "examples", "benchmarks")

#: Never in the sdist: bytecode, caches and the docs' build output.
UNWANTED_IN_SDIST = re.compile(
    r"(^|/)(__pycache__|\.[^/]*_cache|\.git)(/|$)|\.py[cod]$|^docs/_build/"
)

#: The app of the installed wheel, run from a folder outside the source tree.
SMOKE_APP = '''\
"""An app of the installed wheel: the debug toolbar with the Redis panel, and /metrics."""

import json
import os
import sysconfig

from flask import Flask
from flask_debugtoolbar import DebugToolbarExtension

import flask_redis
import flask_redis_panel
from flask_redis import Redis

KEY = "packaging:installed-wheel"


def create_app() -> Flask:
    app = Flask(__name__)
    app.debug = True  # before Redis(app): calls are recorded when the app debugs
    app.config.update(
        SECRET_KEY="packaging",
        REDIS_URL="redis://127.0.0.1:" + os.environ["PACKAGING_REDIS_PORT"] + "/0",
        REDIS_DECODE_RESPONSES=True,
        REDIS_METRICS_PATH="/metrics",
    )
    redis = Redis(app)
    DebugToolbarExtension(app)
    app.config["DEBUG_TB_PANELS"] += ("flask_redis_panel.RedisPanel",)

    @app.get("/")
    def page() -> str:
        redis.set(KEY, "sent by the installed wheel")
        return "<!doctype html><html><body><p>The page</p></body></html>"

    return app


def main() -> None:
    app = create_app()
    client = app.test_client()
    page = client.get("/")
    metrics = client.get("/metrics")
    redis = app.extensions["redis"]["REDIS"]
    redis.delete(KEY)
    redis.close()
    redis.connection_pool.disconnect()
    print(json.dumps({
        "files": {"flask_redis": flask_redis.__file__,
                  "flask_redis_panel": flask_redis_panel.__file__},
        "purelib": sysconfig.get_paths()["purelib"],
        "page": [page.status_code, page.get_data(as_text=True)],
        "metrics": [metrics.status_code, metrics.get_data(as_text=True)],
    }))


if __name__ == "__main__":
    main()
'''

Command = Sequence[Union[str, Path]]


def run(command: Command, timeout: float, **kwargs: Any) -> str:
    """Run ``command``, fail the test with its output unless it exits 0; its stdout."""
    try:
        result: subprocess.CompletedProcess[str] = subprocess.run(
            [str(part) for part in command], capture_output=True, text=True, timeout=timeout,
            check=False, **kwargs,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        output = "\n".join(
            part.decode(errors="replace") if isinstance(part, bytes) else part or ""
            for part in (error.stdout, error.stderr)
        )
        pytest.fail(f"{command} took more than {timeout} s:\n{output}")
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{output}"
    return result.stdout


def not_in_a_checkout(folder: str, names: list[str]) -> set[str]:
    """The ``names`` in ``folder`` that :func:`shutil.copytree` leaves out."""
    ignored = {name for name in names if name == "__pycache__" or name.endswith((".pyc", ".pyo"))}
    if Path(folder) == ROOT:
        ignored |= {
            name for name in names
            if name in _NOT_IN_A_CHECKOUT or name.endswith(".egg-info")
            or (ROOT / name / "pyvenv.cfg").exists()
        }  # fmt: skip
    return ignored


def files_under(top: Path, folder: str) -> set[str]:
    """The files under ``top/folder``, as paths relative to ``top``."""
    paths = (top / folder).rglob("*")
    return {path.relative_to(top).as_posix() for path in paths if path.is_file()}


def package_files(top: Path) -> set[str]:
    """The files of :data:`PACKAGES` in the tree at ``top``, as paths relative to it."""
    return set().union(*(files_under(top, package) for package in PACKAGES))


@dataclass(frozen=True)
class Built:
    """The distributions built from a copy of the source tree."""

    #: The copy that was built.
    source: Path
    sdist: Path
    wheel: Path

    def wheel_names(self) -> list[str]:
        """The paths of the files in the wheel."""
        with zipfile.ZipFile(self.wheel) as wheel:
            return wheel.namelist()

    def wheel_text(self, name: str) -> str:
        """The text of the file ``name`` of the wheel."""
        with zipfile.ZipFile(self.wheel) as wheel:
            return wheel.read(name).decode()

    def dist_info(self) -> str:
        """The ``*.dist-info/`` folder of the wheel."""
        (folder,) = {name.split("/")[0] for name in self.wheel_names() if ".dist-info/" in name}
        return folder

    def sdist_names(self) -> set[str]:
        """The files of the sdist, as paths relative to its top folder."""
        with tarfile.open(self.sdist) as sdist:
            members = [member.name for member in sdist.getmembers() if member.isfile()]
        tops = {name.split("/", 1)[0] for name in members}
        assert tops == {self.sdist.name[: -len(".tar.gz")]}, tops
        return {name.split("/", 1)[1] for name in members}


@dataclass(frozen=True)
class Installed:
    """A fresh virtualenv holding the wheel with its extras, and a folder outside the
    source tree to run its app from."""

    python: Path
    flask: Path
    work: Path
    env: dict[str, str]

    @property
    def pip(self) -> list[str | Path]:
        """The command that installs into the virtualenv, quietly."""
        return [self.python, "-m", "pip", "install", "--quiet"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The sdist and the wheel, built from a copy of the source tree (the build writes
    ``*.egg-info`` into the tree it builds: the source tree is left as it is)."""
    top = tmp_path_factory.mktemp("packaging")
    source, out = top / "source", top / "dist"
    shutil.copytree(ROOT, source, ignore=not_in_a_checkout)
    run([sys.executable, "-m", "build", "--outdir", out, source], timeout=300)
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Built(source, sdist, wheel)


@pytest.fixture(scope="module")
def installed(
    built: Built, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Installed:
    """The wheel with its ``metrics`` and ``toolbar`` extras in a new virtualenv, without
    system site-packages, and the app :data:`SMOKE_APP` in a folder of its own."""
    found = virtualenv(tmp_path_factory.mktemp("installed"), redis_server)
    run([*found.pip, f"{built.wheel}[metrics,toolbar]"], timeout=300)
    return found


def virtualenv(top: Path, redis_server: RedisServer) -> Installed:
    """A new virtualenv in ``top``, without system site-packages, and the app
    :data:`SMOKE_APP` in a folder of its own; nothing installed yet."""
    run([sys.executable, "-m", "venv", top / "venv"], timeout=120)
    scripts = top / "venv" / ("Scripts" if os.name == "nt" else "bin")
    python = scripts / "python"
    work = top / "work"
    work.mkdir()
    (work / "smoke_app.py").write_text(SMOKE_APP)
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith(("PYTHON", "FLASK_")) and name != "VIRTUAL_ENV"
    }  # fmt: skip
    env.update(
        PATH=f"{scripts}{os.pathsep}{env.get('PATH', '')}",
        PYTHONNOUSERSITE="1",
        PACKAGING_REDIS_PORT=str(redis_server.port),
    )
    return Installed(python, scripts / "flask", work, env)


@pytest.fixture(scope="module")
def smoke(installed: Installed) -> dict[str, Any]:
    """What :data:`SMOKE_APP` reports, run with warnings as errors in the new virtualenv."""
    command: Command = [installed.python, "-I", "-W", "error", "smoke_app.py"]
    output = run(command, timeout=60, cwd=installed.work, env=installed.env)
    report: dict[str, Any] = json.loads(output)
    return report


# -- Both distributions ----------------------------------------------------------------------


def test_twine_check_strict_passes_for_the_sdist_and_the_wheel(built: Built) -> None:
    twine = [sys.executable, "-m", "twine", "check", "--strict", str(built.sdist), str(built.wheel)]
    output = run(twine, timeout=60, env={**os.environ, "NO_COLOR": "1"})
    assert output.count("PASSED") == 2, output


# -- The wheel -------------------------------------------------------------------------------


def test_wheel_ships_the_py_typed_markers_and_the_panel_templates(built: Built) -> None:
    names = set(built.wheel_names())
    templates = files_under(built.source, "flask_redis_panel/templates")

    assert "flask_redis_panel/templates/redis_panel.html" in templates
    assert {"flask_redis/py.typed", "flask_redis_panel/py.typed"} | templates <= names


def test_wheel_holds_every_file_of_both_packages_and_nothing_else(built: Built) -> None:
    dist_info = built.dist_info()
    names = [name for name in built.wheel_names() if not name.startswith(f"{dist_info}/")]

    assert len(names) == len(set(names))
    assert set(names) == package_files(built.source)


def test_wheel_registers_the_flask_redis_command(built: Built) -> None:
    entry_points = configparser.ConfigParser()
    entry_points.read_string(built.wheel_text(f"{built.dist_info()}/entry_points.txt"))

    assert dict(entry_points["flask.commands"]) == {"redis": "flask_redis._cli:redis_group"}


def test_wheel_metadata_names_the_version_the_pythons_and_the_extras(built: Built) -> None:
    metadata = HeaderParser().parsestr(built.wheel_text(f"{built.dist_info()}/METADATA"))
    init = (built.source / "flask_redis" / "__init__.py").read_text()
    version = re.search(r'^__version__ = "(.+)"$', init, re.M)

    assert version is not None
    assert (metadata["Name"], metadata["Version"]) == ("Flask-And-Redis", version[1])
    assert metadata["Requires-Python"] == ">=3.9"
    assert {"metrics", "toolbar"} <= set(metadata.get_all("Provides-Extra", []))
    requires = metadata.get_all("Requires-Dist", [])
    assert any(item.startswith("prometheus-client") and "metrics" in item for item in requires)
    assert any(item.startswith("Flask-DebugToolbar") and "toolbar" in item for item in requires)
    assert any(name.endswith("/LICENSE") for name in built.wheel_names())


# -- The sdist -------------------------------------------------------------------------------


def test_sdist_holds_what_a_packager_needs(built: Built) -> None:
    names = built.sdist_names()
    folders = set().union(*(files_under(built.source, folder) for folder in SDIST_FOLDERS))
    wanted = folders - {name for name in folders if UNWANTED_IN_SDIST.search(name)}

    assert set(SDIST_TOP_FILES) <= names
    assert {"tests/conftest.py", "docs/conf.py", "examples/comments.py"} <= wanted
    assert sorted(wanted - names) == []
    assert package_files(built.source) <= names


def test_sdist_leaves_out_bytecode_caches_and_build_output(built: Built) -> None:
    assert sorted(name for name in built.sdist_names() if UNWANTED_IN_SDIST.search(name)) == []


# -- The wheel installed ---------------------------------------------------------------------


def test_installed_packages_are_imported_from_the_new_virtualenv(
    smoke: dict[str, Any], installed: Installed
) -> None:
    site_packages = Path(smoke["purelib"]).resolve()

    assert site_packages.is_relative_to(installed.python.parent.parent.resolve())
    for package in PACKAGES:
        file = Path(smoke["files"][package]).resolve()
        assert file.parent == site_packages / package
        assert not file.is_relative_to(ROOT)


def test_installed_panel_shows_the_command_of_the_request(smoke: dict[str, Any]) -> None:
    status, text = smoke["page"]

    page = read_page(text)

    assert status == 200
    assert page.subtitle.startswith("1 call in ")
    assert [(row.command, row.arguments) for row in page.rows] == [
        ("SET", 'packaging:installed-wheel "sent by the installed wheel"')
    ]


def test_installed_app_serves_the_metrics_at_the_configured_path(smoke: dict[str, Any]) -> None:
    status, text = smoke["metrics"]
    counted = re.search(
        r'^flask_redis_commands_total\{(?=[^}]*command="SET")[^}]*\} (\S+)$', text, re.M
    )

    assert status == 200
    assert counted is not None, text
    assert float(counted[1]) == 1.0


def test_installed_flask_command_pings_the_server(installed: Installed) -> None:
    output = run(
        [installed.flask, "--app", "smoke_app", "redis", "ping", "--json"],
        timeout=60, cwd=installed.work, env=installed.env,
    )  # fmt: skip
    report = json.loads(output)

    assert report["ok"] is True, report
    assert [prefix["prefix"] for prefix in report["prefixes"]] == ["REDIS"], report


# -- flask-redis installed too ----------------------------------------------------------------


def test_uninstalling_flask_redis_is_explained_and_repaired(
    built: Built, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # flask-redis installs the module flask_redis too: uninstalling it after this project
    # deletes flask_redis/__init__.py, which pip reinstalls.
    both = virtualenv(tmp_path_factory.mktemp("both"), redis_server)
    run([*both.pip, "flask-redis==0.4.0"], timeout=300)
    run([*both.pip, f"{built.wheel}[metrics,toolbar]"], timeout=300)
    repair = "pip install --force-reinstall --no-deps Flask-And-Redis"

    def attempt(*command: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(part) for part in command], capture_output=True, text=True, timeout=60,
            cwd=both.work, env=both.env, check=False,
        )  # fmt: skip

    imported = attempt(both.python, "-c", "import flask_redis")
    assert imported.returncode == 0, imported.stderr
    assert "flask-redis is installed too" in imported.stderr and repair in imported.stderr

    run([both.python, "-m", "pip", "uninstall", "--yes", "flask-redis"], timeout=120)
    pinged = attempt(both.flask, "--app", "smoke_app", "redis", "ping")
    assert pinged.returncode == 1
    assert "flask_redis/__init__.py is missing" in pinged.stderr and repair in pinged.stderr

    run([*both.pip, "--force-reinstall", "--no-deps", built.wheel], timeout=300)
    pinged = attempt(both.flask, "--app", "smoke_app", "redis", "ping", "--json")
    assert pinged.returncode == 0, pinged.stderr
    assert json.loads(pinged.stdout)["ok"] is True
