"""The apps of ``examples/``, imported for the tests as modules."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

FOLDER = Path(__file__).resolve().parent.parent / "examples"


@contextmanager
def imported(filename: str) -> Iterator[ModuleType]:
    """``examples/<filename>`` imported as a module, for as long as the block runs."""
    name = f"example_{Path(filename).stem}"
    spec = importlib.util.spec_from_file_location(name, FOLDER / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Put back whatever sys.modules held under the name, as monkeypatch does.
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        yield module
