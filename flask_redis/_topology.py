"""The topologies a client talks to: one server, a Sentinel-managed master, a Cluster; the
URL schemes that ask for them, the client library each scheme picks, and the port of
addresses given without one."""

from __future__ import annotations

#: The topologies: one server, a Sentinel-managed master, a Cluster.
SERVER, SENTINEL, CLUSTER = "server", "sentinel", "cluster"
#: The client libraries: redis-py and valkey-py, by the name they are imported as.
REDIS_PY, VALKEY_PY = "redis", "valkey"
#: Schemes of one server over TCP, the one of TLS last: their ``+sentinel`` and
#: ``+cluster`` forms name the other topologies.
_SERVER_SCHEMES = {REDIS_PY: ("redis", "rediss"), VALKEY_PY: ("valkey", "valkeys")}
#: Schemes that turn TLS on, in all their forms.
_TLS_SCHEMES = frozenset(
    f"{tls}{form}" for _, tls in _SERVER_SCHEMES.values() for form in ("", "+sentinel", "+cluster")
)
#: URL schemes of Sentinel and Cluster, and the mode each asks for.
_TOPOLOGY_SCHEMES = {
    f"{scheme}+{mode}": mode
    for schemes in _SERVER_SCHEMES.values()
    for scheme in schemes
    for mode in (SENTINEL, CLUSTER)
}
#: The port of an address given without one.
_DEFAULT_PORTS = {SENTINEL: 26379, CLUSTER: 6379}


def _scheme_library(scheme: str) -> str:
    """The client library whose class a URL of ``scheme`` picks when no class is set:
    :data:`VALKEY_PY` for ``valkey://``, ``valkeys://`` and their forms, else
    :data:`REDIS_PY`."""
    base = scheme.lower().partition("+")[0]
    return VALKEY_PY if base in _SERVER_SCHEMES[VALKEY_PY] else REDIS_PY
