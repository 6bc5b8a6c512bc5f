"""The house's dependency rules (.importlinter) hold, and breaking one fails the run."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("chronosx", "governance", "ledger", "exchange", "compliance")
# Imports a function body may make, none of them to dodge a cycle: Django loads models
# before an app's ready(), so the tasks that register pipeline stages and heartbeats are
# imported there; ccxt is heavy, so only a process that routes to a ccxt venue loads it.
ALLOWED_LOCAL_IMPORTS = {
    ("governance/apps.py", "governance"),
    ("governance/apps.py", "governance.roles"),
    ("exchange/apps.py", "exchange"),
    ("exchange/venues/__init__.py", "exchange.venues.ccxt_venue"),
}


def lint_imports(cwd: Path):
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_import_of_the_exchange_in_governance_breaks_the_run(tmp_path):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "migrations"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    controls = tmp_path / "governance" / "selectors" / "controls.py"
    controls.write_text(controls.read_text() + "\nfrom exchange.models import Order  # noqa\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert "Governance never imports the exchange BROKEN" in result.stdout
    assert "governance.selectors.controls -> exchange.models" in result.stdout


def _local_project_imports(path: Path):
    """(module imported) for every import of the project made inside a function body."""
    tree = ast.parse(path.read_text(), str(path))
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            yield from (name for name in names if name.split(".")[0] in PACKAGES)


def test_no_function_body_imports_the_project_to_dodge_a_cycle():
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            relative = str(path.relative_to(ROOT))
            found |= {(relative, module) for module in _local_project_imports(path)}
    assert found <= ALLOWED_LOCAL_IMPORTS, sorted(found - ALLOWED_LOCAL_IMPORTS)
