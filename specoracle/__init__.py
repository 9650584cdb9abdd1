"""specoracle: the truth about speculative-decoding verifiers.

Exact losslessness and efficiency of verifiers on toy models (:mod:`specoracle.exact`), LP bounds
(:mod:`specoracle.lp`), batched torch twins (:mod:`specoracle.gpu`) and statistical checks.
Importing this package never imports torch or cvxpy.
"""
from __future__ import annotations

from . import drafting, errors, exact, models, randomness, registry
from .drafting import Scheme, chain, delayed, iid, without_replacement
from .errors import InvalidArgument, InvalidInstance, SpecoracleError, UnknownName
from .instance import Instance, Outcome
from .tree import Tree, TreeBuilder

__version__ = "0.1.0"

__all__ = [
    "Instance",
    "Outcome",
    "Tree",
    "TreeBuilder",
    "Scheme",
    "chain",
    "iid",
    "delayed",
    "without_replacement",
    "SpecoracleError",
    "InvalidInstance",
    "InvalidArgument",
    "UnknownName",
    "drafting",
    "errors",
    "exact",
    "models",
    "randomness",
    "registry",
    "__version__",
]


def __getattr__(name: str):
    """Lazy re-exports (keep ``import specoracle`` light): ``specoracle.check_lossless``, ``specoracle.hunt``."""
    if name == "check_lossless":
        from .check import check_lossless

        return check_lossless
    if name == "hunt":
        from .hunting import hunt

        return hunt
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
