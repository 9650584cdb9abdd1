"""One verification input: a draft tree plus target and draft laws at every node, validated once.

``p[i]`` is the target law after the prefix of node ``i`` (used for the correction or bonus token
emitted at ``i``); ``q[i]`` the draft law that produced the children of ``i``. Both have shape
``[N, V]``. Validation (here and nowhere else) checks: finite, non-negative, rows summing to 1
within ``atol`` (exactly, for rational tables), shapes, tokens in range, parents before children,
and ``q[parent][token] > 0`` for every drafted node. Nothing is renormalised.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .errors import InvalidArgument, InvalidInstance
from .tree import Tree

__all__ = ["Instance", "Outcome", "validate_distribution", "DEFAULT_ATOL", "probability_faults", "raise_row_fault",
           "check_drafted_tokens"]

DEFAULT_ATOL = 1e-9


@dataclass(frozen=True)
class Outcome:
    """Result of one verification step: accepted ``node`` and the correction/bonus ``token``.

    The emitted block is ``tree.prefix(node) + (token,)``; accepted length ``tau = depth(node)``.
    """

    node: int
    token: int


def _is_rational(a: np.ndarray) -> bool:
    return a.dtype == object


def validate_distribution(v, *, name: str = "p", atol: float = DEFAULT_ATOL, node: int | None = None):
    """Validate one probability vector (or ``[N, V]`` table); return it as an array.

    Raises :class:`InvalidInstance` naming the row, token and value at fault.
    """
    if isinstance(v, np.ndarray) and v.dtype == object:
        arr = v
    else:
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"{name} must be an array of numbers: {exc}") from None
    rows = arr if arr.ndim == 2 else arr[None]
    if arr.ndim not in (1, 2):
        raise InvalidInstance(f"{name} must have shape [V] or [N, V], got shape {arr.shape}")
    if rows.shape[1] < 1:
        raise InvalidInstance(f"{name}: vocabulary size V must be >= 1, got V={rows.shape[1]}")
    rational = _is_rational(arr)
    label = (lambda i: f"{name}[node {node if node is not None else i}]") if (arr.ndim == 2 or node is not None) else (lambda i: name)
    if rational:
        for i, row in enumerate(rows):
            for tok, x in enumerate(row):
                if not isinstance(x, (Fraction, int)):
                    raise InvalidInstance(f"{label(i)}: token {tok} holds {x!r}; rational tables need Fractions")
                if x < 0:
                    raise InvalidInstance(f"{label(i)}: token {tok} has negative probability {x}")
            if sum(row) != 1:
                raise InvalidInstance(
                    f"{label(i)} sums to {sum(row)}, not exactly 1; pass normalised probabilities "
                    "(specoracle never renormalises silently)"
                )
        return arr
    nonfinite, negative, off, sums = probability_faults(rows, atol)
    bad = np.flatnonzero(nonfinite | negative | off)
    if len(bad):
        i = int(bad[0])
        raise_row_fault(label(i), rows[i], atol)
    return arr


def probability_faults(rows, atol: float):
    """Per-row faults of float probability rows ``[..., V]`` (a numpy array or a torch tensor).

    Returns ``(nonfinite, negative, off, sums)``: bool ``[...]`` masks of rows holding a NaN/inf,
    a negative entry, a sum off 1 by more than ``atol``; and the row sums ``[...]``. The one rule
    of :func:`validate_distribution` and ``specoracle.gpu.batch.from_tensors``.
    """
    nonfinite = ~(abs(rows) < float("inf")).all(-1)
    negative = (rows < 0).any(-1)
    sums = rows.sum(-1)
    return nonfinite, negative, abs(sums - 1) > atol, sums


def raise_row_fault(label: str, row, atol: float) -> None:
    """Raise :class:`InvalidInstance` for the first fault of one probability row (numpy ``[V]``),
    naming ``label``, the token and the value."""
    row = np.asarray(row, dtype=np.float64)
    bad = ~np.isfinite(row)
    if bad.any():
        tok = int(np.flatnonzero(bad)[0])
        raise InvalidInstance(f"{label}: token {tok} has non-finite probability {row[tok]}")
    neg = row < 0
    if neg.any():
        tok = int(np.flatnonzero(neg)[0])
        raise InvalidInstance(f"{label}: token {tok} has negative probability {row[tok]}")
    raise InvalidInstance(
        f"{label} sums to {float(row.sum()):.12g}, not 1 (tolerance {atol}); pass normalised "
        "probabilities (specoracle never renormalises silently)"
    )


def check_drafted_tokens(tokens, parents, valid, V: int, q_drafted, *, batched: bool = False) -> None:
    """Drafted tokens against the laws: every real non-root node's token lies in ``[0, V)`` and has
    ``q[parent][token] > 0``.

    ``tokens, parents, valid`` : arrays [B, N] (``valid`` marks real nodes); ``q_drafted`` : array
    [B, N] of ``q[parent(c)][token(c)]`` read with out-of-range tokens clamped (or a callable
    returning it, called once the range check passed). Used by :class:`Instance` and
    ``specoracle.gpu.batch.from_tensors``.
    """
    tokens, parents = np.asarray(tokens), np.asarray(parents)
    inner = np.asarray(valid, dtype=bool).copy()
    inner[:, 0] = False
    at = (lambda b: f"tree {b}: ") if batched else (lambda b: "")
    hit = np.argwhere(inner & (tokens >= V))
    if len(hit):
        b, i = map(int, hit[0])
        raise InvalidInstance(f"{at(b)}node {i}: token {int(tokens[b, i])} is out of range for V={V}")
    qd = np.asarray(q_drafted() if callable(q_drafted) else q_drafted)
    hit = np.argwhere(inner & (qd == 0))
    if len(hit):
        b, i = map(int, hit[0])
        raise InvalidInstance(
            f"{at(b)}node {i}: drafted token {int(tokens[b, i])} has q == 0 at its parent node {int(parents[b, i])}; "
            "the draft was not sampled from the q given to the verifier (top-k/top-p/temperature mismatch?)"
        )


@dataclass(frozen=True)
class Instance:
    """A validated verification input.

    Parameters
    ----------
    tree : Tree with N nodes.
    p, q : arrays [N, V] (float64, or object arrays of Fractions for exact mode).
    atol : tolerance on row sums (float mode).

    Examples
    --------
    >>> t = Tree.from_paths([(0,)])
    >>> inst = Instance(t, [[.5, .5], [.5, .5]], [[.5, .5], [1., 0.]])
    >>> inst.V, inst.N
    (2, 2)
    """

    tree: Tree
    p: np.ndarray
    q: np.ndarray
    atol: float = field(default=DEFAULT_ATOL, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.tree, Tree):
            raise InvalidArgument(f"tree must be a specoracle.Tree, got {type(self.tree).__name__}")
        p = _table(self.p, "p")
        q = _table(self.q, "q")
        object.__setattr__(self, "p", p)
        object.__setattr__(self, "q", q)
        N = self.tree.size
        if p.ndim != 2 or q.ndim != 2:
            raise InvalidInstance(f"p and q must have shape [N, V]; got p {p.shape}, q {q.shape}")
        if p.shape[0] != N:
            raise InvalidInstance(f"p has {p.shape[0]} rows but the tree has N={N} nodes; expected p of shape [{N}, V]")
        if q.shape != p.shape:
            raise InvalidInstance(f"q has shape {q.shape}, expected the shape of p {p.shape}")
        if p.shape[1] < 1:
            raise InvalidInstance(f"vocabulary size V must be >= 1, got V={p.shape[1]}")
        if _is_rational(p) != _is_rational(q):
            raise InvalidInstance("p and q must both be float or both be rational (Fraction) tables")
        validate_distribution(p, name="p", atol=self.atol)
        validate_distribution(q, name="q", atol=self.atol)
        V = p.shape[1]
        tok, par = np.array(self.tree.tokens), np.array(self.tree.parents)
        check_drafted_tokens(tok[None], par[None], np.ones((1, N), dtype=bool), V,
                             lambda: np.concatenate([[1], q[par[1:], tok[1:]]])[None])
        p.setflags(write=False)
        q.setflags(write=False)

    @property
    def N(self) -> int:
        """Number of nodes."""
        return self.tree.size

    @property
    def V(self) -> int:
        """Vocabulary size."""
        return int(self.p.shape[1])

    @property
    def rational(self) -> bool:
        """True for exact Fraction tables."""
        return _is_rational(self.p)

    def block(self, outcome: Outcome) -> tuple[int, ...]:
        """Emitted tokens of an outcome: accepted prefix plus correction/bonus token."""
        return self.tree.prefix(outcome.node) + (int(outcome.token),)

    @classmethod
    def from_model(cls, model, tree: Tree, *, atol: float = DEFAULT_ATOL) -> "Instance":
        """Read ``p`` and ``q`` at every node's prefix from a :class:`~specoracle.models.ToyModel`."""
        p = np.stack([model.p(u) for u in tree.prefixes])
        q = np.stack([model.q(u) for u in tree.prefixes])
        return cls(tree, p, q, atol=atol)


def _table(a, name: str) -> np.ndarray:
    try:
        arr = np.asarray(a)
        if arr.dtype == object:
            return np.array(arr, dtype=object)
        return np.array(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{name} must be an array of numbers: {exc}") from None
