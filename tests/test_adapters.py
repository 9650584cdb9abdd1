"""Adapters: the batched [B, L, V] convention and Hugging Face transformers' speculative sampling.

Truths used: the exact block law of the reference ``naive`` (a correct kernel's emitted blocks
follow it, chi-squared on block length x first token), the target law (lossless verdicts), and
hand-built outputs that break the output contract. The transformers function draws from torch's
global RNG, so it is judged by chi-squared only (designed TV in the test ids; alpha 0.01, power
0.99).
"""
from __future__ import annotations

import numpy as np
import pytest

import torch  # noqa: E402

from specoracle import examples, exact, models, stats  # noqa: E402
from specoracle.adapters.batched import (  # noqa: E402
    BatchedVerifier,
    reference_chain_sampling,
    residual_next_row_chain_sampling,
)
from specoracle.adapters.common import global_rng, sample_chains  # noqa: E402
from specoracle.check import check_lossless  # noqa: E402
from specoracle.drafting import chain  # noqa: E402
from specoracle.errors import InvalidArgument, InvalidInstance, UnknownName  # noqa: E402
from specoracle.instance import Instance  # noqa: E402
from specoracle.randomness import Sampling  # noqa: E402
from specoracle.tree import Tree  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- batched convention -----------------------------------------------------------------------------
def test_reference_kernel_by_hand():
    # p row 0 = (.5,.5), q row 0 = (1, 0): draft 0, ratio .5. u0 = .4 accepts, bonus from p row 1
    # = (0, 1) -> token 1. u0 = .6 rejects, residual (p - q)_+ = (0, .5) -> token 1 at position 0.
    ids = torch.tensor([[0], [0]])
    q = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]], dtype=torch.float64)
    p = torch.tensor([[[0.5, 0.5], [0.0, 1.0]]] * 2, dtype=torch.float64)
    u = torch.tensor([[0.4, 0.3], [0.6, 0.3]], dtype=torch.float64)
    out = reference_chain_sampling(ids, q, p, u)
    assert out.tolist() == [[0, 1], [1, -1]]


@pytest.mark.parametrize("model", ["E3", "E5"])
def test_batched_reference_kernel_is_lossless(model):
    v = check_lossless(BatchedVerifier(reference_chain_sampling), model, "chain(2)", tv=0.02, seed=0)
    assert v.method == "chi2" and v.lossless, v.summary()


def test_batched_reference_kernel_matches_the_exact_block_law():
    # conformance, stronger than losslessness: (tau, x_1) of the kernel ~ exact law of `naive`
    m, s = examples.E5(), chain(2)
    law = exact.evaluate("naive", m, s).block_law
    expected = stats.block_law_cells(law, 4, 2, "length_first")
    n = stats.sample_size(0.02, cells=int((expected > 0).sum()))
    blocks = BatchedVerifier(reference_chain_sampling).sample_blocks(m, s, n, seed=5)
    res = stats.chi2_gof(np.bincount(stats.project(blocks, 4, "length_first"), minlength=len(expected)), expected)
    assert res.p_value > 0.01, res.table()


def test_batched_broken_kernel_is_flagged():
    # M2 (residual from the next row) hides on context-free models and shows on E3 / E5
    v = check_lossless(BatchedVerifier(residual_next_row_chain_sampling), "E5", "chain(2)", tv=0.05, seed=0)
    assert not v.lossless, v.summary()
    free = check_lossless(BatchedVerifier(residual_next_row_chain_sampling), "E1", "chain(2)", tv=0.05, seed=0)
    assert free.lossless, free.summary()


def test_batched_logits_and_generator_conventions():
    def with_generator(ids, q, p, gen):
        u = torch.rand((ids.shape[0], ids.shape[1] + 1), generator=gen, dtype=torch.float64)
        return reference_chain_sampling(ids, q, p, u)

    def with_logits(ids, lq, lp, u):
        return reference_chain_sampling(ids, lq.softmax(-1), lp.softmax(-1), u)

    assert check_lossless(BatchedVerifier(with_generator, randomness="generator"), "E3", "chain(2)", tv=0.05).lossless
    assert check_lossless(BatchedVerifier(with_logits, logits=True), "E3", "chain(2)", tv=0.05).lossless
    with pytest.raises(UnknownName, match="uniforms"):
        BatchedVerifier(with_logits, randomness="uniform")


def test_bare_batched_function_is_wrapped():
    def kernel(ids, q, p, u):
        return reference_chain_sampling(ids, q, p, u)

    kernel.batched = True
    v = check_lossless(kernel, "E3", "chain(2)", tv=0.05, seed=1)
    assert v.method == "chi2" and v.verifier == "kernel" and v.lossless, v.summary()


def _const(out):
    def fn(ids, q, p, u):
        return torch.tensor(out).expand(ids.shape[0], -1)

    return fn


@pytest.mark.parametrize(
    "out,match",
    [
        ([0, 7], "outside"),              # recovered id >= V (a tile-tail bug)
        ([-1, 0], "emitted no token"),
        ([1, 0, -1], "shape"),
    ],
    ids=["id_ge_V", "empty", "shape"],
)
def test_batched_output_contract(out, match):
    with pytest.raises(InvalidInstance, match=match):
        check_lossless(BatchedVerifier(_const(out)), "E1", "chain(1)", n=50)


def test_batched_output_contract_padding_and_prefix():
    with pytest.raises(InvalidInstance, match="after -1 padding"):
        BatchedVerifier(_const([0, -1, 1])).run(np.array([[0, 0]]), np.full((1, 2, 2), 0.5), np.full((1, 3, 2), 0.5), 0)
    with pytest.raises(InvalidInstance, match="but the draft there is"):
        BatchedVerifier(_const([1, 0, 1])).run(np.array([[0, 0]]), np.full((1, 2, 2), 0.5), np.full((1, 3, 2), 0.5), 0)


def test_batched_single_instance_call():
    inst = Instance(Tree.from_paths([(0,)]), [[0.5, 0.5], [0.0, 1.0]], [[1.0, 0.0], [0.5, 0.5]])
    bv = BatchedVerifier(reference_chain_sampling)
    outs = {bv(inst, Sampling(s)) for s in range(40)}
    # accepted -> bonus token 1 at node 1; rejected -> residual token 1 at the root
    assert {(o.node, o.token) for o in outs} == {(1, 1), (0, 1)}
    from specoracle.randomness import Fixed

    with pytest.raises(InvalidArgument, match="chi2"):
        bv(inst, Fixed({}))


# torch.Generator seed whose float64 uniforms [64, 4] hold, at flat index 41, a value >= 1 - 2^-25:
# cast to float32 it rounds to exactly 1.0 (found by search; about 3e-8 per draw)
SEED_ROUNDING_TO_ONE = 228316


def test_batched_uniforms_stay_below_one():
    g = torch.Generator().manual_seed(SEED_ROUNDING_TO_ONE)
    assert torch.rand((64, 4), generator=g, dtype=torch.float64).to(torch.float32).max() == 1.0  # the premise
    seen = []

    def spy(ids, q, p, u):
        seen.append(u)
        return reference_chain_sampling(ids, q, p, u)

    ids = np.zeros((64, 3), dtype=np.int64)
    BatchedVerifier(spy, dtype=torch.float32).run(ids, np.full((64, 3, 2), 0.5), np.full((64, 4, 2), 0.5), SEED_ROUNDING_TO_ONE)
    assert seen[0].dtype == torch.float32 and float(seen[0].max()) < 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reference_kernel_never_emits_a_zero_probability_token(dtype):
    # a uniform at (or, after float32 rounding of the cdf, above) the row's total mass must give the
    # last token with positive mass (token 1 here), not V - 1 = 2 whose probability is 0
    ids = torch.tensor([[0]])
    q = torch.tensor([[[1.0, 0.0, 0.0]]], dtype=dtype)
    p = torch.tensor([[[1.0, 0.0, 0.0], [0.3, 0.7, 0.0]]], dtype=dtype)
    for u_last in (1.0, float(torch.nextafter(torch.tensor(1.0, dtype=dtype), torch.tensor(0.0, dtype=dtype)))):
        out = reference_chain_sampling(ids, q, p, torch.tensor([[0.5, u_last]], dtype=dtype))
        assert out.tolist() == [[0, 1]], (u_last, out)


def test_global_rng_seeds_like_torch_manual_seed_and_restores_state():
    import random

    torch.manual_seed(5)
    want = torch.rand(4)
    torch.manual_seed(99)
    random.seed(7)
    before, py_before = torch.get_rng_state(), random.getstate()
    with global_rng(5, python_random=True):
        got = torch.rand(4)
        random.random()
    assert torch.equal(got, want)
    assert torch.equal(torch.get_rng_state(), before) and random.getstate() == py_before


def test_sample_chains_follow_q():
    m = examples.E5()
    ch = sample_chains(m, 2, 20000, np.random.default_rng(0))
    Q = np.array([[float(m.Q((a, b))) for b in range(4)] for a in range(4)]).reshape(-1)
    res = stats.chi2_gof(np.bincount(ch[:, 0] * 4 + ch[:, 1], minlength=16), Q)
    assert res.p_value > 1e-3, res.table()


# --- Hugging Face transformers -------------------------------------------------------------------------
HF_CASES = [(2, 1, 0), (3, 2, 1), (4, 3, 2), (4, 1, 3), (2, 3, 4)]


@pytest.fixture(scope="module")
def hf():
    from specoracle.adapters.transformers import TransformersVerifier

    return TransformersVerifier()


@pytest.mark.parametrize("V,L,seed", HF_CASES, ids=[f"V{v}L{l}s{s}" for v, l, s in HF_CASES])
def test_transformers_speculative_sampling_is_lossless(hf, V, L, seed):
    m = models.random_model(V, seed)
    v = check_lossless(hf, m, f"chain({L})", tv=0.1, projection="positions", seed=seed)
    assert v.method == "chi2" and v.lossless, v.summary()


@pytest.mark.slow
@pytest.mark.parametrize("V,L,seed", HF_CASES, ids=[f"V{v}L{l}s{s}" for v, l, s in HF_CASES])
def test_transformers_speculative_sampling_is_lossless_tv002(hf, V, L, seed, capsys):
    m = models.random_model(V, seed)
    v = check_lossless(hf, m, f"chain({L})", tv=0.02, seed=seed)
    with capsys.disabled():
        print("\n" + v.summary())
    assert v.lossless, v.summary()


def test_transformers_broken_copy_is_flagged():
    from specoracle.adapters.transformers import TransformersVerifier, residual_next_row_copy

    broken = TransformersVerifier(residual_next_row_copy)
    # M2's own model (ALGORITHMS-2 §11: E3, where the next row differs most)
    v = check_lossless(broken, "E3", "chain(2)", tv=0.1, projection="positions", seed=0)
    assert not v.lossless, v.summary()


def test_transformers_ensemble_weight_is_a_lossy_knob(hf):
    from specoracle.adapters.transformers import TransformersVerifier

    lossy = TransformersVerifier(assistant_ensemble_weight=0.5)
    v = check_lossless(lossy, models.random_model(3, 1), "chain(2)", tv=0.1, projection="positions", seed=0)
    assert not v.lossless, v.summary()


def test_transformers_refuses_enumeration_and_restores_the_rng(hf):
    with pytest.raises(InvalidArgument, match="chi2"):
        check_lossless(hf, "E1", "chain(1)", method="exact")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    inst = Instance.from_model(examples.E1(), Tree.from_paths([(1,)]))
    hf(inst, Sampling(0))
    assert torch.equal(before, torch.get_rng_state())
