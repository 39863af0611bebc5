"""The layers of docs/architecture.md, checked on every import in the package:
views → services → billing_core, adapters on the side, nothing pointing back up."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PORTAL = Path(__file__).resolve().parents[1] / "portal"

#: What each layer must never import (module prefixes, as absolute names).
FORBIDDEN = {
    "billing_core": (
        "portal.views",
        "portal.services",
        "portal.adapters",
        "portal.web",
        "portal.app",
        "portal.jobs",
        "portal.cli",
        "starlette",
    ),
    "adapters": ("portal.views", "portal.services", "portal.web", "portal.app", "portal.jobs", "portal.cli"),
    "services": ("portal.views", "portal.web", "portal.app", "portal.jobs", "portal.cli", "starlette"),
}
WALL_CLOCK = re.compile(r"\b(date\.today|datetime\.now|datetime\.utcnow|utcnow|time\.time)\(")
QUERY = re.compile(r"select\(|session\.get\(|\.execute\(")


def _modules(layer: str) -> list[Path]:
    return sorted((PORTAL / layer).rglob("*.py"))


def _imports(path: Path) -> list[str]:
    package = "portal." + ".".join(path.relative_to(PORTAL).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
                names += [module] + [f"{module}.{alias.name}" for alias in node.names]
            else:
                names.append(node.module or "")
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_imports_only_point_down(layer):
    wrong = [
        f"{path.relative_to(PORTAL)} imports {name}"
        for path in _modules(layer)
        for name in _imports(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[layer])
    ]
    assert wrong == []


def test_views_do_not_query():
    found = [
        f"{path.relative_to(PORTAL)}:{n}: {line.strip()}"
        for path in _modules("views")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if QUERY.search(line)
    ]
    assert found == []


def test_the_core_never_reads_the_wall_clock():
    found = [
        f"{path.relative_to(PORTAL)}:{n}: {line.strip()}"
        for path in _modules("billing_core")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if WALL_CLOCK.search(line) and not line.lstrip().startswith("#")
    ]
    assert found == []
