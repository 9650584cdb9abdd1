"""Torch drafting against the reference drafting, the batch layout, and the traversal event order.

Truths: ``Scheme.draft`` through ``Coupled`` with the same uniforms (identical trees, node for
node); ``Scheme.enumerate`` (exact tree law) for the chi-squared test of independently drafted
trees; the model's own ``p``/``q`` for the tables.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle import Instance, Tree, drafting, examples, models
from specoracle.errors import InvalidArgument
from specoracle.randomness import Coupled
from specoracle.stats import chi2_gof

from specoracle.gpu import batch as gb  # noqa: E402
from specoracle.gpu import drafting as gd  # noqa: E402
from specoracle.gpu.traversal import event_order  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCHEMES = (
    drafting.chain(3),
    drafting.iid(1, 2),
    drafting.iid(3, 2),
    drafting.iid(4, 3),
    drafting.delayed(3, 1, 2),
    drafting.delayed(2, 2, 0),
    drafting.without_replacement((2, 2)),
    drafting.without_replacement((3, 1)),
)
MODELS = {"E5": examples.E5, "E3": examples.E3, "random6": lambda: models.random_model(6, seed=4, divergence=0.8)}
_V = {"E5": 4, "E3": 2, "random6": 6}
# without replacement needs branching <= V (E3 has V = 2)
PAIRS = [(m, s) for m in sorted(MODELS) for s in SCHEMES if max(s.branching, default=0) <= _V[m]]


def _tree_of(batch: gb.TreeBatch, b: int) -> Tree:
    """Row b as a Tree, checking that its real nodes come first and padding after."""
    n = int(batch.valid[b].sum())
    assert bool(batch.valid[b, :n].all()) and not bool(batch.valid[b, n:].any())
    return gb.tree_of(batch, b)


@pytest.mark.parametrize(("model_name", "scheme"), PAIRS, ids=[f"{m}-{s.name}" for m, s in PAIRS])
def test_shared_uniforms_give_the_reference_trees(model_name, scheme):
    """Node ids, tokens, parents, draw lists, multiplicities and laws equal the reference's."""
    model = MODELS[model_name]()
    table = gd.TableModel(model, scheme.depth)
    keys = gd.draft_keys(scheme)
    B = 300
    U = np.random.default_rng(7).random((B, len(keys)))
    batch = gd.draft(table, scheme, B, uniforms=torch.as_tensor(U))
    for b in range(B):
        ref = scheme.draft(model, Coupled(U[b], keys))
        assert _tree_of(batch, b) == ref, b
        n = ref.size
        assert batch.multiplicity[b, :n].tolist() == list(ref.multiplicity)
        inst = Instance.from_model(model, ref)
        assert torch.equal(batch.p[b, :n], torch.as_tensor(np.array(inst.p)))
        assert torch.equal(batch.q[b, :n], torch.as_tensor(np.array(inst.q)))


@pytest.mark.parametrize("scheme", [drafting.iid(2, 2), drafting.delayed(2, 1, 1), drafting.without_replacement((2, 1))],
                         ids=lambda s: s.name)
def test_independent_drafting_matches_the_exact_tree_law(scheme):
    """Chi-squared of drafted trees against ``Scheme.enumerate`` (alpha = 1e-3, fixed seed)."""
    model = examples.E5()
    law = scheme.enumerate(model)
    index = {tree: i for i, (tree, _) in enumerate(law)}
    n = 20_000
    batch = gd.draft(gd.TableModel(model, scheme.depth), scheme, n, generator=torch.Generator().manual_seed(3))
    counts = np.zeros(len(law))
    sig = {}
    rows = torch.cat([batch.tokens, batch.parents, batch.draws.reshape(n, -1)], 1).tolist()
    for b, row in enumerate(rows):
        key = tuple(row)
        if key not in sig:
            sig[key] = index[_tree_of(batch, b)]  # a tree outside the support raises KeyError
        counts[sig[key]] += 1
    res = chi2_gof(counts, np.array([pr for _, pr in law]))
    assert res.p_value > 1e-3, res.table()


def test_from_instances_round_trips_trees_and_laws():
    model = examples.E5()
    rng = np.random.default_rng(1)
    insts = [Instance.from_model(model, s.sample(model, rng)) for s in SCHEMES[:6] for _ in range(5)]
    batch = gb.from_instances(insts, dtype=torch.float64)
    assert batch.N == max(i.N for i in insts)
    for b, inst in enumerate(insts):
        assert _tree_of(batch, b) == inst.tree
        assert torch.equal(batch.p[b, : inst.N], torch.as_tensor(np.array(inst.p)))


def test_table_model_rows_are_the_model_laws():
    model = examples.E5()
    table = gd.TableModel(model, 3)
    prefix = torch.tensor([[0, 3, 1], [2, 2, 2], [1, 0, 3]])
    p, q = table.laws(prefix)
    for r, pre in enumerate(prefix.tolist()):
        assert p[r].tolist() == model.p(pre).tolist()
        assert q[r].tolist() == model.q(pre).tolist()


def test_hash_model_is_a_deterministic_pair_of_laws():
    hm = gd.HashModel(1000, seed=3, dtype=torch.float64)
    pre = torch.tensor([[1, 2], [1, 3], [1, 2]])
    p, q = hm.laws(pre)
    assert torch.allclose(p.sum(1), torch.ones(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(q.sum(1), torch.ones(3, dtype=torch.float64), atol=1e-12)
    assert torch.equal(p[0], p[2]) and not torch.equal(p[0], p[1])
    assert not torch.equal(p[0], q[0])


def test_padding_entries_are_skipped_by_both_models():
    """``-1`` entries anywhere in a prefix are padding: the law is the one of the real tokens."""
    model = examples.E5()
    table = gd.TableModel(model, 3)
    hm = gd.HashModel(500, seed=1, dtype=torch.float64)
    padded = torch.tensor([[-1, -1, 0, 3], [2, -1, 2, -1], [-1, -1, -1, -1]])
    plain = [[0, 3], [2, 2], []]
    p, q = table.laws(padded)
    hp, hq = hm.laws(padded)
    for r, pre in enumerate(plain):
        assert p[r].tolist() == model.p(tuple(pre)).tolist() and q[r].tolist() == model.q(tuple(pre)).tolist()
        ref_p, ref_q = hm.laws(torch.tensor([pre], dtype=torch.long).reshape(1, len(pre)))
        assert torch.equal(hp[r], ref_p[0]) and torch.equal(hq[r], ref_q[0])


@pytest.mark.parametrize("scheme", [drafting.iid(3, 2), drafting.delayed(2, 1, 1), drafting.without_replacement((2, 2))],
                         ids=lambda s: s.name)
def test_drafting_at_a_context_is_drafting_from_the_shifted_model(scheme):
    """Row ``b`` drafted after ``context[b]`` is the reference tree of ``exact.shifted(model, context[b])``."""
    from specoracle.exact import shifted

    model = examples.E5()
    B = 120
    rng = np.random.default_rng(3)
    contexts = [tuple(rng.integers(0, 4, size=int(rng.integers(0, 4)))) for _ in range(B)]
    ctx = torch.full((B, 3), -1, dtype=torch.long)
    for b, c in enumerate(contexts):
        ctx[b, 3 - len(c):] = torch.tensor(c, dtype=torch.long)
    keys = gd.draft_keys(scheme)
    U = rng.random((B, len(keys)))
    batch = gd.draft(gd.TableModel(model, 3 + scheme.depth), scheme, B, uniforms=torch.as_tensor(U), context=ctx)
    for b, c in enumerate(contexts):
        m = shifted(model, c)
        ref = scheme.draft(m, Coupled(U[b], keys))
        assert _tree_of(batch, b) == ref, b
        inst = Instance.from_model(m, ref)
        assert torch.equal(batch.p[b, : ref.size], torch.as_tensor(np.array(inst.p)))
        assert torch.equal(batch.q[b, : ref.size], torch.as_tensor(np.array(inst.q)))
    with pytest.raises(InvalidArgument, match="context"):
        gd.draft(gd.TableModel(model, 4), scheme, B, uniforms=torch.as_tensor(U), context=ctx[:5])


def test_table_model_refuses_huge_tables():
    with pytest.raises(InvalidArgument, match="prefixes"):
        gd.TableModel(models.random_model(10, seed=0), 7)


def test_wor_drafting_needs_enough_support():
    model = models.context_free([0.5, 0.5, 0.0], [0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="q > 0"):
        gd.draft(gd.TableModel(model, 1), drafting.without_replacement((3,)), 4, generator=torch.Generator().manual_seed(0))


def _events_by_recursion(tree: Tree) -> list[tuple[int, bool]]:
    out: list[tuple[int, bool]] = []

    def rec(u: int) -> None:
        if u:
            out.append((u, True))
        for c in tree.children[u]:
            rec(c)
        out.append((u, False))

    rec(0)
    return out


def test_traversal_event_order_is_the_recursion_order():
    model = examples.E5()
    rng = np.random.default_rng(5)
    insts = [Instance.from_model(model, s.sample(model, rng)) for s in SCHEMES[:6] for _ in range(3)]
    wor = [Instance.from_model(model, SCHEMES[6].sample(model, rng))]
    for group in (insts, wor):
        _check_events(group)


def _check_events(insts):
    batch = gb.from_instances(insts, dtype=torch.float64)
    node, enter = event_order(batch)
    for b, inst in enumerate(insts):
        want = _events_by_recursion(inst.tree)
        got = [(int(n), bool(e)) for n, e in zip(node[b], enter[b]) if n >= 0]
        assert got == want


@pytest.mark.cuda
def test_drafting_on_cuda_matches_cpu():
    model = examples.E5()
    scheme = drafting.iid(3, 2)
    U = torch.as_tensor(np.random.default_rng(0).random((500, len(gd.draft_keys(scheme)))))
    cpu = gd.draft(gd.TableModel(model, 2), scheme, 500, uniforms=U)
    gpu_b = gd.draft(gd.TableModel(model, 2, device="cuda"), scheme, 500, uniforms=U.cuda())
    assert torch.equal(cpu.tokens, gpu_b.tokens.cpu()) and torch.equal(cpu.draws, gpu_b.draws.cpu())


# --- batches from raw tensors (the serving-engine entry point) ------------------------------------
@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda s: s.name)
def test_from_tensors_rebuilds_the_instance_batch(scheme):
    """Every field equals ``from_instances``; with the default (grouped) draw lists too whenever the
    reference's draw order is grouped."""
    model = examples.E5()
    rng = np.random.default_rng(5)
    insts = [Instance.from_model(model, scheme.sample(model, rng)) for _ in range(30)]
    ref = gb.from_instances(insts, dtype=torch.float64)
    got = gb.from_tensors(ref.tokens, ref.parents, ref.p, ref.q, multiplicity=ref.multiplicity, draws=ref.draws,
                          sampling=ref.sampling, trunk=ref.trunk)
    for name in ("tokens", "parents", "depth", "valid", "draws", "multiplicity", "p", "q", "trunk"):
        assert torch.equal(getattr(got, name), getattr(ref, name)), name
    assert got.L == ref.L and got.sampling == ref.sampling
    grouped = gb.from_tensors(ref.tokens, ref.parents, ref.p, ref.q, multiplicity=ref.multiplicity,
                              sampling=ref.sampling, trunk=ref.trunk)
    for b, inst in enumerate(insts):
        want = [sorted(d) for d in inst.tree.draws]
        assert [sorted(c for c in grouped.draws[b, u].tolist() if c >= 0) for u in range(inst.N)] == want


def test_from_tensors_shared_topology_runs_a_twin():
    """``parents`` [N] shared by the batch (chains): the naive twin gives the same result as on the
    instance batch, under the same uniforms."""
    from specoracle import gpu

    model = examples.E5()
    rng = np.random.default_rng(2)
    insts = [Instance.from_model(model, drafting.chain(3).sample(model, rng)) for _ in range(50)]
    ref = gb.from_instances(insts, dtype=torch.float64)
    got = gb.from_tensors(ref.tokens, torch.tensor([-1, 0, 1, 2]), ref.p, ref.q)
    tw = gpu.twin("naive")
    U = torch.rand((50, len(tw.keys(ref))), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a, b = tw(ref, uniforms=U), tw(got, uniforms=U)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.node, b.node)


def test_from_tensors_rejects_malformed_trees():
    p = torch.full((1, 4, 3), 1 / 3, dtype=torch.float64)
    tok = torch.tensor([[-1, 0, 1, 2]])
    with pytest.raises(ValueError, match="pre-order"):
        gb.from_tensors(tok, torch.tensor([-1, 0, 0, 1]), p, p)  # node 3's parent 1 is off the path to 2
    with pytest.raises(ValueError, match="does not come before"):
        gb.from_tensors(tok, torch.tensor([-1, 2, 0, 1]), p, p)
    with pytest.raises(ValueError, match="root"):
        gb.from_tensors(tok, torch.tensor([0, 0, 1, 2]), p, p)
    with pytest.raises(ValueError, match="after the real nodes"):
        gb.from_tensors(tok, torch.tensor([-1, -1, 0, 2]), p, p)
    with pytest.raises(ValueError, match="out of range for V=3"):
        gb.from_tensors(torch.tensor([[-1, 0, 3, 2]]), torch.tensor([-1, 0, 1, 2]), p, p)
    with pytest.raises(ValueError, match="sums to"):
        gb.from_tensors(tok, torch.tensor([-1, 0, 1, 2]), p * 1.1, p)
    with pytest.raises(ValueError, match="not a child of node"):
        gb.from_tensors(tok, torch.tensor([-1, 0, 1, 2]), p, p, draws=torch.tensor([[[2], [2], [3], [-1]]]))
    with pytest.raises(ValueError, match="as often as"):
        gb.from_tensors(tok, torch.tensor([-1, 0, 1, 2]), p, p, draws=torch.tensor([[[1, 1], [2, -1], [3, -1], [-1, -1]]]))
    with pytest.raises(InvalidArgument, match="shape"):
        gb.from_tensors(tok, torch.tensor([-1, 0, 1]), p, p)
    with pytest.raises(InvalidArgument, match="dtype"):
        gb.from_tensors(tok, torch.tensor([-1, 0, 1, 2]), p, p.float())
