"""Independent randomness: chi-squared tests of every twin in law (:func:`gpu.chi2_twin`).

Design (stated, not tuned): trees drafted in torch and verified by the twin with seeded
``torch.Generator``s; the emitted blocks are tested with :func:`specoracle.stats.chi2_rows` against
the reference's exact block law (``exact.evaluate``), stateful twins' whole sequences of
``2L + 1`` tokens against ``exact.sequence_law``, and (``against="target"``) blocks continued by
target sampling against the target law. Level ``alpha = 1e-3`` per test (false-fail rate 0.1% per
test; the seeds are fixed, so a run is reproducible); sample size from the power analysis for
``power = 0.99`` against any deviation of total variation 0.01 on the tested cells (``n (2 TV)^2``
noncentrality, worst case over deviations). CI tests each verifier on its widest scheme; the full
verifier x scheme sweep is slow.
"""
from __future__ import annotations

import pytest
import torch

from specoracle import drafting, examples, registry

from specoracle import gpu
from specoracle.gpu import batch as gb
from specoracle.gpu.chain import NAIVE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ALPHA, TV, POWER = 1e-3, 0.01, 0.99
E5 = examples.E5()  # one model object: the drafted trees are shared by the family (cached by model)
SCHEMES = (drafting.iid(2, 2), drafting.without_replacement((2, 1)), drafting.delayed(2, 1, 1), drafting.chain(2))


def _widest(entry):
    return next(s for s in SCHEMES if entry.accepts(s))


ONE_STEP = [e for e in registry.entries() if not e.stateful]  # stateful twins: whole sequences, below
CI_CASES = [(e.name, _widest(e)) for e in ONE_STEP]
ALL_CASES = [(e.name, s) for e in ONE_STEP for s in SCHEMES if e.accepts(s)]


def _check(name, scheme, device="cpu", dtype=torch.float64, seed=2024, against="reference"):
    res = gpu.chi2_twin(name, E5, scheme, against=against, alpha=ALPHA, tv=TV, power=POWER, seed=seed,
                        device=device, dtype=dtype)
    assert res.detectable_tv <= TV + 1e-9
    assert res.status == "pass", (
        f"{name} {scheme.name}: chi2={res.statistic:.1f} dof={res.dof} p={res.p_value:.2e} "
        f"n={res.n} seed={res.seed} detectable TV={res.detectable_tv:.4f}\n{res.table()}"
    )
    return res


@pytest.mark.parametrize(("name", "scheme"), CI_CASES, ids=[f"{n}-{s.name}" for n, s in CI_CASES])
def test_extended_law_chi2(name, scheme):
    _check(name, scheme)


def test_extended_law_against_the_target():
    """Blocks continued by target sampling, against the target law on V^(L+1)."""
    res = _check("traversal", drafting.iid(2, 2), against="target")
    assert res.scheme == "iid(2,2), extended to 3" and res.outside_support == 0


@pytest.mark.slow
@pytest.mark.parametrize(("name", "scheme"), ALL_CASES, ids=[f"{n}-{s.name}" for n, s in ALL_CASES])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("against", ["reference", "target"])
def test_extended_law_chi2_sweep(name, scheme, dtype, against):
    _check(name, scheme, dtype=dtype, seed=7, against=against)


@pytest.mark.cuda
@pytest.mark.parametrize(("name", "scheme"), CI_CASES, ids=[f"{n}-{s.name}" for n, s in CI_CASES])
def test_extended_law_chi2_cuda(name, scheme):
    _check(name, scheme, device="cuda", dtype=torch.float32)


# --- stateful twins: the law of whole sequences (``exact.sequence_law`` of the reference) --------
STATEFUL = [e.name for e in registry.entries() if e.stateful]


def _check_sequences(name, model, scheme, device="cpu", dtype=torch.float64, seed=2024, use_twin=None):
    res = gpu.chi2_twin(name, model, scheme, alpha=ALPHA, tv=TV, power=POWER, seed=seed, device=device,
                        dtype=dtype, use_twin=use_twin)
    assert res.detectable_tv <= TV + 1e-9
    return res


@pytest.mark.parametrize("name", STATEFUL)
@pytest.mark.parametrize("model_name", ["E1", "E3"])
def test_sequence_law_chi2(name, model_name):
    """First 2L + 1 = 5 tokens of iid(2, 2) sequences (several calls, the state handed on)."""
    res = _check_sequences(name, examples.get(model_name), drafting.iid(2, 2))
    assert res.status == "pass", f"{name}: chi2={res.statistic:.1f} p={res.p_value:.2e} n={res.n}\n{res.table()}"


@pytest.mark.slow
@pytest.mark.parametrize("name", STATEFUL)
@pytest.mark.parametrize(("model_name", "scheme"), [("E5", drafting.chain(2)), ("E3", drafting.iid(3, 2)),
                                                    ("E1", drafting.chain(1))], ids=["E5-chain(2)", "E3-iid(3,2)", "E1-chain(1)"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_sequence_law_chi2_sweep(name, model_name, scheme, dtype):
    res = _check_sequences(name, examples.get(model_name), scheme, dtype=dtype, seed=7)
    assert res.status == "pass", f"{name}: chi2={res.statistic:.1f} p={res.p_value:.2e} n={res.n}\n{res.table()}"


@pytest.mark.cuda
@pytest.mark.parametrize("name", STATEFUL)
def test_sequence_law_chi2_cuda(name):
    res = _check_sequences(name, examples.E1(), drafting.iid(2, 2), device="cuda", dtype=torch.float32)
    assert res.status == "pass"


def test_sequence_chi2_rejects_a_forgetful_twin():
    """Greedy acceptance without the target modification: 2/27 error per iteration on E1 chain(2)."""
    tw = gpu.twin("spectr_gbv_lossless")
    forgetful = gb.Twin(tw.name, lambda batch, U, state: tw.run(batch, U, None), tw.keys, stateful=True)
    res = _check_sequences("spectr_gbv_lossless", examples.E1(), drafting.chain(2), seed=5, use_twin=forgetful)
    assert res.p_value < ALPHA


def _resample_from_p(batch, U):
    """Mutant M1 as a twin: after a rejection the token is drawn from ``p`` (not the residual)."""
    node, _ = NAIVE.run(batch, U)
    u = U.gather(1, (batch.N - 1 + node)[:, None])[:, 0]
    return node, gb.categorical(u, gb.gather_rows(batch.p, node))


def test_chi2_rejects_a_lossy_twin():
    """M1 on E5 chain(2) has max error 0.0212 (ALGORITHMS-2 §11): the designed test must fail it."""
    bad = gb.Twin("naive", _resample_from_p, NAIVE.keys)
    for against in ("reference", "target"):
        res = gpu.chi2_twin("naive", examples.E5(), drafting.chain(2), against=against, alpha=ALPHA, tv=TV,
                            power=POWER, seed=5, use_twin=bad)
        assert res.status == "fail", against


def test_the_design_is_the_statistics_layer_s():
    """The default n is stats.sample_size on the cells of positive exact probability, and the seeds
    of drafting, uniforms and extension are derived from labels (a different seed, other samples)."""
    from specoracle import exact, stats

    law = exact.evaluate("bv", E5, drafting.chain(2)).block_law
    cells = sum(1 for v in law.values() if v > 0)
    res = gpu.chi2_twin("bv", E5, drafting.chain(2), tv=0.05, alpha=ALPHA, seed=3)
    assert res.n == stats.sample_size(0.05, cells=cells, alpha=ALPHA, power=0.99)
    a = gpu.sample_blocks("bv", E5, drafting.chain(2), 50, seed=3)
    b = gpu.sample_blocks("bv", E5, drafting.chain(2), 50, seed=4)
    assert torch.equal(a, gpu.sample_blocks("bv", E5, drafting.chain(2), 50, seed=3)) and not torch.equal(a, b)
