"""Moving from flask-redis: its documented examples run unchanged with :class:`FlaskRedis`,
on real servers, and get this project's metrics and recorded calls; and the warning, at
import, that both distributions are installed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import flask
import pytest
import redis
from flask import Flask

import flask_redis
from flask_redis import FlaskRedis, IgnoredKeyWarning, Redis, UnreadKeyWarning
from flask_redis import _flask_redis_compat as compat
from flask_redis._config import read_config

from .conftest import SECRET, close_clients
from .recorded import recorded
from .servers import RedisServer

pytestmark = pytest.mark.one_kind

ROOT = str(Path(__file__).parent)

# -- flask-redis 0.4's README, word for word ---------------------------------------------------
# (https://github.com/underyx/flask-redis, README.md; Blue Oak Model License). Its
# "Configuration" section says to set REDIS_URL in the Flask config, such as
# "redis://:password@localhost:6379/0": the apps below get it from their config, as the
# README's apps would, pointing at the test's server.

SETUP = """
from flask import Flask
from flask_redis import FlaskRedis

app = Flask(__name__)
redis_client = FlaskRedis(app)
"""

#: The imports of SETUP, which the README's other examples take as done.
IMPORTS = SETUP.split("\n\n")[0]

#: "or if you prefer, you can do it the other way around", as the README has it since the
#: release after 0.4 (the code of 0.4 itself)
FACTORY = """
redis_client = FlaskRedis()
def create_app():
    app = Flask(__name__)
    redis_client.init_app(app)
    return app
"""

#: The same, as the README of 0.4 had it: after SETUP, the extension is set up on two apps.
FACTORY_0_4 = """
redis_client = FlaskRedis(app)
def create_app():
    app = Flask(__name__)
    redis_client.init_app(app)
    return app
"""

ACCESSING = """
from my_app import redis_client

@app.route('/')
def index():
    return redis_client.get('potato')
"""

CUSTOM_PROVIDER = """
from flask import Flask
from flask_redis import FlaskRedis
from mockredis import MockRedis


def create_app():
    app = Flask(__name__)
    if app.testing:
        redis_store = FlaskRedis.from_custom_provider(MockRedis)
    else:
        redis_store = FlaskRedis()
    redis_store.init_app(app)
    return app
"""


class MockRedis:
    """A stand-in for mockredis's ``MockRedis`` (not installed): what flask-redis needed
    of a provider, ``from_url()``, and an in-memory store."""

    def __init__(self, strict: bool = False, **kwargs: Any) -> None:
        self.strict, self.kwargs = strict, kwargs
        self.store: dict[str, Any] = {}

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> MockRedis:
        mock = cls(**kwargs)
        mock.url = url  # type: ignore[attr-defined]
        return mock

    def get(self, key: str) -> Any:
        return self.store.get(key)

    def set(self, key: str, value: Any) -> bool:
        self.store[key] = str(value)
        return True

    def close(self) -> None:
        pass


AppMaker = Callable[..., list[Flask]]


@pytest.fixture()
def apps() -> Iterator[list[Flask]]:
    """The apps a test made; their clients are closed afterwards."""
    made: list[Flask] = []
    yield made
    for app in made:
        close_clients(app)


@pytest.fixture()
def configured(apps: list[Flask], monkeypatch: pytest.MonkeyPatch) -> AppMaker:
    """``configured(config, ...)`` makes ``flask.Flask`` an app loaded with the next of the
    configs (the last one for every app after it), as an app reads its config file."""

    def configure(*configs: dict[str, Any]) -> list[Flask]:
        waiting = list(configs)

        class ConfiguredFlask(Flask):
            def __init__(self, import_name: str, **kwargs: Any) -> None:
                kwargs.setdefault("root_path", ROOT)
                super().__init__(import_name, **kwargs)
                self.config.update(waiting.pop(0) if len(waiting) > 1 else waiting[0])
                apps.append(self)

        monkeypatch.setattr(flask, "Flask", ConfiguredFlask)
        return apps

    return configure


def run(source: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run an example as the module ``my_app``; its globals."""
    namespace = {"__name__": "my_app"} if namespace is None else namespace
    exec(compile(textwrap.dedent(source), "my_app.py", "exec"), namespace)
    return namespace


def url_of(server: RedisServer, db: int = 0) -> str:
    return f"redis://:{SECRET}@127.0.0.1:{server.port}/{db}"


def made(app: Flask, prefix: str = "REDIS") -> Any:
    client = app.extensions["redis"][prefix]
    return client


# -- The README's examples -----------------------------------------------------------------


def test_readme_setup_and_access_run_unchanged_with_the_configured_password(
    configured: AppMaker, secured_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured({"REDIS_URL": url_of(secured_server)})
    my_app = types.ModuleType("my_app")
    run(SETUP, vars(my_app))
    monkeypatch.setitem(sys.modules, "my_app", my_app)
    run(ACCESSING, {"__name__": "my_app.views", "app": my_app.app})
    secured_server.client().set("potato", "mashed")

    response = my_app.app.test_client().get("/")

    assert response.status_code == 200 and response.data == b"mashed"
    assert isinstance(my_app.redis_client, Redis)


def test_readme_factory_works_in_and_outside_an_app_context(
    configured: AppMaker, secured_server: RedisServer
) -> None:
    configured({"REDIS_URL": url_of(secured_server, 2)})
    example = run(IMPORTS + FACTORY)
    app = example["create_app"]()
    redis_client = example["redis_client"]

    redis_client.set("outside", "1")  # flask-redis needed no app context
    with app.app_context():
        redis_client.set("inside", "2")

    assert secured_server.client(db=2).mget("outside", "inside") == [b"1", b"2"]
    assert made(app) is redis_client.connection


def test_readme_0_4_factory_uses_the_current_app_and_else_the_last_one(
    configured: AppMaker, secured_server: RedisServer
) -> None:
    # Set up on two apps: flask-redis used the client of the last one everywhere. FlaskRedis
    # uses the client of the app of the context, else the last one's.
    configured({"REDIS_URL": url_of(secured_server, 3)}, {"REDIS_URL": url_of(secured_server, 4)})
    example = run(SETUP + FACTORY_0_4)
    first, second = example["app"], example["create_app"]()
    redis_client = example["redis_client"]

    redis_client.set("where", "last")
    with first.app_context():
        redis_client.set("first", "1")

    assert secured_server.client(db=4).get("where") == b"last"
    assert secured_server.client(db=3).get("first") == b"1"
    assert redis_client.connection is made(second)


@pytest.mark.parametrize("testing", [False, True], ids=["server", "mockredis"])
def test_readme_custom_provider_runs_unchanged(
    configured: AppMaker,
    secured_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    testing: bool,
) -> None:
    monkeypatch.setitem(sys.modules, "mockredis", types.SimpleNamespace(MockRedis=MockRedis))
    secured_server.client(db=5).flushdb()
    configured({"REDIS_URL": url_of(secured_server, 5), "TESTING": testing})
    app = run(CUSTOM_PROVIDER)["create_app"]()

    client = made(app)
    client.set("k", "v")

    if testing:
        assert isinstance(client, MockRedis) and client.url == url_of(secured_server, 5)
        assert secured_server.client(db=5).get("k") is None
    else:
        assert isinstance(client, redis.Redis)
        assert secured_server.client(db=5).get("k") == b"v"


# -- What the app gets of this project --------------------------------------------------------


def test_a_flask_redis_app_gets_metrics_and_recorded_calls(
    new_app: Flask, redis_server: RedisServer, registry: Any, apps: list[Flask]
) -> None:
    from .samples import Samples

    apps.append(new_app)
    new_app.debug = True  # records calls, as for Redis
    new_app.config.update(REDIS_URL=f"{redis_server.url}/0", REDIS_METRICS_REGISTRY=registry)
    redis_store = FlaskRedis(new_app)

    calls = recorded(new_app, lambda: (redis_store.set("k", "v"), redis_store.get("k")))

    assert [(call.prefix, call.command, call.args) for call in calls] == [
        ("REDIS", "SET", ("k", "v")), ("REDIS", "GET", ("k",)),
    ]  # fmt: skip
    samples = Samples(registry)
    assert (samples.commands("SET"), samples.commands("GET")) == (1, 1)
    assert samples.request_commands("work") == (2, 1)


def test_the_debug_toolbar_panel_shows_the_calls_of_a_flask_redis_app(
    new_app: Flask, redis_server: RedisServer, apps: list[Flask]
) -> None:
    toolbar = pytest.importorskip("flask_debugtoolbar")
    from .recorded import ToolbarApp

    apps.append(new_app)
    new_app.debug = True
    new_app.config.update(SECRET_KEY="k", DEBUG_TB_INTERCEPT_REDIRECTS=False, REDIS_METRICS=False,
                          REDIS_URL=f"{redis_server.url}/0")  # fmt: skip
    redis_store = FlaskRedis(new_app)
    toolbar.DebugToolbarExtension(new_app)
    new_app.config["DEBUG_TB_PANELS"] += ("flask_redis_panel.RedisPanel",)

    page = ToolbarApp(new_app, redis_store, redis_store).page(lambda: redis_store.incr("hits"))

    assert [row.command for row in page.rows] == ["INCRBY"]


# -- from_custom_provider() ------------------------------------------------------------------


class AppRedis(redis.Redis):
    """A client class of the app's own."""

    def hits(self) -> int:
        return int(self.incr("hits"))


def test_custom_client_class_is_made_with_metrics(
    new_app: Flask, redis_server: RedisServer, registry: Any, apps: list[Flask]
) -> None:
    from .samples import Samples

    apps.append(new_app)
    new_app.config.update(REDIS_URL=f"{redis_server.url}/6", REDIS_METRICS_REGISTRY=registry)
    redis_store = FlaskRedis.from_custom_provider(AppRedis, new_app)

    assert redis_store.hits() == 1
    assert isinstance(made(new_app), AppRedis) and redis_store.provider_class is AppRedis
    assert redis_server.client(db=6).get("hits") == b"1"
    assert Samples(registry).commands("INCRBY") == 1


def test_redis_py_client_as_provider_takes_the_arguments_of_flask_redis(
    new_app: Flask, redis_server: RedisServer, apps: list[Flask]
) -> None:
    apps.append(new_app)
    new_app.config.update(CACHE_URL=f"{redis_server.url}/7", CACHE_CLASS="tests.nothing.Here")
    with pytest.warns(IgnoredKeyWarning, match="^CACHE_CLASS is ignored: FlaskRedis.from_custom"
                                               "_provider"):  # fmt: skip
        cache = FlaskRedis.from_custom_provider(
            redis.Redis, new_app, strict=False, config_prefix="CACHE", decode_responses=True
        )

    cache.set("k", "v")

    assert cache.get("k") == "v" and isinstance(made(new_app, "CACHE"), redis.Redis)
    assert redis_server.client(db=7).get("k") == b"v"
    assert new_app.extensions["cache"] is cache  # where flask-redis put itself


def test_provider_with_a_from_url_of_its_own_is_made_as_flask_redis_made_it(
    new_app: Flask, apps: list[Flask]
) -> None:
    apps.append(new_app)
    new_app.config["REDIS_URL"] = "redis://example.invalid:1/2"
    store = FlaskRedis.from_custom_provider(MockRedis, new_app, strict=True, anything=1)

    mock = made(new_app)
    assert isinstance(mock, MockRedis)
    assert (mock.url, mock.kwargs) == ("redis://example.invalid:1/2", {"anything": 1})
    store.set("k", 1)
    assert store.get("k") == "1" and store._redis_client is mock


def test_a_provider_must_make_clients() -> None:
    with pytest.raises(TypeError, match=r"needs a provider"):
        FlaskRedis.from_custom_provider(None)
    with pytest.raises(TypeError, match=r"or have a from_url\(url, \*\*kwargs\) class method"):
        FlaskRedis.from_custom_provider(dict)


# -- Keyword arguments given in code ---------------------------------------------------------


def test_keyword_arguments_reach_the_client(
    new_app: Flask, redis_server: RedisServer, apps: list[Flask]
) -> None:
    apps.append(new_app)
    new_app.config["REDIS_URL"] = f"{redis_server.url}/0"
    redis_store = FlaskRedis(new_app, decode_responses=True, socket_timeout="2.5")

    redis_store.set("k", "v")

    assert redis_store.get("k") == "v"
    assert made(new_app).connection_pool.connection_kwargs["socket_timeout"] == 2.5


def test_a_wrong_keyword_argument_is_named_as_given(new_app: Flask) -> None:
    new_app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    with pytest.raises(ValueError, match="^FlaskRedis argument socket_timeout must be"):
        FlaskRedis(new_app, socket_timeout="soon")
    with pytest.raises(TypeError, match="^FlaskRedis argument sockettimeout is not an"
                                        " argument that redis.client.Redis takes: did you"
                                        " mean socket_timeout"):  # fmt: skip
        FlaskRedis(new_app, sockettimeout=2)
    assert "redis" not in new_app.extensions or not new_app.extensions["redis"]


def test_a_password_in_code_is_never_shown(new_app: Flask) -> None:
    new_app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    with pytest.raises(TypeError, match="^FlaskRedis argument password must be") as raised:
        FlaskRedis(new_app, password=738261946)
    assert "738261946" not in str(raised.value)


def test_the_url_wins_where_it_gives_an_argument_and_code_fills_in_the_rest(
    new_app: Flask, secured_server: RedisServer, apps: list[Flask]
) -> None:
    # redis-py's from_url(url, **kwargs), which flask-redis called: what the URL has wins,
    # a keyword argument gives what it leaves out.
    apps.append(new_app)
    new_app.config["REDIS_URL"] = f"redis://127.0.0.1:{secured_server.port}"
    redis_store = FlaskRedis(new_app, db=8, password=SECRET)
    redis_store.set("k", "v")
    assert secured_server.client(db=8).get("k") == b"v"

    other = Flask(__name__, root_path=ROOT)
    apps.append(other)
    other.config["REDIS_URL"] = f"redis://127.0.0.1:{secured_server.port}/9"
    with pytest.warns(IgnoredKeyWarning, match="^FlaskRedis argument db is ignored: REDIS_URL"
                                               " gives 'db' too"):  # fmt: skip
        FlaskRedis(other, db=8, password=SECRET).set("k", "w")
    assert secured_server.client(db=9).get("k") == b"w"


def test_charset_of_old_redis_py_is_the_encoding_with_a_deprecation_warning(
    new_app: Flask, apps: list[Flask]
) -> None:
    apps.append(new_app)
    with pytest.warns(DeprecationWarning, match="^FlaskRedis argument charset is deprecated;"
                                                " use encoding"):  # fmt: skip
        FlaskRedis(new_app, charset="latin-1")
    assert made(new_app).connection_pool.connection_kwargs["encoding"] == "latin-1"


def test_init_app_arguments_stay_for_later_apps_as_in_flask_redis(
    new_app: Flask, redis_server: RedisServer, apps: list[Flask]
) -> None:
    other = Flask(__name__, root_path=ROOT)
    apps.extend([new_app, other])
    for app in apps:
        app.config["REDIS_URL"] = f"{redis_server.url}/0"
    redis_store = FlaskRedis()
    redis_store.init_app(new_app, decode_responses=True)
    redis_store.init_app(other)

    assert redis_store.provider_kwargs == {"decode_responses": True}
    assert made(other).connection_pool.connection_kwargs["decode_responses"] is True


# -- REDIS_URL ------------------------------------------------------------------------------


def test_without_a_url_it_is_flask_redis_default_and_address_keys_are_ignored(
    new_app: Flask, apps: list[Flask]
) -> None:
    apps.append(new_app)
    new_app.config.update(REDIS_HOST="cache.internal", REDIS_PORT=6379)
    with pytest.warns(IgnoredKeyWarning, match="^REDIS_HOST is ignored: REDIS_URL is not set,"
                                               " so FlaskRedis connects to flask-redis's"
                                               " default redis://localhost:6379/0"):  # fmt: skip
        FlaskRedis(new_app)

    kwargs = made(new_app).connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("localhost", 6379, 0)


def test_the_keys_the_default_url_decides_are_what_it_is_read_as() -> None:
    # The compatibility module writes out what flask-redis's default URL decides, to tell a
    # key that it overrides with another value (a warning) from one of the same value.
    decided = {name: value for name, value in compat._DEFAULT_URL_DECIDES.items()
               if value is not None}  # fmt: skip
    assert read_config({"REDIS_URL": compat.DEFAULT_URL}).kwargs == decided


def test_keys_of_what_the_default_url_decides_anyway_are_no_warning(
    new_app: Flask, apps: list[Flask]
) -> None:
    apps.append(new_app)
    new_app.config.update(REDIS_HOST="localhost", REDIS_PORT="6379", REDIS_DB=0,
                          REDIS_PASSWORD="", REDIS_USERNAME=None)  # fmt: skip
    FlaskRedis(new_app)  # filterwarnings = error: a warning fails

    kwargs = made(new_app).connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("localhost", 6379, 0)


def test_a_wrong_password_in_the_url_is_never_shown(
    new_app: Flask, secured_server: RedisServer
) -> None:
    new_app.config["REDIS_URL"] = f"redis://:{SECRET}#x@127.0.0.1:{secured_server.port}/0"
    with pytest.raises(ValueError, match="^REDIS_URL has a '#'") as raised:
        FlaskRedis(new_app)
    assert SECRET not in str(raised.value)

    new_app.config["REDIS_URL"] = f"redis://:wrong@127.0.0.1:{secured_server.port}/0"
    redis_store = FlaskRedis(new_app)
    with pytest.raises(redis.AuthenticationError) as failed:
        redis_store.ping()
    assert "wrong" not in str(failed.value)
    close_clients(new_app)


def test_readme_unix_socket_url_connects(
    new_app: Flask, secured_server: RedisServer, apps: list[Flask]
) -> None:
    apps.append(new_app)
    # "unix://:password@/path/to/socket.sock?db=0"
    new_app.config["REDIS_URL"] = f"unix://:{SECRET}@{secured_server.unix_socket}?db=1"
    with pytest.warns(IgnoredKeyWarning, match="^FlaskRedis argument host is ignored: REDIS_URL"
                                               " connects over a unix socket"):  # fmt: skip
        FlaskRedis(new_app, host="127.0.0.1").set("k", "v")
    assert secured_server.client(db=1).get("k") == b"v"


# -- Prefixes, apps and app.extensions ---------------------------------------------------------


def test_config_prefix_reads_its_own_url(
    new_app: Flask, redis_server: RedisServer, registry: Any, apps: list[Flask]
) -> None:
    from .samples import Samples

    apps.append(new_app)
    new_app.config.update(SESSIONS_URL=f"{redis_server.url}/10",
                          SESSIONS_METRICS_REGISTRY=registry)  # fmt: skip
    sessions = FlaskRedis(new_app, config_prefix="SESSIONS")

    sessions.set("k", "v")

    assert redis_server.client(db=10).get("k") == b"v"
    assert new_app.extensions["sessions"] is sessions
    assert new_app.extensions["redis"]["SESSIONS"] is sessions.connection
    assert Samples(registry).commands("SET", prefix="sessions") == 1


def test_app_extensions_redis_is_the_dict_of_clients_and_says_so(
    new_app: Flask, apps: list[Flask]
) -> None:
    apps.append(new_app)
    redis_store = FlaskRedis(new_app)

    assert new_app.extensions["redis"] == {"REDIS": redis_store.connection}
    where = (
        r"flask-redis kept its FlaskRedis object there\. Use app.extensions\['redis'\]\['REDIS'\]"
    )
    with pytest.raises(AttributeError, match=where):
        new_app.extensions["redis"].set("k", "v")


def test_another_flask_redis_of_the_same_settings_shares_the_client(
    new_app: Flask, apps: list[Flask]
) -> None:
    # flask-redis let several objects set up one app. Here a prefix has one client: one with
    # other settings needs a prefix of its own.
    apps.append(new_app)
    first = FlaskRedis(new_app)

    assert FlaskRedis(new_app).connection is first.connection
    other = "'REDIS' is already set up on app 'tests.conftest', by a Redis or by a FlaskRedis"
    with pytest.raises(ValueError, match=f"{other} with other settings"):
        FlaskRedis(new_app, decode_responses=True)
    with pytest.raises(ValueError, match="'REDIS' is already set up"):
        Redis(new_app)


def test_item_access_of_flask_redis(
    new_app: Flask, redis_server: RedisServer, apps: list[Flask]
) -> None:
    apps.append(new_app)
    new_app.config["REDIS_URL"] = f"{redis_server.url}/0"
    redis_store = FlaskRedis(new_app)

    redis_store["k"] = "v"
    assert redis_store["k"] == b"v"
    del redis_store["k"]
    with pytest.raises(KeyError):
        redis_store["k"]


def test_before_init_app(new_app: Flask) -> None:
    redis_store = FlaskRedis()
    assert redis_store._redis_client is None and redis_store.provider_class is redis.Redis
    with pytest.raises(AttributeError, match=r"call init_app\(app\) first"):
        redis_store.get("k")


def test_a_fake_client_set_as_redis_client_takes_the_place_of_the_real_one(
    new_app: Flask, apps: list[Flask]
) -> None:
    apps.append(new_app)
    redis_store = FlaskRedis(new_app)
    real = redis_store._redis_client
    fake = MockRedis()

    redis_store._redis_client = fake
    redis_store.set("k", "v")

    assert fake.store == {"k": "v"} and made(new_app) is fake
    real.close()


def test_the_keys_flask_redis_ignored_are_read_as_redis_reads_them(
    new_app: Flask, redis_server: RedisServer, apps: list[Flask]
) -> None:
    apps.append(new_app)
    new_app.config.update(REDIS_URL=f"{redis_server.url}/0", REDIS_DECODE_RESPONSES=True,
                          REDIS_SOCKET_TIMOUT=1)  # fmt: skip
    with pytest.warns(UnreadKeyWarning, match="^REDIS_SOCKET_TIMOUT is set"):
        redis_store = FlaskRedis(new_app)
    redis_store.set("k", "v")
    assert redis_store.get("k") == "v"


# -- Both distributions installed ------------------------------------------------------------


@pytest.fixture()
def flask_redis_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on ``sys.path`` that holds the metadata of flask-redis 0.4, as pip leaves it;
    the warning not given yet."""
    info = tmp_path / "flask_redis-0.4.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flask-redis\nVersion: 0.4.0\n")
    (info / "RECORD").write_text(
        "flask_redis/__init__.py,,\nflask_redis/client.py,,\n"
        "flask_redis-0.4.0.dist-info/METADATA,,\nflask_redis-0.4.0.dist-info/RECORD,,\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(compat, "_warned", False)
    return tmp_path


def test_flask_redis_installed_too_is_a_warning_with_the_repair(
    flask_redis_installed: Path,
) -> None:
    with pytest.warns(UserWarning, match="^flask-redis is installed too") as warned:
        compat.warn_if_flask_redis_installed()
    compat.warn_if_flask_redis_installed()  # once

    assert len(warned) == 1
    message = str(warned[0].message)
    assert "pip uninstall flask-redis" in message
    assert "pip install --force-reinstall --no-deps Flask-And-Redis" in message


def test_flask_redis_not_installed_is_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "_warned", False)
    compat.warn_if_flask_redis_installed()  # filterwarnings = error: a warning fails


def python(folder: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``python OPTIONS -c "import flask_redis"`` with ``folder`` on its path."""
    paths = [str(folder), str(Path(flask_redis.__file__).parent.parent)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run(
        [sys.executable, *options, "-c", "import flask_redis"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip


@pytest.mark.tool
def test_the_warning_shows_at_import_and_the_documented_filter_silences_it(
    flask_redis_installed: Path,
) -> None:
    shown = python(flask_redis_installed, "-W", "default")
    assert shown.returncode == 0 and "UserWarning: flask-redis is installed too" in shown.stderr
    assert "<string>:1" in shown.stderr  # the line that imports flask_redis

    raised = python(flask_redis_installed, "-W", "error")
    assert raised.returncode == 1 and "flask-redis is installed too" in raised.stderr

    silenced = python(flask_redis_installed, "-W", "error",
                      "-W", "ignore:flask-redis is installed:UserWarning")  # fmt: skip
    assert (silenced.returncode, silenced.stderr) == (0, "")
