"""Gunicorn's settings for the showcase, as ``docs/metrics.rst`` asks for under gunicorn.

Pass it with ``--config``, from the project root, as ``README.rst`` does::

    gunicorn --config examples/gunicorn.conf.py --bind 127.0.0.1:8000 --workers 2 \\
        --chdir examples "comments:create_app(redis_url='redis://127.0.0.1:6379', debug=False)"

The workers add their metrics up in prometheus-client's multiprocess mode: set
``PROMETHEUS_MULTIPROC_DIR`` to an empty folder before gunicorn starts. Without it this
file stops gunicorn at once, rather than let each worker serve its own metrics only.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import multiprocess

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    raise RuntimeError(
        "PROMETHEUS_MULTIPROC_DIR is not set: set it to an empty folder that the workers can"
        " write to before gunicorn starts, so that /metrics adds up the metrics of all of"
        " them (see examples/README.rst)"
    )


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: drop its live gauges, such as its pool's connections, from the sums.

    Its counters and histograms stay: totals do not drop when gunicorn replaces a worker.
    """
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
