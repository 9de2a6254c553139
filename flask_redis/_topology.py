"""The names of the topologies a client talks to (one server, a Sentinel-managed master, a
Cluster) and of the client libraries (redis-py, valkey-py); a leaf that the modules of the
configuration, the extension and the command line share."""

from __future__ import annotations

#: The topologies: one server, a Sentinel-managed master, a Cluster.
SERVER, SENTINEL, CLUSTER = "server", "sentinel", "cluster"
#: The client libraries: redis-py and valkey-py, by the name they are imported as.
REDIS_PY, VALKEY_PY = "redis", "valkey"
