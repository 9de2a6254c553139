"""Document the ``PREFIX_*`` config keys; the tables of them are generated from the code.

``.. configkey:: REDIS_URL`` and ``:configkey:`REDIS_URL```
    Describe a config key, and link to its description.

``.. redis-config-keys::``
    One row per config key the client class accepts: the key, the argument it becomes and
    the argument's default, as :func:`flask_redis._keys.client_arguments` and
    :func:`inspect.signature` see them. The optional argument names the client class
    (``redis.Redis`` by default); the ``:prefix:`` option the config prefix (``REDIS``).
    With ``:mode: sentinel`` or ``:mode: cluster``, the keys that mode reads instead, as
    :func:`flask_redis._keys.arguments` lists them, with the defaults of the classes that
    take them (see :data:`_MODE_DEFAULTS`).

``.. redis-config-conversions::``
    One row per argument whose value may be given as text, and the type it is converted to.

Also keeps autodoc from showing the docstring of ``str`` for a string constant such as
``flask_redis.__version__``.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import redis
import redis.sentinel
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from werkzeug.utils import import_string

from flask_redis._checks import CONVERTERS
from flask_redis._config import DEFAULT_PREFIX
from flask_redis._keys import arguments, client_arguments
from flask_redis._topology import CLUSTER, SENTINEL

#: Per topology, the classes whose signatures give the defaults of its keys, first match
#: first: Sentinel hands the keys to the master's connections and their pool; Cluster to
#: RedisCluster (or the configured subclass), then to the client of each node.
_MODE_DEFAULTS: dict[str, Callable[[type[Any]], list[type[Any]]]] = {
    SENTINEL: lambda client_class: [
        redis.sentinel.SentinelManagedSSLConnection, redis.ConnectionPool,
    ],
    CLUSTER: lambda client_class: [client_class, redis.Redis],
}  # fmt: skip

#: The default of a key no signature names: redis-py chooses the value itself.
_CHOSEN = object()


def _signature_defaults(client_class: type[Any]) -> dict[str, Any]:
    """Default value of every ``__init__`` argument, the first one found along the MRO."""
    defaults: dict[str, Any] = {}
    for klass in client_class.__mro__:
        init = vars(klass).get("__init__")
        if klass is object or init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            break
        for parameter in parameters:
            defaults.setdefault(parameter.name, parameter.default)
    return defaults


def _show_default(value: Any) -> str:
    """The default as reST: its repr, unless that is not stable from one build to the next."""
    if value is inspect.Parameter.empty:
        return "*required*"
    if type(value) is object:  # a marker object (or _CHOSEN): redis-py chooses the value
        return "*chosen by redis-py*"
    text = repr(value)
    if " at 0x" in text:  # an object without a repr of its own: name its type
        return f"a ``{type(value).__name__}`` instance"
    return f"``{text}``"


def _converted_to(name: str) -> str:
    """The type a text value of ``name`` becomes: "an integer" -> "integer"; the class's name
    for a choice ("one of 'random', ...")."""
    converter, expected = CONVERTERS.get(name, (None, ""))
    if expected.startswith("one of ") and isinstance(converter, type):
        return f"``{converter.__name__}``"
    words = expected.split()
    return words[1] if len(words) > 1 else ""


def _list_table(header: list[str], rows: list[list[str]], widths: str) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0] or ' '}")
        lines.extend(f"     - {cell or ' '}" for cell in row[1:])
    return lines


class _TableDirective(SphinxDirective):
    def _parse(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.container()
        source = self.get_source_info()[0]
        self.state.nested_parse(StringList(lines, source=source), self.content_offset, container)
        return container.children


class RedisConfigKeys(_TableDirective):
    """A table of every ``PREFIX_*`` key the client class accepts."""

    optional_arguments = 1
    option_spec = {
        "prefix": directives.unchanged,
        "mode": lambda value: directives.choice(value, tuple(_MODE_DEFAULTS)),
    }

    def run(self) -> list[nodes.Node]:
        class_path = self.arguments[0] if self.arguments else "redis.Redis"
        prefix = self.options.get("prefix") or DEFAULT_PREFIX
        client_class = import_string(class_path)
        mode = self.options.get("mode")
        if mode is None:
            names = client_arguments(client_class)
            defaults = _signature_defaults(client_class)
            missing: Any = inspect.Parameter.empty
        else:
            names = arguments(mode, client_class)
            defaults = {}
            for source in _MODE_DEFAULTS[mode](client_class):
                for name, default in _signature_defaults(source).items():
                    defaults.setdefault(name, default)
            missing = _CHOSEN
        rows = [
            [
                f"``{prefix}_{name.upper()}``",
                f"``{name}``",
                _show_default(defaults.get(name, missing)),
                _converted_to(name),
            ]
            for name in names
        ]
        header = ["Key", "Argument", "Default", "Text converted to"]
        return self._parse(_list_table(header, rows, "35 30 25 10"))


class RedisConfigConversions(_TableDirective):
    """A table of the arguments whose text values are converted, and to what."""

    option_spec = {"prefix": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        prefix = self.options.get("prefix") or DEFAULT_PREFIX
        by_type: dict[str, list[str]] = {}
        for name, (_converter, expected) in CONVERTERS.items():
            by_type.setdefault(expected, []).append(f"``{prefix}_{name.upper()}``")
        rows = [[expected, ", ".join(keys)] for expected, keys in by_type.items()]
        return self._parse(_list_table(["Converted to", "Keys"], rows, "30 70"))


def _drop_type_docstring(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Drop the docstring a module constant only has through its type (``str.__doc__``)."""
    type_doc = inspect.getdoc(type(obj))
    if what == "data" and type_doc and "\n".join(lines).strip() == type_doc.strip():
        lines.clear()


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("autodoc-process-docstring", _drop_type_docstring)
    app.add_object_type(
        "configkey", "configkey", "pair: %s; configuration key", objname="configuration key"
    )
    app.add_directive("redis-config-keys", RedisConfigKeys)
    app.add_directive("redis-config-conversions", RedisConfigConversions)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
