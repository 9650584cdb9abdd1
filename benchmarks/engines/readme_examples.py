"""The worked examples of the README's "Checking your engine", run as written (their output is the
README's). Needs torch, transformers and eagle-llm 1.2.1 (``pip install --no-deps eagle-llm==1.2.1``);
vLLM itself is not needed here (its example runs in ``benchmarks/engines/vllm_check.py``).

Usage::

    python benchmarks/engines/readme_examples.py [transformers vllm-contract flashinfer eagle paths sglang engines]
    python benchmarks/engines/readme_examples.py flagged passing   # the same calls, split by verdict
"""
from __future__ import annotations

import functools
import sys

import specoracle.check

# the examples' calls as written, with a larger time budget: on a loaded machine the calibrated
# estimate can exceed the default 900 s (the budget changes no result)
specoracle.check.check_lossless = functools.partial(specoracle.check.check_lossless, max_seconds=1e5)


def transformers():
    from specoracle import models
    from specoracle.adapters.transformers import TransformersVerifier
    from specoracle.check import check_lossless

    model = models.random_model(4, seed=2)  # context-dependent target/draft pair, V = 4
    print(check_lossless(TransformersVerifier(), model, "chain(3)", tv=0.05, seed=0).summary())
    lossy = TransformersVerifier(assistant_ensemble_weight=0.5)  # a documented lossy option
    print(check_lossless(lossy, models.random_model(3, seed=1), "chain(2)", tv=0.05, seed=0).summary())


def vllm_contract():
    from specoracle.adapters.vllm import VLLMVerifier, padded_offset_rejection_sample
    from specoracle.check import check_lossless

    for ragged in (False, True):
        v = check_lossless(VLLMVerifier(padded_offset_rejection_sample, ragged=ragged), "E5", "chain(3)",
                           tv=0.05, seed=0)
        print(f"ragged={ragged}:", v.summary())


def flashinfer():
    from specoracle.adapters.batched import BatchedVerifier, reference_chain_sampling
    from specoracle.check import check_lossless

    # fn(draft_ids [B, L], draft_probs [B, L, V], target_probs [B, L+1, V], uniforms [B, L+1]) -> ids [B, L+1]
    print(check_lossless(BatchedVerifier(reference_chain_sampling), "E5", "chain(2)", tv=0.02, seed=0).summary())


def eagle():
    from specoracle import models
    from specoracle.adapters.eagle import EagleVerifier
    from specoracle.check import check_lossless

    m = models.random_model(3, seed=1)
    for T in (1.0, 0.7):
        print(check_lossless(EagleVerifier(T), m, "wor(2,1)", tv=0.05, seed=0).summary())


def paths():
    from specoracle import models
    from specoracle.adapters.paths import PathsVerifier, paths_layout, reference_paths_verify
    from specoracle.check import check_lossless
    from specoracle.drafting import parse_scheme
    from specoracle.instance import Instance

    m = models.random_model(4, seed=1)
    lay = paths_layout(Instance.from_model(m, parse_scheme("wor(2,1)").sample(m, 0)), temperature=0.7)
    print(lay.tree_choices, lay.retrieve_indices.tolist(), lay.candidates.tolist(),
          [[round(x, 3) for x in row] for row in lay.candidate_probs.tolist()])

    def my_verifier(layout):  # your code: returns (path, accept_length, token)
        return reference_paths_verify(layout)

    print(check_lossless(PathsVerifier(my_verifier, temperature=0.7), m, "wor(2,2)", tv=0.05, seed=0).summary())


def sglang():
    from specoracle.adapters.sglang import SGLangTreeVerifier, reference_tree_sampling, reused_coin_tree_sampling
    from specoracle.check import check_lossless

    for fn in (reference_tree_sampling, reused_coin_tree_sampling):
        print(check_lossless(SGLangTreeVerifier(fn), "E5", "wor(2,2)", tv=0.05, seed=0).summary())


def flagged():
    """Only the flagged halves of the examples above (each with its confirmation line)."""
    from specoracle import models
    from specoracle.adapters.eagle import EagleVerifier
    from specoracle.adapters.sglang import SGLangTreeVerifier, reused_coin_tree_sampling
    from specoracle.adapters.transformers import TransformersVerifier
    from specoracle.adapters.vllm import VLLMVerifier, padded_offset_rejection_sample
    from specoracle.check import check_lossless

    print(check_lossless(EagleVerifier(0.7), models.random_model(3, seed=1), "wor(2,1)", tv=0.05, seed=0).summary())
    print(check_lossless(SGLangTreeVerifier(reused_coin_tree_sampling), "E5", "wor(2,2)", tv=0.05, seed=0).summary())
    v = check_lossless(VLLMVerifier(padded_offset_rejection_sample, ragged=True), "E5", "chain(3)", tv=0.05, seed=0)
    print("ragged=True:", v.summary())
    lossy = TransformersVerifier(assistant_ensemble_weight=0.5)
    print(check_lossless(lossy, models.random_model(3, seed=1), "chain(2)", tv=0.05, seed=0).summary())


def passing():
    """Only the passing halves of transformers and eagle (the flagged ones are in ``flagged``)."""
    from specoracle import models
    from specoracle.adapters.eagle import EagleVerifier
    from specoracle.adapters.transformers import TransformersVerifier
    from specoracle.check import check_lossless

    print(check_lossless(TransformersVerifier(), models.random_model(4, seed=2), "chain(3)", tv=0.05, seed=0).summary())
    print(check_lossless(EagleVerifier(1.0), models.random_model(3, seed=1), "wor(2,1)", tv=0.05, seed=0).summary())


def engines():
    from specoracle.adapters.conformance import conformance, conformance_table

    print(conformance_table(conformance()))


EXAMPLES = {"transformers": transformers, "vllm-contract": vllm_contract, "flashinfer": flashinfer, "eagle": eagle,
            "paths": paths, "sglang": sglang, "flagged": flagged, "passing": passing,
            "engines": engines}

if __name__ == "__main__":
    for name in sys.argv[1:] or [k for k in EXAMPLES if k not in ("flagged", "passing")]:
        print(f"### {name}", flush=True)
        EXAMPLES[name]()
        sys.stdout.flush()
