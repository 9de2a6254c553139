"""Upgrading from Flask-And-Redis 1.0 changes nothing silently: its API, and what its
settings connect to, on real servers."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import redis
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_redis import IgnoredKeyWarning, Redis
from flask_redis._config import read_config

from .conftest import SECRET
from .servers import RedisServer

pytestmark = pytest.mark.one_kind

#: A password with every character that a URL gives a meaning to.
SPECIAL_PASSWORD = "p@ss/w:rd#%?+ &=x"


@pytest.fixture(scope="module")
def special_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server whose default user has :data:`SPECIAL_PASSWORD`, and whose user
    ``us@r:1`` has the password :data:`SECRET`."""
    server = RedisServer(
        tmp_path_factory.mktemp("redis-special"), "--requirepass", SPECIAL_PASSWORD
    ).start()
    with server.client() as client:
        client.acl_setuser("us@r:1", enabled=True, passwords=[f"+{SECRET}"], keys=["*"],
                           commands=["+@all"])  # fmt: skip
    yield server
    server.stop()


# -- get_app() -----------------------------------------------------------------------------


def test_get_app_is_back_deprecated_naming_what_to_use(app: Flask) -> None:
    ext = Redis(app)
    with pytest.warns(DeprecationWarning, match=r"Redis.get_app\(\) is deprecated: use"
                                                " flask.current_app"):  # fmt: skip
        assert ext.get_app() is app


def test_get_app_returns_the_app_of_the_context_first_as_1_0_did(
    app: Flask, new_app: Flask
) -> None:
    ext = Redis(app)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with new_app.app_context():
            assert ext.get_app() is new_app
        unbound = Redis()
        unbound.init_app(app, "CACHE")
        with app.app_context():
            assert unbound.get_app() is app
        with pytest.raises(RuntimeError, match=r"no app was passed to Redis\(app\), and"
                                               " there is no app context"):  # fmt: skip
            unbound.get_app()


# -- What the URL decides ------------------------------------------------------------------


def test_url_without_database_writes_to_database_0_whatever_the_db_key_says(
    app: Flask, redis_server: RedisServer
) -> None:
    # 1.0: "other keys are overwritten using their values at the present URI"; db 0 when
    # the URL has none. An upgrade must not move the app's data to database 2.
    app.config.update(REDIS_URL=redis_server.url, REDIS_DB=2)
    with pytest.warns(IgnoredKeyWarning, match="^REDIS_DB is ignored: REDIS_URL is set, and"
                                               " decides the database"):  # fmt: skip
        ext = Redis(app)
    ext.set("k", "v")
    assert redis_server.client(db=0).get("k") == b"v"
    assert redis_server.client(db=2).get("k") is None


def test_url_without_password_connects_without_the_password_key_as_1_0_did(
    new_app: Flask, secured_server: RedisServer
) -> None:
    new_app.config.update(REDIS_URL=f"{secured_server.url}/0", REDIS_PASSWORD=SECRET)
    with pytest.warns(IgnoredKeyWarning, match="^REDIS_PASSWORD is ignored: REDIS_URL") as warned:
        ext = Redis(new_app)
    assert all(SECRET not in str(w.message) for w in warned)
    with pytest.raises(redis.AuthenticationError):
        ext.ping()


def test_empty_url_uses_the_other_keys_as_1_0_did(app: Flask, redis_server: RedisServer) -> None:
    app.config.update(REDIS_URL="", REDIS_DB=4)  # REDIS_URL = os.environ.get("...", "")
    Redis(app).set("k", "v")
    assert redis_server.client(db=4).get("k") == b"v"


def test_percent_encoded_password_authenticates(
    new_app: Flask, special_server: RedisServer
) -> None:
    encoded = quote(SPECIAL_PASSWORD, safe="")
    new_app.config["REDIS_URL"] = f"redis://:{encoded}@127.0.0.1:{special_server.port}/3"
    Redis(new_app).set("k", "v")
    assert special_server.client(db=3).get("k") == b"v"


def test_percent_encoded_user_name_and_password_authenticate(
    new_app: Flask, special_server: RedisServer
) -> None:
    # every character of the password encoded, so that a URL not decoded cannot pass
    password = "".join(f"%{byte:02X}" for byte in SECRET.encode())
    new_app.config["CACHE_URL"] = (
        f"redis://{quote('us@r:1', safe='')}:{password}@127.0.0.1:{special_server.port}/0"
    )
    ext = Redis(new_app, "CACHE")
    assert ext.acl_whoami() in ("us@r:1", b"us@r:1")


def test_unencoded_special_password_is_refused_before_connecting(
    new_app: Flask, special_server: RedisServer
) -> None:
    new_app.config["REDIS_URL"] = f"redis://:{SPECIAL_PASSWORD}@127.0.0.1:{special_server.port}/0"
    with pytest.raises(ValueError, match="percent-encode") as raised:
        Redis(new_app)
    assert "w:rd" not in str(raised.value) and str(special_server.port) not in str(raised.value)


def test_seed_example_of_two_prefixes_works_without_warnings(
    new_app: Flask, redis_server: RedisServer
) -> None:
    # SEED.md, "Config prefix": REDIS_HOST, REDIS_PORT, REDIS_DB and REDIS2_URL
    new_app.config.update(REDIS_HOST="127.0.0.1", REDIS_PORT=redis_server.port, REDIS_DB=0,
                          REDIS2_URL=f"{redis_server.url}/1")  # fmt: skip
    redis1 = Redis(new_app)
    redis2 = Redis(new_app, "REDIS2")
    redis1.set("who", "1")
    redis2.set("who", "2")
    assert [redis_server.client(db=db).get("who") for db in (0, 1)] == [b"1", b"2"]


# -- 1.0's rule, for generated settings -----------------------------------------------------


def as_1_0(config: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    """The host, port, database and password that Flask-And-Redis 1.0 connected with,
    as its documentation and source state the rule: with a URL, the URL's host, port (else
    6379), password and database (the path's digits, else none) replace the keys; the
    query string is not read. ``None`` is redis-py's default."""
    url = config.get("REDIS_URL")
    if not url:
        return (config.get("REDIS_HOST"), config.get("REDIS_PORT"), config.get("REDIS_DB"),
                config.get("REDIS_PASSWORD"))  # fmt: skip
    rest = url.split("://", 1)[1]
    end = min(i for i in (rest.find("/"), rest.find("?"), len(rest)) if i >= 0)
    address, path = rest[:end], rest[end:].partition("?")[0]
    userinfo, _, hostport = address.rpartition("@")
    password = userinfo.partition(":")[2] or None
    host, _, port = hostport.partition(":")
    db = path.replace("/", "")
    return host or None, int(port) if port else 6379, int(db) if db.isdigit() else None, password


def effective(kwargs: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    return tuple(kwargs.get(name) for name in ("host", "port", "db", "password"))  # type: ignore[return-value]


def defaults(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Where ``None`` is redis-py's default, the default."""
    return tuple(value if value is not None else default
                 for value, default in zip(values, ("localhost", 6379, 0, None)))  # fmt: skip


safe_text = st.text("abcXYZ019-_.~!$&'()*+,;=", min_size=1, max_size=8)
url_of_1_0 = st.builds(
    lambda password, host, port, db, query: (
        "redis://" + (f":{password}@" if password else "") + host + (f":{port}" if port else "")
        + (f"/{db}" if db is not None else "") + query
    ),
    st.one_of(st.none(), safe_text), st.sampled_from(["h1", "h2.example", "127.0.0.1"]),
    st.one_of(st.none(), st.integers(1, 65535)), st.one_of(st.none(), st.integers(0, 15)),
    st.sampled_from(["", "?socket_timeout=2"]),
)  # fmt: skip
keys_of_1_0 = st.fixed_dictionaries({}, optional={
    "REDIS_URL": url_of_1_0, "REDIS_HOST": st.sampled_from(["h1", "h3"]),
    "REDIS_PORT": st.sampled_from([6379, 6380]), "REDIS_DB": st.integers(0, 3),
    "REDIS_PASSWORD": safe_text,
})  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(keys_of_1_0)
def test_what_1_0_connected_to_is_what_2_0_connects_to(config: dict[str, Any]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kwargs = read_config(config).kwargs
    assert defaults(effective(kwargs)) == defaults(as_1_0(config))
    # a separate key that the URL overrides, and only one, is named in a warning
    ignored = {str(w.message).split(" is ignored: ")[0] for w in caught}
    overridden: set[str | None] = set()
    if config.get("REDIS_URL"):
        mine = defaults(as_1_0({k: v for k, v in config.items() if k != "REDIS_URL"}))
        theirs = defaults(as_1_0(config))
        for index, name in enumerate(("HOST", "PORT", "DB", "PASSWORD")):
            if f"REDIS_{name}" in config and mine[index] != theirs[index]:
                overridden.add(f"REDIS_{name}")
    assert ignored == overridden
    assert all(issubclass(w.category, IgnoredKeyWarning) for w in caught)
