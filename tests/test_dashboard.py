"""The Grafana dashboard ``examples/grafana/flask-redis.json``: one panel for each query of
``examples/prometheus/queries.yml``, its expression written exactly as there, the data
source chosen by a variable, and the panels laid out on Grafana's grid of 24 columns."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "examples" / "grafana" / "flask-redis.json"
QUERIES = ROOT / "examples" / "prometheus" / "queries.yml"
ALERTS = ROOT / "examples" / "prometheus" / "alerts.yml"

COLUMNS = 24
DATASOURCE = "${datasource}"
#: Grafana's unit for each unit of ``queries.yml``.
UNITS = {
    "seconds": "s",
    "seconds per second": "s",
    "ratio": "percentunit",
    "commands per second": "ops",
    "errors per second": "ops",
    "commands": "short",
    "connections": "short",
    "waits per second": "cps",
    "refusals per second": "cps",
    "connections per second": "cps",
    "retries per second": "cps",
    "evictions per second": "cps",
    "bytes per second": "Bps",
    "entries": "short",
}
#: The row of the questions asked during an incident, and the families its panels read.
INCIDENT_ROW = "When Redis hurts"
INCIDENT_FAMILIES = (
    "flask_redis_pool_wait_duration_seconds",
    "flask_redis_pool_exhausted_total",
    "flask_redis_connection_create_duration_seconds",
    "flask_redis_connections_closed_total",
    "flask_redis_retries_total",
    "flask_redis_network_bytes_total",
    "flask_redis_client_cache_requests_total",
    "flask_redis_client_cache_evictions_total",
    "flask_redis_client_cache_entries",
)
#: The label that only the incident row's query of the errors counter groups by.
INCIDENT_LABEL = "code"
#: The row of the key families (``PREFIX_METRICS_KEY_FAMILIES``), and their families.
KEY_FAMILY_ROW = "Key families"
KEY_FAMILY_FAMILIES = (
    "flask_redis_key_family_commands_total",
    "flask_redis_key_family_seconds_total",
    "flask_redis_key_family_bytes_total",
)
#: The first grouping of an expression: the labels of its result (``le`` aside).
BY = re.compile(r"\bby \(([^)]*)\)")
#: The grouping of an aggregation that selects series and keeps their labels.
SELECTION_BY = re.compile(r"\b(?:topk|bottomk|limitk) by \([^)]*\)")
#: The labels a legend names, as in ``{{prefix}} {{command}}``.
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def queries() -> dict[str, dict[str, str]]:
    """The queries of ``queries.yml``, by their expression."""
    data = yaml.safe_load(QUERIES.read_text(encoding="utf-8"))
    return {query["expr"]: query for query in data["queries"]}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of ``dashboard``, rows included, and the panels of collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def graphs(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels of ``dashboard`` that show queries: all but rows."""
    return [panel for panel in panels(dashboard) if panel["type"] != "row"]


def result_labels(expr: str) -> set[str]:
    """The labels of the series that ``expr`` returns: those of its first ``by``, except
    ``le`` (consumed by ``histogram_quantile``) and the groups of a ``topk``, which keeps
    the labels of the series it selects."""
    match = BY.search(SELECTION_BY.sub("", expr))
    labels = {label.strip() for label in match[1].split(",")} if match else set()
    return labels - {"le", ""}


def markdown(rest: str) -> str:
    """The reST text ``rest`` of a query's description as Grafana's Markdown: literals in
    single backquotes."""
    return re.sub(r"``(.+?)``", r"`\1`", rest)


def alert_thresholds() -> dict[str, float]:
    """The threshold of each alert of ``alerts.yml``, by the expression of its query
    (whitespace normalised): each expression is a query, ``>`` and the threshold."""
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    thresholds = {}
    for group in data["groups"]:
        for rule in group["rules"]:
            query, _, threshold = " ".join(rule["expr"].split()).rpartition(" > ")
            thresholds[query] = float(threshold)
    return thresholds


def overlap(one: dict[str, int], other: dict[str, int]) -> bool:
    """Whether the two grid positions share a cell."""
    return (
        one["x"] < other["x"] + other["w"] and other["x"] < one["x"] + one["w"]
        and one["y"] < other["y"] + other["h"] and other["y"] < one["y"] + one["h"]
    )  # fmt: skip


def datasources(node: Any) -> Iterator[Any]:
    """Every value of a ``datasource`` key anywhere in the JSON ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from datasources(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasources(item)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    """The dashboard, loaded from its JSON."""
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def test_the_dashboard_loads_as_a_current_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    # Schema 36 (Grafana 9) made data sources references of a type and a uid.
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["title"] and dashboard["uid"]
    assert dashboard.get("id") is None  # set by each Grafana that imports it
    assert graphs(dashboard)
    assert {panel["type"] for panel in graphs(dashboard)} == {"timeseries"}


def test_every_target_expression_is_exactly_a_query(dashboard: dict[str, Any]) -> None:
    known = queries()
    for panel in graphs(dashboard):
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"] in known, (panel["title"], target["expr"])


def test_every_query_is_on_the_dashboard(dashboard: dict[str, Any]) -> None:
    shown = {target["expr"] for panel in graphs(dashboard) for target in panel["targets"]}
    missing = [query["name"] for expr, query in queries().items() if expr not in shown]
    assert missing == [], "a panel is missing for these queries"


def test_each_panel_has_the_title_description_unit_and_legend_of_its_query(
    dashboard: dict[str, Any],
) -> None:
    known = queries()
    for panel in graphs(dashboard):
        (target,) = panel["targets"]
        query = known[target["expr"]]
        assert query["unit"] in UNITS, f"no Grafana unit for {query['unit']!r} in UNITS"
        assert panel["title"] == query["title"]
        assert panel["description"] == markdown(query["description"]), query["name"]
        assert panel["fieldConfig"]["defaults"]["unit"] == UNITS[query["unit"]], query["name"]
        legend = set(LEGEND_LABEL.findall(target["legendFormat"]))
        assert legend == result_labels(target["expr"]), query["name"]


def test_each_alert_threshold_is_drawn_on_the_panel_of_its_query(
    dashboard: dict[str, Any],
) -> None:
    thresholds = alert_thresholds()
    assert thresholds
    for panel in graphs(dashboard):
        (target,) = panel["targets"]
        threshold = thresholds.get(" ".join(target["expr"].split()))
        defaults = panel["fieldConfig"]["defaults"]
        drawn = [step["value"] for step in defaults.get("thresholds", {}).get("steps", [])]
        style = defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode", "off")
        if threshold is None:
            assert (drawn, style) == ([None], "off"), panel["title"]
        else:
            assert (drawn, style) == ([None, threshold], "dashed"), panel["title"]


def row_of(dashboard: dict[str, Any], panel: dict[str, Any]) -> str:
    """The title of the row above ``panel`` on the grid (rows are expanded)."""
    rows = [row for row in dashboard["panels"] if row["type"] == "row"]
    above = [row for row in rows if row["gridPos"]["y"] < panel["gridPos"]["y"]]
    title: str = max(above, key=lambda row: row["gridPos"]["y"])["title"]
    return title


def test_the_when_redis_hurts_row_shows_the_incident_families_and_only_them(
    dashboard: dict[str, Any],
) -> None:
    for panel in graphs(dashboard):
        (target,) = panel["targets"]
        incident = any(family in target["expr"] for family in INCIDENT_FAMILIES) or (
            INCIDENT_LABEL in result_labels(target["expr"])
        )
        assert (row_of(dashboard, panel) == INCIDENT_ROW) == incident, panel["title"]
    shown = " ".join(target["expr"] for panel in graphs(dashboard) for target in panel["targets"])
    assert [family for family in INCIDENT_FAMILIES if family not in shown] == []


def test_the_key_families_row_shows_the_key_family_families_and_only_them(
    dashboard: dict[str, Any],
) -> None:
    for panel in graphs(dashboard):
        (target,) = panel["targets"]
        key_family = any(family in target["expr"] for family in KEY_FAMILY_FAMILIES)
        assert (row_of(dashboard, panel) == KEY_FAMILY_ROW) == key_family, panel["title"]
        assert ("family" in result_labels(target["expr"])) == key_family, panel["title"]
    shown = " ".join(target["expr"] for panel in graphs(dashboard) for target in panel["targets"])
    assert [family for family in KEY_FAMILY_FAMILIES if family not in shown] == []


def test_a_topk_panel_names_the_labels_of_the_series_it_selects() -> None:
    expr = "topk by (prefix) (5, sum by (prefix, family) (rate(x[5m])))"
    assert result_labels(expr) == {"prefix", "family"}


def test_the_data_source_is_a_variable_of_prometheus_data_sources(
    dashboard: dict[str, Any],
) -> None:
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    variable = variables["datasource"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    for panel in graphs(dashboard):
        for node in (panel, *panel["targets"]):
            assert node["datasource"] == {"type": "prometheus", "uid": DATASOURCE}


def test_no_data_source_uid_is_hard_coded(dashboard: dict[str, Any]) -> None:
    for reference in datasources(dashboard):
        if isinstance(reference, dict) and reference.get("type") == "grafana":
            continue  # Grafana's own, built-in source of annotations
        uid = reference.get("uid") if isinstance(reference, dict) else reference
        assert uid == DATASOURCE, reference


def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in panels(dashboard)]
    assert all(isinstance(panel_id, int) for panel_id in ids)
    assert len(ids) == len(set(ids))


def test_panels_fit_the_grid_without_overlapping(dashboard: dict[str, Any]) -> None:
    positions = [(panel["title"], panel["gridPos"]) for panel in dashboard["panels"]]
    for title, position in positions:
        assert position["x"] >= 0 and position["y"] >= 0, title
        assert position["w"] > 0 and position["h"] > 0, title
        assert position["x"] + position["w"] <= COLUMNS, title
    for index, (title, position) in enumerate(positions):
        for other_title, other in positions[index + 1 :]:
            assert not overlap(position, other), (title, other_title)
