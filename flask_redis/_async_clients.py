"""The asyncio client of a config prefix: ``redis.asyncio.Redis`` (``valkey.asyncio.Valkey``)
for one server, the master of a Sentinel service, or a Cluster client, made from the same
settings as the prefix's client and observed by the same observer, one per event loop
(see ``_loops``)."""

from __future__ import annotations

import asyncio
import inspect
import weakref
from typing import TYPE_CHECKING, Any

from ._config import ClientConfig
from ._connections import instrument_client
from ._instrument import instrumented_async, observe
from ._loops import LoopClients, Made
from ._topology import CLUSTER, SENTINEL

if TYPE_CHECKING:
    from ._failover import MasterWatch

#: Arguments of the sync client that the asyncio client takes only as asyncio objects.
_SYNC_OBJECTS = ("connection_pool",)


def loop_clients(
    config: ClientConfig, watch: MasterWatch | None = None, replicas: bool = False
) -> LoopClients:
    """The asyncio clients of ``config``'s prefix, one per event loop, none made yet (for a
    Sentinel prefix, of its master, or of its replicas if ``replicas`` is true). Each
    is observed by the ``observer`` of the result once it is set (the extension sets the
    prefix's observer there, as on the prefix's client: the metrics list these clients'
    pools too, so the observer is made after them).

    For a Sentinel prefix, ``watch`` is the watch of the prefix's master: it starts when
    the first client is made, if it has not yet, and follows each new master in the
    pools of the clients too.

    Making the first client raises :class:`ValueError` for a setting of the prefix that the
    asyncio client cannot take (the message names its key).
    """
    classes: list[tuple[type[Any], dict[str, Any]]] = []  # read once, on first use

    def make() -> Made:
        observer = loops.observer
        if not classes:  # under a WSGI server, every async view makes a client
            base = _base(config)
            kwargs = _arguments(config, base)
            classes.append((base if observer is None else instrumented_async(base), kwargs))
        client_class, kwargs = classes[0]
        client, others = _connect(config, client_class, kwargs, replicas)
        if observer is not None:
            observe(client, observer)
        if loops.events is not None:
            instrument_client(client, loops.events)
        if watch is not None:
            watch.start()
        return client, others

    loops = LoopClients(make)
    if watch is not None:
        loops_ref = weakref.ref(loops)  # the watch ends with the pool: it must not hold it
        watch.follow_loops(lambda: [] if loops_ref() is None else loops_ref().items())  # type: ignore[union-attr]
    return loops


def _base(config: ClientConfig) -> type[Any]:
    """The asyncio class of ``config``'s topology: the cluster client, else the client."""
    if config.mode == CLUSTER:
        return config.library.asyncio_cluster[0]
    return config.library.asyncio_client


def _connect(
    config: ClientConfig, client_class: type[Any], kwargs: dict[str, Any], replicas: bool
) -> Made:
    """A client of ``client_class`` (of the replicas of a Sentinel service if ``replicas``),
    and the clients of the sentinels it asks, to close with it."""
    library = config.library
    if config.mode == SENTINEL:
        sentinel = library.asyncio_sentinel(
            config.addresses, sentinel_kwargs=config.sentinel_kwargs, **kwargs
        )
        which = {library.sentinel_class_argument: client_class}
        service = str(config.service)
        if replicas:
            return sentinel.slave_for(service, **which), list(sentinel.sentinels)
        pool_class = _following(library.asyncio_sentinel_pool)
        master = sentinel.master_for(service, connection_pool_class=pool_class, **which)
        return master, list(sentinel.sentinels)
    if config.mode == CLUSTER and config.addresses:
        node = library.asyncio_cluster[1]
        startup = [node(host, port) for host, port in config.addresses]
        return client_class(startup_nodes=startup, **kwargs), []
    return client_class(**kwargs), []


class _FollowingPool:
    """Mixed into an asyncio Sentinel pool, to follow a new master as redis-py's sync pool
    does: a connection given back open to another server than the master the pool points
    at now is closed, so that its next command goes to the new master (the asyncio pool
    keeps it open); and the idle connections to the old master are closed out of the pool
    (the asyncio pool closes them in tasks of their own, which may run after a command
    took one: the command then fails on a connection closed under it)."""

    async def get_master_address(self) -> Any:
        pool: Any = self
        address = await pool.sentinel_manager.discover_master(pool.service_name)
        if pool.is_master and pool.master_address != address:
            pool.master_address = address
            idle = list(pool._available_connections)
            pool._available_connections[:] = []  # no await since the copy: none taken
            try:
                await asyncio.gather(*(each.disconnect() for each in idle), return_exceptions=True)
            finally:
                pool._available_connections.extend(idle)  # closed: they connect on use
        return address

    async def release(self, connection: Any) -> None:
        master = self.master_address  # type: ignore[attr-defined]
        try:
            if master is not None and (connection.host, connection.port) != tuple(master):
                await connection.disconnect()
        finally:  # given back, even if cancelled meanwhile
            await super().release(connection)  # type: ignore[misc]


#: The subclass with :class:`_FollowingPool` of each pool class, made once.
_following_classes: dict[type[Any], type[Any]] = {}


def _following(base: type[Any]) -> type[Any]:
    """The subclass of ``base``, an asyncio Sentinel pool class, with :class:`_FollowingPool`."""
    made = _following_classes.get(base)
    if made is None:
        made = type(base.__name__, (_FollowingPool, base), {"__module__": base.__module__})
        made = _following_classes.setdefault(base, made)  # one, if two threads made one
    return made


def _arguments(config: ClientConfig, base: type[Any]) -> dict[str, Any]:
    """The keyword arguments of ``config`` for the asyncio client class ``base``.

    :raises ValueError: naming the keys whose arguments ``base`` does not take.
    """
    accepted = inspect.signature(base.__init__).parameters
    refused = sorted(
        config.sources.get(name, name)
        for name, value in config.kwargs.items()
        if name not in accepted
        or name in _SYNC_OBJECTS
        or (name == "retry" and not isinstance(value, config.library.asyncio_retry))
    )
    if refused:
        raise ValueError(
            f"Redis.async_connection ({config.prefix}): the asyncio client"
            f" ({base.__module__}.{base.__qualname__}) cannot take {', '.join(refused)}:"
            " leave them out, or use Redis.connection"
        )
    return dict(config.kwargs)
