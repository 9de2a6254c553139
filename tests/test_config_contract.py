"""The contract of every config key, with no server: a wrong value is a ``ValueError`` or a
``TypeError`` naming the key, no message shows a secret or any part of a URL, and a key
that nothing reads is a warning."""

from __future__ import annotations

import inspect
import math
import re
import socket
import ssl
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import quote

import pytest
import redis
from flask import Flask
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from flask_redis import IgnoredKeyWarning, Redis, UnreadKeyWarning
from flask_redis._checks import (
    _CHECKS,
    CONVERTERS,
    _Check,
    _from_annotation,
    _resolved,
    _signature_checks,
)
from flask_redis._config import read_config
from flask_redis._keys import arguments, client_arguments
from flask_redis._topology import CLUSTER, SENTINEL, SERVER

from .arguments import every_argument, known, valid_value
from .conftest import SECRET, close_clients

pytestmark = pytest.mark.one_kind

#: Parts of URLs that no message may show: the user name, host, path and query value.
MARKERS = ("Us3rMark", "H0stMark", "Pa7hMark", "Qu3ryMark")


def error_of(config: dict[str, Any], prefix: str = "REDIS") -> Exception:
    """The error that reading ``config`` raises."""
    with pytest.raises((ValueError, TypeError)) as raised:
        read_config(config, prefix)
    return raised.value


def assert_names_a_set_key(error: BaseException, config: dict[str, Any], prefix: str) -> None:
    named = re.findall(rf"\b{prefix}_[A-Z0-9_]*[A-Z0-9]", str(error))
    assert any(key in config for key in named), f"no key of {sorted(config)} in {error}"


def assert_hides_secrets(text: str) -> None:
    assert SECRET not in text and "Hunter4" not in text
    for marker in MARKERS:
        assert marker not in text


def test_every_argument_has_a_check_written_or_read_from_its_signature() -> None:
    # An argument that a new release adds has no check written out yet: its annotation
    # gives one (the suite's summary lists such arguments, see tests/conftest.py).
    for name in every_argument():
        assert name in _CHECKS or _signature_checks("redis").get(name, (None, None))[1], name


@pytest.fixture()
def unwritten(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Forget the check and the conversion written out for an argument, as if a release
    had just added it; skip the test where redis-py has no such argument, or does not
    annotate it (redis-py 5.0 annotates few, and Python 3.9 evaluates no ``A | B``)."""

    def forget(name: str) -> None:
        if name not in every_argument():
            pytest.skip(f"redis-py {redis.__version__} has no argument {name!r}")
        if _signature_checks("redis")[name][1] is None:
            pytest.skip(f"redis-py {redis.__version__} does not annotate {name!r} here")
        monkeypatch.delitem(_CHECKS, name)
        monkeypatch.delitem(CONVERTERS, name, raising=False)

    return forget


@pytest.mark.parametrize(
    ("config", "kwargs"),
    [
        ({"REDIS_CLUSTER": "h:1", "REDIS_TOPOLOGY_REFRESH_MIN_INTERVAL": "2.5"},
         {"topology_refresh_min_interval": 2.5}),
        ({"REDIS_SOCKET_READ_SIZE": "4096"}, {"socket_read_size": 4096}),
        ({"REDIS_SOCKET_READ_SIZE": None}, {}),  # not optional: None is no value
        ({"REDIS_SOCKET_TIMEOUT": None}, {"socket_timeout": None}),  # optional: None is one
        ({"REDIS_RETRY_ON_TIMEOUT": "off"}, {"retry_on_timeout": False}),
        ({"REDIS_CLIENT_NAME": b"web-1"}, {"client_name": b"web-1"}),
    ],
)  # fmt: skip
def test_an_argument_without_a_written_check_is_converted_by_its_annotation(
    unwritten: Callable[[str], None], config: dict[str, Any], kwargs: dict[str, Any]
) -> None:
    for key in config:
        if key != "REDIS_CLUSTER":
            unwritten(key[len("REDIS_") :].lower())
    assert read_config(config).kwargs == kwargs


@pytest.mark.parametrize(
    ("annotation", "default", "text", "value", "wrong"),
    [
        (Optional[float], None, "2.5", 2.5, math.nan),
        (Union[int, float], 1, "3", 3.0, True),
        (int, 3, "7", 7, 7.5),
        (inspect.Parameter.empty, 65536, "7", 7, "seven"),
        (bool, False, "off", False, 2),
        (Optional[ssl.TLSVersion], None, None, ssl.TLSVersion.TLSv1_2, "TLSv1_2"),
        (str, "utf-8", None, b"latin-1", 7),
    ],
)  # fmt: skip
def test_an_annotation_gives_the_conversion_and_the_check(
    annotation: Any, default: Any, text: str | None, value: Any, wrong: Any
) -> None:
    converter, check = _from_annotation(annotation, default)
    assert check is not None
    if text is None:
        assert converter is None
    else:
        assert converter is not None and converter[0](text) == value
    assert check("REDIS_X", value) == value
    with pytest.raises((TypeError, ValueError), match="^REDIS_X must be "):
        check("REDIS_X", wrong)
    assert check.none is (default is None)


@pytest.mark.parametrize(
    ("key", "value", "error", "message"),
    [
        ("REDIS_TOPOLOGY_REFRESH_MIN_INTERVAL", "soon", ValueError, "must be a number, got 'soon'"),
        ("REDIS_TOPOLOGY_REFRESH_MIN_INTERVAL", "nan", ValueError, "must be a finite number"),
        ("REDIS_TOPOLOGY_REFRESH_MIN_INTERVAL", True, TypeError, "must be a finite number"),
        ("REDIS_SOCKET_READ_SIZE", "4k", ValueError, "must be an integer, got '4k'"),
        ("REDIS_SOCKET_READ_SIZE", 4096.0, TypeError, "must be an integer, got 4096.0"),
        ("REDIS_METADATA_RESOLVER", "static", TypeError,
         "must be an instance of redis.commands.metadata.MetadataResolver"),
        ("REDIS_SSL_MIN_VERSION", "TLSv1_2", TypeError, "must be an instance of ssl.TLSVersion"),
        ("REDIS_CLIENT_NAME", 7, TypeError, "must be a string, got 7"),
    ],
)  # fmt: skip
def test_an_argument_without_a_written_check_is_checked_by_its_annotation(
    unwritten: Callable[[str], None], key: str, value: Any, error: type[Exception], message: str
) -> None:
    name = key[len("REDIS_") :].lower()
    unwritten(name)
    config = {key: value}
    if name in arguments(CLUSTER, RedisCluster) and name not in arguments(SERVER, redis.Redis):
        config["REDIS_CLUSTER"] = "h:1"
    with pytest.raises(error, match=f"^{key} {re.escape(message)}"):
        read_config(config)


def test_a_value_the_client_class_refuses_is_an_error_naming_its_key(
    unwritten: Callable[[str], None], new_app: Flask
) -> None:
    # A rule of the library's that no check here makes yet: redis-py 8.2 refuses a negative
    # interval in RedisCluster(), with a message that names the argument, not the key.
    if "topology_refresh_min_interval" not in every_argument():
        pytest.skip(f"redis-py {redis.__version__} has no argument topology_refresh_min_interval")
    unwritten("topology_refresh_min_interval")
    new_app.config.update(
        REDIS_CLUSTER="127.0.0.1:1", REDIS_TOPOLOGY_REFRESH_MIN_INTERVAL="-1", REDIS_METRICS=False
    )
    with pytest.raises(ValueError) as raised:
        Redis(new_app)
    assert str(raised.value).startswith(
        "REDIS_TOPOLOGY_REFRESH_MIN_INTERVAL is refused by redis.cluster.RedisCluster: "
        f"{type(raised.value.__cause__).__name__}: {raised.value.__cause__}"
    )


class ShardedRedis(redis.Redis):
    """A client class of the app's own that refuses a shard it does not know, quoting it."""

    def __init__(self, *, shard: str = "a", **kwargs: Any) -> None:
        if shard not in ("a", "b"):
            raise ValueError(f"no shard {shard!r}: 'shard' is 'a' or 'b'")
        super().__init__(**kwargs)


def test_a_refusal_quoting_what_may_hold_a_password_is_not_quoted(new_app: Flask) -> None:
    new_app.config.update(REDIS_CLASS=ShardedRedis, REDIS_SHARD=f"redis://:{SECRET}@H0stMark",
                          REDIS_METRICS=False)  # fmt: skip
    with pytest.raises(ValueError) as raised:
        Redis(new_app)
    assert str(raised.value) == "REDIS_SHARD is refused by tests.test_config_contract.ShardedRedis"
    new_app.config["REDIS_SHARD"] = "c"  # quoted where it holds none
    with pytest.raises(ValueError, match=r"^REDIS_SHARD is refused by .*: ValueError: no shard"):
        Redis(new_app)


def test_a_refusal_that_names_no_argument_given_passes_unchanged(new_app: Flask) -> None:
    # A cluster client asks its nodes as it is made: none answers at port 1.
    new_app.config.update(
        REDIS_CLUSTER="127.0.0.1:1", REDIS_SOCKET_CONNECT_TIMEOUT=1, REDIS_METRICS=False
    )
    with pytest.raises(RedisClusterException) as raised:
        Redis(new_app)
    assert "REDIS_" not in str(raised.value)


def test_a_text_annotation_that_does_not_resolve_passes_the_value_on() -> None:
    class Future:
        def __init__(self, *, lag: NoSuchType | None = None) -> None:  # noqa: F821
            pass

    parameter = inspect.signature(Future.__init__).parameters["lag"]
    assert _from_annotation(_resolved(parameter.annotation, {}), None) == (None, None)


# -- URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # a typo: once "...must be an integer, got ':Hunter4secret@h/0'"
        ("redis:/:Hunter4secret@H0stMark/0", "REDIS_URL must be a URL that starts with"),
        ("Hunter4secret://H0stMark/0", "REDIS_URL must be a URL that starts with"),
        # an unencoded '#': once a silent connection to localhost, port 12
        ("redis://:12#Hunter4secret@H0stMark:6379/0", "REDIS_URL has a '#'"),
        ("redis://:Hunter4/secret@H0stMark:6379/0", "REDIS_URL has an '@' after its host"),
        ("redis://:Hunter4?secret@H0stMark:6379/0", "REDIS_URL has an '@' after its host"),
        ("redis://:Hunter4%secret@H0stMark/0", "REDIS_URL has a '%' that starts no %XX"),
        ("redis://:Hunter4%ffsecret@H0stMark/0", "REDIS_URL has a %XX escape that is not UTF-8"),
        ("redis://:Hunter4\nsecret@H0stMark/0", "REDIS_URL has a control character"),
        ("redis://H0stMark/0?client_name=Qu3ryMark@x", "REDIS_URL has an '@' after its host"),
        ("redis://[::1/0", "REDIS_URL has an IPv6 address without its closing"),
        ("redis://::1:6379/0", "REDIS_URL has an IPv6 address without brackets"),
        # once "REDIS_PORT must be between 1 and 65535": a key that was not set
        ("redis://H0stMark:0", "REDIS_URL has a port that is not a number from 1 to 65535"),
        ("redis://H0stMark:+1", "REDIS_URL has a port that is not a number"),
        ("redis://H0stMark:\u0663", "REDIS_URL has a port that is not a number"),
        ("redis://H0stMark/Pa7hMark", "REDIS_URL must give the database as a number"),
        ("redis://H0stMark/1/2", "REDIS_URL must give the database as a number"),
        ("redis://H0stMark,H0stMark2/0", "REDIS_URL has more than one host"),
        ("redis://H0stMark/0?Qu3ryMark=1", "REDIS_URL has a query argument that"),
        ("redis://H0stMark/0?client_name", "REDIS_URL has a query argument without a value"),
        ("redis://H0stMark/0?host=Qu3ryMark", "REDIS_URL has the query argument 'host'"),
        (f"redis://H0stMark/0?password={SECRET}", "REDIS_URL has the query argument 'password'"),
        ("redis://H0stMark/0?db=0&db=0", "REDIS_URL has the query argument 'db' twice"),
        ("unix://H0stMark/run/redis.sock", "REDIS_URL has a host, but a unix:// URL"),
        ("unix://:Hunter4@/", "REDIS_URL must have the socket path as its path"),
        ("redis+sentinel://Us3rMark:Hunter4#@H0stMark/Pa7hMark", "REDIS_URL has a '#'"),
        ("redis+cluster://:Hunter4/x@H0stMark:1", "REDIS_URL has an '@' after its host"),
        ("redis+cluster://H0stMark:1?Qu3ryMark=1", "REDIS_URL has a query argument that"),
    ],
)
def test_bad_url_names_the_key_and_shows_no_part_of_the_url(url: str, message: str) -> None:
    error = error_of({"REDIS_URL": url})
    assert str(error).startswith(message)
    assert_hides_secrets(str(error))
    if "percent-encode" in str(error):  # says what to do
        assert "password" in str(error)


def test_unencoded_hash_in_the_password_never_connects_elsewhere() -> None:
    # urlsplit() reads this as host "", port 12 and a fragment: localhost:12
    error = error_of({"REDIS_URL": "redis://:12#pw@db.internal:6379/0"})
    assert "percent-encode a '#' in the password as %23" in str(error)


def test_percent_encoded_user_and_password_are_decoded() -> None:
    password = "p@ss/w:rd#%?é"
    url = f"redis://{quote('us@r', safe='')}:{quote(password, safe='')}@h/0"
    assert read_config({"REDIS_URL": url}).kwargs == {
        "username": "us@r", "password": password, "host": "h", "db": 0
    }  # fmt: skip


def test_unencoded_at_in_the_password_is_read_whole_as_urlsplit_reads_it() -> None:
    kwargs = read_config({"REDIS_URL": "redis://u:p@ss@h:6380/1"}).kwargs
    assert (kwargs["password"], kwargs["host"], kwargs["port"]) == ("p@ss", "h", 6380)


def test_empty_url_counts_as_not_set_as_in_1_0() -> None:
    assert read_config({"REDIS_URL": "", "REDIS_HOST": "h", "REDIS_DB": "3"}).kwargs == {
        "host": "h", "db": 3
    }  # fmt: skip


# -- A URL, or a user name and password, in a key that takes none --------------------------

#: How a URL or a password is put into a key of an address by mistake; ``{user}`` and
#: ``{password}`` are filled in, ``H0stMark`` is the host.
CREDENTIAL_FORMS = (
    "redis://{user}:{password}@H0stMark:1/0", "rediss://{user}:{password}@H0stMark",
    "{user}:{password}@H0stMark:1", ":{password}@H0stMark", "//{user}:{password}@H0stMark",
    "unix://{user}:{password}@/run/H0stMark.sock", " redis://:{password}@H0stMark ",
    "{user}@H0stMark:1,{user}:{password}@H0stMark:2",
)  # fmt: skip


def in_key(name: str, text: str) -> Any:
    """``text`` as the value of key ``name`` would hold it: a ``(host, port)`` entry of the
    addresses, a :class:`~pathlib.Path` of a socket path, else the text itself."""
    if name in ("SENTINELS", "CLUSTER") and "," not in text:
        return [(text, 1)] if text.startswith(":") else [text]
    if name == "UNIX_SOCKET_PATH" and text.startswith("//"):
        return Path(text)
    return text


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["HOST", "UNIX_SOCKET_PATH", "CONNECTION_POOL", "SENTINELS", "CLUSTER"]),
    form=st.sampled_from(CREDENTIAL_FORMS),
    user=st.sampled_from(["Us3rMark", ""]),
    password=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
)
def test_a_url_or_password_in_a_key_of_an_address_is_refused_unshown(
    name: str, form: str, user: str, password: str
) -> None:
    # Once accepted (REDIS_HOST, REDIS_UNIX_SOCKET_PATH), and then shown by the panel and
    # the CLI, or echoed: "REDIS_CLUSTER (port of u) must be an integer, got 'pw@host'".
    text = form.format(user=user, password=f"Hunter4{password}")
    config = {f"REDIS_{name}": in_key(name, text)}
    if name == "SENTINELS":
        config["REDIS_SENTINEL_MASTER"] = "mymaster"
    error = error_of(config)
    assert str(error).startswith(f"REDIS_{name} ")
    assert "REDIS_URL" in str(error)  # where a URL goes
    assert_hides_secrets(str(error))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("REDIS_HOST", "/run/redis@6379/redis.sock"),  # a directory of a user, say
        ("REDIS_HOST", "file:///run/redis@6379/redis.sock"),
        ("REDIS_UNIX_SOCKET_PATH", "/home/me@corp/redis.sock"),
        ("REDIS_UNIX_SOCKET_PATH", Path("/home/me@corp/redis.sock")),
        ("REDIS_UNIX_SOCKET_PATH", "redis.sock"),
        ("REDIS_HOST", "redis-0.redis.svc.cluster.local"),
        ("REDIS_HOST", "fe80::1%eth0"),
    ],
)
def test_a_socket_path_may_have_an_at_after_its_first_slash(key: str, value: Any) -> None:
    kwargs = read_config({key: value}).kwargs
    assert str(value).removeprefix("file://") in kwargs.values()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("REDIS_CONNECTION_POOL", f"redis://:{SECRET}@H0stMark/0"),
        ("REDIS_PORT", f"{SECRET}@H0stMark"),
        ("REDIS_SOCKET_TIMEOUT", f"//:{SECRET}@H0stMark"),
        ("REDIS_CLASS", f"redis://Us3rMark:{SECRET}@H0stMark"),
        ("REDIS_CLUSTER", [("h", f"{SECRET}@H0stMark")]),
        ("REDIS_METRICS_PATH", f"redis://:{SECRET}@H0stMark"),
    ],
)
def test_no_message_echoes_a_value_that_may_hold_a_password(key: str, value: Any) -> None:
    # Whatever the key: a value with an '@' or a ':/' is not shown.
    error = error_of({key: value})
    assert str(error).startswith(key)
    assert_hides_secrets(str(error))


# -- Values of the arguments ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "error", "message"),
    [
        # objects once passed on unchecked, failing in redis-py with an AttributeError
        ("REDIS_CONNECTION_POOL", "redis://h/0", TypeError,
         "REDIS_CONNECTION_POOL must be a connection pool, not a URL"),
        ("REDIS_CONNECTION_POOL", "pool", TypeError,
         "REDIS_CONNECTION_POOL must be an instance of redis.connection.ConnectionPool"),
        ("REDIS_CACHE_CONFIG", "redis://h/0", TypeError,
         "REDIS_CACHE_CONFIG must be an instance of redis.cache.CacheConfig"),
        ("REDIS_EVENT_DISPATCHER", "on", TypeError, "REDIS_EVENT_DISPATCHER must be an instance"),
        ("REDIS_RETRY", "3", TypeError, "REDIS_RETRY must be an instance of redis.retry"),
        ("REDIS_RETRY", redis.retry.Retry, TypeError, "REDIS_RETRY must be an instance"),
        ("REDIS_CREDENTIAL_PROVIDER", ("u", "p"), TypeError, "REDIS_CREDENTIAL_PROVIDER must"),
        ("REDIS_RETRY_ON_ERROR", ["TimeoutError"], TypeError, "REDIS_RETRY_ON_ERROR must be a"
                                                              " list of exception classes"),
        # converted but not checked
        ("REDIS_MAX_CONNECTIONS", "-1", ValueError, "REDIS_MAX_CONNECTIONS must be an integer"
                                                    " of 1 or more, got -1"),
        ("REDIS_MAX_CONNECTIONS", 0, ValueError, "REDIS_MAX_CONNECTIONS must be an integer"),
        ("REDIS_SOCKET_TIMEOUT", "nan", ValueError, "REDIS_SOCKET_TIMEOUT must be a number of"
                                                    " seconds, more than 0"),
        ("REDIS_SOCKET_TIMEOUT", "inf", ValueError, "REDIS_SOCKET_TIMEOUT must be a number"),
        ("REDIS_SOCKET_TIMEOUT", "-1", ValueError, "REDIS_SOCKET_TIMEOUT must be a number"),
        ("REDIS_SOCKET_TIMEOUT", 0, ValueError, "REDIS_SOCKET_TIMEOUT must be a number"),
        ("REDIS_SOCKET_CONNECT_TIMEOUT", 1e300, ValueError, "REDIS_SOCKET_CONNECT_TIMEOUT"),
        ("REDIS_HEALTH_CHECK_INTERVAL", math.nan, ValueError, "REDIS_HEALTH_CHECK_INTERVAL"),
        ("REDIS_DB", -1, ValueError, "REDIS_DB must be an integer from 0 to 2147483647, got -1"),
        ("REDIS_PROTOCOL", "4", ValueError, "REDIS_PROTOCOL must be 2 or 3, got 4"),
        ("REDIS_DECODE_RESPONSES", 2, TypeError, "REDIS_DECODE_RESPONSES must be a boolean"),
        ("REDIS_HOST", "", ValueError, "REDIS_HOST must be a host name"),
        ("REDIS_HOST", 127001, TypeError, "REDIS_HOST must be a host name"),
        ("REDIS_ENCODING", "no-such-codec", ValueError, "REDIS_ENCODING must be the name of a"
                                                        " text encoding"),
        ("REDIS_ENCODING", "rot13", ValueError, "REDIS_ENCODING must be the name of a text"),
        ("REDIS_CHARSET", "no-such-codec", ValueError, "REDIS_CHARSET must be the name of a"),
        ("REDIS_ENCODING_ERRORS", "loud", ValueError, "REDIS_ENCODING_ERRORS must be the name"),
        ("REDIS_SSL_CERT_REQS", "maybe", ValueError, "REDIS_SSL_CERT_REQS must be 'none',"),
        ("REDIS_SSL_CIPHERS", "NO-SUCH-CIPHER", ValueError, "REDIS_SSL_CIPHERS must be an"
                                                            " OpenSSL cipher list"),
        ("REDIS_CLIENT_NAME", "web 1", ValueError, "REDIS_CLIENT_NAME must be a name without"),
        ("REDIS_SOCKET_KEEPALIVE_OPTIONS", {"idle": 1}, TypeError, "REDIS_SOCKET_KEEPALIVE_OPT"),
        ("REDIS_PASSWORD", 1234, TypeError, "REDIS_PASSWORD must be a string, got a value of"
                                            " type int$"),
        # classes that cannot be a client, or do not import: once messages without the key
        ("REDIS_CLASS", "", ValueError, "REDIS_CLASS must be a class, .*'' does not import"),
        ("REDIS_CLASS", "builtins.bool", TypeError, "REDIS_CLASS must be a class, .*"
                                                    " got builtins.bool"),
        ("REDIS_CLASS", bool, TypeError, "REDIS_CLASS must be a class"),
        ("REDIS_CLASS", "os.path", TypeError, "REDIS_CLASS must be a class"),
        # a class where an instance is wanted
        ("REDIS_METRICS_REGISTRY", "prometheus_client.CollectorRegistry", TypeError,
         "REDIS_METRICS_REGISTRY must be a prometheus_client.CollectorRegistry"),
        ("REDIS_METRICS_PATH", "/metrics/<name>", ValueError, "REDIS_METRICS_PATH must be a URL"),
    ],
)  # fmt: skip
def test_wrong_value_names_the_key_before_any_client_exists(
    key: str, value: Any, error: type[Exception], message: str
) -> None:
    if key == "REDIS_METRICS_REGISTRY":
        value = pytest.importorskip("prometheus_client").CollectorRegistry
    name = key[len("REDIS_") :].lower()
    if name in _CHECKS and name not in every_argument():
        pytest.skip(f"redis-py {redis.__version__} has no argument {name!r}")
    config = {key: value}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # REDIS_CHARSET's
        with pytest.raises(error, match=message) as raised:
            read_config(config)
    assert_hides_secrets(str(raised.value))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"REDIS_CACHE_CONFIG": "cache_config", "REDIS_PROTOCOL": 2},
         "REDIS_CACHE_CONFIG needs protocol 3 (RESP3), which REDIS_PROTOCOL does not give"),
        ({"REDIS_CACHE_CONFIG": "cache_config", "REDIS_URL": "redis://h/0?protocol=2"},
         "REDIS_CACHE_CONFIG needs protocol 3 (RESP3), which REDIS_URL does not give"),
        ({"REDIS_CREDENTIAL_PROVIDER": "credential_provider", "REDIS_PASSWORD": SECRET},
         "REDIS_PASSWORD and REDIS_CREDENTIAL_PROVIDER are both set"),
        ({"REDIS_SSL": True, "REDIS_SSL_VALIDATE_OCSP": True,
          "REDIS_SSL_VALIDATE_OCSP_STAPLED": True},
         "REDIS_SSL_VALIDATE_OCSP and REDIS_SSL_VALIDATE_OCSP_STAPLED are both on"),
        ({"REDIS_CLUSTER": "a:1", "REDIS_CACHE_CONFIG": "cache_config", "REDIS_PROTOCOL": "2"},
         "REDIS_CACHE_CONFIG needs protocol 3 (RESP3), which REDIS_PROTOCOL does not give"),
    ],
)  # fmt: skip
def test_arguments_redis_py_refuses_together_name_their_keys(
    config: dict[str, Any], message: str
) -> None:
    if "REDIS_CACHE_CONFIG" in config and "cache_config" not in client_arguments(redis.Redis):
        pytest.skip("redis-py without client-side caching")
    for key, value in config.items():  # a string naming an argument: its right value
        if isinstance(value, str) and known(value):
            config[key] = valid_value(value)
    error = error_of(config)
    assert str(error).startswith(message)
    assert_hides_secrets(str(error))


def test_none_is_no_timeout_and_elsewhere_as_if_not_set() -> None:
    config = read_config({"REDIS_SOCKET_TIMEOUT": None, "REDIS_PORT": None, "REDIS_HOST": None})
    assert config.kwargs == {"socket_timeout": None}


def test_booleans_one_and_zero_are_read_as_in_1_0() -> None:
    assert read_config({"REDIS_DECODE_RESPONSES": 1, "REDIS_SSL": 0}).kwargs == {
        "decode_responses": True, "ssl": False
    }  # fmt: skip


def test_file_paths_may_be_path_objects() -> None:
    kwargs = read_config({"REDIS_SSL": "yes", "REDIS_SSL_CA_CERTS": Path("/etc/ca.pem")}).kwargs
    assert kwargs == {"ssl": True, "ssl_ca_certs": "/etc/ca.pem"}


def test_tls_keys_with_tls_off_are_dropped_with_a_warning() -> None:
    # A Sentinel master's plain connection refuses them (a TypeError at the first
    # command); redis.Redis ignores them: a client that was meant to use TLS would not.
    for config in ({"REDIS_SENTINELS": "h:1", "REDIS_SENTINEL_MASTER": "m"}, {}):
        with pytest.warns(UnreadKeyWarning, match="^REDIS_SSL_CA_CERTS is set, but TLS is off"):
            kwargs = read_config({**config, "REDIS_SSL_CA_CERTS": "/etc/ca.pem"}).kwargs
        assert kwargs == {}


# -- Keys that nothing reads ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("REDIS_HSOT", "REDIS_HOST"),
        ("REDIS_USER", "REDIS_USERNAME"),  # where 1.0 wrote a URL's user name: once "CLUSTER"
        ("REDIS_DECODE", "REDIS_DECODE_RESPONSES"),
        ("REDIS_PASWORD", "REDIS_PASSWORD"),
    ],
)
def test_misspelled_key_warns_naming_the_nearest_key(key: str, meant: str) -> None:
    message = rf"^{key} is set, but .* not read it \(did you mean {meant}\?\)"
    with pytest.warns(UnreadKeyWarning, match=message):
        config = read_config({key: "db.internal"})
    assert config.kwargs == {}


@pytest.mark.parametrize(
    ("key", "advice"),
    [
        ("REDIS_SENTINEL_PASSWORD", "give the sentinels' password as 'password' in"
                                    " REDIS_SENTINEL_KWARGS; the master's is REDIS_PASSWORD"),
        ("REDIS_SENTINEL_USERNAME", "give the sentinels' user name as 'username' in"
                                    " REDIS_SENTINEL_KWARGS; the master's is REDIS_USERNAME"),
        ("REDIS_MASTER_PASSWORD", "the master's password is REDIS_PASSWORD"),
        ("REDIS_CLUSTER_PASSWORD", "the password of the cluster's nodes is REDIS_PASSWORD"),
        ("REDIS_USE_SSL", "TLS is REDIS_SSL = True, or a rediss:// REDIS_URL"),
        ("REDIS_SERVER_URL", "did you mean REDIS_URL?"),
    ],
)  # fmt: skip
def test_a_key_meant_for_another_warns_naming_it(key: str, advice: str) -> None:
    # Once no warning at all: taken for the key PASSWORD of a prefix REDIS_SENTINEL.
    with pytest.warns(UnreadKeyWarning) as warned:
        config = read_config({key: SECRET, "REDIS_SENTINELS": "h:1", "REDIS_SENTINEL_MASTER": "m"})
    assert config.sentinel_kwargs is None and config.kwargs == {}
    assert str(warned[0].message).startswith(f"{key} is set, but Flask-And-Redis does not read"
                                             f" it ({advice})")  # fmt: skip
    assert_hides_secrets(str(warned[0].message))
    # The key of a prefix set up on the app is that prefix's.
    read_config({key: SECRET}, other_prefixes=[key.rsplit("_", 1)[0]])


def test_key_of_another_topology_warns_that_it_is_not_taken() -> None:
    message = r"REDIS_READ_FROM_REPLICAS is set, but .*\(redis.client.Redis does not take it"
    with pytest.warns(UnreadKeyWarning, match=message):
        read_config({"REDIS_READ_FROM_REPLICAS": True})


@pytest.mark.parametrize(
    ("config", "advice"),
    [
        ({}, r": set REDIS_CONNECTION_POOL to a pool made with it\)"),
        ({"REDIS_CLUSTER": "h:1"}, r"\)"),
        ({"REDIS_SENTINELS": "h:1", "REDIS_SENTINEL_MASTER": "m"}, r"\)"),
    ],
    ids=["server", "cluster", "sentinel"],
)
def test_a_pool_argument_warns_that_the_client_does_not_take_it(
    config: dict[str, Any], advice: str
) -> None:
    # Not taken for the key CLASS of a prefix REDIS_CONNECTION, which nothing set up.
    message = r"^REDIS_CONNECTION_CLASS is set, but .*argument of a connection pool, not of"
    with pytest.warns(UnreadKeyWarning, match=message + r" the client" + advice):
        read_config({**config, "REDIS_CONNECTION_CLASS": "redis.SSLConnection"})


def test_unread_key_warning_never_shows_the_value() -> None:
    with pytest.warns(UnreadKeyWarning) as warned:
        read_config({"REDIS_PASWORD": SECRET})
    assert "did you mean REDIS_PASSWORD?" in str(warned[0].message)
    assert SECRET not in str(warned[0].message)


def test_documented_keys_are_read_without_warning() -> None:
    # pytest turns any warning into an error
    read_config({
        "REDIS_METRICS": False, "REDIS_METRICS_REGISTRY": None, "REDIS_METRICS_PATH": "/m",
        "REDIS_RECORD_CALLS": True, "REDIS_RECORD_CALLS_MAX": 5, "REDIS_RECORD_STACK": False,
        "REDIS_RECORD_REDACT_KEYS": ["s:*"], "REDIS_SERVER_TIMING": True,
        "REDIS_SLOW_LOG_THRESHOLD": 0.5, "REDIS_CLASS": None, "REDIS_URL": None,
    })  # fmt: skip
    read_config({
        "REDIS_SENTINELS": "h:1", "REDIS_SENTINEL_MASTER": "m", "REDIS_SENTINEL_KWARGS": {},
        "REDIS_SENTINEL_WATCH": False, "REDIS_PASSWORD": SECRET,
    })  # fmt: skip
    read_config({"REDIS_CLUSTER": "h:1", "REDIS_READ_FROM_REPLICAS": True})


def test_keys_of_a_longer_prefix_are_not_unread_keys_of_the_shorter() -> None:
    # REDIS_CACHE_URL: the key URL of the prefix REDIS_CACHE, set up before or after
    read_config({"REDIS_CACHE_URL": "redis://h/1", "REDIS_CACHE_NAMESPACE": "x"}, "REDIS",
                other_prefixes=["REDIS_CACHE"])  # fmt: skip
    read_config({"REDIS_CACHE_URL": "redis://h/1", "CACHE_REDIS_HOST": "h"}, "REDIS")
    with pytest.warns(UnreadKeyWarning, match="REDIS_CACHE_NAMESPACE is set"):
        read_config({"REDIS_CACHE_NAMESPACE": "x"}, "REDIS")  # a prefix not set up (yet)


def test_keys_of_flask_and_of_libraries_sharing_a_prefix_are_not_unread() -> None:
    flask_caching = {"CACHE_TYPE": "RedisCache", "CACHE_DEFAULT_TIMEOUT": 300,
                     "CACHE_REDIS_URL": "redis://h/2"}  # fmt: skip
    read_config({"CACHE_URL": "redis://h/1", **flask_caching}, "CACHE")
    read_config({"SESSION_COOKIE_NAME": "s", "SESSION_REDIS": object(), "SESSION_TYPE": "redis"},
                "SESSION")  # fmt: skip


def test_prefixes_set_up_on_the_app_are_passed_on(new_app: Flask) -> None:
    new_app.config.update(REDIS_CACHE_CLASS="tests.test_config.NamespacedRedis",
                          REDIS_CACHE_NAMESPACE="ns:", REDIS_METRICS=False,
                          REDIS_CACHE_METRICS=False)  # fmt: skip
    Redis(new_app, "REDIS_CACHE")
    Redis(new_app)  # REDIS_CACHE_NAMESPACE is the set-up prefix's own: no warning
    close_clients(new_app)


# -- The contract, for generated configs ---------------------------------------------------

PREFIXES = ("REDIS", "CACHE")

#: Wrong values of any type, and text that is wrong for most keys. The secret values are
#: those of the keys that hold secrets (:func:`key_value`, :data:`SETTINGS`).
wrong_values = st.one_of(
    st.sampled_from([
        None, True, False, 0, 1, -1, 2, 3, 65536, 10**30, 1.5, -0.5, math.nan, math.inf,
        "", " ", "x", "-1", "nan", "inf", "0", "1", "yes", "maybe", "1e400", "/", "h:1",
        b"bytes", [], ["x"], [1], {}, {"a": 1}, (), object(), object, int, Exception,
        lambda: None, Path("/tmp"), "redis://h/0", "redis.Redis",
        f"Us3rMark:{SECRET}@H0stMark:1", f"redis://:{SECRET}@H0stMark/0",
    ]),
    st.text(max_size=12),
    st.integers(),
    st.floats(),
)  # fmt: skip


def key_value(name: str) -> st.SearchStrategy[Any]:
    """Values of the key of argument ``name``: mostly right ones (numbers and booleans
    also as text), else wrong ones."""
    if not known(name):
        return wrong_values
    right = st.builds(valid_value, st.just(name))
    if isinstance(valid_value(name), (bool, int, float)):
        right = st.one_of(right, st.builds(lambda value: str(value), right))
    return st.one_of(right, right, right, wrong_values)


url_schemes = st.sampled_from(["redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel",
                               "redis+cluster", "REDIS", "http", "", "Hunter4secret"])  # fmt: skip
url_userinfo = st.sampled_from(["", "Us3rMark@", f":{SECRET}@", f"Us3rMark:{SECRET}@",
                                f":{quote(SECRET + '@/#?%é', safe='')}@", f":{SECRET}@x@",
                                f":{SECRET}#x@", f":{SECRET}/x@", f":{SECRET}?x@",
                                f":{SECRET}%@", f":{SECRET}%zz@", f":{SECRET}%ff@", "@", ":@",
                                f":{SECRET}\n@"])  # fmt: skip
url_hosts = st.sampled_from(["127.0.0.1:1", "localhost:1", "[::1]:1", "[::1", "::1:1",
                             "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:H0stMark",
                             "127.0.0.1:", "", "H0stMark.invalid:1", "127.0.0.1:1,localhost:1",
                             "127.0.0.1:+1", "127.0.0.1:\u0663", "H0stMark%zz:1"])  # fmt: skip
url_paths = st.sampled_from(["", "/", "/0", "/15", "/0/", "/Pa7hMark", "/Pa7hMark/2",
                             "/Pa7hMark/x", "/a/b/c", "//", "/-1", "/%30", "/run/Pa7hMark.sock",
                             "/Pa7hMark/%ff"])  # fmt: skip
url_queries = st.sampled_from(["", "?db=1", "?db=0", "?socket_timeout=2.5",
                               "?socket_timeout=nan", "?Qu3ryMark=1", "?client_name=Qu3ryMark",
                               "?client_name", "?db=1&db=2", "?host=Qu3ryMark", "?protocol=3",
                               "?retry=Qu3ryMark", "?&", f"?password={SECRET}", "?ssl=Qu3ryMark",
                               "?decode_responses=yes&max_connections=-1",
                               "?read_from_replicas=yes",
                               "?health_check_interval=1e999"])  # fmt: skip
urls = st.builds(
    lambda *parts: "".join(parts),
    url_schemes, st.sampled_from(["://", ":/", ":", ":///"]), url_userinfo, url_hosts, url_paths,
    url_queries, st.sampled_from(["", "", "#Qu3ryMark"]),
)  # fmt: skip
good_urls = st.sampled_from([
    "redis://127.0.0.1:1/0", f"rediss://Us3rMark:{quote(SECRET + '@/#?%', safe='')}@[::1]:1/15/",
    "unix:///run/Pa7hMark.sock", "redis://localhost:1?socket_timeout=2.5&db=0",
    "redis+sentinel://127.0.0.1:1/Pa7hMark", "redis+cluster://127.0.0.1:1,[::1]:1",
])  # fmt: skip
class_values = st.sampled_from([
    "redis.Redis", "redis.StrictRedis", "redis:Redis", "redis.cluster.RedisCluster",
    "tests.test_config.NamespacedRedis", "", " ", "builtins.bool", "no.such.Module",
    "redis.from_url", "os.path", "redis.NoSuchClass", "collections.OrderedDict", redis.Redis,
    RedisCluster, bool, 3, object(), "tests.test_config_topology.AppCluster",
    # no client: once accepted, then failing as the client was made, or later
    "redis.asyncio.Redis", "redis.asyncio.RedisCluster", "enum.Enum", "pathlib.Path",
    "string.Template", "redis.sentinel.Sentinel", "redis.client.Pipeline", "redis.client.PubSub",
    "redis.cluster.ClusterPipeline",
])  # fmt: skip
address_values = st.sampled_from([
    "127.0.0.1:1", "127.0.0.1:1,localhost:1", "[::1]:1", "::1:1", "node:x", "h:0", "",
    ",", [("127.0.0.1", 1)], [("127.0.0.1", "1")], [("h", 1, 2)], [(1, 2)], 7000, {"h": 1},
    ["127.0.0.1:1"], [None], "h:+1", "h:1_0", f"Us3rMark:{SECRET}@H0stMark:1",
    f"127.0.0.1:1,:{SECRET},x@H0stMark:2", [(f":{SECRET}@H0stMark", 1)],
])  # fmt: skip
sentinel_kwargs_values = st.one_of(
    st.dictionaries(st.sampled_from(["password", "socket_timeout", "pasword", "protocol", "db"]),
                    st.sampled_from([SECRET, "1", "nan", -1, 3, None, object()]), max_size=3),
    wrong_values,
)  # fmt: skip
registries = st.one_of(st.builds(lambda: __import__("prometheus_client").CollectorRegistry()),
                       wrong_values)  # fmt: skip

#: Per key name (after the prefix), its values; any other name gets :func:`key_value`.
SETTINGS: dict[str, st.SearchStrategy[Any]] = {
    "URL": st.one_of(urls, urls, good_urls, wrong_values),
    "CLASS": st.one_of(class_values, st.sampled_from(["redis.Redis", redis.Redis,
                                                      "tests.test_config.NamespacedRedis"])),
    "CHARSET": st.one_of(st.sampled_from(["utf-8", "latin-1"]), wrong_values),
    "ERRORS": st.one_of(st.sampled_from(["strict", "replace"]), wrong_values),
    "SENTINELS": address_values,
    "SENTINEL_MASTER": st.one_of(st.just("Pa7hMark"), wrong_values),
    "SENTINEL_KWARGS": sentinel_kwargs_values,
    "SENTINEL_WATCH": st.one_of(st.booleans(), wrong_values),
    "CLUSTER": address_values,
    "METRICS": st.one_of(st.booleans(), wrong_values),
    "METRICS_REGISTRY": registries,
    "METRICS_PATH": st.one_of(st.sampled_from(["/metrics", "/a b", "/<x>", "metrics"]),
                              wrong_values),
    "RECORD_CALLS": st.one_of(st.booleans(), wrong_values),
    "RECORD_CALLS_MAX": st.one_of(st.integers(-2, 5), wrong_values),
    "RECORD_STACK": st.one_of(st.booleans(), wrong_values),
    "RECORD_REDACT_KEYS": st.one_of(st.just(["s:*"]), wrong_values),
    "SERVER_TIMING": st.one_of(st.booleans(), wrong_values),
    "SLOW_LOG_THRESHOLD": st.one_of(st.floats(), wrong_values),
    # keys that nothing reads: a typo, another prefix's, another library's
    "HSOT": st.just("db.internal"),
    "CACHE_URL": urls,
    "TYPE": st.just("RedisCache"),
}  # fmt: skip


#: Settings of a topology that work, to which the generated keys are added: so that many
#: configs get past the first wrong key and make a client.
BASES: list[dict[str, Any]] = [
    {}, {}, {"URL": "redis://127.0.0.1:1/0"}, {"URL": f"redis://Us3rMark:{SECRET}@H0stMark:1"},
    {"URL": "unix:///run/Pa7hMark.sock?db=1"},
    {"SENTINELS": "127.0.0.1:1", "SENTINEL_MASTER": "mymaster"},
    {"URL": f"redis+sentinel://:{SECRET}@127.0.0.1:1,localhost:1/Pa7hMark/1"},
    {"CLUSTER": "127.0.0.1:1"}, {"URL": "rediss+cluster://127.0.0.1:1"},
]  # fmt: skip


def configs() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    names = sorted({*SETTINGS, *(name.upper() for name in every_argument())})

    def fill(
        prefix: str, base: dict[str, Any], chosen: list[str]
    ) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
        values = {f"{prefix}_{name}": st.just(value) for name, value in base.items()}
        for name in chosen:
            values[f"{prefix}_{name}"] = (
                SETTINGS[name] if name in SETTINGS else key_value(name.lower())
            )
        return st.tuples(st.just(prefix), st.fixed_dictionaries(values))

    return st.tuples(
        st.sampled_from(PREFIXES),
        st.sampled_from(BASES),
        st.lists(st.sampled_from(names), max_size=5, unique=True),
    ).flatmap(lambda drawn: fill(*drawn))


def use(client: Any) -> None:
    """Do what a client's first command does up to its connection, with no server: make
    a connection with the configured arguments, and set each on a socket."""
    pool = client.connection_pool
    made = pool.make_connection()
    connection = getattr(made, "_conn", made)  # inside the proxy of client-side caching
    try:
        with socket.socket() as sock:
            for name in ("socket_timeout", "socket_connect_timeout"):
                value = getattr(connection, name, None)
                if value is not None:
                    sock.settimeout(value)
            options = getattr(connection, "socket_keepalive_options", None) or {}
            for option, value in options.items():
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
        connection.encoder.encode("é")
        # What each command does with the connection's retry policy, with nothing to retry.
        connection.retry.call_with_retry(lambda: None, lambda error: None)
    finally:
        made.disconnect()


def check_contract(prefix: str, config: dict[str, Any]) -> str:
    """Set ``prefix`` up from ``config`` as ``Redis(app)`` does, and use its client: what
    happened, in a few words."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return set_up_and_use(prefix, config)
        finally:
            for warning in caught:
                assert_hides_secrets(str(warning.message))
                if not warning.filename.startswith(str(Path(redis.__file__).parent)):
                    assert issubclass(warning.category, (UnreadKeyWarning, IgnoredKeyWarning,
                                                         DeprecationWarning))  # fmt: skip


def set_up_and_use(prefix: str, config: dict[str, Any]) -> str:
    app = Flask(__name__, root_path=str(Path(__file__).parent))
    app.config.update(config)
    try:
        read = read_config(app.config, prefix)
    except (ValueError, TypeError) as error:
        assert_names_a_set_key(error, config, prefix)
        assert_hides_secrets(str(error))
        return f"refused: {type(error).__name__}"
    # What the panel and the CLI show of where the client connects: no user name or
    # password (a URL's host and path are that).
    shown = repr([read.kwargs.get("host"), read.kwargs.get("unix_socket_path"), *read.addresses])
    assert SECRET not in shown and "Hunter4" not in shown and "Us3rMark" not in shown, shown
    # With no server, nothing may connect: a Sentinel master's watch and a single
    # connection client connect at once (tests/test_sentinel.py has them).
    if read.mode == SENTINEL:
        app.config[f"{prefix}_SENTINEL_WATCH"] = False
    if read.kwargs.get("single_connection_client"):
        app.config[f"{prefix}_SINGLE_CONNECTION_CLIENT"] = False
    try:
        Redis(app, prefix)
    except RedisClusterException as error:  # a cluster client asks its nodes at once
        unreachable = isinstance(error.__cause__, (redis.ConnectionError, redis.TimeoutError))
        assert read.mode == CLUSTER and unreachable, error
        return "cluster client: no node answers"
    client = app.extensions["redis"][prefix]
    assert isinstance(client, (read.library.client, read.library.cluster)), type(client)
    try:
        if isinstance(client, redis.Redis):  # not a cluster, nor a class of the app's own
            use(client)
    finally:
        if isinstance(client, (redis.Redis, RedisCluster)):
            close_clients(app)
    return f"client made: {read.mode}"


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_every_generated_config_keeps_the_contract(prefixed: tuple[str, dict[str, Any]]) -> None:
    event(check_contract(*prefixed))


def test_the_contract_check_sees_a_wrong_value_that_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A check of the property test itself: were a value let through unchecked (as 1.0 and
    # the first 2.0 did), using the client fails outside the contract, and the test with it.
    monkeypatch.setitem(_CHECKS, "retry", _Check("anything", lambda value: True))
    with pytest.raises(AttributeError):
        check_contract("REDIS", {"REDIS_RETRY": "3"})
