"""The package type-checks under ``mypy --strict``, as its ``py.typed`` marker promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def test_package_is_mypy_strict_clean() -> None:
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "flask_redis"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_py_typed_marker_is_shipped() -> None:
    import flask_redis

    assert (Path(flask_redis.__file__).parent / "py.typed").is_file()
