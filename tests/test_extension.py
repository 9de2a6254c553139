"""The Redis extension on a real server: set-up, proxying, app binding, several databases."""

from __future__ import annotations

import copy
import warnings
from types import ModuleType

import pytest
import redis
from flask import Flask

from flask_redis import IgnoredKeyWarning, Redis
from flask_redis._libraries import ClientLibrary

from .conftest import SECRET
from .servers import RedisServer


class AppStrictRedis(redis.StrictRedis):
    """A client class of the app's own, made from 1.0's default class name."""


def test_bound_extension_writes_to_the_configured_database(
    app: Flask, redis_server: RedisServer
) -> None:
    app.config["REDIS_DB"] = 3
    ext = Redis(app)
    ext.set("greeting", "hello")
    assert redis_server.get("greeting", db=3) == b"hello"
    assert redis_server.get("greeting", db=0) is None


def test_bound_extension_works_outside_an_app_context(app: Flask) -> None:
    ext = Redis(app)
    assert ext.ping() is True
    assert ext.connection is app.extensions["redis"]["REDIS"]


def test_connection_is_the_client_in_app_extensions(app: Flask, library: ClientLibrary) -> None:
    ext = Redis(app)
    assert isinstance(ext.connection, library.client)
    assert app.extensions["redis"] == {"REDIS": ext.connection}


def test_proxies_public_attributes_of_the_client(app: Flask, plain: redis.Redis) -> None:
    ext = Redis(app)
    with ext.pipeline() as pipe:
        pipe.set("a", 1).incr("a")
        assert pipe.execute() == [True, 2]
    assert plain.get("a") == b"2"
    assert ext.connection_pool is ext.connection.connection_pool
    assert "hgetall" in dir(ext)


def test_private_names_are_not_proxied(app: Flask) -> None:
    ext = Redis(app)
    with pytest.raises(AttributeError):
        ext._no_such_name  # noqa: B018
    assert copy.copy(ext).connection is ext.connection


def test_unknown_attribute_raises_attribute_error(app: Flask) -> None:
    with pytest.raises(AttributeError):
        Redis(app).no_such_command  # noqa: B018


def test_factory_pattern_resolves_through_current_app(app: Flask, plain: redis.Redis) -> None:
    ext = Redis()
    ext.init_app(app)
    with app.app_context():
        ext.set("k", "v")
        assert ext.connection is app.extensions["redis"]["REDIS"]
    assert plain.get("k") == b"v"


def test_after_init_app_outside_an_app_context_is_flasks_runtime_error(app: Flask) -> None:
    ext = Redis()
    ext.init_app(app)
    with pytest.raises(RuntimeError, match="application context"):
        ext.get("k")


def test_before_init_app_attribute_access_is_an_attribute_error() -> None:
    ext = Redis()
    with pytest.raises(AttributeError, match=r"call init_app\(app\) first"):
        ext.get  # noqa: B018
    with pytest.raises(AttributeError, match=r"call init_app\(app\) first"):
        ext.connection  # noqa: B018
    assert not hasattr(ext, "set")


def test_one_extension_on_several_apps_uses_each_apps_client(
    app: Flask, new_app: Flask, redis_server: RedisServer
) -> None:
    new_app.config.update(REDIS_PORT=redis_server.port, REDIS_HOST="127.0.0.1", REDIS_DB=1)
    ext = Redis()
    ext.init_app(app)
    ext.init_app(new_app)
    with app.app_context():
        ext.set("app", "first")
    with new_app.app_context():
        ext.set("app", "second")
    assert redis_server.get("app", db=0) == b"first"
    assert redis_server.get("app", db=1) == b"second"


def test_bound_extension_set_up_on_another_app_follows_current_app(
    app: Flask, new_app: Flask, redis_server: RedisServer
) -> None:
    new_app.config.update(REDIS_PORT=redis_server.port, REDIS_DB=2)
    ext = Redis(app)
    ext.init_app(new_app)
    with new_app.app_context():
        assert ext.connection is new_app.extensions["redis"]["REDIS"]
    with pytest.raises(RuntimeError, match="application context"):
        ext.connection  # noqa: B018


def test_app_context_of_an_app_without_the_extension_is_a_runtime_error(
    app: Flask, new_app: Flask
) -> None:
    ext = Redis()
    ext.init_app(app)
    with new_app.app_context(), pytest.raises(RuntimeError, match="not set up on app"):
        ext.get("k")


def test_several_prefixes_on_one_app_use_their_own_databases(
    app: Flask, redis_server: RedisServer
) -> None:
    app.config["CACHE_URL"] = f"{redis_server.url}/5/"
    app.config["REDIS2_URL"] = f"{redis_server.url}/6"
    first, cache, second = Redis(app), Redis(app, "CACHE"), Redis()
    second.init_app(app, "REDIS2")
    first.set("who", "redis")
    cache.set("who", "cache")
    with app.app_context():
        second.set("who", "redis2")
    assert [redis_server.get("who", db=db) for db in (0, 5, 6)] == [
        b"redis", b"cache", b"redis2"
    ]  # fmt: skip
    assert set(app.extensions["redis"]) == {"REDIS", "CACHE", "REDIS2"}
    assert (first.config_prefix, cache.config_prefix, second.config_prefix) == (
        "REDIS", "CACHE", "REDIS2"
    )  # fmt: skip


def test_same_prefix_twice_on_one_app_is_a_value_error(app: Flask) -> None:
    Redis(app, "CACHE")
    with pytest.raises(ValueError, match="'CACHE' is already set up on app"):
        Redis(app, "CACHE")


def test_bad_config_fails_at_init_app_naming_the_key(app: Flask) -> None:
    app.config["REDIS_PORT"] = "not-a-port"
    with pytest.raises(ValueError, match="REDIS_PORT must be an integer"):
        Redis(app)
    assert "REDIS" not in app.extensions.get("redis", {})


def test_string_port_and_db_are_converted(app: Flask, redis_server: RedisServer) -> None:
    app.config.update(REDIS_PORT=str(redis_server.port), REDIS_DB="7")
    Redis(app).set("k", "v")
    assert redis_server.get("k", db=7) == b"v"


def test_url_with_trailing_slashes_and_query(app: Flask, redis_server: RedisServer) -> None:
    app.config["REDIS_URL"] = f"{redis_server.url}/4/?decode_responses=true"
    ext = Redis(app)
    ext.set("k", "v")
    assert ext.get("k") == "v"
    assert redis_server.get("k", db=4) == b"v"


def test_url_wins_over_separate_keys(app: Flask, redis_server: RedisServer) -> None:
    app.config.update(REDIS_PORT=1, REDIS_DB=9, REDIS_URL=f"{redis_server.url}/8")
    with pytest.warns(IgnoredKeyWarning, match="REDIS_(PORT|DB) is ignored: REDIS_URL is set"):
        ext = Redis(app)
    ext.set("k", "v")
    assert redis_server.get("k", db=8) == b"v"


@pytest.mark.parametrize("form", ["path", "file-url", "unix-url", "legacy-key"])
def test_unix_socket(app: Flask, redis_server: RedisServer, form: str) -> None:
    path = redis_server.unix_socket
    if form == "unix-url":  # the URL decides the transport: a host and port are no use
        del app.config["REDIS_HOST"], app.config["REDIS_PORT"]
    app.config.update({
        "path": {"REDIS_HOST": path},
        "file-url": {"REDIS_HOST": f"file://{path}"},
        "unix-url": {"REDIS_URL": f"unix://{path}?db=2"},
        "legacy-key": {"REDIS_UNIX_SOCKET_PATH": path},
    }[form])  # fmt: skip
    ext = Redis(app)
    ext.set("via", form)
    assert ext.connection.connection_pool.connection_kwargs["path"] == path
    assert redis_server.get("via", db=2 if form == "unix-url" else 0) == form.encode()


def test_custom_class_gets_its_own_and_redis_arguments(
    app: Flask, redis_server: RedisServer
) -> None:
    app.config.update(REDIS_CLASS="tests.test_config.NamespacedRedis", REDIS_NAMESPACE="ns:",
                      REDIS_DB=2, REDIS_DECODE_RESPONSES=True)  # fmt: skip
    ext = Redis(app)
    assert ext.namespace == "ns:"
    ext.set("k", "v")
    assert ext.get("k") == "v"
    assert redis_server.get("k", db=2) == b"v"


@pytest.mark.parametrize(
    "path", ["tests.test_extension.AppStrictRedis", "tests.test_extension:AppStrictRedis"]
)
def test_class_path_of_a_strict_redis_subclass_works(app: Flask, path: str) -> None:
    app.config["REDIS_CLASS"] = path
    ext = Redis(app)
    assert isinstance(ext.connection, AppStrictRedis)
    assert ext.ping() is True


def test_connection_keywords_reach_the_connection(app: Flask) -> None:
    app.config.update(REDIS_CLIENT_NAME="flask-app", REDIS_SOCKET_TIMEOUT="2.5",
                      REDIS_HEALTH_CHECK_INTERVAL=30, REDIS_PROTOCOL=3)  # fmt: skip
    ext = Redis(app)
    assert ext.client_getname() in ("flask-app", b"flask-app")
    connection_kwargs = ext.connection_pool.connection_kwargs
    assert connection_kwargs["socket_timeout"] == 2.5
    assert connection_kwargs["health_check_interval"] == 30
    assert connection_kwargs["protocol"] == 3


def test_client_class_without_a_pool_is_set_up_with_metrics_on(app: Flask) -> None:
    pytest.importorskip("prometheus_client")  # metrics are on by default with it
    app.config["REDIS_CLASS"] = "tests.test_config.NotAClient"  # takes host only
    del app.config["REDIS_PORT"]
    ext = Redis(app)
    assert type(ext.connection).__name__ == "NotAClient"
    assert ext.host == "127.0.0.1"


def test_ready_connection_pool_is_used_as_it_is(
    app: Flask, redis_server: RedisServer, client_module: ModuleType
) -> None:
    pool = client_module.ConnectionPool(host="127.0.0.1", port=redis_server.port, db=3)
    app.config["REDIS_CONNECTION_POOL"] = pool
    ext = Redis(app)
    assert ext.connection_pool is pool
    ext.set("k", "v")
    assert redis_server.get("k", db=3) == b"v"


def test_legacy_charset_key_warns_and_still_works(app: Flask) -> None:
    app.config.update(REDIS_CHARSET="latin-1", REDIS_DECODE_RESPONSES=True)
    with pytest.warns(DeprecationWarning, match="REDIS_CHARSET is deprecated; use REDIS_ENCODING"):
        ext = Redis(app)
    ext.set("k", "é")
    assert ext.connection.connection_pool.connection_kwargs["encoding"] == "latin-1"
    assert ext.get("k") == "é"
    assert ext.connection.connection_pool.connection_kwargs["decode_responses"] is True


def test_password_from_key_and_url_authenticates(
    new_app: Flask, secured_server: RedisServer
) -> None:
    new_app.config.update(
        REDIS_PORT=secured_server.port,
        REDIS_PASSWORD=SECRET,
        CACHE_URL=f"redis://:{SECRET}@127.0.0.1:{secured_server.port}/1",
    )
    assert Redis(new_app).ping() is True
    assert Redis(new_app, "CACHE").ping() is True


def test_wrong_password_error_reaches_the_caller_without_the_password(
    new_app: Flask, secured_server: RedisServer, client_module: ModuleType
) -> None:
    new_app.config.update(REDIS_PORT=secured_server.port, REDIS_PASSWORD="wrong-" + SECRET)
    ext = Redis(new_app)
    with pytest.raises(client_module.AuthenticationError) as raised:
        ext.ping()
    assert SECRET not in str(raised.value)


def test_password_never_in_repr_or_warnings(new_app: Flask, secured_server: RedisServer) -> None:
    new_app.config.update(REDIS_URL=f"redis://:{SECRET}@127.0.0.1:{secured_server.port}",
                          REDIS_CHARSET="utf-8")  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ext = Redis(new_app)
    assert caught and all(SECRET not in str(w.message) for w in caught)
    assert SECRET not in repr(ext)
    assert repr(ext) == "<Redis config_prefix='REDIS'>"
