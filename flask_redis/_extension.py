"""The :class:`Redis` extension: one configured client per app and config prefix."""

from __future__ import annotations

import warnings
import weakref
from typing import Any, Callable, NamedTuple

from flask import Flask, current_app, has_app_context

from . import _connections, _failover, _nodes, _recording, _slowlog
from ._async_clients import loop_clients
from ._checks import refusal
from ._client_cache import observe_cache
from ._config import DEFAULT_PREFIX, ClientConfig, read_config
from ._instrument import Observer, combine, instrumented, observe
from ._loops import LoopClients
from ._topology import CLUSTER, SENTINEL, SERVER


class Redis:
    """Redis support for a Flask app, configured from ``app.config`` keys of one prefix.

    The client is created by :meth:`init_app` and stored in
    ``app.extensions["redis"][config_prefix]``. The extension object proxies every public
    attribute of it, so ``redis.get("key")`` calls the client's ``get``.

    Bound to an app with ``Redis(app)``, the extension always uses that app's client, inside
    an app context or not. Set up with :meth:`init_app` instead (application factories, or
    one extension on several apps), it uses the client of :data:`flask.current_app`.

    :param app: The app to set up now, if any.
    :param config_prefix: The prefix of the config keys to read; ``"REDIS"`` by default.
    """

    def __init__(self, app: Flask | None = None, config_prefix: str | None = None) -> None:
        #: The prefix of the config keys read by the last :meth:`init_app` (or the default).
        self.config_prefix: str = config_prefix or DEFAULT_PREFIX
        self._app: Flask | None = None
        # The app given here, for get_app() (1.0's Redis.app); weak, as the prefixes are.
        self._given: weakref.ReferenceType[Flask] | None = None
        # The prefix each app was set up with; weak, so an app can be garbage collected.
        self._prefixes: weakref.WeakKeyDictionary[Flask, str] = weakref.WeakKeyDictionary()
        if app is not None:
            self._given = weakref.ref(app)
            self.init_app(app, config_prefix)
            self._app = app

    def init_app(self, app: Flask, config_prefix: str | None = None) -> None:
        """Read the config keys of ``config_prefix`` from ``app.config``, create the client and
        store it in ``app.extensions["redis"][config_prefix]``.

        :param app: The app to set up.
        :param config_prefix: The prefix of the config keys to read; by default the one
            given to the constructor, else ``"REDIS"``.
        :raises ValueError: the prefix is already set up on this app, or a config value is
            not what its key expects (the message names the key).
        :raises TypeError: a config value has the wrong type.
        """
        prefix = config_prefix or self.config_prefix
        clients: dict[str, Any] = app.extensions.setdefault("redis", {})
        if prefix in clients:
            raise ValueError(f"The config prefix {prefix!r} is already set up on app {app.name!r}")
        config = read_config(app.config, prefix, other_prefixes=list(clients))
        made = create_clients(app, config)
        clients[prefix] = made.client
        app.extensions.setdefault("redis_asyncio", {})[prefix] = made.loops
        if made.replica is not None:
            app.extensions.setdefault("redis_replicas", {})[prefix] = made.replica
            replica_loops = made.replica_loops
            app.extensions.setdefault("redis_asyncio_replicas", {})[prefix] = replica_loops
        self.config_prefix = prefix
        self._prefixes[app] = prefix
        # An extension set up on a second app follows current_app from now on.
        if self._app is not None and self._app is not app:
            self._app = None

    def get_app(self) -> Flask:
        """The app of the current app context, else the app given to ``Redis(app)``, as in
        Flask-And-Redis 1.0.

        .. deprecated:: 2.0
            Use :data:`flask.current_app`, or keep a reference to the app yourself.
            :attr:`connection` finds the right client by itself.

        :raises RuntimeError: outside an app context, and no app was given to ``Redis()``.
        """
        warnings.warn(
            "Redis.get_app() is deprecated: use flask.current_app, or the app you passed to"
            " Redis(app); Redis.connection finds the client of the app by itself",
            DeprecationWarning,
            stacklevel=2,
        )
        if has_app_context():
            return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]
        app = None if self._given is None else self._given()
        if app is None:
            raise RuntimeError(
                "Redis.get_app(): no app was passed to Redis(app), and there is no app"
                " context: call it inside 'with app.app_context():'"
            )
        return app

    @property
    def connection(self) -> Any:
        """The client of the bound app, else of :data:`flask.current_app`.

        :raises AttributeError: :meth:`init_app` has not been called yet.
        :raises RuntimeError: outside an app context (unbound), or ``current_app`` is an app
            this extension was not set up on.
        """
        return self._client()

    @property
    def async_connection(self) -> Any:
        """The asyncio client (``redis.asyncio.Redis``) of the running event loop, for the
        same app and prefix as :attr:`connection`: made from the same settings on first
        use in the loop, reused while the loop runs, and closed in the loop when it ends.
        Observed by the same metrics, recorded calls and slow log. See :doc:`async`.

        :raises RuntimeError: no event loop runs in this thread, or outside an app context
            (unbound).
        :raises ValueError: the prefix has a setting the asyncio client cannot take.
        """
        app, prefix = self._app_and_prefix()
        return app.extensions["redis_asyncio"][prefix].client()

    @property
    def async_replica(self) -> Any:
        """For a Sentinel prefix, the asyncio client of the service's replicas, of the
        running event loop: :attr:`replica` for coroutines, made, reused and closed as
        :attr:`async_connection` is.

        :raises AttributeError: the prefix does not use Sentinel, or :meth:`init_app` has
            not been called yet.
        :raises RuntimeError: no event loop runs in this thread.
        """
        return self._replica("redis_asyncio_replicas").client()

    @property
    def replica(self) -> Any:
        """For a Sentinel prefix, the client of the service's replicas: reads sent through
        it are spread over the replicas (the master if none answers). Instrumented like
        :attr:`connection`, under the same prefix.

        :raises AttributeError: the prefix does not use Sentinel, or :meth:`init_app` has
            not been called yet.
        """
        return self._replica("redis_replicas")

    def _replica(self, key: str) -> Any:
        app, prefix = self._app_and_prefix()
        try:
            return app.extensions[key][prefix]
        except KeyError:
            raise AttributeError(
                f"The Redis extension ({prefix}) has no replica client: only a prefix that"
                f" uses Sentinel ({prefix}_SENTINELS) has one"
            ) from None

    def _client(self) -> Any:
        app, prefix = self._app_and_prefix()
        return app.extensions["redis"][prefix]

    def _app_and_prefix(self) -> tuple[Flask, str]:
        app = self._app
        if app is None:
            if not self._prefixes:
                raise AttributeError(
                    f"The Redis extension ({self.config_prefix}) has no client yet:"
                    " call init_app(app) first"
                )
            app = current_app._get_current_object()  # type: ignore[attr-defined]
        try:
            prefix = self._prefixes[app]
        except KeyError:
            raise RuntimeError(
                f"The Redis extension ({self.config_prefix}) is not set up on app"
                f" {app.name!r}: call init_app(app) first"
            ) from None
        return app, prefix

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the extension itself lacks, or when the connection property
        # raised AttributeError: _client() raises it again, with its message. Private names
        # are not proxied, which keeps copy and pickle from recursing into a half-built object.
        if name.startswith("_"):
            raise AttributeError(name)
        if name == "replica":
            return self._replica("redis_replicas")
        if name == "async_replica":
            return self._replica("redis_asyncio_replicas").client()
        client = self._client()
        return client if name == "connection" else getattr(client, name)

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        try:
            names.update(name for name in dir(self._client()) if not name.startswith("_"))
        except (AttributeError, RuntimeError):
            pass
        return sorted(names)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} config_prefix={self.config_prefix!r}>"


def _connect(config: ClientConfig, client_class: type[Any]) -> tuple[Any, Any]:
    """The client of ``config``, made of ``client_class`` with the Sentinel and Cluster
    classes of its library (redis-py's or valkey-py's); for Sentinel, the client of the
    service's replicas too (else ``None``).

    :raises ValueError: the class refused the value of an argument, which the message
        names by its key (see :func:`~.checks.refusal`); other errors pass unchanged.
    """
    try:
        return _make(config, client_class)
    except Exception as error:
        taker = f"{config.client_class.__module__}.{config.client_class.__qualname__}"
        refused = refusal(error, config.sources, taker)
        if refused is None:
            raise
        raise refused from error


def _make(config: ClientConfig, client_class: type[Any]) -> tuple[Any, Any]:
    library = config.library
    if config.mode == SENTINEL:
        sentinel = library.sentinel(
            config.addresses, sentinel_kwargs=config.sentinel_kwargs, **config.kwargs
        )
        service = str(config.service)  # read_config() made sure there is one
        which = {library.sentinel_class_argument: client_class}
        master = sentinel.master_for(service, **which)
        if config.sentinel_watch:
            _failover.watch(sentinel, service, master.connection_pool)
        replica = sentinel.slave_for(service, **which)
        return master, replica
    if config.mode == CLUSTER and config.addresses:
        startup = [library.cluster_node(host, port) for host, port in config.addresses]
        return client_class(startup_nodes=startup, **config.kwargs), None
    return client_class(**config.kwargs), None


def _pools(
    config: ClientConfig, client: Any, replica: Any, loops: list[LoopClients]
) -> Callable[[], list[Any]]:
    """What lists the connection pools of ``client`` (and of ``replica``), and of the
    asyncio clients that event loops hold now in each of ``loops``, when called.

    It holds the clients by weak references: the metrics keep it as long as the app, and
    the clients, their pools and connections (and a Sentinel master's watch thread, which
    ends with its pool) must go with the app, in the same garbage collection.
    """
    clients = [weakref.ref(each) for each in (client, replica) if each is not None]
    loops_refs = [weakref.ref(each) for each in loops]
    library = config.library
    cluster = config.mode == CLUSTER

    def pools() -> list[Any]:
        found: list[Any] = []
        for each in (ref() for ref in clients):
            if cluster and isinstance(each, library.cluster):
                # The nodes come and go with the cluster: asked each time.
                found.extend(pool for _node, pool in library.node_pools(each.get_nodes()))
            else:  # a client class of the app's own may have no pool: nothing to count
                found.append(getattr(each, "connection_pool", None))
        running = (ref() for ref in loops_refs)
        asyncio_clients = [c for each in running if each is not None for _, c in each.items()]
        for each in asyncio_clients:
            if cluster:  # an asyncio cluster node keeps its connections itself
                found.extend(each.get_nodes())
                # The nodes it was started from, whose connection asked for the others.
                found.extend(each.nodes_manager.startup_nodes.values())
            else:
                found.append(getattr(each, "connection_pool", None))
        return [pool for pool in found if pool is not None]

    return pools


class Clients(NamedTuple):
    """The clients of a config prefix (see :func:`create_clients`)."""

    client: Any
    #: For Sentinel, the client of the replicas; else ``None``.
    replica: Any
    #: The asyncio clients, one per event loop.
    loops: LoopClients
    #: For Sentinel, the asyncio clients of the replicas; else ``None``.
    replica_loops: LoopClients | None


def _clients(config: ClientConfig, client: Any, replica: Any) -> Clients:
    """``client`` and ``replica``, with the asyncio clients of ``config``, none made yet;
    for Sentinel, those of the master following it as the watch of ``client``'s pool
    does, if it has one."""
    watch = _failover.watch_of(getattr(client, "connection_pool", None))
    replicas = None if replica is None else loop_clients(config, replicas=True)
    return Clients(client, replica, loop_clients(config, watch), replicas)


def _setup_metrics(
    app: Flask, config: ClientConfig, made: Clients, loops: list[LoopClients]
) -> list[Observer]:
    """The metrics of ``config``'s prefix for the clients ``made`` and those of ``loops``:
    the observers of their commands; their connections and pools report to the metrics
    from now on. The metrics view is served, if the prefix asks for one."""
    from . import _exposition, _key_families, _metrics  # prometheus-client is optional

    pools = _pools(config, made.client, made.replica, loops)
    observer, events = _metrics.setup_metrics(app, config, pools)
    observers = [observer]
    families = _key_families.setup_key_families(app, config)
    if families is not None:  # the opt-in PREFIX_METRICS_KEY_FAMILIES
        observers.append(families)
    for each in (made.client, made.replica):
        if each is not None:
            _connections.instrument_client(each, events)
    for each in loops:
        each.events = events
    if config.metrics_path is not None:
        _exposition.serve_metrics(app, config.metrics_path, config.metrics_registry)
    return observers


def create_clients(app: Flask, config: ClientConfig) -> Clients:
    """The clients of ``config``, the asyncio ones none made yet: of the configured
    classes themselves when nothing observes them, else of their instrumented
    subclasses, observed by metrics, recording and the slow log as ``config`` asks."""
    record = app.debug if config.record_calls is None else config.record_calls
    slow = config.slow_log_threshold
    if not (config.metrics or record or config.server_timing or slow is not None):
        return _clients(config, *_connect(config, config.client_class))  # off means free
    client_class = instrumented(config.client_class)
    if record and config.mode != SERVER:
        client_class = _nodes.noting(
            client_class, _nodes.SentinelNodes if config.mode == SENTINEL else _nodes.ClusterNodes
        )
    client, replica = _connect(config, client_class)
    _nodes.take()  # what the client noted while it was made is no round trip's
    made = _clients(config, client, replica)
    loops = [made.loops] if made.replica_loops is None else [made.loops, made.replica_loops]
    observers: list[Observer] = []
    if config.metrics:
        observers.extend(_setup_metrics(app, config, made, loops))
    if record or config.server_timing:
        observers.append(_recording.setup_recording(app, config, record))
    if slow is not None:
        logger = _slowlog.SlowLog(config.prefix, slow, app, config.redact_keys)
        observers.append(logger.observe)
    observer = combine(*observers)
    for each in (client, replica):
        if each is not None:
            observe(each, observer)
            # Its client-side cache, if it has one, counts its hits and misses; a hit is
            # noted for the recorder, where calls are recorded.
            observe_cache(each, note=record)
    for each in loops:
        each.observer = observer
    return made
