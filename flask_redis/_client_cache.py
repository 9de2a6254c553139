"""The figures of a client-side cache: hits, misses, evictions and its size.

redis-py 5.1 and newer keep the replies of reads in a cache of the connection pool when a
client is given ``cache_config=`` or ``cache=`` (RESP3, Redis 7.4 and newer); the server
invalidates them (``CLIENT TRACKING``). :func:`observe_cache` makes such a pool count:
each of its connections gets a ``read_response`` of its own that tells a hit from a miss,
and its cache and eviction policy methods that count invalidations and evictions, all
set on the objects, not their classes (see :mod:`flask_redis._hooks`). They count into
plain integers of one record per cache; :func:`cache_figures` reads them when the
metrics are collected. A pool without a cache is left as it is: nothing is paid.

The counts take no lock. On CPython with the GIL, 3.10 and newer, ``record.hits += 1``
is not interrupted by another thread (the interpreter switches threads at calls and
backward jumps only), so the counts are exact; on 3.9, or without the GIL, two threads
counting at the same instant may lose one.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Any, Callable, NamedTuple

from ._hooks import hook

try:  # redis-py 8.2 decides a hit in send_command and carries it to read_response
    from redis.connection import _NO_PENDING_HIT as _NO_PENDING_HIT  # type: ignore[attr-defined,unused-ignore]
except ImportError:  # older redis-py, or none
    _NO_PENDING_HIT = object()

try:
    from redis.cache import CacheEntryStatus

    _IN_PROGRESS: Any = CacheEntryStatus.IN_PROGRESS
except ImportError:  # redis-py before 5.1 has no client-side cache
    _IN_PROGRESS = object()

_local = threading.local()


class CacheFigures(NamedTuple):
    """The figures of client-side caches, counted since they were observed."""

    hits: int
    misses: int
    #: Entries evicted to make room (the cache was full).
    evictions: int
    #: Entries dropped because the server invalidated their key (it changed).
    invalidations: int
    #: Entries now (replies, and reads whose reply is on its way).
    size: int


class _Counts:
    __slots__ = ("hits", "misses", "evictions", "invalidations")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.invalidations = 0


def served_from_cache() -> bool:
    """Whether the last command this thread sent on a client observed with ``note=True``
    was answered from the local cache; cleared by reading it."""
    hit: bool = getattr(_local, "hit", False)
    if hit:
        _local.hit = False
    return hit


def _counted_read(connection: Any, counts: _Counts, note: list[bool]) -> Any:
    """A ``read_response`` for ``connection`` (redis-py 8.2's ``CacheProxyConnection``)
    that counts a hit or a miss, then reads as its class does: ``send_command`` decided
    whether the read is served locally. It holds the connection weakly, as redis-py holds
    its connect callbacks, so that a connection set aside is freed as soon as before."""
    ref, read = weakref.ref(connection), type(connection).read_response

    def read_response(*args: Any, **kwargs: Any) -> Any:
        connection: Any = ref()
        if connection._pending_cache_hit is not _NO_PENDING_HIT:
            counts.hits += 1
            if note[0]:
                _local.hit = True
        else:
            if connection._current_command_cache_key is not None:
                counts.misses += 1
            if note[0]:
                _local.hit = False
        return read(connection, *args, **kwargs)

    return read_response


def _counted_read_before_82(connection: Any, counts: _Counts, note: list[bool]) -> Any:
    """The same for redis-py 5.1 to 8.1, whose ``read_response`` serves the read if its key
    has a complete entry."""
    ref, read = weakref.ref(connection), type(connection).read_response

    def read_response(*args: Any, **kwargs: Any) -> Any:
        connection: Any = ref()
        key = connection._current_command_cache_key
        served = False
        if key is not None:
            entry = connection._cache.get(key)
            served = entry is not None and entry.status != _IN_PROGRESS
            if served:
                counts.hits += 1
            else:
                counts.misses += 1
        if note[0]:
            _local.hit = served
        return read(connection, *args, **kwargs)

    return read_response


def _count_evictions(policy: Any, counts: _Counts) -> None:
    """Make ``policy``, a cache's eviction policy, count the entries it evicts (the cache
    was full; an invalidation is not an eviction). Its own methods are wrapped on the
    object: the class of an ABC's subclass cannot be swapped for one with a mixin."""
    evict_next, evict_many = policy.evict_next, policy.evict_many

    def counted_next() -> Any:
        key = evict_next()
        counts.evictions += 1
        return key

    def counted_many(count: int) -> Any:
        keys = evict_many(count)
        counts.evictions += len(keys)
        return keys

    policy.evict_next, policy.evict_many = counted_next, counted_many


def _count_invalidations(cache: Any, counts: _Counts) -> None:
    """Make ``cache`` count the keys the server invalidated that it held entries of
    (``delete_by_redis_keys``, which redis-py calls for each invalidation it reads; a
    flush, when the server's database is flushed or the connection closes, is not
    counted). Wrapped on the object, as the eviction policy's methods are."""
    delete = cache.delete_by_redis_keys

    def counted(redis_keys: Any) -> Any:
        deleted = delete(redis_keys)
        counts.invalidations += sum(1 for each in deleted if each)
        return deleted

    cache.delete_by_redis_keys = counted


def _hook_pool(pool: Any) -> None:
    """Make each connection ``pool`` makes count (see :mod:`flask_redis._hooks`)."""

    def make(call: Callable[..., Any], ref: Callable[[], Any]) -> Callable[..., Any]:
        def make_connection(*args: Any, **kwargs: Any) -> Any:
            connection = call(*args, **kwargs)
            _count_connection(connection, ref()._flask_redis_note)
            return connection

        return make_connection

    hook(pool, "make_connection", make)


def _hook_nodes(nodes_manager: Any) -> None:
    """Make the pool of each node that ``nodes_manager``, a cluster's, makes count."""

    def make(call: Callable[..., Any], ref: Callable[[], Any]) -> Callable[..., Any]:
        def create_redis_node(*args: Any, **kwargs: Any) -> Any:
            node = call(*args, **kwargs)
            _observe_pool(getattr(node, "connection_pool", None), ref()._flask_redis_note)
            return node

        return create_redis_node

    hook(nodes_manager, "create_redis_node", make)


def _connections(pool: Any) -> list[Any]:
    """The connections ``pool`` holds now, idle and in use (blocking or not)."""
    found = getattr(pool, "_connections", None)
    if found is None:
        found = [*getattr(pool, "_available_connections", ()),
                 *getattr(pool, "_in_use_connections", ())]  # fmt: skip
    return [connection for connection in list(found) if connection is not None]


def _count_connection(connection: Any, note: bool) -> None:
    """Make ``connection``, a ``CacheProxyConnection``, count into its cache's record."""
    cache = getattr(connection, "_cache", None)
    counts = getattr(cache, "_flask_redis_counts", None)
    if counts is None or not hasattr(connection, "_current_command_cache_key"):
        return
    noted = getattr(connection.read_response, "_flask_redis_note", None)
    if noted is not None:  # counted already: only its note may change
        noted[0] = noted[0] or note
        return
    # One attribute of the connection, its read_response, and nothing else. Neither a
    # subclass swapped in for its class nor more attributes: an object whose class is
    # assigned, or that is given more attributes than its class's objects share, loses
    # the interpreter's fast reads of its attributes, which cost a cached read 16,000
    # instructions (6.6%) where this costs about 2,600 (1.1%).
    count = _counted_read if hasattr(connection, "_pending_cache_hit") else _counted_read_before_82
    noted = [note]
    read_response = count(connection, counts, noted)
    read_response._flask_redis_note = noted
    connection.read_response = read_response


def _observe_pool(pool: Any, note: bool) -> None:
    cache = getattr(pool, "cache", None)
    if cache is None:
        return  # no cache (redis-py 5.0, valkey-py, asyncio, or none configured)
    counts = getattr(cache, "_flask_redis_counts", None)
    if counts is None:
        counts = _Counts()
        try:
            cache._flask_redis_counts = counts
        except AttributeError:
            return  # a cache of the application's that takes no attribute: not counted
        policy = getattr(cache, "eviction_policy", None)
        try:
            if policy is not None:
                _count_evictions(policy, counts)
            _count_invalidations(cache, counts)
        except AttributeError:
            pass  # a cache or policy of the application's that takes no attribute
    noted = getattr(pool, "_flask_redis_note", None)
    if noted is None:
        _hook_pool(pool)
    note = pool._flask_redis_note = note or bool(noted)
    for connection in _connections(pool):
        _count_connection(connection, note)


def observe_cache(client: Any, *, note: bool = False) -> None:
    """Count the hits, misses and evictions of the client-side cache of ``client``'s
    pools, if it has one; nothing otherwise.

    ``client``: a sync redis-py client (of a server or a Sentinel master or replica) or a
    ``RedisCluster``, whose nodes share one cache, those it finds later included. asyncio
    clients and valkey-py have no cache of this kind: nothing is done. With ``note``, each
    command of the client notes for :func:`served_from_cache` whether it was served
    locally: only for clients whose calls are recorded, which read that note after each.
    """
    nodes_manager = getattr(client, "nodes_manager", None)
    if nodes_manager is not None:
        if getattr(nodes_manager, "_cache", None) is None:
            return
        noted = getattr(nodes_manager, "_flask_redis_note", None)
        if noted is None:
            _hook_nodes(nodes_manager)
        nodes_manager._flask_redis_note = note or bool(noted)
        for node in list(getattr(nodes_manager, "nodes_cache", {}).values()):
            redis_node = getattr(node, "redis_connection", None)
            _observe_pool(getattr(redis_node, "connection_pool", None), note)
        return
    _observe_pool(getattr(client, "connection_pool", None), note)


def _cache_of(pool: Any) -> Any:
    cache = getattr(pool, "cache", None)
    return None if cache is None or not hasattr(cache, "size") else cache


def cache_figures(pools: Iterable[Any]) -> CacheFigures | None:
    """The figures of the caches of ``pools`` (each cache once), summed; ``None`` if none
    has a cache. A cache that was not observed counts its size only."""
    caches = {id(cache): cache for cache in map(_cache_of, pools) if cache is not None}
    if not caches:
        return None
    hits = misses = evictions = invalidations = size = 0
    for cache in caches.values():
        counts = getattr(cache, "_flask_redis_counts", None)
        if counts is not None:
            hits += counts.hits
            misses += counts.misses
            evictions += counts.evictions
            invalidations += counts.invalidations
        size += cache.size
    return CacheFigures(hits, misses, evictions, invalidations, size)
