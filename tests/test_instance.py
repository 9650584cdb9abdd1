"""Every validation rule of Instance: bad input raises InvalidInstance naming what is at fault."""
from fractions import Fraction as F

import numpy as np
import pytest

from specoracle import Instance, InvalidInstance, Tree
from specoracle.errors import InvalidArgument, SpecoracleError

TREE = Tree.from_paths([(1, 0)])  # nodes 0 -> 1 (token 1) -> 2 (token 0)
GOOD_P = np.array([[0.5, 0.5], [0.4, 0.6], [0.3, 0.7]])
GOOD_Q = np.array([[0.2, 0.8], [0.5, 0.5], [0.5, 0.5]])


def _with(table, node, token, value):
    t = table.copy()
    t[node, token] = value
    return t


@pytest.mark.parametrize(
    "p, q, message",
    [
        (_with(GOOD_P, 1, 0, np.nan), GOOD_Q, r"p\[node 1\]: token 0 has non-finite probability nan"),
        (GOOD_P, _with(GOOD_Q, 2, 1, np.inf), r"q\[node 2\]: token 1 has non-finite probability inf"),
        (_with(_with(GOOD_P, 0, 0, -0.1), 0, 1, 1.1), GOOD_Q, r"p\[node 0\]: token 0 has negative probability -0.1"),
        (_with(GOOD_P, 2, 0, 0.35), GOOD_Q, r"p\[node 2\] sums to 1.05.*not 1 \(tolerance 1e-09\)"),
        (GOOD_P[:2], GOOD_Q[:2], r"p has 2 rows but the tree has N=3 nodes"),
        (GOOD_P, GOOD_Q[:, :1], r"q has shape \(3, 1\), expected the shape of p \(3, 2\)"),
        (GOOD_P[0], GOOD_Q[0], r"shape \[N, V\]"),
        (np.zeros((3, 0)), np.zeros((3, 0)), r"V must be >= 1"),
        (GOOD_P, _with(_with(GOOD_Q, 0, 1, 0.0), 0, 0, 1.0), r"node 1: drafted token 1 has q == 0 at its parent node 0"),
    ],
    ids=["nan", "inf", "negative", "sum", "rows", "q-shape", "1d", "V0", "q-zero"],
)
def test_validation_messages(p, q, message):
    with pytest.raises(InvalidInstance, match=message):
        Instance(TREE, p, q)


def test_token_out_of_range():
    t = Tree.from_paths([(2,)])
    with pytest.raises(InvalidInstance, match=r"node 1: token 2 is out of range for V=2"):
        Instance(t, GOOD_P[:2], GOOD_Q[:2])


def test_parent_not_before_child():
    with pytest.raises(InvalidInstance, match="parent 2 does not come before the child"):
        Tree(tokens=(-1, 0, 1), parents=(-1, 2, 0), draws=((2,), (), (1,)))


def test_tolerance_is_configurable_and_nothing_is_renormalised():
    p = _with(GOOD_P, 2, 0, 0.30001)
    with pytest.raises(InvalidInstance):
        Instance(TREE, p, GOOD_Q)
    inst = Instance(TREE, p, GOOD_Q, atol=1e-3)
    assert inst.p[2, 0] == 0.30001  # kept as given


def test_rational_tables_must_sum_exactly():
    p = np.array([[F(1, 2), F(1, 2)], [F(1, 3), F(2, 3)], [F(1, 2), F(1, 2)]], dtype=object)
    q = np.array([[F(1, 2), F(1, 2)]] * 3, dtype=object)
    assert Instance(TREE, p, q).rational
    bad = p.copy()
    bad[1, 1] = F(1, 2)
    with pytest.raises(InvalidInstance, match=r"p\[node 1\] sums to 5/6, not exactly 1"):
        Instance(TREE, bad, q)


def test_wrong_types():
    with pytest.raises(InvalidArgument, match="specoracle.Tree"):
        Instance("tree", GOOD_P, GOOD_Q)
    with pytest.raises(InvalidArgument, match="array of numbers"):
        Instance(TREE, [["a", "b"]] * 3, GOOD_Q)


def test_errors_share_one_family():
    assert issubclass(InvalidInstance, ValueError) and issubclass(InvalidInstance, SpecoracleError)
    assert issubclass(InvalidArgument, TypeError)


def test_instance_arrays_are_read_only():
    inst = Instance(TREE, GOOD_P, GOOD_Q)
    with pytest.raises(ValueError):
        inst.p[0, 0] = 1.0
