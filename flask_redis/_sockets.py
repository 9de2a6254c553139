"""The bytes a connection's TCP socket sent and received, as the kernel counts them.

On Linux, ``getsockopt(IPPROTO_TCP, TCP_INFO)`` fills ``struct tcp_info``, which holds
``tcpi_bytes_acked`` (bytes sent and acknowledged by the peer) and ``tcpi_bytes_received``
since Linux 4.1 and 4.2. Reading them when the metrics are collected costs nothing per
command. Elsewhere (another system, a unix socket, an older kernel) nothing is read.

The readings are taken from the thread that collects while other threads use and close
the connections: a socket closed meanwhile reads as nothing, and a reading is kept only
if the connection still holds the same open socket after it (so the number of a closed
descriptor, reused by another socket, is never counted).
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
import weakref
from typing import Any, Callable

#: ``TCP_INFO`` of ``<linux/tcp.h>``; the socket module has it on Linux.
_TCP_INFO: int | None = getattr(socket, "TCP_INFO", None) if sys.platform == "linux" else None
_IPPROTO_TCP = socket.IPPROTO_TCP
#: ``tcpi_bytes_acked`` and ``tcpi_bytes_received``: two native u64 at offset 120 of
#: ``struct tcp_info`` (8 u8, 24 u32, ``tcpi_pacing_rate``, ``tcpi_max_pacing_rate``).
_BYTES = struct.Struct("=QQ")
_BYTES_OFFSET = 120
#: What is asked of the kernel: up to the end of ``tcpi_bytes_received``. An older kernel
#: fills less, which :func:`socket_bytes` finds by the length it returns.
_INFO_LENGTH = _BYTES_OFFSET + _BYTES.size

#: The attribute of a connection where :func:`unread_bytes` keeps its last reading.
_READ = "_flask_redis_read_bytes"
#: One reading at a time: the collecting thread and a connection that closes in another
#: thread must not both count the same bytes. Re-entrant: a connection that the garbage
#: collector closes in the middle of a reading (redis-py closes it when it is collected)
#: is read in the same thread.
_reading = threading.RLock()


def socket_bytes(sock: Any) -> tuple[int, int] | None:
    """(sent, received) bytes of a TCP socket so far, from the kernel; ``None`` where they
    cannot be read (not Linux, not TCP (a unix socket), a closed socket, an old kernel)."""
    if _TCP_INFO is None or sock is None:
        return None
    try:
        # A socket that is not TCP (a unix socket) answers EOPNOTSUPP: no need to ask its
        # family first, which costs as much as this call.
        info = sock.getsockopt(_IPPROTO_TCP, _TCP_INFO, _INFO_LENGTH)
    except (OSError, AttributeError, TypeError, ValueError):
        return None  # closed, detached, not TCP, or no socket at all
    if not isinstance(info, bytes) or len(info) < _INFO_LENGTH:
        return None  # a kernel older than 4.2 leaves these fields out
    sent, received = _BYTES.unpack_from(info, _BYTES_OFFSET)
    return sent, received


def connection_socket(connection: Any) -> Any | None:
    """The socket of a redis-py or valkey-py connection, ``None`` if it holds none: a sync
    connection's ``_sock`` (an SSL socket is the TCP socket under it, whose counts include
    TLS); an asyncio connection's, from its stream writer's transport (asyncio's loop and
    uvloop), unless the transport is closing."""
    sock = getattr(connection, "_sock", None)
    if sock is not None:
        return sock
    writer = getattr(connection, "_writer", None)
    if writer is None:
        return None
    try:
        transport = writer.transport
        if transport.is_closing():
            return None
        return transport.get_extra_info("socket")
    except Exception:  # a writer of another kind, or a transport being torn down
        return None


def _identity(sock: Any) -> Callable[[], Any]:
    """What tells ``sock`` apart from the sockets that come after it: a weak reference
    where it takes one (a plain or SSL socket, which owns its descriptor), else the socket
    itself (asyncio's and uvloop's views of a transport's socket own no descriptor)."""
    try:
        return weakref.ref(sock)
    except TypeError:
        return lambda: sock


def unread_bytes(connection: Any) -> tuple[int, int]:
    """The bytes (sent, received) the socket of ``connection`` moved since the last call
    for it, or since it was opened; (0, 0) where they cannot be read.

    The last reading is kept on the connection, with the socket it was of: a new socket
    (a reconnection) counts from its own zero, and no result is negative.
    """
    with _reading:
        # A client-side cache's proxy (redis-py's CacheProxyConnection) reads through the
        # connection it wraps, which keeps the figures: it is the one that closes.
        if not hasattr(connection, "_sock") and hasattr(connection, "_conn"):
            connection = connection._conn
        sock = connection_socket(connection)
        figures = socket_bytes(sock)
        if figures is None or connection_socket(connection) is not sock:
            return 0, 0  # nothing to read, or the socket was replaced or closed meanwhile
        last = getattr(connection, _READ, None)
        sent, received = figures
        if last is not None and last[0]() is sock:
            identity = last[0]
            sent, received = sent - last[1], received - last[2]
        else:
            identity = _identity(sock)
        try:
            setattr(connection, _READ, (identity, *figures))
        except (AttributeError, TypeError):
            return 0, 0  # a connection without a __dict__: nowhere to keep what was read
        return (sent if sent > 0 else 0), (received if received > 0 else 0)
