"""The alerting rules of ``examples/prometheus/alerts.yml``: each alert is a query of
``examples/prometheus/queries.yml`` and a threshold, promtool finds no problem in them and
their unit tests (``alerts.test.yml``) pass; promtool parses every query.

The promtool tests are skipped when promtool is not on PATH, unless ``CI`` is set: then
they fail.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.tool

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "examples" / "prometheus"
QUERIES = PROMETHEUS / "queries.yml"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yml"

GROUP = "flask-redis"
SEVERITIES = ("warning", "critical")
#: An alert's expression, whitespace normalised: a query, ``>`` and a number.
THRESHOLD = re.compile(r"(?P<query>.+) > (?P<threshold>[0-9][0-9.eE+-]*)")
#: A Prometheus duration of a single unit, such as ``5m``.
DURATION = re.compile(r"[1-9][0-9]*(ms|s|m|h|d|w|y)")
#: The first grouping of an expression: the labels of its result (``le`` aside).
BY = re.compile(r"\bby \(([^)]*)\)")


def normalised(expr: str) -> str:
    """``expr`` with each run of whitespace turned into one space, none at the ends."""
    return " ".join(expr.split())


def queries() -> dict[str, str]:
    """The queries of ``queries.yml``: the normalised expression of each, by name."""
    data = yaml.safe_load(QUERIES.read_text(encoding="utf-8"))
    return {query["name"]: normalised(query["expr"]) for query in data["queries"]}


def groups() -> list[dict[str, Any]]:
    """The rule groups of ``alerts.yml``."""
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    result: list[dict[str, Any]] = data["groups"]
    return result


def alerts() -> list[dict[str, Any]]:
    """The alerting rules of every group of ``alerts.yml``, in their order."""
    return [rule for group in groups() for rule in group["rules"] if "alert" in rule]


def split(alert: dict[str, Any]) -> tuple[str, float]:
    """The query name and the threshold of ``alert``, whose expression must be a query of
    ``queries.yml`` followed by ``> threshold``."""
    expr = normalised(alert["expr"])
    match = THRESHOLD.fullmatch(expr)
    assert match, f"{alert['alert']}: {expr!r} does not end in '> threshold'"
    names = [name for name, query in queries().items() if query == match["query"]]
    assert names, f"{alert['alert']}: {match['query']!r} is no query of {QUERIES.name}"
    return names[0], float(match["threshold"])


def result_labels(expr: str) -> set[str]:
    """The labels of the series that ``expr`` returns: those of its first ``by``, except
    ``le`` (consumed by ``histogram_quantile``)."""
    match = BY.search(expr)
    labels = {label.strip() for label in match[1].split(",")} if match else set()
    return labels - {"le", ""}


def promtool(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run promtool with ``arguments`` from the project's root; skip the test if it is not
    on PATH, or fail it if ``CI`` is set."""
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool is not on PATH (Debian: apt install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so this is a failure, not a skip")
        pytest.skip(reason)
    return subprocess.run(
        [path, *arguments], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_promtool_finds_no_problem_in_the_alerting_rules() -> None:
    result = promtool("check", "rules", str(ALERTS.relative_to(ROOT)))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(alerts())} rules found" in output


def test_promtool_parses_every_query(tmp_path: Path) -> None:
    # Each query as a recording rule: promtool parses its PromQL, as Prometheus would.
    data = yaml.safe_load(QUERIES.read_text(encoding="utf-8"))
    rules = [
        {"record": f"flask_redis:{query['name']}", "expr": query["expr"]}
        for query in data["queries"]
    ]
    path = tmp_path / "queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(rules)} rules found" in output


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    result = promtool("test", "rules", str(ALERT_TESTS.relative_to(ROOT)))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output


def test_the_alerts_are_one_group_named_flask_redis_with_distinct_names() -> None:
    assert [group["name"] for group in groups()] == [GROUP]
    names = [alert["alert"] for alert in alerts()]
    assert names and len(names) == len(set(names))


@pytest.mark.parametrize("alert", alerts(), ids=lambda alert: str(alert["alert"]))
def test_each_alert_is_a_query_above_a_threshold(alert: dict[str, Any]) -> None:
    # 0 is a threshold: a rate above 0 means that the counter grew at all.
    name, threshold = split(alert)
    assert math.isfinite(threshold) and threshold >= 0, (name, threshold)


@pytest.mark.parametrize("alert", alerts(), ids=lambda alert: str(alert["alert"]))
def test_each_alert_must_hold_for_a_while_before_it_fires(alert: dict[str, Any]) -> None:
    assert DURATION.fullmatch(str(alert.get("for", ""))), alert.get("for")


@pytest.mark.parametrize("alert", alerts(), ids=lambda alert: str(alert["alert"]))
def test_each_alert_has_a_severity_and_a_summary_and_description_naming_its_labels(
    alert: dict[str, Any],
) -> None:
    assert alert.get("labels", {}).get("severity") in SEVERITIES
    annotations = alert.get("annotations", {})
    assert set(annotations) >= {"summary", "description"}
    for label in result_labels(normalised(alert["expr"])):
        for name in ("summary", "description"):
            assert f"{{{{ $labels.{label} }}}}" in annotations[name], (name, label)
    assert "$value" in annotations["description"]


def test_each_alert_is_unit_tested_firing_and_not_firing() -> None:
    cases = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))
    assert cases["rule_files"] == [ALERTS.name]
    firing: set[str] = set()
    silent: set[str] = set()
    for test in cases["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {alert["alert"] for alert in alerts()}
    assert (firing, silent) == (names, names)
