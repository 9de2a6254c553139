"""The packages type-check under ``mypy --strict``, as their ``py.typed`` markers promise."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

pytestmark = [pytest.mark.one_kind, pytest.mark.tool]

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("package", ["flask_redis", "flask_redis_panel"])
def test_package_is_mypy_strict_clean(package: str) -> None:
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
