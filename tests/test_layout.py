"""The layout of the packages keeps the promises of ``docs/internals.rst``.

Private means private: no ``_name`` of one module is imported or read by another (a module
that is internal to a package is private as a whole, and its names are not); no module
imports itself back through others, not even under ``TYPE_CHECKING``; the hot path and the
shared helpers import nothing of the project; the public API is ``flask_redis.__all__``,
and ``docs/api.rst`` documents exactly it; no function is more complex than 20.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import flask_redis

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("flask_redis", "flask_redis_panel")
SOURCES = sorted(
    [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    + list((ROOT / "docs" / "_ext").glob("*.py"))
)
#: The modules that must import nothing of the project: the hot path and the leaf helpers.
LEAVES = ("flask_redis._instrument", "flask_redis._commands")
COMPLEXITY_LIMIT = 20


def _module_name(path: Path) -> str:
    relative = path.relative_to(ROOT).with_suffix("")
    parts = list(relative.parts)
    if parts[0] == "docs":
        return "docs._ext." + parts[-1]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in SOURCES}


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute name of the module that ``node`` imports from, in ``module``."""
    if not node.level:
        return node.module or ""
    package = module.split(".")
    is_package = MODULES[module].name == "__init__.py"
    base = package[: len(package) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def _project(name: str) -> str | None:
    """The project module that an imported name refers to, if it is one."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """``(project module, imported name or None, line)`` for each import in ``module``."""
    found = []
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _project(alias.name)
                if target:
                    found.append((target, None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                submodule = _project(f"{source}.{alias.name}")
                if submodule and submodule != _project(source):
                    found.append((submodule, None, node.lineno))
                elif _project(source):
                    found.append((_project(source) or "", alias.name, node.lineno))
    return found


def _module_aliases(module: str) -> dict[str, str]:
    """The local names under which ``module`` binds other project modules."""
    aliases = {}
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                submodule = _project(f"{source}.{alias.name}")
                if submodule and submodule != _project(source):
                    aliases[alias.asname or alias.name] = submodule
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and _project(alias.name):
                    aliases[alias.asname] = alias.name
    return aliases


def test_no_private_name_is_imported_from_another_module() -> None:
    crossing = [
        f"{module}:{line} imports {name} from {source}"
        for module in MODULES
        for source, name, line in _imports(module)
        if name and name.startswith("_") and source != module
    ]
    assert crossing == []


def test_no_private_name_is_read_through_another_module() -> None:
    crossing = []
    for module, path in MODULES.items():
        aliases = _module_aliases(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
            ):
                crossing.append(f"{module}:{node.lineno} reads {node.value.id}.{node.attr}")
    assert crossing == []


def _graph() -> dict[str, set[str]]:
    return {
        module: {source for source, _, _ in _imports(module) if source != module}
        for module in MODULES
    }


def test_no_module_imports_itself_back() -> None:
    graph = _graph()
    cycles = []
    for start in graph:
        seen: set[str] = set()
        stack = [(start, [start])]
        while stack:
            current, trail = stack.pop()
            for target in graph[current]:
                if target == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif target not in seen and not (
                    # a package imports its own modules to export them: that is not a cycle
                    start.startswith(target + ".") and MODULES[target].name == "__init__.py"
                ):
                    seen.add(target)
                    stack.append((target, [*trail, target]))
    assert cycles == []


@pytest.mark.parametrize("leaf", LEAVES)
def test_leaf_module_imports_nothing_of_the_project(leaf: str) -> None:
    assert _graph()[leaf] == set()


def _documented(page: str, module: str) -> set[str]:
    """The names that ``page`` documents with autodoc under ``.. module:: module``."""
    names = set()
    current = None
    for line in page.splitlines():
        declared = re.match(r"\.\. (?:py:)?module:: (\S+)", line)
        if declared:
            current = declared.group(1)
        documented = re.match(r"\.\. auto(?:class|function|exception|data):: (\S+)", line)
        if documented and current == module and "." not in documented.group(1):
            names.add(documented.group(1))
    return names


def test_public_api_is_what_the_api_page_documents() -> None:
    page = (ROOT / "docs" / "api.rst").read_text(encoding="utf-8")
    assert _documented(page, "flask_redis") == set(flask_redis.__all__)


def test_package_exports_only_its_api() -> None:
    public = {
        name
        for name in vars(flask_redis)
        if not name.startswith("_") and name not in ("annotations",)
    }
    assert public == set(flask_redis.__all__) - {"__version__"}


def test_no_function_is_more_complex_than_the_limit() -> None:
    radon = pytest.importorskip("radon.complexity")
    complex_ = [
        f"{_module_name(path)}:{block.lineno} {block.fullname} ({block.complexity})"
        for path in SOURCES
        for block in radon.cc_visit(path.read_text(encoding="utf-8"))
        if block.complexity > COMPLEXITY_LIMIT
    ]
    assert complex_ == []


def test_internals_page_lists_every_module() -> None:
    page = (ROOT / "docs" / "internals.rst").read_text(encoding="utf-8")
    listed = set(re.findall(r"^   \* - ``([\w/]+\.py)``", page, flags=re.MULTILINE))
    modules = {
        path.relative_to(ROOT).as_posix()
        for path in SOURCES
        if path.relative_to(ROOT).parts[0] in PACKAGES
    }
    assert listed == modules
