"""An asyncio client per event loop: made in the loop that first asks for it, reused while
that loop lives, and closed in it when it ends.

An asyncio client's connections belong to the loop that opened them: used from another
loop they fail ("attached to a different loop"), and a loop that closes with them open
leaks them. Flask runs each ``async def`` view in a loop of its own (asgiref's
``async_to_sync``, a new ``asyncio.run`` per call); an ASGI server runs every request in
one long-lived loop; a script runs its own. So each loop gets a client of its own.

The client is closed in its loop when the loop shuts down its async generators, as
:func:`asyncio.run`, asgiref and the ASGI servers do before they close it: each client
comes with an async generator, started once in its loop, whose ``finally`` closes the
client. A loop closed without that step (``loop.close()`` alone) leaves its connections
to the garbage collector, as a client of its own would.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Callable

from ._connections import ConnectionEvents
from ._instrument import Observer

#: What makes a client returns: the client, and other clients to close with it (the
#: clients of the sentinels that a Sentinel master's pool asks).
Made = tuple[Any, Sequence[Any]]


class LoopClients:
    """The clients of one config prefix, one per event loop.

    :param make: Makes a client, and the clients to close with it; called in the loop
        they are for.
    """

    def __init__(self, make: Callable[[], Made]) -> None:
        self._make = make
        #: What observes the clients made from now on, if anything: set by their maker.
        self.observer: Observer | None = None
        #: What the connections and pools of the clients made from now on report to, if
        #: anything (a :class:`~._connections.ConnectionEvents`): set by their maker.
        self.events: ConnectionEvents | None = None
        self._lock = threading.Lock()
        # Per loop: the client, the generator that closes it, the process that made it.
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[Any, AsyncGenerator[None, None], int]
        ] = weakref.WeakKeyDictionary()

    def client(self) -> Any:
        """The client of the running event loop, made now if it has none.

        :raises RuntimeError: no event loop runs in this thread (the message says where an
            asyncio client can be used).
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "Redis.async_connection is an asyncio client: use it in a coroutine (an"
                " 'async def' view, or a function run with asyncio.run()); use"
                " Redis.connection outside one"
            ) from None
        found = self._clients.get(loop)
        if found is not None and found[2] == os.getpid():
            return found[0]
        with self._lock:  # threads that run loops of their own ask at once
            found = self._clients.get(loop)
            if found is None or found[2] != os.getpid():  # none, or one of the parent process
                client, others = self._make()
                closer = self._closing(loop, [client, *others])
                # Its first step registers it with the loop, which finalizes it at shutdown;
                # it runs no await, so it is done here without the loop's help.
                try:
                    closer.asend(None).send(None)
                except StopIteration:
                    pass
                found = self._clients[loop] = (client, closer, os.getpid())
        return found[0]

    async def _closing(
        self, loop: asyncio.AbstractEventLoop, clients: list[Any]
    ) -> AsyncGenerator[None, None]:
        """Yield once, then close ``clients`` when ``loop`` finalizes this generator, and
        forget them: their connections may hold the loop, which would keep it, and its
        entry, alive (one per request, where each request runs a loop of its own)."""
        try:
            yield
        finally:
            try:
                for client in clients:
                    close = getattr(client, "aclose", None) or client.close  # redis-py 5.0
                    if hasattr(client, "connection_pool"):
                        # Its pool is its own: closed with it, also where redis-py would
                        # leave it open (5.0, for the pool master_for() gives it).
                        await close(close_connection_pool=True)
                    else:  # a cluster client, which closes its nodes
                        await close()
            finally:
                with self._lock:
                    if self._clients.get(loop, (None,))[0] is clients[0]:
                        del self._clients[loop]

    def items(self) -> list[tuple[asyncio.AbstractEventLoop, Any]]:
        """``(loop, client)`` for each loop of this process that holds a client now."""
        pid = os.getpid()
        with self._lock:
            return [
                (loop, client)
                for loop, (client, _closer, made_in) in list(self._clients.items())
                if made_in == pid
            ]

    def __len__(self) -> int:
        """The number of loops that have a client now."""
        return len(self._clients)
