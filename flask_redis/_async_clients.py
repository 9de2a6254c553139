"""The asyncio client of a config prefix: ``redis.asyncio.Redis`` (``valkey.asyncio.Valkey``)
made from the same settings as the prefix's client, observed by the same observer, one per
event loop (see ``_loops``)."""

from __future__ import annotations

import inspect
from typing import Any

from ._config import ClientConfig
from ._instrument import Observer, instrumented_async, observe
from ._loops import LoopClients
from ._topology import SERVER

#: Arguments of the sync client that the asyncio client takes only as asyncio objects.
_SYNC_OBJECTS = ("connection_pool",)


def loop_clients(config: ClientConfig, observer: Observer | None) -> LoopClients:
    """The asyncio clients of ``config``'s prefix, one per event loop, each observed by
    ``observer`` (when not ``None``) as the prefix's client is.

    :raises ValueError: a setting of the prefix is one the asyncio client cannot take (the
        message names its key). Checked when the first client is made, in its loop.
    """

    made: list[tuple[type[Any], dict[str, Any]]] = []  # the class and arguments, once read

    def make() -> Any:
        if not made:  # read on first use: under a WSGI server, every async view makes one
            base = config.library.asyncio_client
            kwargs = _arguments(config, base)
            made.append((base if observer is None else instrumented_async(base), kwargs))
        client_class, kwargs = made[0]
        client = client_class(**kwargs)
        if observer is not None:
            observe(client, observer)
        return client

    return LoopClients(make)


def _arguments(config: ClientConfig, base: type[Any]) -> dict[str, Any]:
    """The keyword arguments of ``config`` for the asyncio client class ``base``."""
    prefix = config.prefix
    if config.mode != SERVER:
        raise ValueError(
            f"Redis.async_connection ({prefix}): the asyncio client is made for one server"
            f" (PREFIX_HOST, PREFIX_URL); this prefix uses {config.mode}, which it does not"
            " support yet: use Redis.connection"
        )
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
            f"Redis.async_connection ({prefix}): the asyncio client"
            f" ({base.__module__}.{base.__qualname__}) cannot take {', '.join(refused)}:"
            " leave them out, or use Redis.connection"
        )
    return dict(config.kwargs)
