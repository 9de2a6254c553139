"""Reading exact sample values of a prometheus-client registry in tests, and holding a
pool's connections for its gauges."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

COMMANDS = "flask_redis_commands_total"
ERRORS = "flask_redis_command_errors_total"
DURATION = "flask_redis_command_duration_seconds"
REQUEST_COMMANDS = "flask_redis_request_commands"
REQUEST_DURATION = "flask_redis_request_duration_seconds"
POOL = "flask_redis_pool_connections"
POOL_USAGE = "flask_redis_pool_usage_ratio"


class Samples:
    """Exact sample values of one registry; ``None`` where nothing was recorded."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def __call__(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def commands(self, command: str, prefix: str = "redis") -> float | None:
        return self(COMMANDS, prefix=prefix, command=command)

    def round_trips(self, command: str, prefix: str = "redis") -> float | None:
        return self(f"{DURATION}_count", prefix=prefix, command=command)

    def errors(
        self, command: str, error: str, prefix: str = "redis", code: str | None = None
    ) -> float | None:
        """The failed ``command`` counted with exception class ``error``, of any ``code``
        unless one is given; ``None`` where none was counted."""
        wanted = {"prefix": prefix, "command": command, "error": error}
        if code is not None:
            wanted["code"] = code
        values = [
            sample.value
            for family in self.registry.collect()
            for sample in family.samples
            if sample.name == ERRORS and wanted.items() <= sample.labels.items()
        ]
        return sum(values) if values else None

    def request_commands(
        self, endpoint: str, prefix: str = "redis"
    ) -> tuple[float | None, float | None]:
        """``(sum, count)`` of the commands per request of ``endpoint``."""
        labels = {"prefix": prefix, "endpoint": endpoint}
        return (
            self(f"{REQUEST_COMMANDS}_sum", **labels),
            self(f"{REQUEST_COMMANDS}_count", **labels),
        )

    def requests(self, endpoint: str, prefix: str = "redis") -> float | None:
        return self(f"{REQUEST_DURATION}_count", prefix=prefix, endpoint=endpoint)

    def matching(self, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample called ``name`` whose labels include ``labels``, by its labels."""
        return {
            tuple(sorted(sample.labels.items())): sample.value
            for metric in self.registry.collect()
            for sample in metric.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        }

    def prefixes(self) -> set[str]:
        """The ``prefix`` labels of every sample in the registry."""
        return {
            sample.labels["prefix"]
            for metric in self.registry.collect()
            for sample in metric.samples
            if "prefix" in sample.labels
        }


def checked_out(pool: Any) -> Any:
    """A connection taken out of ``pool``, as a command holds it: in use for the gauges."""
    try:
        return pool.get_connection()
    except TypeError:  # redis-py before 5.3 wants a command name
        return pool.get_connection("GET")
