"""The codebase's own rules that import-linter does not see: private names stay in their
module, modules stay small, and every documentation link resolves inside the repo."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.helpers import ROOT

PROJECT = ("orchestrator", "flows", "tests")
MAX_LINES = 500


def _python_files() -> list[Path]:
    return sorted(
        p
        for folder in ("orchestrator", "flows", "tests", "scripts")
        for p in (ROOT / folder).rglob("*.py")
        if "migrations" not in p.parts
    )


def _module_path(dotted: str) -> bool:
    base = ROOT / dotted.replace(".", "/")
    return base.with_suffix(".py").exists() or base.is_dir()


def _private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] not in PROJECT:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                elif _module_path(f"{node.module}.{alias.name}"):
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PROJECT:
                    modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_private_name_is_used_outside_its_module() -> None:
    found = {str(p.relative_to(ROOT)): uses for p in _python_files() if (uses := _private_uses(p))}
    assert found == {}


def test_modules_stay_small() -> None:
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
        for p in (ROOT / "orchestrator").rglob("*.py")
        if "migrations" not in p.parts
    }
    too_big = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert too_big == {}, f"over {MAX_LINES} lines (split by responsibility): {too_big}"


LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_documentation_link_resolves_inside_the_repo(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks are not links
    broken: list[str] = []
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if target.startswith(("http://", "https://", "mailto:", "#", "data:")):
            continue
        local = (document.parent / target.split("#", 1)[0]).resolve()
        if not local.is_relative_to(ROOT) or not local.exists():
            broken.append(target)
    assert broken == [], f"{document.relative_to(ROOT)}: links that do not resolve in the repo"


def test_no_document_points_outside_the_repo() -> None:
    """The project's contract is its own docs/: no page or docstring sends a reader to files
    a clone does not have."""
    outside = {
        str(d.relative_to(ROOT)): sorted(
            set(re.findall(r"\bshared/(?:spec|seeds)\b[\w./*-]*", d.read_text()))
        )
        for d in [*_documents(), *_python_files()]
    }
    assert {name: found for name, found in outside.items() if found} == {}


# Exceptions that are signals between two functions, not errors anyone reports.
NOT_ERRORS = {
    "orchestrator.engine.state.MembershipsNeeded",
    "orchestrator.language.templates.limits.LimitReached",
}


def test_every_error_of_the_project_is_a_campaign_error() -> None:
    """One exception tree: the command line and the web app each map `CampaignError` in one
    place, so an error class outside it would escape that mapping."""
    import importlib
    import inspect
    import pkgutil

    import orchestrator
    from orchestrator.errors import CampaignError

    outside: list[str] = []
    for info in pkgutil.walk_packages(orchestrator.__path__, "orchestrator."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != info.name or name.startswith("_"):
                continue
            error = issubclass(cls, BaseException) and not issubclass(cls, CampaignError)
            if error and f"{info.name}.{name}" not in NOT_ERRORS:
                outside.append(f"{info.name}.{name}")
    assert outside == []


def test_the_command_line_starts_without_its_heavy_libraries() -> None:
    """`campaign --help` loads typer and the command modules only: every command imports
    the language's models, the database, Prefect or the push client in its own body."""
    import subprocess
    import sys

    heavy = ("pydantic", "sqlalchemy", "sqlmodel", "prefect", "fastapi", "networkx", "jinja2")
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from orchestrator.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0 and 'validate' in result.output, result.output\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_packages_are_entered_through_their_public_face() -> None:
    """A package with `__all__` names what the rest of the project may import from it; its
    other modules are its own (tests may look inside)."""
    import importlib

    faces: dict[str, set[str]] = {}
    inits = [*sorted((ROOT / "orchestrator").rglob("__init__.py")), ROOT / "flows" / "__init__.py"]
    for init in inits:
        package = ".".join(init.parent.relative_to(ROOT).parts)
        names = getattr(importlib.import_module(package), "__all__", None)
        if names is not None:
            faces[package] = set(names)
    behind: list[str] = []
    for path in sorted([*(ROOT / "orchestrator").rglob("*.py"), *(ROOT / "flows").glob("*.py")]):
        here = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not node.module or node.level:
                continue
            for package, names in faces.items():
                if here == package or here.startswith(package + "."):
                    continue
                if node.module == package:
                    wanted = {a.name for a in node.names}
                elif node.module.startswith(package + "."):
                    wanted = {node.module[len(package) + 1 :].split(".")[0]}
                else:
                    continue
                behind += [f"{here}:{node.lineno}: {package}.{w}" for w in sorted(wanted - names)]
    assert behind == []
