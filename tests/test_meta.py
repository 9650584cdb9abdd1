"""Structural checks: light imports, no discarded assertions in tests, every module's docstring
examples run, no private name imported across the front layer's files."""
import ast
import doctest
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_core_imports_do_not_pull_torch_or_cvxpy():
    code = (
        "import sys, specoracle, specoracle.reference, specoracle.exact, specoracle.registry;"
        "specoracle.registry.names();"
        "import specoracle.mutants; specoracle.mutants.catalog();"
        "bad = [m for m in ('torch', 'cvxpy') if m in sys.modules];"
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, f"heavy imports: {out.stdout} {out.stderr}"


DISCARDED = {"allclose", "isclose", "array_equal", "all", "any"}


def _discarded_checks(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            fn = node.value.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in DISCARDED:
                yield node.lineno
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Compare):
            yield node.lineno


@pytest.mark.parametrize("path", sorted((ROOT / "tests").glob("test_*.py")), ids=lambda p: p.name)
def test_no_discarded_assertions(path):
    """A comparison or np.allclose(...) on its own line cannot fail a test (STYLE: avoid)."""
    lines = list(_discarded_checks(ast.parse(path.read_text())))
    assert not lines, f"{path.name}: results discarded on lines {lines}"


def _package_modules() -> list[str]:
    """Every module of the installed package, mapped subpackages included (``__main__`` aside)."""
    names = []
    for top in ("specoracle", "specoracle.reference", "specoracle.lp", "specoracle.gpu", "specoracle.reports"):
        pkg = importlib.import_module(top)
        names.append(top)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, top + ".") if not m.name.endswith("__main__")]
    return sorted(set(names))


MODULES = _package_modules()


def test_every_package_directory_is_walked():
    """A subpackage that the walk misses would lose its doctests silently."""
    for sub in ("reference", "lp", "gpu", "reports", "mutants", "adapters", "selector"):
        assert any(m.startswith(f"specoracle.{sub}.") for m in MODULES), sub


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    """Every module's examples run (modules without examples pass trivially; the list shows them)."""
    mod = importlib.import_module(module)
    failures, _ = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert failures == 0


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_imports(path: Path) -> list[str]:
    """``from m import _x`` and ``m._x`` on an imported name ``m``: private names across files."""
    tree = ast.parse(path.read_text())
    imported, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for a in node.names:
                imported.add(a.asname or a.name)
                if _private(a.name):
                    found.append(f"{path.name}:{node.lineno} imports {a.name}")
        elif isinstance(node, ast.Import):
            imported.update((a.asname or a.name).split(".")[0] for a in node.names)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imported
                and _private(node.attr)):
            found.append(f"{path.name}:{node.lineno} reads {node.value.id}.{node.attr}")
    return found


FRONT = [*sorted((ROOT / "specoracle").glob("*.py")), *sorted((ROOT / "reports").glob("*.py")), ROOT / "gpu" / "checks.py",
         ROOT / "gpu" / "timing.py"]


@pytest.mark.parametrize("path", FRONT, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_private_name_crosses_a_file(path):
    assert _private_imports(path) == []


def test_the_private_name_check_catches_both_forms(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from specoracle.stats import _check_cells\nfrom specoracle import stats\nstats._noncentrality(2, .1, .5)\n")
    assert len(_private_imports(bad)) == 2
