"""Small numeric helpers shared by the reference verifiers (float64 or Fraction arrays)."""
from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from specoracle.errors import InvalidInstance
from specoracle.instance import Instance
from specoracle.randomness import RandomSource

__all__ = ["positive_part", "residual_or_fallback", "accept_ratio", "chain_nodes", "require_kind"]


def positive_part(v: np.ndarray) -> np.ndarray:
    """``(v)_+ = max(v, 0)`` elementwise (works on Fraction object arrays)."""
    return np.maximum(v, 0) if v.dtype != object else np.array([x if x > 0 else 0 * x for x in v], dtype=object)


def residual_or_fallback(weights: np.ndarray, fallback: np.ndarray, rng: RandomSource, key: Hashable) -> np.ndarray:
    """``norm(weights)``; a zero-mass vector (a probability-0 branch) notes ``rng.fallback`` and
    returns ``fallback``."""
    total = weights.sum()
    if total <= 0:
        rng.fallback(key)
        return fallback
    return weights / total


def accept_ratio(p_x, q_x):
    """``min(1, p(x) / q(x))``; ``q(x) > 0`` is guaranteed by instance validation."""
    r = p_x / q_x
    return r if r < 1 else r * 0 + 1


def chain_nodes(instance: Instance, who: str) -> list[int]:
    """Node ids of a chain instance from the root down; raises if the tree branches."""
    tree = instance.tree
    if not tree.is_chain():
        raise InvalidInstance(f"{who} verifies a single draft path, but this tree branches (use a multi-path verifier)")
    nodes = [0]
    while tree.children[nodes[-1]]:
        nodes.append(tree.children[nodes[-1]][0])
    return nodes


def require_kind(instance: Instance, sampling: str, who: str) -> None:
    """Raise unless the tree's siblings were drawn the way ``who`` assumes."""
    if instance.tree.sampling != sampling:
        raise InvalidInstance(
            f"{who} assumes {sampling} sibling draws, but this tree is {instance.tree.sampling}"
        )
