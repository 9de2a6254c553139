"""The packages type-check under ``mypy --strict``, as their ``py.typed`` markers promise."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def _release(distribution: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version(distribution).split(".")[:2] if part.isdigit())


# Older releases of the dependencies have no types (Flask-DebugToolbar before 0.16) or
# fewer (Werkzeug 2), so mypy's verdict depends on them: it is taken on the typed ones.
typed_dependencies = pytest.mark.skipif(
    _release("flask") < (3, 0) or _release("flask-debugtoolbar") < (0, 16),
    reason="type-checked against Flask 3 and Flask-DebugToolbar 0.16 or later",
)


@typed_dependencies
@pytest.mark.parametrize("package", ["flask_redis", "flask_redis_panel"])
def test_package_is_mypy_strict_clean(package: str) -> None:
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", package],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("package", ["flask_redis", "flask_redis_panel"])
def test_py_typed_marker_is_shipped(package: str) -> None:
    spec = find_spec(package)
    assert spec is not None and spec.origin is not None
    assert (Path(spec.origin).parent / "py.typed").is_file()
