"""The PromQL of the documentation comes from ``examples/prometheus/queries.yml`` only.

The docs show a query with ``.. promql:: NAME`` (``docs/_ext/promql.py``), and
``tests/test_prometheus.py`` runs every query of the file against a real Prometheus: a
query written straight into a page would escape that test, and so would drift.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.one_kind

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "examples" / "prometheus" / "queries.yml"
DOCS = sorted((ROOT / "docs").glob("*.rst"))

#: A line of PromQL: a function or an aggregation applied to a series.
PROMQL = re.compile(
    r"\b(rate|irate|increase|histogram_quantile|sum|max|avg)\s*(by\s*\([^)]*\)\s*)?\("
)
#: The series the queries may read: the extension's, and the app's own request durations
#: that ``request_time_share`` divides by.
SERIES = re.compile(r"\b(flask_[a-z_]+)\b")
KNOWN_SERIES = re.compile(r"flask_redis_[a-z_]+|flask_http_request_duration_seconds_[a-z]+")


def _queries() -> list[dict[str, str]]:
    queries: list[dict[str, str]] = yaml.safe_load(QUERIES.read_text(encoding="utf-8"))["queries"]
    return queries


def _shown_names() -> list[str]:
    return [
        match.group(1)
        for page in DOCS
        for match in re.finditer(r"^\s*\.\. promql:: *(\S+)", page.read_text(), re.MULTILINE)
    ]  # fmt: skip


def _code_blocks(text: str) -> list[str]:
    """The bodies of the page's ``code-block`` directives and ``::`` literal blocks."""
    blocks: list[str] = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if not (re.match(r"\s*\.\. code-block::", line) or line.rstrip().endswith("::")):
            continue
        indent = len(line) - len(line.lstrip())
        body: list[str] = []
        for following in lines[number + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        blocks.append("\n".join(body))
    return blocks


def test_every_query_has_a_unique_name_and_all_its_fields() -> None:
    queries = _queries()
    names = [query["name"] for query in queries]
    assert len(names) == len(set(names))
    for query in queries:
        assert set(query) == {"name", "title", "unit", "description", "expr"}, query["name"]
        assert all(isinstance(value, str) and value.strip() for value in query.values())


def test_every_query_reads_only_series_the_extension_or_the_app_exports() -> None:
    for query in _queries():
        series = SERIES.findall(query["expr"])
        assert series, query["name"]
        assert all(KNOWN_SERIES.fullmatch(name) for name in series), (query["name"], series)


def test_every_query_is_shown_in_the_docs() -> None:
    assert {query["name"] for query in _queries()} <= set(_shown_names())


def test_the_docs_show_only_queries_of_the_file() -> None:
    assert set(_shown_names()) <= {query["name"] for query in _queries()}


@pytest.mark.parametrize("page", DOCS, ids=[page.name for page in DOCS])
def test_no_page_writes_promql_of_its_own(page: Path) -> None:
    for block in _code_blocks(page.read_text()):
        assert not (PROMQL.search(block) and "flask_" in block), block
