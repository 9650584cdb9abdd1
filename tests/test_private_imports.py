"""No module imports a private (``_name``) name from another module (STYLE: shared internals live in
named internal modules with ordinary names, e.g. ``reference/topdown_driver.py``, ``reference/bv_core.py``).

The check reads the source (AST), so it sees lazy imports inside functions too. ``SCOPES`` lists
the directories already cleaned; widen it as the rest of the package follows.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCOPES = ["reference", "specoracle/mutants", "specoracle/selector"]


def private_imports(source: str) -> list[tuple[int, str]]:
    """``(line, "module.name")`` for every ``from M import _name`` / ``import M._name`` in ``source``
    (dunder names such as ``__future__`` are not private)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append((node.lineno, f"{'.' * node.level}{node.module or ''}.{alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                last = alias.name.rsplit(".", 1)[-1]
                if last.startswith("_") and not last.startswith("__"):
                    found.append((node.lineno, alias.name))
    return found


def _modules():
    return [path for scope in SCOPES for path in sorted((ROOT / scope).glob("*.py"))]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_imported_across_files(path):
    bad = private_imports(path.read_text())
    assert not bad, f"{path.relative_to(ROOT)} imports private names: {bad}"


def test_the_check_catches_private_imports():
    """Negative control: the forms that used to appear in the tree are flagged, ordinary ones not."""
    src = (
        "from __future__ import annotations\n"
        "from .topdown import ALL_KINDS, _walk\n"
        "from specoracle.reference.chain import _bv_finish\n"
        "import specoracle.reference._hidden\n"
        "def f():\n"
        "    from .traversal import _child_weight\n"
        "from ._common import positive_part\n"
    )
    assert [name for _, name in private_imports(src)] == [
        ".topdown._walk", "specoracle.reference.chain._bv_finish", "specoracle.reference._hidden",
        ".traversal._child_weight",
    ]


def test_scopes_exist():
    for scope in SCOPES:
        assert (ROOT / scope).is_dir(), scope
