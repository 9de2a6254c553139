"""A right value of every argument of redis-py's clients, for the tests of the config keys.

Made when :func:`valid_value` is called: some classes exist in recent redis-py only, and so
do their arguments.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import socket
import ssl
from typing import Any, Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.utils import import_string

from flask_redis._checks import _CHECKS
from flask_redis._keys import arguments
from flask_redis._libraries import client_library
from flask_redis._topology import CLUSTER, SENTINEL, SERVER

from .conftest import SECRET


def _made(path: str, *args: Any, **kwargs: Any) -> Callable[[], Any]:
    return lambda: import_string(path)(*args, **kwargs)


def _keep(value: Any) -> Callable[[], Any]:
    return lambda: value


#: Per argument, what makes a right value of it (a fresh one per call).
_FACTORIES: dict[str, Callable[[], Any]] = {
    "host": _keep("127.0.0.1"),
    "port": _keep(1),  # nothing listens there: a client that connects is refused at once
    "db": _keep(2),
    "password": _keep(SECRET),
    "username": _keep("app"),
    "socket_timeout": _keep(2.5),
    "socket_connect_timeout": _keep(1),
    "socket_read_size": _keep(65536),
    "socket_keepalive": _keep(True),
    "socket_keepalive_options": lambda: {socket.TCP_KEEPINTVL: 10},
    # RESP3, as the client-side cache wants (redis-py 8 speaks it by default, 7 does not).
    "connection_pool": lambda: redis.ConnectionPool(host="127.0.0.1", port=1, protocol=3),
    "unix_socket_path": _keep("/run/no-such-redis.sock"),
    "encoding": _keep("latin-1"),
    "encoding_errors": _keep("replace"),
    "decode_responses": _keep(True),
    "retry_on_timeout": _keep(True),
    "retry": lambda: Retry(NoBackoff(), 1),  # type: ignore[no-untyped-call]
    "retry_on_error": lambda: [redis.TimeoutError],
    "ssl": _keep(True),
    "ssl_keyfile": _keep("/etc/redis/client.key"),
    "ssl_certfile": _keep("/etc/redis/client.crt"),
    "ssl_cert_reqs": _keep("optional"),
    "ssl_include_verify_flags": lambda: [ssl.VerifyFlags.VERIFY_X509_STRICT],
    "ssl_exclude_verify_flags": lambda: [ssl.VerifyFlags.VERIFY_X509_TRUSTED_FIRST],
    "ssl_ca_certs": _keep("/etc/redis/ca.crt"),
    "ssl_ca_path": _keep("/etc/ssl/certs"),
    "ssl_ca_data": _keep("-----BEGIN CERTIFICATE-----"),
    "ssl_check_hostname": _keep(False),
    "ssl_password": _keep(SECRET),
    "ssl_validate_ocsp": _keep(False),
    "ssl_validate_ocsp_stapled": _keep(False),
    "ssl_ocsp_context": _keep(None),  # pyOpenSSL is not a dependency of the tests
    "ssl_ocsp_expected_cert": _keep("-----BEGIN CERTIFICATE-----"),
    "ssl_min_version": _keep(ssl.TLSVersion.TLSv1_2),
    "ssl_ciphers": _keep("HIGH:!aNULL"),
    "max_connections": _keep(10),
    "single_connection_client": _keep(False),  # True connects in the client's __init__
    "health_check_interval": _keep(30),
    "client_name": _keep("web-1"),
    "lib_name": _keep("shop"),
    "lib_version": _keep("1.2"),
    "driver_info": _made("redis.driver_info.DriverInfo"),
    "redis_connect_func": _keep(lambda connection: connection.on_connect()),
    "credential_provider": _made("redis.credentials.UsernamePasswordCredentialProvider", "app"),
    "protocol": _keep(3),
    "legacy_responses": _keep(True),
    "cache": lambda: import_string("redis.cache.DefaultCache")(
        import_string("redis.cache.CacheConfig")()
    ),
    "cache_config": _made("redis.cache.CacheConfig"),
    "event_dispatcher": _made("redis.event.EventDispatcher"),
    "maint_notifications_config": _made(
        "redis.maint_notifications.MaintNotificationsConfig", enabled=False
    ),
    "oss_cluster_maint_notifications_handler": _keep(None),  # made for a cluster client only
    "address_remap": _keep(lambda address: address),
    "cluster_error_retry_attempts": _keep(2),
    "dynamic_startup_nodes": _keep(False),
    "load_balancing_strategy": _keep("round_robin"),
    "policy_resolver": _made("redis.commands.policies.StaticPolicyResolver"),
    "metadata_resolver": _made("redis.commands.metadata.StaticMetadataResolver"),
    "topology_refresh_min_interval": _keep(5),
    "read_from_replicas": _keep(True),
    "reinitialize_steps": _keep(3),
    "require_full_coverage": _keep(False),
}


def valid_value(name: str) -> Any:
    """A right value of argument ``name`` (``KeyError`` for one this module does not know)."""
    return _FACTORIES[name]()


def known(name: str) -> bool:
    """Whether :func:`valid_value` knows argument ``name``."""
    return name in _FACTORIES


def every_argument() -> list[str]:
    """Every argument of redis-py's clients that some topology takes as a key."""
    return every_argument_of("redis")


def every_argument_of(library: str) -> list[str]:
    """Every argument of the clients of ``library`` (``"redis"`` or ``"valkey"``) that some
    topology takes as a key."""
    found = client_library(library)
    names = [*arguments(SERVER, found.client), *arguments(SENTINEL, found.client),
             *arguments(CLUSTER, found.cluster)]  # fmt: skip
    return list(dict.fromkeys(names))


def unknown_arguments() -> dict[str, list[str]]:
    """The arguments that a release added and this project does not know yet, by what they
    lack: a check written in :data:`flask_redis._checks._CHECKS` (their annotations check
    them), for redis-py's clients and valkey-py's (where installed), and a right value
    here, for redis-py's (the tests of every argument leave them out)."""
    names = every_argument()
    unknown = {
        f"redis-py {redis.__version__}, no hand-written check": [
            name for name in names if name not in _CHECKS
        ],
        f"redis-py {redis.__version__}, no right value in tests/arguments.py": [
            name for name in names if not known(name)
        ],
    }
    if importlib.util.find_spec("valkey") is not None:
        version = importlib.metadata.version("valkey")
        unknown[f"valkey-py {version}, no hand-written check"] = [
            name for name in every_argument_of("valkey") if name not in _CHECKS
        ]
    return unknown
