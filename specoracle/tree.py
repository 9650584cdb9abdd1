"""Draft trees: distinct prefixes in DFS pre-order, with the order in which children were drawn.

A tree has ``N`` nodes; node 0 is the root (token ``-1``, parent ``-1``). Every other node is a
distinct prefix ``u + (x,)``. Besides the structure, a tree records how its children were drafted:

- ``draws[u]``: the child nodes of ``u`` in the order they were drawn, one entry per draw (a child
  drawn twice by two i.i.d. paths appears twice). Top-down OT verifiers need this list (the k draws
  at a node, in draw order); traversal and GBV use the distinct children ``children[u]``.
- ``multiplicity[c]``: how many of the draws at ``parent(c)`` produced ``c`` (root: 1).
- ``sampling``: ``"iid"`` (draws at a node are i.i.d. from ``q_u``) or ``"without_replacement"``
  (siblings drawn one after another without replacement from ``q_u``).
- ``trunk``: depth at which i.i.d. branching starts (delayed trees); above it every node has one
  draw. ``0`` for plain i.i.d. trees and chains.

Trees are built with :class:`TreeBuilder` (which merges duplicate prefixes and renumbers in
pre-order) or :meth:`Tree.from_paths`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from .errors import InvalidInstance

__all__ = ["Tree", "TreeBuilder", "SAMPLINGS"]

SAMPLINGS = ("iid", "without_replacement")


@dataclass(frozen=True, eq=True)
class Tree:
    """A draft tree (see module docstring).

    Parameters
    ----------
    tokens : tuple[int], length N; ``tokens[0] == -1``.
    parents : tuple[int], length N; ``parents[0] == -1``, ``parents[i] < i``, DFS pre-order.
    draws : tuple[tuple[int, ...]], length N; child node indices of each node in draw order.
    sampling : ``"iid"`` or ``"without_replacement"``.
    trunk : int, depth where i.i.d. branching starts (delayed trees), else 0.

    Examples
    --------
    >>> t = Tree.from_paths([(0, 1), (0, 0)])
    >>> t.tokens, t.parents, t.draws[0], t.multiplicity
    ((-1, 0, 1, 0), (-1, 0, 1, 1), (1, 1), (1, 2, 1, 1))
    """

    tokens: tuple[int, ...]
    parents: tuple[int, ...]
    draws: tuple[tuple[int, ...], ...]
    sampling: str = "iid"
    trunk: int = 0

    def __post_init__(self) -> None:
        _validate_tree(self)

    # --- derived structure -------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of nodes N (root included)."""
        return len(self.tokens)

    @cached_property
    def children(self) -> tuple[tuple[int, ...], ...]:
        """Distinct children of every node, in first-appearance (= pre-order) order."""
        kids: list[list[int]] = [[] for _ in self.tokens]
        for i in range(1, self.size):
            kids[self.parents[i]].append(i)
        return tuple(tuple(k) for k in kids)

    @cached_property
    def multiplicity(self) -> tuple[int, ...]:
        """Number of draws at the parent that produced each node (root: 1)."""
        mult = [0] * self.size
        mult[0] = 1
        for d in self.draws:
            for c in d:
                mult[c] += 1
        return tuple(mult)

    @cached_property
    def depths(self) -> tuple[int, ...]:
        """Depth of every node (root 0)."""
        dep = [0] * self.size
        for i in range(1, self.size):
            dep[i] = dep[self.parents[i]] + 1
        return tuple(dep)

    @property
    def depth(self) -> int:
        """Largest node depth (the draft length L of the tree)."""
        return max(self.depths)

    @cached_property
    def prefixes(self) -> tuple[tuple[int, ...], ...]:
        """Token tuple of every node (root: ``()``)."""
        pre: list[tuple[int, ...]] = [()] * self.size
        for i in range(1, self.size):
            pre[i] = pre[self.parents[i]] + (self.tokens[i],)
        return tuple(pre)

    def prefix(self, node: int) -> tuple[int, ...]:
        """Tokens on the path root -> ``node``."""
        return self.prefixes[node]

    def path(self, node: int) -> tuple[int, ...]:
        """Node indices on the path root -> ``node`` (root included)."""
        out = [node]
        while out[-1] != 0:
            out.append(self.parents[out[-1]])
        return tuple(reversed(out))

    def child(self, node: int, token: int) -> int | None:
        """The child of ``node`` carrying ``token``, or None."""
        for c in self.children[node]:
            if self.tokens[c] == token:
                return c
        return None

    @cached_property
    def leaves(self) -> tuple[int, ...]:
        """Leaves in pre-order."""
        return tuple(i for i in range(self.size) if not self.children[i])

    @cached_property
    def n_paths(self) -> int:
        """Number of i.i.d. paths: draws at the branch node (depth ``trunk`` on the trunk)."""
        node = 0
        while self.depths[node] < self.trunk and self.draws[node]:
            node = self.draws[node][0]
        return max(1, len(self.draws[node]))

    def is_chain(self) -> bool:
        """True when every node has at most one child."""
        return all(len(c) <= 1 for c in self.children)

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_paths(
        cls, paths: Sequence[Sequence[int]], *, trunk: int = 0, sampling: str = "iid"
    ) -> "Tree":
        """Merge token paths into a tree; ``trunk`` leading tokens (shared by all paths) are one draw.

        Examples
        --------
        >>> Tree.from_paths([(1, 0)]).tokens
        (-1, 1, 0)
        """
        builder = TreeBuilder(sampling=sampling, trunk=trunk)
        paths = [tuple(int(t) for t in p) for p in paths]
        if trunk:
            heads = {p[:trunk] for p in paths}
            if len(heads) != 1 or any(len(p) < trunk for p in paths):
                raise InvalidInstance(
                    f"trunk={trunk}: every path must share the same first {trunk} tokens; got {paths}"
                )
            node = 0
            for tok in paths[0][:trunk]:
                node = builder.draw(node, tok)
            base = node
        else:
            base = 0
        for p in paths:
            node = base
            for tok in p[trunk:]:
                node = builder.draw(node, tok)
        return builder.build()

    def __repr__(self) -> str:
        return (
            f"Tree(tokens={self.tokens}, parents={self.parents}, draws={self.draws}, "
            f"sampling={self.sampling!r}, trunk={self.trunk})"
        )


class TreeBuilder:
    """Grow a tree draw by draw; duplicates merge; :meth:`build` renumbers in DFS pre-order.

    >>> b = TreeBuilder(); a = b.draw(0, 2); _ = b.draw(a, 0); _ = b.draw(0, 2)
    >>> b.build().draws[0]
    (1, 1)
    """

    def __init__(self, *, sampling: str = "iid", trunk: int = 0) -> None:
        self.sampling = sampling
        self.trunk = trunk
        self._tokens = [-1]
        self._parents = [-1]
        self._draws: list[list[int]] = [[]]
        self._index: dict[tuple[int, int], int] = {}

    def draw(self, parent: int, token: int) -> int:
        """Record one draw of ``token`` at ``parent``; return the (possibly existing) child id."""
        key = (parent, int(token))
        child = self._index.get(key)
        if child is None:
            child = len(self._tokens)
            self._index[key] = child
            self._tokens.append(int(token))
            self._parents.append(parent)
            self._draws.append([])
        self._draws[parent].append(child)
        return child

    def build(self) -> Tree:
        """Renumber in DFS pre-order (children in first-appearance order) and freeze."""
        order: list[int] = []
        kids: list[list[int]] = [[] for _ in self._tokens]
        for c in range(1, len(self._tokens)):
            kids[self._parents[c]].append(c)
        stack = [0]
        while stack:
            n = stack.pop()
            order.append(n)
            stack.extend(reversed(kids[n]))
        new = {old: i for i, old in enumerate(order)}
        return Tree(
            tokens=tuple(self._tokens[o] for o in order),
            parents=tuple(-1 if o == 0 else new[self._parents[o]] for o in order),
            draws=tuple(tuple(new[c] for c in self._draws[o]) for o in order),
            sampling=self.sampling,
            trunk=self.trunk,
        )


def _validate_tree(t: Tree) -> None:
    n = len(t.tokens)
    if n < 1:
        raise InvalidInstance("a tree needs at least the root node (N >= 1)")
    if len(t.parents) != n or len(t.draws) != n:
        raise InvalidInstance(
            f"tree arrays disagree in length: tokens {n}, parents {len(t.parents)}, "
            f"draws {len(t.draws)}"
        )
    if t.sampling not in SAMPLINGS:
        raise InvalidInstance(f"sampling must be one of {SAMPLINGS}, got {t.sampling!r}")
    if t.parents[0] != -1 or t.tokens[0] != -1:
        raise InvalidInstance(
            f"node 0 must be the root with token -1 and parent -1, got token {t.tokens[0]}, "
            f"parent {t.parents[0]}"
        )
    if t.trunk < 0:
        raise InvalidInstance(f"trunk must be >= 0, got {t.trunk}")
    stack = [0]
    seen: set[tuple[int, int]] = set()
    for i in range(1, n):
        par, tok = t.parents[i], t.tokens[i]
        if not 0 <= par < i:
            raise InvalidInstance(
                f"node {i}: parent {par} does not come before the child (nodes must be in DFS "
                "pre-order with parents first)"
            )
        if tok < 0:
            raise InvalidInstance(f"node {i}: token {tok} is negative")
        while stack and stack[-1] != par:
            stack.pop()
        if not stack:
            raise InvalidInstance(
                f"node {i}: parent {par} is not on the current DFS path; nodes are not in "
                "pre-order"
            )
        stack.append(i)
        if (par, tok) in seen:
            raise InvalidInstance(
                f"node {i}: token {tok} appears twice among the children of node {par}; merge "
                "duplicate prefixes into one node and count them in draws"
            )
        seen.add((par, tok))
    for u, d in enumerate(t.draws):
        for c in d:
            if not 0 < c < n or t.parents[c] != u:
                raise InvalidInstance(f"draws[{u}] lists node {c}, which is not a child of node {u}")
        kids = {i for i in range(1, n) if t.parents[i] == u}
        missing = kids - set(d)
        if missing:
            raise InvalidInstance(f"node {u}: children {sorted(missing)} never appear in draws[{u}]")
        if t.sampling == "without_replacement" and len(set(d)) != len(d):
            raise InvalidInstance(
                f"node {u}: a without-replacement tree cannot draw the same child twice ({d})"
            )
