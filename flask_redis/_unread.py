"""Warn of the keys of a prefix that nothing reads (:class:`UnreadKeyWarning`): a misspelled
key (naming the nearest one), a key of another topology or client class, a key meant for
another (``PREFIX_SENTINEL_PASSWORD``); not the keys of a longer prefix, nor those of Flask
and of a few libraries that share prefixes."""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask

from ._config_warnings import UnreadKeyWarning, warn_at_app
from ._keys import SETTINGS, arguments
from ._libraries import ClientLibrary, client_library
from ._topology import CLUSTER, REDIS_PY, SENTINEL, SERVER

#: Keys of other libraries that a prefix of this extension may share (Flask's own keys
#: are added from :attr:`flask.Flask.default_config`): no :class:`UnreadKeyWarning`.
_OTHER_LIBRARIES_KEYS = frozenset((
    # Flask-Caching, whose keys share the prefix CACHE.
    "CACHE_TYPE", "CACHE_NO_NULL_WARNING", "CACHE_ARGS", "CACHE_OPTIONS",
    "CACHE_DEFAULT_TIMEOUT", "CACHE_IGNORE_ERRORS", "CACHE_THRESHOLD", "CACHE_KEY_PREFIX",
    "CACHE_SOURCE_CHECK", "CACHE_UWSGI_NAME", "CACHE_DIR", "CACHE_MEMCACHED_SERVERS",
    "CACHE_MEMCACHED_USERNAME", "CACHE_MEMCACHED_PASSWORD", "CACHE_REDIS_HOST",
    "CACHE_REDIS_PORT", "CACHE_REDIS_PASSWORD", "CACHE_REDIS_DB", "CACHE_REDIS_URL",
    "CACHE_REDIS_SENTINELS", "CACHE_REDIS_SENTINEL_MASTER", "CACHE_REDIS_SENTINEL_PASSWORD",
    "CACHE_REDIS_CLUSTER",
    # Flask-Session, whose keys share the prefix SESSION with Flask's.
    "SESSION_TYPE", "SESSION_PERMANENT", "SESSION_USE_SIGNER", "SESSION_KEY_PREFIX",
    "SESSION_REDIS", "SESSION_ID_LENGTH", "SESSION_SERIALIZATION_FORMAT",
    "SESSION_CLEANUP_N_REQUESTS",
    # Flask-RQ2, whose keys share the prefix RQ.
    "RQ_REDIS_URL", "RQ_QUEUES", "RQ_ASYNC", "RQ_SCHEDULER_QUEUE", "RQ_SCHEDULER_INTERVAL",
    "RQ_SCHEDULER_CLASS", "RQ_CONNECTION_CLASS", "RQ_QUEUE_CLASS", "RQ_WORKER_CLASS",
    "RQ_JOB_CLASS",
))  # fmt: skip


@functools.cache
def _known_names(library: ClientLibrary | None = None) -> frozenset[str]:
    """Every key name (the part after the prefix) that some topology or client of redis-py
    (and of ``library``) reads: a key of another prefix ends with one of them."""
    names = set(SETTINGS)
    for each in {client_library(REDIS_PY), library or client_library(REDIS_PY)}:
        for mode, client_class in ((SERVER, each.client), (SENTINEL, each.client),
                                   (CLUSTER, each.cluster)):  # fmt: skip
            names.update(name.upper() for name in arguments(mode, client_class))
    return frozenset(names)


def _pool_only_names(library: ClientLibrary) -> frozenset[str]:
    """The key names of the arguments of the library's ``ConnectionPool`` itself
    (``CONNECTION_CLASS``, ...), which a client hands to no pool it makes."""
    pool = importlib.import_module(library.name).ConnectionPool
    parameters = inspect.signature(pool.__init__).parameters.values()
    return frozenset(
        each.name.upper()
        for each in parameters
        if each.name != "self" and each.kind not in (each.VAR_POSITIONAL, each.VAR_KEYWORD)
    )


def _nearest(name: str, names: list[str]) -> str | None:
    """The key name of ``names`` that ``name`` was most likely meant to be: the shortest
    that starts with it (``USER``: ``USERNAME``, as 1.0 wrote ``REDIS_USER``), else the
    closest in spelling (``HSOT``: ``HOST``)."""
    longer = sorted((each for each in names if each.startswith(name)), key=len)
    if longer:
        return longer[0]
    near = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return near[0] if near else None


#: Key names that nothing reads but that a user plausibly means, with where their value
#: goes (``{prefix}``: the config prefix); no key of a prefix that ends in their first part.
_MEANT = {
    "SENTINEL_PASSWORD": "give the sentinels' password as 'password' in"
                         " {prefix}_SENTINEL_KWARGS; the master's is {prefix}_PASSWORD",
    "SENTINEL_USERNAME": "give the sentinels' user name as 'username' in"
                         " {prefix}_SENTINEL_KWARGS; the master's is {prefix}_USERNAME",
    "MASTER_PASSWORD": "the master's password is {prefix}_PASSWORD",
    "CLUSTER_PASSWORD": "the password of the cluster's nodes is {prefix}_PASSWORD",
    "USE_SSL": "TLS is {prefix}_SSL = True, or a rediss:// {prefix}_URL",
    "SERVER_URL": "did you mean {prefix}_URL?",
}  # fmt: skip


def warn_unread(
    config: Mapping[str, Any],
    prefix: str,
    read: set[str],
    other_prefixes: Iterable[str],
    taker: str,
    library: ClientLibrary | None = None,
) -> None:
    """Warn of each key of ``prefix`` in ``config`` that nothing reads: not one of ``read``,
    the keys read for a client of ``library`` (redis-py's by default) that ``taker`` makes.

    Not unread: the keys of a longer prefix that is set up (``other_prefixes``) or that
    looks like one (``REDIS_CACHE_URL``: a key name after a prefix ``REDIS_CACHE``), and
    keys of Flask and of a few libraries that share prefixes (:data:`_OTHER_LIBRARIES_KEYS`).
    """
    start = f"{prefix}_"
    longer = tuple(f"{other}_" for other in other_prefixes if other.startswith(start))
    known = _known_names(library)
    pool_only = _pool_only_names(library or client_library(REDIS_PY)) - known
    for key in list(config):
        if not isinstance(key, str) or not key.startswith(start) or key in read:
            continue
        if key in _OTHER_LIBRARIES_KEYS or key in Flask.default_config or key.startswith(longer):
            continue
        hint = _hint(key[len(start) :], prefix, read, known, pool_only, taker)
        if hint is not None:
            warn_at_app(
                f"{key} is set, but Flask-And-Redis does not read it ({hint}). If another"
                f" library reads it, ignore flask_redis.UnreadKeyWarning for it",
                UnreadKeyWarning,
            )


def _hint(
    name: str,
    prefix: str,
    read: set[str],
    known: frozenset[str],
    pool_only: frozenset[str],
    taker: str,
) -> str | None:
    """What the unread key of ``prefix`` named ``name`` is likely meant for, for its
    warning; ``None`` for a key of a longer prefix (``PREFIX_OTHER_URL``: no warning)."""
    start = f"{prefix}_"
    if name in _MEANT:
        return _MEANT[name].format(prefix=prefix)
    if name in pool_only:  # PREFIX_CONNECTION_CLASS: not of a prefix PREFIX_CONNECTION
        hint = "it is an argument of a connection pool, not of the client"
        if f"{start}CONNECTION_POOL" in read:
            hint += f": set {start}CONNECTION_POOL to a pool made with it"
        return hint
    if any(name[:i] and name[i + 1 :] in known for i, c in enumerate(name) if c == "_"):
        return None  # PREFIX_OTHER_URL: a key of the prefix PREFIX_OTHER
    if name in known:
        return f"{taker} does not take it with these settings"
    near = _nearest(name, [each[len(start) :] for each in read])
    return f"did you mean {start}{near}?" if near else "no setting has that name"
