"""Show the PromQL queries of ``examples/prometheus/queries.yml``, the one source of them.

``.. promql:: error_ratio``
    The query of that name: its description, then its expression in a code block. With
    the ``:expr-only:`` flag, the expression alone. An unknown name is an error.

The alerting rules, the Grafana dashboard and a test against a real Prometheus use the same
file, so what the documentation shows is what is tested.
"""

from __future__ import annotations

import os
from typing import Any

import yaml
from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

#: The queries file, from the documentation's folder.
QUERIES = os.path.join("..", "examples", "prometheus", "queries.yml")


def load_queries(path: str) -> dict[str, dict[str, str]]:
    """The queries of the file at ``path``, by name."""
    with open(path, encoding="utf-8") as file:
        return {query["name"]: query for query in yaml.safe_load(file)["queries"]}


class PromQL(SphinxDirective):
    """Show a query of the queries file by its name."""

    required_arguments = 1
    option_spec = {"expr-only": directives.flag}

    def run(self) -> list[nodes.Node]:
        path = os.path.join(self.env.srcdir, QUERIES)
        self.env.note_dependency(path)
        queries = load_queries(path)
        name = self.arguments[0]
        if name not in queries:
            raise self.error(f"no query named {name!r} in {QUERIES}")
        query = queries[name]
        result: list[nodes.Node] = []
        if "expr-only" not in self.options:
            paragraph = nodes.paragraph()
            source = StringList([query["description"]], source=path)
            self.state.nested_parse(source, self.content_offset, paragraph)
            result.extend(paragraph.children)
        block = nodes.literal_block(query["expr"], query["expr"], language="promql")
        result.append(block)
        return result


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("promql", PromQL)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
