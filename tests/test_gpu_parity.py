"""Shared-randomness parity of every torch twin with its NumPy reference (generated from the registry).

Truth: the reference verifier run on the same uniforms through ``Coupled`` (its published key
layout). float64 must agree on every instance; float32 may differ only at near ties
(``|u - threshold| < 1e-6`` for some decision of the reference run). CI runs 1,000 instances per
verifier x scheme; the 10,000-instance sweep is marked slow (numbers in the issue's closing note).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle import Instance, drafting, examples, models, registry
from specoracle.errors import InvalidArgument
from specoracle.randomness import categorical_from_uniform

from specoracle import gpu  # noqa: E402
from specoracle.gpu import batch as gb  # noqa: E402
from specoracle.gpu.chain import BV, NAIVE  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCHEMES = (drafting.chain(3), drafting.iid(2, 2), drafting.delayed(2, 1, 1), drafting.without_replacement((2, 2)))
# stateful verifiers: here their first call (state None); whole sequences below
CASES = [(e.name, s) for e in registry.entries() for s in SCHEMES if e.accepts(s)]
IDS = [f"{n}-{s.name}" for n, s in CASES]


def test_every_verifier_has_a_twin():
    """Every registered verifier, stateful ones included, has a torch twin."""
    missing = [name for name in registry.names() if name not in gpu.TWINS]
    assert not missing, f"registered verifiers without a torch twin: {missing}"


def test_twin_lookup_errors_name_the_valid_twins():
    with pytest.raises(KeyError, match="naive"):
        gpu.twin("naiive")


@pytest.mark.parametrize(("name", "scheme"), CASES, ids=IDS)
def test_parity_float64_exact(name, scheme):
    """E5 (V=4, context dependent; catches every mutant of ALGORITHMS-2 §11): zero mismatches."""
    res = gpu.parity(name, examples.E5(), scheme, n_instances=1000, dtype=torch.float64, seed=11)
    assert res.mismatches == 0, res.examples


@pytest.mark.parametrize(("name", "scheme"), CASES, ids=IDS)
def test_parity_float32_only_near_ties(name, scheme):
    """Random V=6 model (continuous values): float32 mismatches, if any, are near ties."""
    model = models.random_model(6, seed=5, divergence=0.7)
    res = gpu.parity(name, model, scheme, n_instances=600, dtype=torch.float32, seed=3)
    assert res.near_ties == res.mismatches, res.examples
    assert res.rate <= 0.01


@pytest.mark.slow
@pytest.mark.parametrize(("name", "scheme"), CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_parity_10000(name, scheme, dtype):
    res = gpu.parity(name, models.random_model(5, seed=2, divergence=0.6), scheme, n_instances=10_000, dtype=dtype, seed=1)
    if dtype == torch.float64:
        assert res.mismatches == 0, res.examples
    assert res.near_ties == res.mismatches, res.examples


@pytest.mark.cuda
@pytest.mark.parametrize(("name", "scheme"), CASES, ids=IDS)
def test_parity_cuda(name, scheme):
    res = gpu.parity(name, examples.E5(), scheme, n_instances=1000, dtype=torch.float64, device="cuda", seed=11)
    assert res.mismatches == 0, res.examples
    res32 = gpu.parity(name, models.random_model(6, seed=5), scheme, n_instances=1000, dtype=torch.float32,
                       device="cuda", seed=3)
    assert res32.near_ties == res32.mismatches, res32.examples


# --- stateful twins: whole sequences (the state handed on from call to call) ---------------------
STATEFUL = [e.name for e in registry.entries() if e.stateful]
# (scheme, sequence length): short blocks make several earlier designs live at once (nested states)
SEQ_SCHEMES = ((drafting.chain(2), 7), (drafting.iid(2, 2), 5), (drafting.iid(3, 3), 9))
SEQ_CASES = [(n, s, length) for n in STATEFUL for s, length in SEQ_SCHEMES]
SEQ_IDS = [f"{n}-{s.name}-{length}" for n, s, length in SEQ_CASES]


def _forgetful(name):
    """The twin with its state dropped: every call verifies against the plain target."""
    tw = gpu.twin(name)
    return gb.Twin(name, lambda batch, U, state: tw.run(batch, U, None), tw.keys, stateful=True)


@pytest.mark.parametrize(("name", "scheme", "length"), SEQ_CASES, ids=SEQ_IDS)
def test_parity_sequences_float64_exact(name, scheme, length):
    res = gpu.parity_sequences(name, examples.E5(), scheme, n_sequences=400, length=length, seed=11)
    assert res.mismatches == 0, res.examples
    assert res.calls >= 2 * res.n  # every sequence needs several calls


@pytest.mark.parametrize(("name", "scheme", "length"), SEQ_CASES, ids=SEQ_IDS)
def test_parity_sequences_float32_only_near_ties(name, scheme, length):
    model = models.random_model(6, seed=5, divergence=0.7)
    res = gpu.parity_sequences(name, model, scheme, n_sequences=300, length=length, dtype=torch.float32, seed=3)
    assert res.near_ties == res.mismatches, res.examples
    assert res.rate <= 0.01


@pytest.mark.slow
@pytest.mark.parametrize(("name", "scheme", "length"), SEQ_CASES, ids=SEQ_IDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_parity_sequences_10000(name, scheme, length, dtype):
    res = gpu.parity_sequences(name, models.random_model(5, seed=2, divergence=0.6), scheme, n_sequences=10_000,
                               length=length, dtype=dtype, seed=1)
    if dtype == torch.float64:
        assert res.mismatches == 0, res.examples
    assert res.near_ties == res.mismatches, res.examples


@pytest.mark.cuda
@pytest.mark.parametrize(("name", "scheme", "length"), SEQ_CASES, ids=SEQ_IDS)
def test_parity_sequences_cuda(name, scheme, length):
    res = gpu.parity_sequences(name, examples.E5(), scheme, n_sequences=400, length=length, device="cuda", seed=11)
    assert res.mismatches == 0, res.examples


@pytest.mark.parametrize("name", STATEFUL)
def test_sequence_parity_catches_a_forgetful_twin(name):
    """Without the state the later calls disagree (the first calls still agree)."""
    res = gpu.parity_sequences(name, models.random_model(5, seed=2, divergence=0.6), drafting.iid(2, 2),
                               n_sequences=300, seed=1, use_twin=_forgetful(name))
    assert res.mismatches >= 3


def test_state_rows_follow_their_sequences():
    """``state.take(rows)`` then a call on those rows = the same call on the whole batch, restricted."""
    model = examples.E5()
    tw = gpu.twin("spectr_gbv_lossless")
    rng = np.random.default_rng(0)
    scheme = drafting.chain(3)
    first = gb.from_instances([Instance.from_model(model, scheme.sample(model, rng)) for _ in range(40)],
                              dtype=torch.float64)
    state = tw(first, generator=torch.Generator().manual_seed(1)).state
    assert state.levels and state.B == 40
    insts = [Instance.from_model(model, scheme.sample(model, rng)) for _ in range(40)]
    second = gb.from_instances(insts, dtype=torch.float64)
    U = torch.rand((40, len(tw.keys(second))), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    whole = tw(second, uniforms=U, state=state)
    rows = torch.tensor([31, 4, 17, 0])
    part_batch = gb.from_instances([insts[b] for b in rows], dtype=torch.float64)
    part = tw(part_batch, uniforms=U[rows], state=state.take(rows))
    assert part.node.tolist() == whole.node[rows].tolist()
    assert part.token.tolist() == whole.token[rows].tolist()


def test_state_is_checked():
    model = examples.E5()
    batch = gb.from_instances([Instance.from_model(model, drafting.iid(2, 2).sample(model, s)) for s in range(6)],
                              dtype=torch.float64)
    state = gpu.twin("spectr_gbv")(batch, generator=torch.Generator().manual_seed(0)).state
    with pytest.raises(InvalidArgument, match="GreedyState"):
        gpu.twin("spectr_gbv_lossless")(batch, state=state)  # the other design's state
    with pytest.raises(InvalidArgument, match="take"):
        gpu.twin("spectr_gbv")(batch, state=state.take(torch.tensor([0, 1])))
    with pytest.raises(InvalidArgument, match="stateless"):
        gpu.twin("gbv")(batch, state=state)
    with pytest.raises(InvalidArgument, match="not stateful"):
        gpu.parity_sequences("naive", model, drafting.chain(2), n_sequences=2)


def test_parity_catches_a_wrong_twin():
    """The naive twin fed to BV's parity check disagrees often (the check can fail)."""
    wrong = gb.Twin("bv", NAIVE.run, BV.keys)  # same column positions, other rule
    res = gpu.parity("bv", examples.E5(), drafting.chain(3), n_instances=300, use_twin=wrong, seed=0)
    assert res.mismatches > 20


# --- decision primitives against the protocol's own rules ---------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_categorical_matches_protocol(seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(7), size=400)
    probs[::7, 2] = 0.0  # zero cells must never be returned
    probs = probs / probs.sum(1, keepdims=True)
    u = rng.random(400)
    u[:5] = np.nextafter(1.0, 0.0)  # u above the rounded total: last positive index
    want = [categorical_from_uniform(a, p) for a, p in zip(u, probs)]
    got = gb.categorical(torch.as_tensor(u), torch.as_tensor(probs)).tolist()
    assert got == want


def test_categorical_u_beyond_total_takes_last_positive_index():
    probs = torch.tensor([[0.25, 0.25, 0.0], [0.5, 0.0, 0.0]], dtype=torch.float64)
    u = torch.tensor([0.75, 0.9], dtype=torch.float64)  # rows sum to 0.5: u >= total
    assert gb.categorical(u, probs).tolist() == [1, 0]


def test_bernoulli_is_strict():
    u = torch.tensor([0.0, 0.3, 0.3], dtype=torch.float64)
    prob = torch.tensor([0.0, 0.3, 0.30000000000000004], dtype=torch.float64)
    assert gb.bernoulli(u, prob).tolist() == [False, False, True]


def test_chain_twins_reject_branching_trees():
    model = examples.E5()
    tree = drafting.iid(2, 2).sample(model, 0)
    while tree.is_chain():  # pragma: no cover - seed dependent
        tree = drafting.iid(2, 2).sample(model, None)
    from specoracle import Instance

    batch = gb.from_instances([Instance.from_model(model, tree)], dtype=torch.float64)
    with pytest.raises(InvalidArgument, match="'naive' does not accept scheme iid"):
        NAIVE(batch, generator=torch.Generator().manual_seed(0))


def test_uniform_shape_is_checked():
    from specoracle import Instance

    model = examples.E5()
    batch = gb.from_instances([Instance.from_model(model, drafting.chain(2).sample(model, 0))], dtype=torch.float64)
    with pytest.raises(TypeError, match="n_keys"):
        NAIVE(batch, uniforms=torch.zeros(1, 3, dtype=torch.float64))


def test_results_have_the_documented_shapes():
    """node/length/token [B], tokens [B, L+1] = accepted prefix + token, padded with -1."""
    from specoracle import Instance

    model = examples.E5()
    rng = np.random.default_rng(0)
    insts = [Instance.from_model(model, drafting.iid(2, 2).sample(model, rng)) for _ in range(50)]
    batch = gb.from_instances(insts, dtype=torch.float64)
    res = gpu.twin("traversal")(batch, generator=torch.Generator().manual_seed(0))
    assert res.tokens.shape == (50, 3)
    for b, inst in enumerate(insts):
        node, tau = int(res.node[b]), int(res.length[b])
        assert tau == inst.tree.depths[node]
        want = list(inst.tree.prefix(node)) + [int(res.token[b])]
        assert res.tokens[b].tolist() == want + [-1] * (3 - len(want))


def test_categorical_large_vocabulary_two_level_search():
    """V = 32,000 uses chunk sums + one in-chunk CDF: same draws as the sequential rule except
    within rounding of a CDF boundary (none expected at these sizes in float64)."""
    rng = np.random.default_rng(9)
    probs = rng.gamma(0.3, size=(64, 32_000))
    probs[:, 1000:1600] = 0.0  # a whole zero chunk region
    probs /= probs.sum(1, keepdims=True)
    u = rng.random(64)
    u[0] = np.nextafter(1.0, 0.0)
    want = [categorical_from_uniform(a, p) for a, p in zip(u, probs)]
    got = gb.categorical(torch.as_tensor(u), torch.as_tensor(probs)).tolist()
    assert got == want


@pytest.mark.parametrize("name", ["naive", "bv"])
@pytest.mark.parametrize("divergence", [0.8, 0.0], ids=["random", "q-equals-p"])
def test_chain_twins_large_vocabulary_chunked_draw(name, divergence):
    """V = 8,192 (> 4,096): naive and BV draw the emitted token from chunk sums of the residual
    row and one recomputed chunk (no normalised [B, V] law; BV reuses its scan's sums), a different
    code path from the small-V tests. float64 agrees with the reference on every instance.
    ``q == p``: every residual has zero mass and must fall back to ``p``."""
    model = models.random_model(8192, seed=4, divergence=divergence)
    for scheme in (drafting.chain(1), drafting.chain(3)):
        res = gpu.parity(name, model, scheme, n_instances=300, dtype=torch.float64, seed=5)
        assert res.mismatches == 0, res.examples
        res32 = gpu.parity(name, model, scheme, n_instances=300, dtype=torch.float32, seed=6)
        assert res32.near_ties == res32.mismatches, res32.examples


def test_two_level_search_spills_stay_on_positive_entries():
    """Rounding spills: ``u`` past a chunk's recomputed entries takes that chunk's last positive
    entry; ``u`` past the row total takes the last positive entry of the last chunk with mass."""
    rows = torch.tensor([[0.5, 0.0], [0.0, 0.5], [0.5, 0.0], [0.0, 0.0]], dtype=torch.float64)  # 4 chunks of 2
    chunk_sums = rows.sum(-1).view(1, 4).clone()

    def search(u):
        return gb._two_level_search(torch.tensor([u], dtype=torch.float64), chunk_sums,
                                    lambda chunk: rows.index_select(0, chunk)).tolist()

    assert [search(u) for u in (0.2, 0.7, 1.2)] == [[0], [3], [4]]
    assert search(1.5) == [4]  # u = total
    chunk_sums[0, 0] = 0.6  # chunk sums rounded above the entries: u = 0.55 falls in chunk 0 past its entries
    assert search(0.55) == [0]


def test_stop_token_large_vocabulary_against_numpy():
    """``stop_token`` at V = 8,192 (chunked draw) against the law built in NumPy and the protocol's
    categorical: residual rows with and without a weight, bonus rows, and zero-mass residuals
    (``q == p`` with ``w = 1``, ``w p <= q`` everywhere) that must fall back to ``p``."""
    rng = np.random.default_rng(12)
    B, N, V = 40, 3, 8192
    p = rng.dirichlet(np.full(V, 0.3), size=(B, N))
    q = rng.dirichlet(np.full(V, 0.3), size=(B, N))
    node = rng.integers(0, N, B)
    w = rng.uniform(0.2, 1.0, B)
    bonus = np.zeros(B, dtype=bool)
    bonus[:8] = True
    for b in range(8, 16):  # zero mass: q == p, w = 1
        q[b, node[b]] = p[b, node[b]]
        w[b] = 1.0
    for b in range(16, 20):  # zero mass: w p <= q everywhere
        q[b, node[b]] = p[b, node[b]]
    u = rng.random(B)

    def numpy_token(b, wb):
        pr, qr = p[b, node[b]], q[b, node[b]]
        law = pr if bonus[b] else np.maximum(wb * pr - qr, 0)
        return categorical_from_uniform(u[b], law / law.sum() if law.sum() > 0 else pr)

    T = torch.as_tensor
    for weight in (w, None):
        want = [numpy_token(b, 1.0 if weight is None else weight[b]) for b in range(B)]
        got = gb.stop_token(T(u), T(p), T(q), T(node), T(bonus), None if weight is None else T(weight))
        assert got.tolist() == want


def test_registry_entries_expose_their_twin():
    """``Entry.torch`` (the registry's lazy lookup) returns the twin registered under the same name."""
    for entry in registry.entries():
        assert entry.torch is gpu.TWINS[entry.name]
        assert entry.torch.name == entry.name
