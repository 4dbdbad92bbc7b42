"""`pip install -e .[test]` then `pytest` works: every module the code imports is a declared dependency.

The package's own code needs only `dependencies`; tests and the mock's test helpers may also use the `test`
extra. A module that is merely pulled in by another dependency does not count: it can vanish with its next
release (this is how `psutil`, imported by the soak test, went missing from the test extra).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
OWN = {"agent", "fixtures", "tests", "bench"}
PART_OF = {"pydantic-core": "pydantic"}  # a distribution released with a declared one, in lockstep


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements: list[str]) -> set[str]:
    return {normalized(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]) for requirement in requirements}


def imported_modules(folder: Path) -> Iterator[tuple[str, Path]]:
    """(top-level module, file) of every absolute import in the folder's Python files, nested ones included."""
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                yield from ((alias.name.split(".")[0], path) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                yield node.module.split(".")[0], path


def undeclared(folders: list[str], allowed: set[str]) -> list[str]:
    local = {path.stem for folder in folders for path in (REPO / folder).rglob("*.py")}  # agentkit, reliakit ...
    owners = packages_distributions()
    missing = set()
    for module, path in (found for folder in folders for found in imported_modules(REPO / folder)):
        if module in sys.stdlib_module_names or module in OWN | local or module == "__future__":
            continue
        dists = {normalized(dist) for dist in owners.get(module, [module])}
        if not {PART_OF.get(dist, dist) for dist in dists} & allowed:
            missing.add(f"{module} (imported by {path.relative_to(REPO)})")
    return sorted(missing)


def test_the_package_imports_only_its_dependencies_and_optional_features() -> None:
    features = [name for name in PROJECT["optional-dependencies"] if name not in ("test", "bench")]  # ocr, keyring
    allowed = declared(PROJECT["dependencies"]).union(*(declared(PROJECT["optional-dependencies"][f]) for f in features))
    assert undeclared(["agent"], allowed) == []


@pytest.mark.parametrize("folder", ["tests", "fixtures"])
def test_tests_import_only_dependencies_and_the_test_extra(folder: str) -> None:
    allowed = declared(PROJECT["dependencies"]) | declared(PROJECT["optional-dependencies"]["test"])
    assert undeclared([folder], allowed) == []


def test_the_test_extra_holds_the_linters_ci_runs() -> None:
    assert {"ruff", "mypy"} <= declared(PROJECT["optional-dependencies"]["test"])
