"""Adapters from other projects' verifier conventions to specoracle's.

- :mod:`specoracle.adapters.batched`: batched ``[B, L, V]`` probability tensors with draft ids and
  uniform samples (vLLM / FlashInfer convention) -> a block sampler / reference-style verifier.
- :mod:`specoracle.adapters.transformers`: Hugging Face transformers' speculative sampling
  function (batch 1, logits, global torch RNG) -> a reference-style verifier.

Submodules import torch (and transformers) when imported; this package itself imports neither.
"""
__all__ = ["batched", "transformers"]


def __getattr__(name):
    if name in __all__:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
