"""Moving from the other extension, flask-redis, which installs the module ``flask_redis``
too: :class:`FlaskRedis` keeps flask-redis 0.4's API on this project's clients, and
:func:`warn_if_flask_redis_installed` says, at import, when both are installed, since
uninstalling flask-redis then deletes this package's ``__init__.py``.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import re
import sys
import warnings
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import redis
from flask import Flask, current_app, has_app_context

from ._checks import UNSET, checked_value
from ._config import ClientConfig, read_config, with_arguments
from ._config_warnings import IgnoredKeyWarning, warn_at_app
from ._extension import Redis, create_clients
from ._keys import arguments, taker
from ._libraries import client_library
from ._topology import SERVER

#: The URL flask-redis connects to when ``PREFIX_URL`` is not set.
DEFAULT_URL = "redis://localhost:6379/0"

#: The keys that flask-redis's default URL decides, with what it decides for each: its
#: host, port and database, no user name and password, and no socket path or ready pool.
_DEFAULT_URL_DECIDES = {
    "host": "localhost", "port": 6379, "db": 0, "username": None, "password": None,
    "unix_socket_path": None, "connection_pool": None,
}  # fmt: skip

#: Arguments that redis-py renamed, which flask-redis passed on to redis-py 3 and 4.
_RENAMED = {"charset": "encoding", "errors": "encoding_errors"}

#: What a URL decides by connecting over TCP or a unix socket: it uses no host and port,
#: or no socket path.
_NOT_USED = object()


def _argument(name: str) -> str:
    """How messages name a keyword argument given to :class:`FlaskRedis` in code."""
    return f"FlaskRedis argument {name}"


@contextmanager
def _named(names: Mapping[str, str]) -> Iterator[None]:
    """Let a :exc:`ValueError` or :exc:`TypeError` raised inside name what was given in
    code, not the key it was checked as: each key of ``names`` becomes its value. The check
    itself ran with the key, so a secret's value is still left out of the message."""
    try:
        yield
    except (ValueError, TypeError) as error:
        text = str(error)
        for key, label in names.items():
            text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(key)}(?![A-Za-z0-9_])", label, text)
        if type(error) not in (ValueError, TypeError) or text == str(error):
            raise
        raise type(error)(text) from error.__cause__


def _keeps_client_construction(provider: Any) -> bool:
    """Whether ``provider`` is redis-py's or valkey-py's client or cluster class, or a
    subclass that makes its clients as they do (it keeps their ``from_url()``)."""
    if not isinstance(provider, type):
        return False
    libraries = [client_library("redis")]
    if "valkey" in sys.modules:
        libraries.append(client_library("valkey"))
    for library in libraries:
        for base in (library.client, library.cluster):
            if issubclass(provider, base):
                made_by = getattr(provider, "from_url", None)
                return getattr(made_by, "__func__", None) is base.from_url.__func__
    return False


def _check_provider(provider: Any) -> None:
    if provider is None:
        raise TypeError(
            "FlaskRedis.from_custom_provider() needs a provider: a client class such as"
            " redis.Redis, or a class with a from_url() class method"
        )
    if not _keeps_client_construction(provider) and not callable(
        getattr(provider, "from_url", None)
    ):
        raise TypeError(
            "The provider of FlaskRedis.from_custom_provider() must be a client class of"
            " redis-py or valkey-py, or have a from_url(url, **kwargs) class method as"
            f" flask-redis required; {provider!r} has none"
        )


class _Clients(dict[str, Any]):
    """``app.extensions["redis"]`` when :class:`FlaskRedis` sets it up: the clients by config
    prefix, as for :class:`Redis`. flask-redis kept its extension object there, so a
    command called on it says where the client is."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(
            f"app.extensions['redis'] is the dict of the Flask-And-Redis clients by config"
            f" prefix, which has no attribute {name!r}; flask-redis kept its FlaskRedis"
            " object there. Use app.extensions['redis']['REDIS'], the client of the prefix"
            " REDIS, or your FlaskRedis object"
        )


#: Per app, per prefix, what :class:`FlaskRedis` made its client of: its settings, or for a
#: provider of its own, ``(provider, url, kwargs)``.
_made: weakref.WeakKeyDictionary[Flask, dict[str, Any]] = weakref.WeakKeyDictionary()


class FlaskRedis(Redis):
    """flask-redis 0.4's extension, on the clients of this project: a client of ``PREFIX_URL``,
    by default ``redis://localhost:6379/0``, with the metrics, recorded calls and debug
    toolbar panel of :class:`Redis`. An app of flask-redis runs unchanged;
    :doc:`upgrading` lists the few differences.

    The other ``PREFIX_*`` keys are read as :class:`Redis` reads them. A keyword argument
    given here, to :meth:`init_app` or to :meth:`from_custom_provider` is an argument of
    the client, checked as its key would be (errors name the argument). It gives what the
    URL leaves out: where the URL gives the same argument, the URL wins, as redis-py's
    ``from_url()`` decided for flask-redis.

    The extension uses the client of :data:`flask.current_app` when it is set up on that app,
    else the client of the last app it was set up on (flask-redis had that client only).

    :param app: The app to set up now, if any.
    :param strict: Accepted for flask-redis; no meaning in redis-py 3 and later, where
        ``redis.StrictRedis`` is ``redis.Redis``, as it is for flask-redis there.
    :param config_prefix: The prefix of the config keys to read; ``"REDIS"`` by default.
    :param kwargs: Keyword arguments of the client.
    """

    def __init__(
        self,
        app: Flask | None = None,
        strict: bool = True,
        config_prefix: str = "REDIS",
        **kwargs: Any,
    ) -> None:
        super().__init__(None, config_prefix)
        self._provider: Any = None
        # flask-redis kept the client of the last app; the app is kept for it.
        self._last: Flask | None = None
        #: The keyword arguments of the client: those given to the constructor, updated by
        #: those given to each :meth:`init_app`, for the apps set up later too.
        self.provider_kwargs: dict[str, Any] = kwargs
        if app is not None:
            self.init_app(app)

    @classmethod
    def from_custom_provider(
        cls, provider: Any, app: Flask | None = None, **kwargs: Any
    ) -> FlaskRedis:
        """A :class:`FlaskRedis` whose client is made by ``provider``.

        A client class of redis-py or valkey-py, or a subclass that keeps its
        ``from_url()`` (``redis.Redis``, a subclass of the app's own), is made as
        ``PREFIX_CLASS`` is for :class:`Redis`, with metrics. Any other provider, such as a
        mock client, is made as flask-redis made it: ``provider.from_url(url, **kwargs)``.

        :param provider: The client class, or any class with a ``from_url()`` class method.
        :param app: The app to set up now, if any.
        :param kwargs: The arguments of :class:`FlaskRedis`: ``strict``,
            ``config_prefix`` and the client's keyword arguments.
        :raises TypeError: ``provider`` is none of these.
        """
        _check_provider(provider)
        instance = cls(**kwargs)
        instance.provider_class = provider
        if app is not None:
            instance.init_app(app)
        return instance

    @property
    def provider_class(self) -> Any:
        """The provider given to :meth:`from_custom_provider`, else :class:`redis.Redis`
        (for which ``PREFIX_CLASS``, if set, decides the class)."""
        return redis.Redis if self._provider is None else self._provider

    @provider_class.setter
    def provider_class(self, provider: Any) -> None:
        _check_provider(provider)
        self._provider = provider

    def init_app(self, app: Flask, config_prefix: str | None = None, **kwargs: Any) -> None:
        """Create the client of ``app`` and store it in ``app.extensions["redis"][prefix]``;
        for a prefix other than ``REDIS``, store this object in
        ``app.extensions[prefix.lower()]`` as flask-redis did.

        :param app: The app to set up.
        :param config_prefix: The prefix of the config keys to read; by default the one
            given to the constructor.
        :param kwargs: More keyword arguments of the client, kept for the apps set up
            later too, as flask-redis kept them.
        :raises ValueError: the prefix is already set up on this app, or a setting is not
            what it should be (the message names the key or the argument).
        :raises TypeError: a setting has the wrong type, or the client does not take an
            argument given.
        """
        self.provider_kwargs.update(kwargs)
        prefix = config_prefix or self.config_prefix
        clients = app.extensions.get("redis")
        if clients is None:
            clients = app.extensions["redis"] = _Clients()
        provider = self._provider
        made = _made.setdefault(app, {})
        if provider is not None and not _keeps_client_construction(provider):
            url = app.config.get(f"{prefix}_URL") or DEFAULT_URL
            recipe: Any = (provider, url, dict(self.provider_kwargs))
        else:
            others = [other for other in clients if other != prefix]
            recipe = _read(app.config, prefix, provider, self.provider_kwargs, others)
        if prefix in clients:
            # flask-redis let several objects set up one app; one with the same settings
            # shares the client, which is all that the prefix's metrics and panel know.
            if prefix not in made or made[prefix] != recipe:
                raise ValueError(
                    f"The config prefix {prefix!r} is already set up on app {app.name!r},"
                    " by a Redis or by a FlaskRedis with other settings: give this FlaskRedis"
                    " a config_prefix of its own, and its URL in that prefix's URL key"
                )
        elif isinstance(recipe, ClientConfig):
            created = create_clients(app, recipe)  # its asyncio clients are left out
            client, replica = created.client, created.replica
            clients[prefix] = client
            if replica is not None:
                app.extensions.setdefault("redis_replicas", {})[prefix] = replica
        else:
            provider, url, kwargs = recipe
            clients[prefix] = provider.from_url(url, **kwargs)
        made[prefix] = recipe
        self.config_prefix = prefix
        self._prefixes[app] = prefix
        self._last = app
        if prefix.lower() not in ("redis", "redis_replicas"):
            app.extensions.setdefault(prefix.lower(), self)

    def _app_and_prefix(self) -> tuple[Flask, str]:
        if has_app_context():
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            prefix = self._prefixes.get(app)
            if prefix is not None:
                return app, prefix
        last = self._last
        if last is None:
            raise AttributeError(
                f"The FlaskRedis extension ({self.config_prefix}) has no client yet:"
                " call init_app(app) first"
            )
        return last, self._prefixes[last]

    @property
    def _redis_client(self) -> Any:
        # flask-redis's attribute, which tests read, or set to a fake client: the client of
        # the app the extension uses now (None before init_app, as in flask-redis).
        return self._client() if self._last is not None else None

    @_redis_client.setter
    def _redis_client(self, client: Any) -> None:
        app, prefix = self._app_and_prefix()
        app.extensions["redis"][prefix] = client

    def __getitem__(self, name: Any) -> Any:
        return self._client()[name]

    def __setitem__(self, name: Any, value: Any) -> None:
        self._client()[name] = value

    def __delitem__(self, name: Any) -> None:
        del self._client()[name]


# -- Reading the settings ------------------------------------------------------------------


def _read(
    config: Mapping[str, Any],
    prefix: str,
    provider: Any,
    code: Mapping[str, Any],
    other_prefixes: list[str],
) -> ClientConfig:
    """What :func:`read_config` reads of ``prefix``, with flask-redis's default URL, the
    client class ``provider`` (if any) and the keyword arguments ``code``."""
    url_key, class_key = f"{prefix}_URL", f"{prefix}_CLASS"
    keys = dict(config)
    url = keys.get(url_key)
    dropped: dict[str, Any] = {}
    names: dict[str, str] = {}
    if not url:
        url = None
        if keys.get(f"{prefix}_SENTINELS") is None and keys.get(f"{prefix}_CLUSTER") is None:
            url = keys[url_key] = DEFAULT_URL
            names[url_key] = f"{url_key} (not set, so flask-redis's default {DEFAULT_URL})"
            for name in _DEFAULT_URL_DECIDES:
                key = f"{prefix}_{name.upper()}"
                if key in keys:
                    dropped[name] = keys.pop(key)
    if provider is not None:
        given = keys.get(class_key)
        if given is not None and given is not provider:
            warn_at_app(
                f"{class_key} is ignored: FlaskRedis.from_custom_provider() gives the class",
                IgnoredKeyWarning,
            )
        keys[class_key] = provider
        names[class_key] = "the provider of FlaskRedis.from_custom_provider()"
    with _named(names):
        read = read_config(keys, prefix, other_prefixes)
    for name, value in dropped.items():
        key = f"{prefix}_{name.upper()}"
        value = checked_value(key, name, value, read.library.name)
        if value is not UNSET and (value or None) != (_DEFAULT_URL_DECIDES[name] or None):
            warn_at_app(
                f"{key} is ignored: {url_key} is not set, so FlaskRedis connects to"
                f" flask-redis's default {DEFAULT_URL}, as flask-redis did. Give the address"
                f" in {url_key}, or use flask_redis.Redis, which reads {key}",
                IgnoredKeyWarning,
            )
    if not code:
        return read
    return _with_code_arguments(read, code, url, prefix)


def _stated(read: ClientConfig, url: str, prefix: str) -> dict[str, Any]:
    """The arguments that ``url`` itself gives, which win over those given in code as
    redis-py's ``from_url()`` lets them; what it decides by connecting over TCP or a unix
    socket maps to :data:`_NOT_USED`."""
    url_key, class_key = f"{prefix}_URL", f"{prefix}_CLASS"
    stated = dict(read_config({url_key: url, class_key: read.client_class}, prefix).kwargs)
    if read.mode == SERVER:
        unused = ("host", "port") if "unix_socket_path" in stated else ("unix_socket_path",)
        stated.update(dict.fromkeys(unused, _NOT_USED))
    return stated


def _with_code_arguments(
    read: ClientConfig, code: Mapping[str, Any], url: str | None, prefix: str
) -> ClientConfig:
    """``read`` with the keyword arguments given in code, checked as their keys would be."""
    url_key = f"{prefix}_URL"
    stated = {} if url is None else _stated(read, url, prefix)
    kwargs = dict(read.kwargs)
    sources = dict(read.sources)
    for name, given in _code_arguments(read, code).items():
        key, label = f"{prefix}_{name.upper()}", _argument(name)
        with _named({key: label}):
            value = checked_value(key, name, given, read.library.name)
        if value is UNSET:
            continue
        if name == "connection_pool" and url is not None:
            raise ValueError(
                f"{label} and {url_key} are both set: a ready pool ignores the URL, and"
                f" FlaskRedis reads {url_key} (flask-redis's default {DEFAULT_URL} when it is"
                " not set); use flask_redis.Redis with the key"
            )
        if name in stated:
            _warn_url_wins(name, value, stated[name], label, url_key)
            continue
        if name in kwargs and sources[name] != url_key and kwargs[name] != value:
            warn_at_app(f"{sources[name]} is ignored: {label} gives it in code", IgnoredKeyWarning)
        kwargs[name], sources[name] = value, label
    return with_arguments(read, kwargs, sources)


def _code_arguments(read: ClientConfig, code: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments given in code, by the names of today's arguments: each one
    that the client of ``read`` takes, or the name of 1.0 that redis-py renamed."""
    accepted = arguments(read.mode, read.client_class)
    found: dict[str, Any] = {}
    for name, value in code.items():
        new = _RENAMED.get(name)
        if new is not None and new in accepted:
            if new in code:
                raise TypeError(
                    f"{_argument(name)} and {_argument(new)} are both set: keep only {new}"
                )
            warn_at_app(f"{_argument(name)} is deprecated; use {new}", DeprecationWarning)
            name = new
        elif name not in accepted:
            near = difflib.get_close_matches(name, accepted, n=1)
            hint = f": did you mean {near[0]}?" if near else ""
            taken_by = taker(read.mode, read.client_class)
            raise TypeError(f"{_argument(name)} is not an argument that {taken_by} takes{hint}")
        found[name] = value
    return found


def _warn_url_wins(name: str, value: Any, stated: Any, label: str, url_key: str) -> None:
    """Warn that ``label``'s ``value`` is ignored where the URL states ``name`` itself."""
    if stated is _NOT_USED:
        transport = "a unix socket" if name in ("host", "port") else "TCP"
        warn_at_app(f"{label} is ignored: {url_key} connects over {transport}", IgnoredKeyWarning)
    elif value != stated:
        warn_at_app(
            f"{label} is ignored: {url_key} gives {name!r} too, and the URL wins,"
            " as it did for flask-redis",
            IgnoredKeyWarning,
        )


# -- Both distributions installed ----------------------------------------------------------

#: The start of the warning's message, which a warnings filter can match before import.
INSTALLED_TOO = "flask-redis is installed too"
_warned = False


def warn_if_flask_redis_installed() -> None:
    """Warn once, with a :exc:`UserWarning`, when the distribution flask-redis is installed
    beside Flask-And-Redis: both install the module ``flask_redis``, and uninstalling
    flask-redis deletes ``flask_redis/__init__.py``, which its record lists too."""
    global _warned
    if _warned:
        return
    try:
        importlib.metadata.distribution("flask-redis")
    except importlib.metadata.PackageNotFoundError:
        return
    _warned = True
    warnings.warn(
        f"{INSTALLED_TOO}, and it installs the module flask_redis as Flask-And-Redis does:"
        " 'pip uninstall flask-redis' deletes flask_redis/__init__.py, after which"
        " 'import flask_redis' fails with ImportError (unknown location). Remove flask-redis"
        " and repair Flask-And-Redis now: pip uninstall flask-redis, then"
        " pip install --force-reinstall --no-deps Flask-And-Redis. flask_redis.FlaskRedis"
        " takes the place of flask-redis's.",
        UserWarning,
        stacklevel=3,  # the import of flask_redis (the import machinery's frames are skipped)
    )
