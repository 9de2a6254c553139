"""Reading the Sentinel and Cluster keys and URLs (no server needed)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
import redis
import redis.cluster
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.cluster import ClusterNode, RedisCluster

from flask_redis import IgnoredKeyWarning
from flask_redis._config import read_config
from flask_redis._topology import CLUSTER, SENTINEL, SERVER

from .conftest import SECRET

pytestmark = pytest.mark.one_kind

SENTINELS = [("10.0.0.1", 26379), ("10.0.0.2", 26380)]


class AppCluster(RedisCluster):
    """A cluster client class of an app's own."""


def sentinel_config(**more: Any) -> dict[str, Any]:
    keys = {"REDIS_SENTINELS": SENTINELS, "REDIS_SENTINEL_MASTER": "mymaster"}
    keys.update({f"REDIS_{name}": value for name, value in more.items()})
    return keys


def test_sentinel_keys_give_the_sentinels_the_service_and_the_master_arguments() -> None:
    config = read_config(sentinel_config(PASSWORD=SECRET, DB="2", SOCKET_TIMEOUT="0.5"))
    assert (config.mode, config.client_class) == (SENTINEL, redis.Redis)
    assert config.addresses == SENTINELS
    assert config.service == "mymaster"
    assert config.sentinel_kwargs is None
    assert config.kwargs == {"password": SECRET, "db": 2, "socket_timeout": 0.5}


@pytest.mark.parametrize(
    "sentinels",
    [
        "10.0.0.1:26379,10.0.0.2:26380",
        " 10.0.0.1:26379 , 10.0.0.2:26380 ,",  # from an environment variable
        "10.0.0.1,10.0.0.2:26380",  # the default port
        ["10.0.0.1:26379", "10.0.0.2:26380"],
        [("10.0.0.1", "26379"), ["10.0.0.2", 26380]],
    ],
)
def test_sentinels_are_read_in_every_form(sentinels: Any) -> None:
    assert read_config(sentinel_config(SENTINELS=sentinels)).addresses == SENTINELS


def test_ipv6_addresses_are_written_in_brackets() -> None:
    config = read_config({"REDIS_CLUSTER": "[::1]:7000,[fe80::1]"})
    assert config.addresses == [("::1", 7000), ("fe80::1", 6379)]
    with pytest.raises(ValueError, match="REDIS_CLUSTER has an IPv6 address without brackets"):
        read_config({"REDIS_CLUSTER": "::1:7000"})


def test_sentinel_watch_is_on_unless_turned_off() -> None:
    assert read_config(sentinel_config()).sentinel_watch is True
    assert read_config(sentinel_config(SENTINEL_WATCH="no")).sentinel_watch is False
    with pytest.raises(ValueError, match="REDIS_SENTINEL_WATCH must be a boolean"):
        read_config(sentinel_config(SENTINEL_WATCH="sometimes"))
    with pytest.raises(ValueError, match="REDIS_SENTINEL_WATCH is set, but neither"):
        read_config({"REDIS_SENTINEL_WATCH": False})


def test_sentinel_kwargs_are_the_sentinels_own_and_converted() -> None:
    config = read_config(sentinel_config(SENTINEL_KWARGS={"password": SECRET,
                                                          "socket_timeout": "1.5"}))  # fmt: skip
    assert config.sentinel_kwargs == {"password": SECRET, "socket_timeout": 1.5}
    assert config.kwargs == {}


def test_sentinel_kwargs_errors_name_the_key_and_hide_the_values() -> None:
    with pytest.raises(ValueError, match="REDIS_SENTINEL_KWARGS has 'pasword'") as raised:
        read_config(sentinel_config(SENTINEL_KWARGS={"pasword": SECRET}))
    assert SECRET not in str(raised.value)
    with pytest.raises(TypeError, match="REDIS_SENTINEL_KWARGS must be a dict") as wrong:
        read_config(sentinel_config(SENTINEL_KWARGS=f"password={SECRET}"))
    assert SECRET not in str(wrong.value)
    with pytest.raises(ValueError, match=r"REDIS_SENTINEL_KWARGS \('socket_timeout'\) must"
                                         r" be a number, got a value of type str$"):  # fmt: skip
        read_config(sentinel_config(SENTINEL_KWARGS={"socket_timeout": SECRET}))


@pytest.mark.parametrize("name", ["host", "port", "unix_socket_path", "connection_pool"])
@pytest.mark.parametrize("sentinels", ["REDIS_SENTINELS", "REDIS_URL"])
def test_sentinel_kwargs_that_the_sentinels_addresses_give_are_refused(
    name: str, sentinels: str
) -> None:
    # Once "got multiple values for argument 'host'" as the client was made, naming no key.
    config = {"REDIS_SENTINEL_KWARGS": {name: SECRET}, "REDIS_SENTINEL_MASTER": "mymaster"}
    config[sentinels] = "10.0.0.1" if sentinels == "REDIS_SENTINELS" else "redis+sentinel://h"
    with pytest.raises(ValueError) as raised:
        read_config(config)
    assert str(raised.value).startswith(
        f"REDIS_SENTINEL_KWARGS has {name!r}, which cannot be used with {sentinels}: "
    )
    assert SECRET not in str(raised.value)


def test_sentinel_url_sets_sentinels_service_database_and_arguments() -> None:
    url = (f"redis+sentinel://user:{SECRET}@10.0.0.1:26379,10.0.0.2:26380/mymaster/3"
           "?socket_timeout=2&decode_responses=yes")  # fmt: skip
    config = read_config({"REDIS_URL": url})
    assert (config.mode, config.addresses, config.service) == (SENTINEL, SENTINELS, "mymaster")
    assert config.kwargs == {"username": "user", "password": SECRET, "db": 3,
                             "socket_timeout": 2.0, "decode_responses": True}  # fmt: skip


def test_sentinel_url_decides_its_parts_and_keys_supply_the_rest() -> None:
    with pytest.warns(IgnoredKeyWarning) as warned:
        config = read_config({
            "REDIS_URL": "redis+sentinel://10.0.0.1/svc", "REDIS_SENTINEL_MASTER": "other",
            "REDIS_PASSWORD": SECRET, "REDIS_SOCKET_TIMEOUT": "2",
        })  # fmt: skip
    assert (config.addresses, config.service) == ([("10.0.0.1", 26379)], "svc")
    # The URL gives no password: the default, no password, wins as with any URL.
    assert config.kwargs == {"socket_timeout": 2.0}
    assert sorted(str(w.message).split(" is ignored: ")[0] for w in warned) == [
        "REDIS_PASSWORD", "REDIS_SENTINEL_MASTER"
    ]  # fmt: skip
    assert all(SECRET not in str(w.message) for w in warned)


@pytest.mark.parametrize(
    "url", ["rediss+sentinel://h/s", "REDISS+SENTINEL://h/s", "rediss+cluster://h",
            "Rediss+Cluster://h"],
)  # fmt: skip
def test_tls_schemes_turn_ssl_on_in_any_case(url: str) -> None:
    assert read_config({"REDIS_URL": url}).kwargs == {"ssl": True}


def test_cluster_class_with_a_url_of_one_node_or_a_socket() -> None:
    config = read_config({"REDIS_CLASS": AppCluster, "REDIS_URL": "redis://a:7000"})
    assert (config.mode, config.addresses) == (CLUSTER, [("a", 7000)])
    message = r"REDIS_URL must be a redis\+cluster:// or rediss\+cluster:// URL for a cluster"
    with pytest.raises(ValueError, match=message) as raised:
        read_config({"REDIS_CLASS": AppCluster, "REDIS_URL": "unix:///run/redis.sock"})
    assert "unix" not in str(raised.value)  # no part of the URL


def test_cluster_key_gives_startup_nodes_and_cluster_arguments() -> None:
    config = read_config({
        "REDIS_CLUSTER": "10.0.0.1:7000,10.0.0.2", "REDIS_PASSWORD": SECRET,
        "REDIS_READ_FROM_REPLICAS": "yes", "REDIS_REINITIALIZE_STEPS": "3",
        "REDIS_MAX_CONNECTIONS": "20",
    })  # fmt: skip
    assert (config.mode, config.client_class) == (CLUSTER, RedisCluster)
    assert config.addresses == [("10.0.0.1", 7000), ("10.0.0.2", 6379)]
    assert config.kwargs == {"password": SECRET, "read_from_replicas": True,
                             "reinitialize_steps": 3, "max_connections": 20}  # fmt: skip


def test_cluster_accepts_cluster_nodes() -> None:
    nodes = [ClusterNode("10.0.0.1", 7000), ClusterNode("10.0.0.2", 7001)]  # type: ignore[no-untyped-call]
    config = read_config({"REDIS_CLUSTER": nodes})
    assert config.addresses == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]


def test_cluster_url_sets_nodes_and_arguments() -> None:
    config = read_config({"REDIS_URL": f"redis+cluster://:{SECRET}@a:7000,b:7001/?protocol=3"})
    assert (config.mode, config.addresses) == (CLUSTER, [("a", 7000), ("b", 7001)])
    assert config.kwargs == {"password": SECRET, "protocol": 3}


def test_cluster_class_of_the_app_is_used_and_checked() -> None:
    config = read_config({"REDIS_CLUSTER": "a:7000", "REDIS_CLASS": AppCluster})
    assert config.client_class is AppCluster
    with pytest.raises(TypeError, match="REDIS_CLASS must be redis.cluster.RedisCluster or a"
                                        " subclass of it with REDIS_CLUSTER"):  # fmt: skip
        read_config({"REDIS_CLUSTER": "a:7000", "REDIS_CLASS": "redis.Redis"})
    with pytest.raises(TypeError, match="REDIS_CLASS must be redis.Redis or a subclass"):
        read_config(sentinel_config(CLASS=AppCluster))


def test_cluster_class_alone_takes_host_and_port_as_its_startup_node() -> None:
    config = read_config({"REDIS_CLASS": AppCluster, "REDIS_HOST": "a", "REDIS_PORT": "7000"})
    assert (config.mode, config.addresses) == (CLUSTER, [])
    assert config.kwargs == {"host": "a", "port": 7000}


def test_load_balancing_strategy_is_read_from_text() -> None:
    strategy = getattr(redis.cluster, "LoadBalancingStrategy", None)
    if strategy is None:
        pytest.skip("redis-py before 5.1 has no load balancing strategy")
    config = read_config({"REDIS_CLUSTER": "a", "REDIS_LOAD_BALANCING_STRATEGY": "round_robin"})
    assert config.kwargs == {"load_balancing_strategy": strategy.ROUND_ROBIN}
    with pytest.raises(ValueError, match="REDIS_LOAD_BALANCING_STRATEGY must be one of"):
        read_config({"REDIS_CLUSTER": "a", "REDIS_LOAD_BALANCING_STRATEGY": "nearest"})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            sentinel_config(HOST="h"),
            "REDIS_HOST cannot be used with REDIS_SENTINELS: the"
            " addresses come from REDIS_SENTINELS",
        ),
        (sentinel_config(PORT=6379), "REDIS_PORT cannot be used with REDIS_SENTINELS"),
        (
            sentinel_config(UNIX_SOCKET_PATH="/run/r.sock"),
            "REDIS_UNIX_SOCKET_PATH cannot be used with REDIS_SENTINELS: Sentinel and Cluster"
            " clients connect over TCP",
        ),
        (
            sentinel_config(CONNECTION_POOL=object()),
            "REDIS_CONNECTION_POOL cannot be used with REDIS_SENTINELS",
        ),
        (
            {"REDIS_URL": "redis+sentinel://h/s", "REDIS_HOST": "h"},
            "REDIS_HOST cannot be used with REDIS_URL",
        ),
        (
            {"REDIS_CLUSTER": "a", "REDIS_DB": 0},
            "REDIS_DB cannot be used with REDIS_CLUSTER: a cluster has database 0 only",
        ),
        ({"REDIS_CLUSTER": "a", "REDIS_HOST": "b"}, "REDIS_HOST cannot be used with REDIS_CLUSTER"),
        (
            {"REDIS_URL": "redis+cluster://a", "REDIS_PORT": 1},
            "REDIS_PORT cannot be used with REDIS_URL",
        ),
        (
            {"REDIS_CLUSTER": "a", "REDIS_SENTINELS": "b"},
            "REDIS_SENTINELS and REDIS_CLUSTER are both set",
        ),
        (
            {"REDIS_CLUSTER": "a", "REDIS_URL": "redis://b"},
            "REDIS_URL and REDIS_CLUSTER are both set: use a redis\\+cluster:// URL",
        ),
        (
            {"REDIS_SENTINELS": "a", "REDIS_URL": "redis+cluster://b"},
            "REDIS_URL and REDIS_SENTINELS are both set: use a redis\\+sentinel:// URL",
        ),
        (
            {"REDIS_SENTINEL_MASTER": "mymaster"},
            "REDIS_SENTINEL_MASTER is set, but neither REDIS_SENTINELS nor a redis\\+sentinel://",
        ),
        (
            {"REDIS_SENTINELS": "a"},
            "REDIS_SENTINELS is set, but REDIS_SENTINEL_MASTER is not:"
            " set it to the name of the service",
        ),
        (
            {"REDIS_SENTINELS": "a", "REDIS_SENTINEL_MASTER": ""},
            "REDIS_SENTINEL_MASTER must be the name of the service .*, got ''",
        ),
        (
            {"REDIS_URL": "redis+sentinel://a"},
            "REDIS_URL is set, but REDIS_SENTINEL_MASTER is"
            " not: .* or give the name as the path of REDIS_URL",
        ),
        ({"REDIS_URL": "redis+sentinel://a/s/1/2"}, "REDIS_URL must have the path /service"),
        ({"REDIS_URL": "redis+cluster://a/1"}, "REDIS_URL cannot have a path"),
        (
            {"REDIS_URL": "redis+cluster://a?db=1"},
            "REDIS_URL has a query argument that redis.cluster.RedisCluster does not take",
        ),
        ({"REDIS_CLUSTER": ""}, "REDIS_CLUSTER must name at least one host:port address"),
        ({"REDIS_CLUSTER": []}, "REDIS_CLUSTER must name at least one"),
        (
            {"REDIS_CLUSTER": "a:0"},
            "REDIS_CLUSTER has an address whose port is not a number from 1 to 65535: a:0",
        ),
        ({"REDIS_CLUSTER": "a:65536"}, "port is not a number from 1 to 65535"),
        ({"REDIS_CLUSTER": "a:x"}, r"REDIS_CLUSTER \(port of a\) must be an integer"),
        ({"REDIS_CLUSTER": [("a", 1, 2)]}, "REDIS_CLUSTER has an entry .* neither"),
        ({"REDIS_CLUSTER": 7000}, "REDIS_CLUSTER must be a list of"),
        ({"REDIS_CLUSTER": ":7000"}, "REDIS_CLUSTER has an address whose host is ''"),
    ],
)
def test_keys_that_cannot_apply_or_are_wrong_name_the_key(config: dict[str, Any],
                                                         message: str) -> None:  # fmt: skip
    with pytest.raises((ValueError, TypeError), match=message):
        read_config(config)


def test_one_server_keys_are_unchanged() -> None:
    config = read_config({"REDIS_HOST": "h", "REDIS_PORT": 1})
    assert (config.mode, config.addresses, config.service) == (SERVER, [], None)


@pytest.mark.parametrize(
    "url",
    [
        f"redis+sentinel://u:{SECRET}@h:port/s",
        f"redis+sentinel://u:{SECRET}@h:1/s/x",
        f"redis+sentinel://u:{SECRET}@h:1/s?colour=blue",
        f"redis+sentinel://u:{SECRET}@h:1/s?socket_timeout=soon",
        f"redis+sentinel://u:{SECRET}@h:1",
        f"redis+sentinel://u:{SECRET}@[::1/s",
        f"redis+cluster://u:{SECRET}@h:99999",
        f"redis+cluster://u:{SECRET}@/",
        f"redis+cluster://u:{SECRET}@h/0",
        f"redis+cluster://{SECRET}@h:1?db=1",
    ],
)
def test_bad_topology_urls_never_show_the_password(url: str) -> None:
    with pytest.raises((ValueError, TypeError)) as raised:
        read_config({"REDIS_URL": url})
    assert "REDIS_URL" in str(raised.value)
    assert SECRET not in str(raised.value)


# Passwords with every character a URL gives a meaning to.
passwords = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=30
)


@settings(max_examples=300, deadline=None)
@given(password=passwords, username=st.text("abcXYZ09_-.", max_size=8))
def test_password_is_read_whole_encoded_or_not(password: str, username: str) -> None:
    for scheme, tail in (("redis+sentinel", "/mymaster"), ("redis+cluster", "")):
        encoded = f"{scheme}://{username}:{quote(password, safe='')}@h1:1,h2:2{tail}?db=0"
        if scheme == "redis+cluster":
            encoded = encoded.replace("?db=0", "")
        assert read_config({"REDIS_URL": encoded}).kwargs["password"] == password
        plain = f"{scheme}://{username}:{password}@h1:1,h2:2{tail}"
        if any(c in "/?#%" or c < " " or c == "\x7f" for c in password):
            # the host would be read from the wrong place, or not at all: never guessed
            marked = plain.replace(f":{password}@", f":Mk7{password}@")
            with pytest.raises(ValueError, match="^REDIS_URL has ") as raised:
                read_config({"REDIS_URL": marked})
            assert "Mk7" not in str(raised.value)
        else:  # unencoded: the user info ends at the last "@"
            config = read_config({"REDIS_URL": plain})
            assert config.kwargs["password"] == password
            assert config.addresses == [("h1", 1), ("h2", 2)]


@settings(max_examples=200, deadline=None)
@given(password=passwords, port=st.sampled_from(["x", "0", "70000", ""]))
def test_no_error_of_a_topology_url_depends_on_its_password(password: str, port: str) -> None:
    def error(password: str) -> str:
        url = f"redis+cluster://:{quote(password, safe='')}@h1:{port},h2:2/?colour=blue"
        with pytest.raises((ValueError, TypeError)) as raised:
            read_config({"REDIS_URL": url})
        return str(raised.value)

    assert error(password) == error("placeholder")
