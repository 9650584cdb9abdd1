"""Issue 13, items 1-2: the exact engine refuses verifiers it cannot judge, never certifies them.

Negative controls of the engine itself: a verifier that emits an out-of-range token (``V + y``,
which would land in the cells of another block) or node ``-1`` (which Python would read as the
last node), and verifiers that draw randomness outside ``rng`` (their "exact" law changed from run
to run before). Each must be refused with a message that names the verifier, the value and the
cause, through :func:`specoracle.exact.evaluate`, :func:`specoracle.check.check_lossless` and the
CLI (exit status 2: an input error).
"""
from __future__ import annotations

import random
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from specoracle import drafting, examples, exact
from specoracle.check import check_lossless
from specoracle.exact import BadOutcome, checked_block
from specoracle.instance import Instance, Outcome
from specoracle.errors import SpecoracleError
from specoracle.randomness import Coupled, NondeterministicVerifier, Sampling, enumerate_law
from specoracle.registry import get
from specoracle.tree import Tree

BV = get("bv").reference


def shifted_token(inst, rng):
    """Correct bv, but the token moved to ``V + y`` (the out-of-range negative control)."""
    o = BV(inst, rng)
    return Outcome(o.node, o.token + inst.V)


def last_node(inst, rng):
    """Accepts "node -1": the last node of the chain, a silent wrap-around."""
    o = BV(inst, rng)
    return Outcome(-1 if o.node == inst.N - 1 else o.node, o.token)


def float_token(inst, rng):
    o = BV(inst, rng)
    return Outcome(o.node, float(o.token))


def tuple_outcome(inst, rng):
    o = BV(inst, rng)
    return (o.node, o.token)


def hidden_extra_coin(inst, rng):
    """Takes one more rng decision on a hidden coin: replays disagree with the runs they replay."""
    o = BV(inst, rng)
    if random.random() < 0.5:
        rng.bernoulli(0.5, "extra")
    return o


def hidden_flip(inst, rng):
    """Flips its token on a hidden coin, with no rng call at all (global state changes)."""
    o = BV(inst, rng)
    return Outcome(o.node, (o.token + (random.random() < 0.5)) % inst.V)


def hidden_numpy(inst, rng):
    """Skips its acceptance test on NumPy's global generator."""
    if np.random.random() < 0.3:
        return Outcome(0, rng.categorical(inst.p[0], ("residual", 0)))
    return BV(inst, rng)


def private_generator(inst, rng):
    """Draws from a fresh unseeded generator (no global state): caught by the replay checks."""
    o = BV(inst, rng)
    if np.random.default_rng().random() < 0.5:
        rng.bernoulli(Fraction(1, 2) if inst.rational else 0.5, ("hidden", 0))
    return o


@pytest.mark.parametrize("rational", [False, True], ids=["float", "rational"])
@pytest.mark.parametrize(
    "verifier, words",
    [
        (shifted_token, "token 3 is out of range (the vocabulary is 0..2)"),
        (last_node, "node -1 is out of range"),
        (float_token, "token must be an int"),
        (tuple_outcome, "expected an Outcome(node, token)"),
    ],
    ids=["V_plus_y", "node_minus_1", "float_token", "tuple"],
)
def test_bad_outcomes_are_refused(verifier, words, rational):
    with pytest.raises(BadOutcome) as err:
        exact.evaluate(verifier, examples.E2(rational=rational), drafting.chain(2), rational=rational)
    assert words in str(err.value) and verifier.__name__ in str(err.value)


def test_out_of_range_token_is_never_certified_lossless():
    # the negative control: before the fix, V + y landed in another block's cells, max_error 0
    for method in ("exact", "auto"):
        with pytest.raises(BadOutcome, match="out of range"):
            check_lossless(shifted_token, examples.E2(), drafting.chain(2), method=method)


@pytest.mark.parametrize("verifier", [hidden_extra_coin, hidden_flip, hidden_numpy, private_generator],
                         ids=lambda f: f.__name__)
def test_hidden_randomness_is_refused(verifier):
    state = random.getstate(), np.random.get_state()
    random.seed(1)
    np.random.seed(1)
    try:
        for _ in range(3):  # every run: refused, never a law (before: totals 1.59, 1.30, 1.00, 1.19)
            with pytest.raises(NondeterministicVerifier, match="randomness drawn outside rng") as err:
                exact.evaluate(verifier, examples.E2(), drafting.chain(2))
            assert verifier.__name__ in str(err.value)
        with pytest.raises(NondeterministicVerifier, match="randomness drawn outside rng"):
            check_lossless(verifier, examples.E2(), drafting.chain(2), method="exact")
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])


def test_sequence_law_and_tree_law_check_outcomes_too():
    with pytest.raises(BadOutcome, match="out of range"):
        exact.sequence_law(shifted_token, examples.E2(), drafting.chain(1), 3)
    inst = Instance.from_model(examples.E2(), Tree.from_paths([(0, 1)]))
    with pytest.raises(BadOutcome, match="node -1"):
        exact.tree_law(last_node, inst)
    with pytest.raises(NondeterministicVerifier):
        exact.sequence_law(hidden_flip, examples.E2(), drafting.chain(1), 3)


def test_checked_block_reads_the_tree():
    inst = Instance.from_model(examples.E2(), Tree.from_paths([(0, 1), (2,)]))
    assert checked_block(Outcome(2, 0), inst, "v") == (0, 1, 0)
    assert checked_block(Outcome(np.int64(3), np.int64(2)), inst, "v") == (2, 2)
    for bad in (Outcome(4, 0), Outcome(0, -1), Outcome(True, 0)):
        with pytest.raises(BadOutcome):
            checked_block(bad, inst, "v")


def test_enumeration_sum_is_checked_exactly():
    # a categorical whose options are replayed by a run that changes its vector: the replay check
    calls = iter(range(100))

    def drifting(r):
        return r.categorical([Fraction(1, 2), Fraction(1, 2)] if next(calls) < 2 else
                             [Fraction(1, 3), Fraction(2, 3)], "x")

    with pytest.raises(NondeterministicVerifier, match="not deterministic"):
        enumerate_law(drifting, rational=True, name="drifting")
    law, fb = enumerate_law(lambda r: r.categorical([Fraction(1, 3), Fraction(2, 3)], "x"), rational=True)
    assert sum(p for _, p in law) == 1 and fb == 0


def test_correct_verifiers_still_pass():
    assert exact.evaluate("bv", examples.E2(), drafting.chain(2)).lossless
    r = exact.evaluate("bv", examples.E2(rational=True), drafting.chain(2), rational=True)
    assert r.max_error == 0


def test_cli_refuses_with_exit_status_2():
    code = (
        "import sys\n"
        "from specoracle import registry, cli\n"
        "from specoracle.instance import Outcome\n"
        "bv = registry.get('bv')\n"
        "def shifted(inst, rng):\n"
        "    o = bv.reference(inst, rng)\n"
        "    return Outcome(o.node, o.token + inst.V)\n"
        "registry.register(registry.Entry('shifted_token', shifted, bv.keys, bv.schemes, 'test'))\n"
        "sys.exit(cli.main(['check', 'shifted_token', '--model', 'E1', '--scheme', 'chain(1)', '--method', 'exact', "
        "'--json']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "BadOutcome" in proc.stdout and "out of range" in proc.stdout


# --- issue 14 item 6: one rule for categorical vectors in every random source -----------------------
ROUNDED = [0.5, 0.5 + 2e-16, -2e-16]  # a residual p - q with rounding: token 2 counts as 0


def _sources(probs):
    yield "sampling", lambda: Sampling(0).categorical(probs, "k")
    yield "coupled", lambda: Coupled([0.99], ["k"]).categorical(probs, "k")
    yield "exact", lambda: [o for o, _ in enumerate_law(lambda r: r.categorical(probs, "k"))[0]]


def test_tiny_negative_rounding_counts_as_zero_everywhere():
    for _, draw in _sources(ROUNDED):
        out = draw()
        assert 2 not in (out if isinstance(out, list) else [out])
    law, _ = enumerate_law(lambda r: r.categorical(ROUNDED, "k"))
    assert sorted(o for o, _ in law) == [0, 1]


@pytest.mark.parametrize("probs, words", [([0.5, 0.6, -0.1], "token 2 has probability -0.1, negative beyond rounding"),
                                          ([0.5, 0.4], "summing to 1, got sum 0.9")], ids=["negative", "sum"])
def test_bad_vectors_get_one_message_everywhere(probs, words):
    messages = set()
    for _, draw in _sources(probs):
        with pytest.raises(SpecoracleError) as err:
            draw()
        messages.add(str(err.value))
    assert len(messages) == 1 and words in messages.pop()
