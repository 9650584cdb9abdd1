"""Issue 13, items 3 and 4: twins refuse the schemes their registry entry refuses, and
``gpu.batch.from_tensors`` enforces the rules of ``Tree`` and ``Instance`` (the same functions).

Each case is an input an adversarial user tried: before the fix it ran silently (a lossy twin, a
wrong law) or failed with a torch traceback.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle import drafting, examples, gpu, registry
from specoracle.errors import InvalidArgument, InvalidInstance, SpecoracleError
from specoracle.gpu import batch as gb
from specoracle.instance import Instance
from specoracle.tree import Tree

V = 3


def _wor_batch():
    model = examples.E5()
    insts = [Instance.from_model(model, drafting.without_replacement((2, 2)).sample(model, s)) for s in range(4)]
    return gb.from_instances(insts, dtype=torch.float64)


def _refusing(kind: str) -> list[str]:
    return [e.name for e in registry.entries() if kind not in e.schemes]


@pytest.mark.parametrize("name", _refusing("without_replacement"))
def test_twin_refuses_a_without_replacement_batch(name):
    """The specinfer twin ran on ``wor(2,2)`` trees and was lossy there (TV 0.027), with no error."""
    batch = _wor_batch()
    assert batch.kinds == {"without_replacement"}
    with pytest.raises(InvalidArgument, match=rf"{name!r} does not accept scheme without_replacement"):
        gpu.twin(name)(batch, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", _refusing("delayed"))
def test_twin_refuses_a_delayed_batch(name):
    model = examples.E5()
    tree = Tree.from_paths([(0, 1, 2), (0, 1, 0)], trunk=2)
    batch = gb.from_instances([Instance.from_model(model, tree)], dtype=torch.float64)
    assert batch.kinds == {"delayed"}
    with pytest.raises(InvalidArgument, match="does not accept scheme delayed"):
        gpu.twin(name)(batch, generator=torch.Generator().manual_seed(0))


def test_batch_kinds_per_tree():
    """A chain, an i.i.d. tree and a delayed tree: the kinds present, from the structure alone."""
    model = examples.E5()
    trees = [Tree.from_paths([(0, 1)]), Tree.from_paths([(0, 1), (1, 1)]), Tree.from_paths([(0, 1), (0, 2)], trunk=1)]
    kinds = [gb.from_instances([Instance.from_model(model, t)]).kinds for t in trees]
    assert kinds == [{"chain"}, {"iid"}, {"delayed"}]
    both = gb.from_instances([Instance.from_model(model, t) for t in trees[:2]])
    assert both.kinds == {"chain", "iid"}
    with pytest.raises(InvalidArgument, match="'naive' does not accept scheme iid"):
        gpu.twin("naive")(both, generator=torch.Generator().manual_seed(0))


def test_twin_schemes_are_the_registry_entries():
    for name, tw in gpu.TWINS.items():
        assert tw.schemes is registry.get(name).schemes


@pytest.mark.parametrize("bad", [float("nan"), 1.0, 1.5, -0.25], ids=["nan", "one", "1.5", "negative"])
def test_twin_refuses_uniforms_outside_the_unit_interval(bad):
    model = examples.E5()
    batch = gb.from_instances([Instance.from_model(model, drafting.chain(2).sample(model, 0))], dtype=torch.float64)
    tw = gpu.twin("bv")
    U = torch.full((1, len(tw.keys(batch))), 0.5, dtype=torch.float64)
    tw(batch, uniforms=U)  # in range: runs
    U[0, -1] = bad
    with pytest.raises(InvalidArgument, match=r"\[0, 1\)"):
        tw(batch, uniforms=U)


# --- from_tensors: the rules of Tree and Instance ------------------------------------------------
def _laws(B=1, N=4):
    p = torch.full((B, N, V), 1 / V, dtype=torch.float64)
    return p, p.clone()


TOK = torch.tensor([[-1, 0, 1, 2]])
CHAIN = torch.tensor([-1, 0, 1, 2])


def test_from_tensors_refuses_duplicate_sibling_tokens():
    """Two children of the root with token 1: the univer twin was then off by TV 0.20."""
    p, q = _laws()
    with pytest.raises(InvalidInstance, match="tree 0: node 2: token 1 appears twice among the children of node 0"):
        gb.from_tensors(torch.tensor([[-1, 1, 1, 0]]), torch.tensor([-1, 0, 0, 2]), p, q)
    # the same rule, the same message, from Tree
    with pytest.raises(InvalidInstance, match="node 2: token 1 appears twice among the children of node 0"):
        Tree((-1, 1, 1, 0), (-1, 0, 0, 2), ((1, 2), (), (3,), ()))


def test_from_tensors_refuses_q_zero_on_a_drafted_token():
    p, q = _laws()
    q[0, 1] = torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64)  # node 2 carries token 1, drafted at node 1
    with pytest.raises(InvalidInstance, match="tree 0: node 2: drafted token 1 has q == 0 at its parent node 1"):
        gb.from_tensors(TOK, CHAIN, p, q)
    with pytest.raises(InvalidInstance, match="node 2: drafted token 1 has q == 0 at its parent node 1"):
        Instance(Tree.from_paths([(0, 1, 2)]), p[0].numpy(), q[0].numpy())


def test_from_tensors_refuses_negative_trunk():
    p, q = _laws()
    with pytest.raises(InvalidInstance, match="trunk must be >= 0, got -1"):
        gb.from_tensors(TOK, CHAIN, p, q, trunk=torch.tensor([-1]))


def test_from_tensors_refuses_parent_minus_one_inside_the_tree():
    """A real node after a ``parent = -1`` node (padding must come last)."""
    p, q = _laws()
    with pytest.raises(InvalidInstance, match="padding nodes must come after the real nodes"):
        gb.from_tensors(TOK, torch.tensor([-1, 0, -1, 1]), p, q)


def test_from_tensors_refuses_negative_tokens_and_wor_repeats():
    p, q = _laws()
    with pytest.raises(InvalidInstance, match="node 2: token -4 is negative"):
        gb.from_tensors(torch.tensor([[-1, 0, -4, 2]]), CHAIN, p, q)
    with pytest.raises(InvalidInstance, match="cannot draw the same child twice"):
        gb.from_tensors(TOK, CHAIN, p, q, multiplicity=torch.tensor([1, 2, 1, 1]), sampling="without_replacement")


@pytest.mark.parametrize("value", [float("nan"), 1.5, -0.5], ids=["nan", "1.5", "negative"])
def test_from_tensors_refuses_bad_probabilities(value):
    p, q = _laws()
    p[0, 2, 0] = value
    with pytest.raises(InvalidInstance, match=r"p\[tree 0, node 2\]"):
        gb.from_tensors(TOK, CHAIN, p, q)


def test_from_tensors_refuses_an_empty_batch():
    """``B = 0`` gave a torch traceback."""
    p, q = _laws(B=0)
    with pytest.raises(InvalidInstance, match=r"B \(trees\) >= 1"):
        gb.from_tensors(torch.zeros((0, 4), dtype=torch.long), CHAIN, p, q)
    with pytest.raises(SpecoracleError):
        gb.from_tensors(torch.zeros((1, 0), dtype=torch.long), torch.zeros(0, dtype=torch.long),
                        torch.zeros((1, 0, V), dtype=torch.float64), torch.zeros((1, 0, V), dtype=torch.float64))


def test_from_tensors_names_the_tree_at_fault():
    """In a batch, the message names the tree, then the node, as Tree's does."""
    p, q = _laws(B=3)
    tok = TOK.expand(3, 4).clone()
    tok[2, 3] = 7
    with pytest.raises(InvalidInstance, match="tree 2: node 3: token 7 is out of range for V=3"):
        gb.from_tensors(tok, CHAIN, p, q)


def test_from_tensors_accepts_what_tree_and_instance_accept():
    """Negative control: valid random instances go through and rebuild the same trees."""
    model = examples.E5()
    rng = np.random.default_rng(3)
    insts = [Instance.from_model(model, drafting.iid(2, 2).sample(model, rng)) for _ in range(20)]
    ref = gb.from_instances(insts, dtype=torch.float64)
    got = gb.from_tensors(ref.tokens, ref.parents, ref.p, ref.q, multiplicity=ref.multiplicity, draws=ref.draws)
    assert [gb.tree_of(got, b) for b in range(20)] == [inst.tree for inst in insts]


def test_coupled_uniforms_that_round_to_one_in_float32_stay_below_one():
    """The report's parity section handed a float32 twin a float64 uniform 1 - 1e-12, which rounds to
    1.0 (refused by check_uniforms); it becomes the largest float32 below 1."""
    import numpy as np
    import torch

    from specoracle.gpu.batch import coupled_uniforms

    U = coupled_uniforms(["a", "b"], [["a", "b"]], [np.array([1 - 1e-12, 0.25])], dtype=torch.float32)
    assert U.dtype == torch.float32 and bool((U < 1).all()) and U[0, 1] == 0.25
    assert U[0, 0] == torch.nextafter(torch.tensor(1.0), torch.tensor(0.0))
