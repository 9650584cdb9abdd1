"""Structural checks: light imports, no discarded assertions in tests, docstring examples run."""
import ast
import doctest
import importlib
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


@pytest.mark.parametrize(
    "module",
    ["specoracle.tree", "specoracle.models", "specoracle.instance", "specoracle.randomness", "specoracle.exact"],
)
def test_docstring_examples(module):
    mod = importlib.import_module(module)
    failures, _ = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert failures == 0
