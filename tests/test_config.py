"""Reading ``PREFIX_*`` keys into a client class and its arguments (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio

from flask_redis import IgnoredKeyWarning
from flask_redis._config import read_config
from flask_redis._keys import client_arguments

from .arguments import known, valid_value
from .conftest import SECRET

pytestmark = pytest.mark.one_kind


class NamespacedRedis(redis.Redis):
    """A custom client class with an argument of its own, passing the rest on."""

    def __init__(self, *args: Any, namespace: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.namespace = namespace


class NotAClient(redis.Redis):
    """A client class of the app's own that makes no pool, and takes its host only."""

    def __init__(self, host: str = "localhost") -> None:  # no redis.Redis.__init__()
        self.host = host


class AppAsyncRedis(redis.asyncio.Redis):
    """An asyncio client class of the app's own."""


def test_defaults_to_redis_with_no_arguments() -> None:
    config = read_config({})
    assert config.client_class is redis.Redis
    assert config.kwargs == {}


def test_reads_every_keyword_of_the_class_signature() -> None:
    names = client_arguments(redis.Redis)
    for name in ("host", "port", "db", "password", "socket_timeout", "ssl_ca_certs",
                 "health_check_interval", "client_name", "username", "protocol", "retry",
                 "decode_responses", "connection_pool", "unix_socket_path"):  # fmt: skip
        assert name in names
    # A credential provider gives the user name and password: not both (see test_config_contract).
    # An argument that a new release adds, with no right value here yet, is left out (the
    # suite's summary lists it).
    values = {name: valid_value(name) for name in names
              if name != "credential_provider" and known(name)}  # fmt: skip
    config = read_config({f"REDIS_{name.upper()}": value for name, value in values.items()})
    assert config.kwargs == values


def test_legacy_charset_and_errors_are_not_keys_of_their_own() -> None:
    assert "charset" not in client_arguments(redis.Redis)
    assert "errors" not in client_arguments(redis.Redis)


def test_custom_class_arguments_include_those_passed_on_through_kwargs() -> None:
    names = client_arguments(NamespacedRedis)
    assert names[0] == "namespace"
    assert "socket_timeout" in names
    config = read_config({"REDIS_CLASS": NamespacedRedis, "REDIS_NAMESPACE": "app:", "REDIS_DB": 3})
    assert config.kwargs == {"namespace": "app:", "db": 3}


def test_class_without_kwargs_takes_only_its_own_arguments() -> None:
    assert client_arguments(NotAClient) == ["host"]


def test_keys_of_another_prefix_are_not_read() -> None:
    config = read_config({"REDIS_DB": 1, "REDIS2_DB": 2, "REDIS_2_DB": 3}, "REDIS2")
    assert config.kwargs == {"db": 2}


@pytest.mark.parametrize("path", ["tests.test_config.NamespacedRedis",
                                  "tests.test_config:NamespacedRedis"])  # fmt: skip
def test_class_from_dotted_path(path: str) -> None:
    assert read_config({"REDIS_CLASS": path}).client_class is NamespacedRedis


@pytest.mark.parametrize("path", ["redis.StrictRedis", "redis:StrictRedis"])
def test_strict_redis_path_is_read_and_is_redis(path: str) -> None:
    assert read_config({"REDIS_CLASS": path}).client_class is redis.StrictRedis
    # StrictRedis is redis.Redis, the default: a key that was not read would pass the line
    # above. Where the default is another class, the path read is refused for what it is.
    with pytest.raises(TypeError, match="REDIS_CLASS must be redis.cluster.RedisCluster .*"
                                        " got redis.client.Redis"):  # fmt: skip
        read_config({"REDIS_CLASS": path, "REDIS_CLUSTER": "127.0.0.1:7000"})


def test_class_path_that_does_not_import_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"CACHE_CLASS .*'no\.such\.Module' does not import"):
        read_config({"CACHE_CLASS": "no.such.Module"}, "CACHE")


def test_class_that_is_not_a_class_names_the_key() -> None:
    with pytest.raises(TypeError, match="REDIS_CLASS must be a class"):
        read_config({"REDIS_CLASS": "redis.from_url"})


def valkey_path(path: str) -> str:
    """``path``, skipping the test where valkey-py is not installed."""
    pytest.importorskip("valkey", reason="valkey-py is not installed")
    return path


@pytest.mark.parametrize(
    ("value", "use"),
    [
        ("redis.asyncio.Redis", "redis.Redis"),
        ("redis.asyncio.client.StrictRedis", "redis.Redis"),
        ("redis.asyncio.RedisCluster", "redis.cluster.RedisCluster"),
        (AppAsyncRedis, "redis.Redis"),
        ("valkey.asyncio.Valkey", "valkey.Valkey"),
        ("valkey.asyncio.ValkeyCluster", "valkey.cluster.ValkeyCluster"),
    ],
)
def test_asyncio_client_class_is_refused_naming_the_sync_class(value: Any, use: str) -> None:
    # Once accepted: DEBUG SLEEP 0.2 recorded as 5 us, a server error neither counted nor
    # recorded (each call returned a coroutine, awaited elsewhere).
    if isinstance(value, str) and value.startswith("valkey"):
        value = valkey_path(value)
    for config in ({"REDIS_CLASS": value}, {"REDIS_CLASS": value, "REDIS_CLUSTER": "h:1"}):
        with pytest.raises(TypeError) as raised:
            read_config(config)
        message = str(raised.value)
        assert message.startswith("REDIS_CLASS is an asyncio client class")
        assert message.endswith(f": use {use}, the sync client, instead")


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("enum.Enum", "got enum.Enum"),  # once an AttributeError
        ("pathlib.Path", "got pathlib.Path"),  # once accepted, then a TypeError
        ("string.Template", "got string.Template"),
        ("tests.test_config.NoClient", "got tests.test_config.NoClient"),
        ("redis.sentinel.Sentinel", "set REDIS_SENTINELS and REDIS_SENTINEL_MASTER"),
        ("redis.client.Pipeline", "call pipeline() on the client"),
        ("redis.cluster.ClusterPipeline", "call pipeline() on the client"),
        ("redis.client.PubSub", "call pubsub() on the client"),
        ("valkey.sentinel.Sentinel", "set REDIS_SENTINELS and REDIS_SENTINEL_MASTER"),
        ("valkey.client.Pipeline", "call pipeline() on the client"),
    ],
)
def test_a_class_that_is_no_client_is_refused_naming_the_key(path: str, what: str) -> None:
    if path.startswith("valkey"):
        path = valkey_path(path)
    with pytest.raises(TypeError) as raised:
        read_config({"REDIS_CLASS": path})
    message = str(raised.value)
    assert message.startswith("REDIS_CLASS must be a client class of redis-py or valkey-py")
    assert what in message


class NoClient:
    """A class of the app's own that is no client of redis-py or valkey-py."""

    def __init__(self, host: str = "localhost") -> None:
        self.host = host


@pytest.mark.parametrize(
    ("key", "value", "name", "expected"),
    [
        ("REDIS_PORT", "6380", "port", 6380),
        ("REDIS_DB", "4", "db", 4),
        ("REDIS_SOCKET_TIMEOUT", "0.5", "socket_timeout", 0.5),
        ("REDIS_DECODE_RESPONSES", "true", "decode_responses", True),
        ("REDIS_SSL", "no", "ssl", False),
        ("REDIS_MAX_CONNECTIONS", "10", "max_connections", 10),
    ],
)
def test_text_values_are_converted(key: str, value: str, name: str, expected: object) -> None:
    assert read_config({key: value}).kwargs[name] == expected


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"REDIS_PORT": "six"}, ValueError, "REDIS_PORT must be an integer, got 'six'"),
        (
            {"REDIS_PORT": 6379.5},
            TypeError,
            "REDIS_PORT must be an integer from 1 to 65535, got 6379.5",
        ),
        ({"REDIS_PORT": 70000}, ValueError, "REDIS_PORT must be an integer from 1 to 65535"),
        ({"REDIS_DB": True}, TypeError, "REDIS_DB must be an integer"),
        ({"REDIS_SOCKET_TIMEOUT": "soon"}, ValueError, "REDIS_SOCKET_TIMEOUT must be a number"),
        ({"REDIS_SSL": "maybe"}, ValueError, "REDIS_SSL must be a boolean"),
    ],
)
def test_bad_values_name_the_key(config: dict[str, Any], error: type[Exception],
                                 message: str) -> None:  # fmt: skip
    with pytest.raises(error, match=message):
        read_config(config)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("REDIS_PORT", "6_5_1_3"),  # int() reads 6513: once accepted
        ("REDIS_PORT", "\u0666\u0663\u0667\u0669"),  # int() reads 6379 in Arabic-Indic digits
        ("REDIS_PORT", "+6379"),
        ("REDIS_PORT", "6379.0"),
        ("REDIS_DB", "1_0"),
        ("REDIS_MAX_CONNECTIONS", "1_000"),
        ("REDIS_SOCKET_TIMEOUT", "1_0"),
        ("REDIS_SOCKET_TIMEOUT", "\u0661.5"),
        ("REDIS_URL", "redis://h/0?socket_timeout=1_0"),
        ("REDIS_URL", "redis://h/0?max_connections=1_0"),
    ],
)
def test_numbers_as_text_are_plain_ascii_digits(key: str, value: str) -> None:
    with pytest.raises(ValueError) as raised:
        read_config({key: value})
    assert str(raised.value).startswith(f"{key} ")
    assert " must be an integer" in str(raised.value) or " must be a number" in str(raised.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("REDIS_PORT", " 6380 "), ("REDIS_DB", "-0"), ("REDIS_SOCKET_TIMEOUT", "1e-3")],
)
def test_numbers_as_text_may_have_spaces_a_sign_and_an_exponent(key: str, value: str) -> None:
    assert read_config({key: value}).kwargs


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"REDIS_DB": 2**40}, "REDIS_DB"),  # once refused by the server at the first command
        ({"REDIS_DB": str(2**31)}, "REDIS_DB"),
        ({"REDIS_URL": f"redis://h/{2**40}"}, "REDIS_URL"),
        ({"REDIS_URL": f"redis://h?db={2**31}"}, "REDIS_URL"),
        ({"REDIS_URL": f"redis+sentinel://h/mymaster/{2**31}"}, "REDIS_URL"),
        ({"REDIS_URL": f"unix:///run/redis.sock?db={2**31}"}, "REDIS_URL"),
    ],
)
def test_database_beyond_what_redis_can_have_is_refused(config: dict[str, Any], key: str) -> None:
    # Redis counts its databases in a C int: none is numbered 2**31 or more.
    with pytest.raises(ValueError, match=f"^{key} .*2147483647") as raised:
        read_config(config)
    assert "1099511627776" not in str(raised.value) or key == "REDIS_DB"
    assert read_config({"REDIS_DB": 2**31 - 1}).kwargs == {"db": 2**31 - 1}


def test_host_holding_a_socket_path_connects_through_it() -> None:
    assert read_config({"REDIS_HOST": "/run/redis.sock"}).kwargs == {
        "unix_socket_path": "/run/redis.sock"
    }
    assert read_config({"REDIS_HOST": "file:///run/redis.sock"}).kwargs == {
        "unix_socket_path": "/run/redis.sock"
    }


def test_url_sets_every_part() -> None:
    url = f"redis://user:{SECRET}@example.org:6380/12/?socket_timeout=2.5&decode_responses=yes"
    assert read_config({"REDIS_URL": url}).kwargs == {
        "username": "user",
        "password": SECRET,
        "host": "example.org",
        "port": 6380,
        "db": 12,
        "socket_timeout": 2.5,
        "decode_responses": True,
    }


def test_url_values_win_over_separate_keys_that_are_ignored_with_a_warning() -> None:
    with pytest.warns(IgnoredKeyWarning) as warned:
        kwargs = read_config({
            "REDIS_URL": "redis://example.org/2", "REDIS_HOST": "other", "REDIS_DB": 5,
            "REDIS_SOCKET_TIMEOUT": 1,
        }).kwargs  # fmt: skip
    assert kwargs == {"host": "example.org", "db": 2, "socket_timeout": 1}
    assert sorted(str(w.message).split(" is ignored: ")[0] for w in warned) == [
        "REDIS_DB", "REDIS_HOST"
    ]  # fmt: skip


def test_separate_key_that_agrees_with_the_url_is_no_warning() -> None:
    kwargs = read_config(
        {
            "REDIS_URL": "redis://example.org:6379/2",
            "REDIS_HOST": "example.org",
            "REDIS_PORT": "6379",
            "REDIS_DB": 2,
        }
    ).kwargs
    assert kwargs == {"host": "example.org", "port": 6379, "db": 2}


@pytest.mark.parametrize(
    ("url", "db"),
    [("redis://h/3?db=3", 3), ("redis://h?db=0", 0), ("unix:///run/r.sock?db=3", 3)],
)
def test_url_database_as_query_argument_agreeing_with_the_path(url: str, db: int) -> None:
    assert read_config({"REDIS_URL": url}).kwargs["db"] == db


@pytest.mark.parametrize("url", ["redis://h/2?db=3", "redis://h?db=3", "redis://h/0?db=1"])
def test_url_database_as_query_argument_unlike_the_path_is_an_error(url: str) -> None:
    # 1.0 ignored the query: a database in it that the path does not give would switch
    # the database an upgraded app writes to.
    with pytest.raises(ValueError, match="REDIS_URL gives a database as a query argument"
                                         " that is not the one of its path"):  # fmt: skip
        read_config({"REDIS_URL": url})


def test_rediss_url_turns_ssl_on() -> None:
    assert read_config({"REDIS_URL": "rediss://h:6390"}).kwargs == {
        "host": "h", "port": 6390, "ssl": True
    }  # fmt: skip


def test_unix_url_replaces_host_and_port_keys() -> None:
    with pytest.warns(IgnoredKeyWarning) as warned:
        kwargs = read_config({
            "REDIS_URL": "unix:///run/r%20edis.sock?db=1", "REDIS_HOST": "h", "REDIS_PORT": 1
        }).kwargs  # fmt: skip
    assert kwargs == {"unix_socket_path": "/run/r edis.sock", "db": 1}
    assert sorted(str(w.message) for w in warned) == [
        f"REDIS_{key} is ignored: REDIS_URL is set, and connects over a unix socket"
        for key in ("HOST", "PORT")
    ]


@pytest.mark.parametrize(
    ("key", "path"),
    [("REDIS_UNIX_SOCKET_PATH", "/run/redis.sock"), ("REDIS_HOST", "/run/redis.sock"),
     ("REDIS_HOST", "file:///run/redis.sock")],
)  # fmt: skip
def test_tcp_url_replaces_a_unix_socket_key(key: str, path: str) -> None:
    with pytest.warns(IgnoredKeyWarning, match=f"^{key} is ignored: REDIS_URL is set, and"
                                               " connects over TCP$"):  # fmt: skip
        kwargs = read_config({"REDIS_URL": "redis://h", key: path}).kwargs
    assert kwargs == {"host": "h"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            f"http://u:{SECRET}@h/0",
            "REDIS_URL must be a URL that starts with redis://, rediss://, unix://",
        ),
        (f"redis://u:{SECRET}@h:port/0", "REDIS_URL has a port that is not a number"),
        (f"redis://u:{SECRET}@h/zero", "REDIS_URL must give the database as a number"),
        (
            f"redis://u:{SECRET}@h/0?colour=blue",
            "REDIS_URL has a query argument that redis.client.Redis does not take$",
        ),
        (f"redis://u:{SECRET}@h/0?socket_timeout=x", "REDIS_URL .* must be a number"),
    ],
)
def test_bad_url_names_the_key_and_never_the_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        read_config({"REDIS_URL": url})
    assert SECRET not in str(raised.value)


def test_url_that_is_not_text_names_the_key() -> None:
    with pytest.raises(TypeError, match="REDIS_URL must be a string, got a value of type bytes"):
        read_config({"REDIS_URL": SECRET.encode()})


def test_argument_the_class_does_not_take_names_its_key() -> None:
    with pytest.raises(TypeError, match="REDIS_URL sets 'password', which"
                                        " tests.test_config.NotAClient does not take"):  # fmt: skip
        read_config({"REDIS_CLASS": NotAClient, "REDIS_URL": f"redis://:{SECRET}@h"})


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [("CHARSET", "ENCODING", "encoding"), ("ERRORS", "ENCODING_ERRORS", "encoding_errors")],
)
def test_legacy_keys_warn_and_map_to_the_new_argument(old: str, new: str, name: str) -> None:
    value = "latin-1" if old == "CHARSET" else "replace"
    with pytest.warns(DeprecationWarning, match=f"REDIS_{old} is deprecated; use REDIS_{new}"):
        config = read_config({f"REDIS_{old}": value})
    assert config.kwargs == {name: value}


def test_legacy_key_beside_its_new_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="REDIS_CHARSET and REDIS_ENCODING are both set"):
        read_config({"REDIS_CHARSET": "latin-1", "REDIS_ENCODING": "utf-8"})


def test_unix_socket_path_key_is_read_without_warning() -> None:
    assert read_config({"REDIS_UNIX_SOCKET_PATH": "/run/redis.sock"}).kwargs == {
        "unix_socket_path": "/run/redis.sock"
    }


def test_ready_connection_pool_is_passed_as_it_is() -> None:
    pool = redis.ConnectionPool()
    assert read_config({"REDIS_CONNECTION_POOL": pool}).kwargs == {"connection_pool": pool}


def test_connection_pool_beside_a_url_is_an_error() -> None:
    with pytest.raises(ValueError, match="REDIS_URL and REDIS_CONNECTION_POOL are both set"):
        read_config({"REDIS_CONNECTION_POOL": redis.ConnectionPool(), "REDIS_URL": "redis://h"})
