"""Tree adapters: the candidate paths x depth layout (EAGLE / Medusa), EAGLE 1.2.1 itself, and the
linked-tree layout of SGLang / FlashInfer kernels.

Truths used: hand-built trees and certain decisions; EAGLE's own buffer builder
(``generate_tree_buffers``) for the layout; exact laws from the exact engine of small NumPy
verifiers written here from the algorithms' descriptions: recursive rejection sampling without
replacement (the registry's ``rrs_wor``) with the target rows at leaves replaced by the untempered
law ``p^T / Z`` (EAGLE's predicted bug), the unconditional-q variant, and "draw y ~ p, descend while
y is a child" (the law of target-only tree sampling). Chi-squared tests at alpha 0.01, power 0.99
at the stated TV, or designed against the known alternative (``stats.sample_size_for``).
"""
from __future__ import annotations

import numpy as np
import pytest

import torch  # noqa: E402

from specoracle import examples, exact, models, stats  # noqa: E402
from specoracle.adapters.paths import (  # noqa: E402
    PathsVerifier,
    paths_layout,
    reference_paths_verify,
    unconditional_q_paths_verify,
)
from specoracle.adapters.sglang import (  # noqa: E402
    LinkedTrees,
    SGLangTreeVerifier,
    reference_tree_sampling,
    reused_coin_tree_sampling,
)
from specoracle.check import check_lossless, sample_sequences  # noqa: E402
from specoracle.drafting import parse_scheme  # noqa: E402
from specoracle.errors import InvalidInstance  # noqa: E402
from specoracle.instance import Instance, Outcome  # noqa: E402
from specoracle.reference.rrs import rrs_wor  # noqa: E402
from specoracle.tree import Tree, TreeBuilder  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _wor_tree():
    """Root draws tokens 2 then 0; node "2" draws 1 then 3; node "0" draws 1 (V = 4)."""
    b = TreeBuilder(sampling="without_replacement")
    a = b.draw(0, 2)
    c = b.draw(0, 0)
    b.draw(a, 1)
    b.draw(a, 3)
    b.draw(c, 1)
    return b.build()


# --- exact laws written from the algorithms ----------------------------------------------------------
def eagle_predicted(T: float):
    """RRS without replacement, except that the token after an accepted leaf is drawn from the
    untempered law p^T / Z (raw logits T log p through a softmax without the processor)."""
    def verify(inst, rng):
        p = np.array(inst.p, dtype=np.float64)
        for leaf in inst.tree.leaves:
            w = p[leaf] ** T
            p[leaf] = w / w.sum()
        return rrs_wor(Instance(inst.tree, p, inst.q), rng)

    return verify


def unconditional_q(inst, rng):
    """RRS with q_u(x) in every ratio and the full q_u in every residual."""
    t, u = inst.tree, 0
    while True:
        p, q = np.array(inst.p[u], dtype=np.float64), np.asarray(inst.q[u], dtype=np.float64)
        for c in t.draws[u]:
            x = t.tokens[c]
            if rng.bernoulli(min(1.0, p[x] / q[x]), ("accept", c)):
                u = c
                break
            r = np.clip(p - q, 0, None)
            p = r / r.sum() if r.sum() > 0 else p
        else:
            return Outcome(u, rng.categorical(p, ("residual", u)))


def target_only(inst, rng):
    """Draw y ~ p at the current node; descend while y is one of its children."""
    u = 0
    while True:
        y = rng.categorical(inst.p[u], ("draw", u))
        c = inst.tree.child(u, y)
        if c is None:
            return Outcome(u, y)
        u = c


# --- paths layout --------------------------------------------------------------------------------------
def test_paths_layout_by_hand():
    q0 = [0.1, 0.2, 0.3, 0.4]
    rows = {(): q0, (2,): [0.25, 0.25, 0.25, 0.25], (0,): [0.5, 0.5, 0, 0]}
    tree = _wor_tree()
    p = np.full((tree.size, 4), 0.25)
    q = np.array([rows.get(pre, [0.25] * 4) for pre in tree.prefixes])
    lay = paths_layout(Instance(tree, p, q), temperature=0.5, root_token=7)
    assert lay.tree_choices == ((0,), (1,), (0, 0), (0, 1), (1, 0))
    assert lay.tree_tokens.tolist() == [7, 2, 0, 1, 3, 1]
    assert lay.retrieve_indices.tolist() == [[0, 1, 3], [0, 1, 4], [0, 2, 5]]
    assert lay.candidates.tolist() == [[7, 2, 1], [7, 2, 3], [7, 0, 1]]
    # token 0 was drawn after token 2 (q = .3): 0.1 / (1 - 0.3); token 3 after token 1 at "2": .25 / .75
    want = [[1, 0.3, 0.25], [1, 0.3, 0.25 / 0.75], [1, 0.1 / 0.7, 0.5]]
    assert np.allclose(lay.candidate_probs.numpy(), want, atol=1e-7)
    # raw logits are T log p: with T = 0.5, a uniform law gives 0.5 log(1/4) everywhere
    assert np.allclose(lay.logits.numpy(), 0.5 * np.log(0.25), atol=1e-6)


def test_paths_layout_refuses_a_processor_that_does_not_invert_the_raw_logits():
    inst = Instance.from_model(models.random_model(3, 0), _wor_tree_for(3))
    with pytest.raises(InvalidInstance, match="does not map the derived raw logits"):
        paths_layout(inst, temperature=0.7, processor=lambda x: x)  # the verifier forgets its temperature


def _wor_tree_for(V):
    return parse_scheme("wor(2,1)").sample(models.random_model(V, 0), 1)


def test_paths_layout_refuses_iid_duplicates():
    tree = Tree.from_paths([(0, 1), (0, 0)])  # token 0 drawn twice at the root
    inst = Instance(tree, np.full((tree.size, 2), 0.5), np.full((tree.size, 2), 0.5))
    with pytest.raises(InvalidInstance, match="without replacement"):
        paths_layout(inst)


@pytest.mark.parametrize("model,scheme", [("E5", "wor(2,1)"), ("random3", "wor(3,1)")])
def test_reference_paths_verifier_is_lossless(model, scheme):
    m = models.random_model(3, 0) if model == "random3" else model
    v = check_lossless(PathsVerifier(reference_paths_verify, temperature=0.7), m, scheme, tv=0.05, seed=0)
    assert v.method == "chi2" and v.lossless, v.summary()


def _designed_n(verify, model, scheme):
    alt = exact.evaluate(verify, model, parse_scheme(scheme)).extended_law
    return stats.sample_size_for(np.asarray(alt, float), model.target_law(parse_scheme(scheme).depth + 1))


def test_unconditional_q_paths_verifier_is_flagged():
    m = models.random_model(3, 0)  # exact TV of the bug on wor(2,1): 0.080
    n = _designed_n(unconditional_q, m, "wor(2,1)")
    v = check_lossless(PathsVerifier(unconditional_q_paths_verify), m, "wor(2,1)", n=n, seed=0)
    assert not v.lossless, v.summary()


# --- EAGLE 1.2.1 --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def eagle():
    # eagle-llm is a test dependency (scripts/setup.sh installs it with --no-deps): a missing package
    # fails here rather than skipping the one real third-party bug the suite catches in CI
    from specoracle.adapters import eagle

    return eagle


@pytest.mark.parametrize("scheme,seed", [("wor(2,2)", 3), ("wor(3,1)", 4), ("chain(3)", 5)])
def test_paths_layout_matches_eagles_tree_buffers(eagle, scheme, seed):
    from eagle.model.utils import generate_tree_buffers

    m = models.random_model(4, seed)
    lay = paths_layout(Instance.from_model(m, parse_scheme(scheme).sample(m, seed)))
    buf = generate_tree_buffers([list(c) for c in lay.tree_choices], device="cpu")
    assert torch.equal(buf["retrieve_indices"], lay.retrieve_indices)
    op = eagle._op(lay)
    for j, row in enumerate(lay.retrieve_indices.tolist()):
        for i in range(1, len(row)):
            if row[i] < 0:
                continue
            parent = int(lay.parents[row[i]])
            # EAGLE's parent row in op is the draft law at the node's parent
            assert torch.equal(op[i - 1][buf["p_indices"][j][i]], lay.draft_probs[parent])
            # EAGLE's earlier siblings are the nodes drawn before this one at the same parent
            earlier = [c for c in lay.children(parent) if c < row[i]]
            b = buf["b_indices"][j][i]
            assert sorted(int(x) for x in (b.tolist() if len(b) else [])) == earlier


def test_eagle_is_lossless_at_temperature_one(eagle):
    m = models.random_model(3, 2)
    v = check_lossless(eagle.EagleVerifier(1.0), m, "wor(2,2)", tv=0.05, seed=0)
    assert v.lossless, v.summary()


def test_eagle_is_flagged_at_temperature_0_7(eagle):
    # EAGLE 1.2.1 draws the token after an accepted leaf from softmax(raw logits): exact TV 0.058
    m = models.random_model(3, 1)
    n = _designed_n(eagle_predicted(0.7), m, "wor(2,1)")
    v = check_lossless(eagle.EagleVerifier(0.7), m, "wor(2,1)", n=n, seed=0)
    assert v.status == "not lossless" and v.confirmation == "confirmed", v.summary()  # both stages reject


def test_eagle_at_temperature_0_7_follows_the_predicted_law(eagle):
    # the adapter adds no error of its own: EAGLE's extended law is the predicted buggy law
    m, s = models.random_model(3, 1), parse_scheme("wor(2,1)")
    alt = np.asarray(exact.evaluate(eagle_predicted(0.7), m, s).extended_law, float).reshape(-1)
    seq, _ = sample_sequences(eagle.EagleVerifier(0.7), m, s, 4000, seed=1)
    res = stats.chi2_gof(np.bincount(stats.project(seq, 3, "full"), minlength=alt.size), alt)
    assert res.p_value > 0.01, res.table()


# --- SGLang / FlashInfer linked-tree layout ------------------------------------------------------------
def test_linked_layout_and_reference_by_hand():
    tree = _wor_tree()  # pre-order: 0 root, 1 "2", 2 "2,1", 3 "2,3", 4 "0", 5 "0,1"
    p = np.zeros((tree.size, 4))
    p[0] = [0, 0, 1, 0]  # token 2 (first child) is certain: accepted
    p[1] = [0.5, 0, 0, 0.5]  # children 1 (p = 0, rejected) then 3 (p = .5): coin .7 rejects it too
    p[2:] = 0.25
    q = np.full((tree.size, 4), 0.25)
    lt = LinkedTrees([Instance(tree, p, q)])
    assert lt.retrive_next_token.tolist() == [[1, 2, -1, -1, 5, -1]]
    assert lt.retrive_next_sibling.tolist() == [[-1, 4, 3, -1, -1, -1]]
    predicts = torch.full((6,), -1, dtype=torch.int32)
    acc, num = torch.full((1, 3), -1, dtype=torch.int32), torch.zeros(1, dtype=torch.int32)
    u = torch.tensor([[0.3, 0.7, 0.5, 0.5, 0.5, 0.5]])
    reference_tree_sampling(predicts, acc, num, lt.candidates, lt.retrive_index, lt.retrive_next_token,
                            lt.retrive_next_sibling, u, torch.tensor([0.9]), lt.target_probs)
    # accepted node 1 (token 2); at node 1 both children rejected: the final draw is from p without
    # tokens 1 and 3, i.e. token 0
    assert num.tolist() == [1] and acc.tolist() == [[0, 1, -1]] and predicts[[0, 1]].tolist() == [2, 0]


@pytest.mark.parametrize("scheme", ["iid(2,2)", "wor(2,2)", "chain(3)"])
def test_reference_tree_sampling_is_lossless(scheme):
    v = check_lossless(SGLangTreeVerifier(reference_tree_sampling, batch_size=512), "E5", scheme, tv=0.05, seed=0)
    assert v.method == "chi2" and v.lossless, v.summary()


def test_reference_tree_sampling_matches_the_target_only_block_law():
    m, s = examples.E5(), parse_scheme("wor(2,2)")
    law = exact.evaluate(target_only, m, s).block_law
    expected = stats.block_law_cells(law, 4, 2, "length_first")
    n = stats.sample_size(0.02, cells=int((expected > 0).sum()))
    blocks = SGLangTreeVerifier(reference_tree_sampling).sample_blocks(m, s, n, seed=3)
    res = stats.chi2_gof(np.bincount(stats.project(blocks, 4, "length_first"), minlength=len(expected)), expected)
    assert res.p_value > 0.01, res.table()


@pytest.mark.parametrize("kind", ["reused_coin", "threshold_acc"])
def test_tree_sampling_bugs_and_lossy_knobs_are_flagged(kind):
    verifier = (SGLangTreeVerifier(reused_coin_tree_sampling) if kind == "reused_coin"
                else SGLangTreeVerifier(reference_tree_sampling, threshold_acc=0.5))
    v = check_lossless(verifier, "E5", "wor(2,2)", tv=0.05, seed=0)
    assert not v.lossless, v.summary()


def test_tree_sampling_output_contract():
    def jumps(predicts, accept_index, accept_token_num, candidates, *rest, **kw):
        accept_index[:, :2] = torch.tensor([0, 2], dtype=accept_index.dtype)  # node 2 is a grandchild
        accept_token_num[:] = 1
        predicts[:] = 0

    tree = _wor_tree()
    inst = Instance(tree, np.full((tree.size, 4), 0.25), np.full((tree.size, 4), 0.25))
    with pytest.raises(InvalidInstance, match="not its parent"):
        SGLangTreeVerifier(jumps).run([inst], torch.Generator().manual_seed(0))

    def out_of_range(predicts, accept_index, accept_token_num, *rest, **kw):
        accept_index[:, 0] = 0
        predicts[:] = 4

    with pytest.raises(InvalidInstance, match="outside"):
        SGLangTreeVerifier(out_of_range).run([inst], torch.Generator().manual_seed(0))
