"""Neural delay-and-branch selector for dynamic delayed tree expansion (DDTE §6, ALGORITHMS.md §8.4).

Before drafting, at the root of every decoding step, a small MLP picks the drafting action
``a = (K, L1, L2)``: a trunk of ``L1`` draft tokens, then ``K`` i.i.d. branches of ``L2`` tokens
(:func:`specoracle.drafting.delayed`). The choice uses only information available before
drafting, so for every fixed context the step is an ordinary delayed-tree step of the verifier in
use and stays lossless (DDTE Def. 5.2; checked with the exact engine in ``tests/test_selector.py``).

Modules, one concern each:

- :mod:`.actions`: the action grid :data:`ACTIONS` and the scheme of an action;
- :mod:`.root_features`: pre-drafting features of a root (:func:`features`);
- :mod:`.costs`: the modelled latency of an action, including the verifier's measured cost
  (:class:`LatencyModel`, :meth:`LatencyModel.measured`);
- :mod:`.data`: training data -- estimated ``E[tau + 1]`` per root and action on common random
  numbers (:func:`generate`, :class:`SelectorData`, the shipped set :func:`load_data`);
- :mod:`.policy`: the network, the throughput objective, :class:`Selector` and checkpoints;
- :mod:`.training`: :func:`train`;
- :mod:`.evaluation`: held-out scores against static and oracle policies (:func:`evaluate`,
  :func:`summary`), the shipped checkpoints' margins (:func:`measure`, :func:`margins`) and
  verifiers compared at their best static actions (:func:`compare_verifiers`).

The action may include the verifier (issue 17): a :class:`Selector` chooses among
``verifiers x ACTIONS``. Shipped checkpoints (:data:`CHECKPOINTS`, two training seeds each):
``"specinfer"`` (SpecInfer only, DDTE's setting) and ``"joint"`` (SpecInfer or traversal).

Reconstructed (not in the paper): the toy feature blocks, the latency defaults, training over a
range of target/draft cost ratios (the ratio is an input feature, like DDTE's measured latency),
and the group split of contexts by their n-gram state.
"""
from __future__ import annotations

from .actions import ACTIONS, action_scheme, drafted
from .costs import ROOFLINE_PER_NODE, LatencyModel, latency_tables, measured_kappa
from .data import DEFAULT_DATA, DataConfig, SelectorData, extend, generate
from .data import load as load_data
from .data import load_default as load_default_data
from .evaluation import (Evaluation, Margin, PolicyScore, VerifierComparison, compare_verifiers, evaluate, margins,
                         measure, summary)
from .root_features import BLOCK_NAMES, DEFAULT_WIDTH, N_BLOCKS, SCALAR_NAMES, features
from .policy import (CHECKPOINTS, DEFAULT_CHECKPOINT, Selector, SelectorNet, load, load_default, save_checkpoint,
                     static_baseline, throughput, throughput_loss)
from .training import TrainConfig, TrainResult, train

__all__ = [
    "ACTIONS", "action_scheme", "drafted",
    "SCALAR_NAMES", "BLOCK_NAMES", "N_BLOCKS", "DEFAULT_WIDTH", "features",
    "LatencyModel", "latency_tables", "ROOFLINE_PER_NODE", "measured_kappa",
    "DEFAULT_DATA", "DataConfig", "SelectorData", "generate", "extend", "load_data", "load_default_data",
    "CHECKPOINTS", "DEFAULT_CHECKPOINT", "SelectorNet", "throughput", "throughput_loss", "static_baseline", "Selector",
    "save_checkpoint", "load", "load_default",
    "TrainConfig", "TrainResult", "train",
    "PolicyScore", "Evaluation", "evaluate", "summary", "Margin", "measure", "margins",
    "VerifierComparison", "compare_verifiers",
]
