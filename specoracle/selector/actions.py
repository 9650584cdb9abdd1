"""The selector's action grid: drafting actions ``a = (K, L1, L2)`` of DDTE §6 (ALGORITHMS.md §8.4).

An action drafts a trunk of ``L1`` tokens (one draw per edge), then ``K`` i.i.d. branches of ``L2``
tokens (:func:`specoracle.drafting.delayed`). ``K = 1`` or ``L2 = 0`` is the chain of ``L1 + L2``
tokens (same tree law). :data:`ACTIONS` is the grid ``K in 1..4, L1 in 0..4, L2 in 0..4``
(A = 100 actions, K-major); ``(K, L1, 0)`` is the same action for every ``K`` and is kept so the
grid is the one specified.

>>> len(ACTIONS), ACTIONS[0], ACTIONS[-1]
(100, (1, 0, 0), (4, 4, 4))
>>> drafted((3, 1, 2)), drafted((1, 2, 2))
(7, 4)
"""
from __future__ import annotations

__all__ = ["ACTIONS", "MAX_K", "MAX_TRUNK", "MAX_BRANCH", "drafted", "action_scheme", "exact_actions"]

ACTIONS: tuple[tuple[int, int, int], ...] = tuple(
    (K, L1, L2) for K in range(1, 5) for L1 in range(0, 5) for L2 in range(0, 5)
)
MAX_K = max(a[0] for a in ACTIONS)
MAX_TRUNK = max(a[1] for a in ACTIONS)
MAX_BRANCH = max(a[2] for a in ACTIONS)


def drafted(action: tuple[int, int, int]) -> int:
    """Number of draft draws of an action: ``L1 + K L2`` (``L1 + L2`` for chains)."""
    K, L1, L2 = action
    return L1 + L2 if (K == 1 or L2 == 0) else L1 + K * L2


def action_scheme(action: tuple[int, int, int]):
    """The drafting scheme of an action: ``chain(L1 + L2)`` for chains, else ``delayed(K, L1, L2)``."""
    from specoracle import drafting

    K, L1, L2 = action
    return drafting.chain(L1 + L2) if (K == 1 or L2 == 0) else drafting.delayed(K, L1, L2)


def exact_actions(V: int, max_trees: int) -> tuple[bool, ...]:
    """Which actions are averaged exactly over all their trees (``V^drafted(a) <= max_trees``), per action."""
    return tuple(V ** drafted(a) <= max_trees for a in ACTIONS)
