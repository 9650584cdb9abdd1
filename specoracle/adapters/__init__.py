"""Adapters from other projects' verifier conventions to specoracle's.

Chains:

- :mod:`specoracle.adapters.batched`: FlashInfer's batched ``[B, L, V]`` probability tensors with
  draft ids and uniforms -> a block sampler / reference-style verifier.
- :mod:`specoracle.adapters.vllm`: vLLM V1's rejection sampler (flat ragged ``[T, V]`` layout with
  ``cu_num_draft_tokens``, target logits, draft probabilities or None, caller-sampled bonus token,
  greedy and sampled requests, per-request generators) -> a block sampler.
- :mod:`specoracle.adapters.transformers`: Hugging Face transformers' speculative sampling
  (batch 1, logits, global torch RNG) -> a reference-style verifier.

Trees:

- :mod:`specoracle.adapters.paths`: the candidate paths x depth layout of EAGLE / Medusa-style
  code, raw logits plus a logits processor -> a reference-style verifier.
- :mod:`specoracle.adapters.eagle`: EAGLE 1.2.1's ``evaluate_posterior`` through that layout.
- :mod:`specoracle.adapters.sglang`: sgl-kernel's linked-tree layout (retrieve index, next token,
  next sibling) -> a block sampler.

:mod:`specoracle.adapters.conformance` runs a fixed set of cases for every installed engine.
Submodules import torch (and the engines) when they need them; this package imports neither.
"""
__all__ = ["batched", "vllm", "transformers", "paths", "eagle", "sglang", "conformance"]


def __getattr__(name):
    if name in __all__:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
