"""The topologies a client talks to: one server, a Sentinel-managed master, a Cluster; the
URL schemes that ask for them, and the port of their addresses given without one."""

from __future__ import annotations

#: The topologies: one server, a Sentinel-managed master, a Cluster.
SERVER, SENTINEL, CLUSTER = "server", "sentinel", "cluster"
#: URL schemes of Sentinel and Cluster, and the mode each asks for.
_TOPOLOGY_SCHEMES = {
    "redis+sentinel": SENTINEL, "rediss+sentinel": SENTINEL,
    "redis+cluster": CLUSTER, "rediss+cluster": CLUSTER,
}  # fmt: skip
#: The port of an address given without one.
_DEFAULT_PORTS = {SENTINEL: 26379, CLUSTER: 6379}
