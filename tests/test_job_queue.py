"""The job queue adapter and the layering of the job code: in-process, a deferred job runs
the function registered for its name; adapters point at no service, view or job, and the
services never at the jobs that call them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from portal.adapters.queue import InProcessQueue, conninfo

PORTAL = Path(__file__).resolve().parent.parent / "portal"


def test_in_process_jobs_run_their_registered_function() -> None:
    ran: list[tuple[str, dict]] = []
    queue = InProcessQueue().register("a", lambda **kw: ran.append(("a", kw)))
    queue.defer("a", x=1)
    told: list[int] = []
    queue.defer_many("a", [{"x": 2}, {"x": 3}], told.append)
    assert ran == [("a", {"x": 1}), ("a", {"x": 2}), ("a", {"x": 3})]
    assert told == [1, 2] and queue.in_process


def test_a_name_may_take_all_its_jobs_at_once() -> None:
    seen: list[list[dict]] = []
    queue = InProcessQueue().register("b", lambda **kw: seen.append([kw]), lambda jobs, progress: seen.append(jobs))
    queue.defer_many("b", [{"part": 0}, {"part": 1}])
    queue.defer("b", part=2)
    assert seen == [[{"part": 0}, {"part": 1}], [{"part": 2}]]


def test_an_unknown_job_is_refused() -> None:
    with pytest.raises(ValueError, match="no job 'nope'"):
        InProcessQueue().defer("nope")


def test_the_queue_speaks_libpq() -> None:
    assert conninfo("postgresql+psycopg://u@h:5/db") == "postgresql://u@h:5/db"


def imports(path: Path) -> set[str]:
    """The portal modules ``path`` imports, as dotted names (relative imports resolved)."""
    package = ".".join(path.relative_to(PORTAL.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("portal")}


@pytest.mark.parametrize("path", sorted((PORTAL / "adapters").glob("*.py")), ids=lambda p: p.name)
def test_adapters_import_no_service_view_or_job(path: Path) -> None:
    bad = {m for m in imports(path) if m.startswith(("portal.services", "portal.views", "portal.jobs"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", sorted((PORTAL / "services").glob("*.py")), ids=lambda p: p.name)
def test_services_never_import_the_jobs(path: Path) -> None:
    bad = {m for m in imports(path) if m.startswith(("portal.jobs", "portal.views"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"
