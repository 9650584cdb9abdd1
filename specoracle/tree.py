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

import numpy as np

from .errors import InvalidInstance

__all__ = ["Tree", "TreeBuilder", "SAMPLINGS", "check_sampling", "check_trunk", "check_tree_arrays",
           "preorder_tree"]

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
        check_sampling(sampling)
        check_trunk(trunk)
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
        if token < 0:
            raise InvalidInstance(f"draw at node {parent}: token {token} is negative")
        if child is not None and self.sampling == "without_replacement":
            raise InvalidInstance(f"node {parent}: a without-replacement tree cannot draw the same child twice "
                                  f"(token {token})")
        if child is None:
            child = len(self._tokens)
            self._index[key] = child
            self._tokens.append(int(token))
            self._parents.append(parent)
            self._draws.append([])
        self._draws[parent].append(child)
        return child

    def build(self) -> Tree:
        """Renumber in DFS pre-order (children in first-appearance order) and freeze.

        The result satisfies :func:`check_tree_arrays` by construction (pre-order renumbering,
        merged duplicates, draws recorded per child; :meth:`draw` refuses negative tokens and
        repeated without-replacement draws), so it is not validated again: the exact engine builds
        one tree per drafting outcome.
        """
        return preorder_tree(self._tokens, self._parents, self._draws, self.sampling, self.trunk)


def preorder_tree(tokens, parents, draws, sampling: str, trunk: int) -> Tree:
    """A :class:`Tree` from nodes in creation order (node 0 the root, each parent created before its
    children; ``draws[u]``: the child ids drawn at ``u``, in draw order), renumbered in DFS pre-order
    (children in creation order). NOT validated: for builders whose output is valid by construction."""
    order: list[int] = []
    kids: list[list[int]] = [[] for _ in tokens]
    for c in range(1, len(tokens)):
        kids[parents[c]].append(c)
    stack = [0]
    while stack:
        n = stack.pop()
        order.append(n)
        stack.extend(reversed(kids[n]))
    new = {old: i for i, old in enumerate(order)}
    tree = object.__new__(Tree)
    for name, value in (("tokens", tuple(tokens[o] for o in order)),
                        ("parents", tuple(-1 if o == 0 else new[parents[o]] for o in order)),
                        ("draws", tuple(tuple(new[c] for c in draws[o]) for o in order)),
                        ("sampling", sampling), ("trunk", trunk)):
        object.__setattr__(tree, name, value)
    return tree


def check_sampling(sampling: str) -> None:
    """Raise unless ``sampling`` is one of :data:`SAMPLINGS`."""
    if sampling not in SAMPLINGS:
        raise InvalidInstance(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")


def check_trunk(trunk: int, where: str = "") -> None:
    """Raise unless the delayed-tree ``trunk`` depth is ``>= 0``."""
    if trunk < 0:
        raise InvalidInstance(f"{where}trunk must be >= 0, got {trunk}")


def check_tree_arrays(tokens, parents, draws, multiplicity, trunk, sampling: str, *, batched: bool = False) -> None:
    """The structural rules of a draft tree, vectorised over a batch of padded trees.

    Parameters
    ----------
    tokens, parents : int arrays [B, N]; real nodes first (node 0 the root, parent ``-1``), padding
        nodes after them with parent ``-1``. Root and padding tokens are not read.
    draws : int array [B, N, K]; child ids of every node in draw order, ``-1`` padded.
    multiplicity : int array [B, N]; draws at the parent that produced each node.
    trunk : int array [B]; sampling : one of :data:`SAMPLINGS`.
    batched : name the tree (``tree b:``) in messages.

    Rules (one :class:`InvalidInstance` naming the node, value and fix): ``trunk >= 0``; padding
    after the real nodes; parents come before their children; real tokens ``>= 0``; DFS pre-order
    (the parent of node ``c`` lies on the path root -> ``c - 1``); distinct tokens among siblings;
    ``draws[u]`` lists only children of ``u``, each real node exactly ``multiplicity`` times,
    ``multiplicity >= 1``, and ``1`` without replacement. :class:`Tree` and
    ``specoracle.gpu.batch.from_tensors`` both validate with this function.
    """
    check_sampling(sampling)
    tokens, parents = np.asarray(tokens, dtype=np.int64), np.asarray(parents, dtype=np.int64)
    draws, mult = np.asarray(draws, dtype=np.int64), np.asarray(multiplicity, dtype=np.int64)
    trunk = np.asarray(trunk, dtype=np.int64)
    B, N = parents.shape
    at = (lambda b: f"tree {b}: ") if batched else (lambda b: "")

    def first(mask):
        hit = np.argwhere(mask)
        return (int(hit[0, 0]), int(hit[0, 1])) if len(hit) else None

    if (trunk < 0).any():
        b = int(np.flatnonzero(trunk < 0)[0])
        check_trunk(int(trunk[b]), at(b))
    node = np.arange(N)
    valid = (parents >= 0) | (node == 0)
    hit = first(valid[:, 1:] & ~valid[:, :-1])
    if hit:
        b, i = hit
        raise InvalidInstance(f"{at(b)}node {i + 1} is real after padding node {i} (parent -1): padding nodes "
                              "must come after the real nodes")
    inner = valid & (node > 0)
    hit = first(inner & (parents >= node))
    if hit:
        b, i = hit
        raise InvalidInstance(f"{at(b)}node {i}: parent {int(parents[b, i])} does not come before the child "
                              "(nodes must be in DFS pre-order with parents first)")
    hit = first(inner & (tokens < 0))
    if hit:
        b, i = hit
        raise InvalidInstance(f"{at(b)}node {i}: token {int(tokens[b, i])} is negative")
    # depths (parents come first), then the ancestor of c - 1 at the depth of parent(c)
    par = np.where(inner, parents, 0)
    rows = np.arange(B)[:, None]
    depth = np.zeros((B, N), dtype=np.int64)
    for i in range(1, N):
        depth[:, i] = depth[np.arange(B), par[:, i]] + 1
    prev = np.maximum(node - 1, 0)[None].repeat(B, 0)
    want = depth[rows, par]
    for _ in range(int(depth.max(initial=0))):
        up = depth[rows, prev] > want
        if not up.any():
            break
        prev = np.where(up, par[rows, prev], prev)
    hit = first(inner & (prev != par))
    if hit:
        b, i = hit
        raise InvalidInstance(f"{at(b)}node {i}: parent {int(parents[b, i])} is not on the current DFS path; "
                              "nodes are not in pre-order")
    # siblings with one token: sort (parent, token) keys of the real nodes per tree
    pkey = np.where(inner, par, -1 - node)
    order = np.lexsort((np.where(inner, tokens, 0), pkey), axis=1)
    sp, st = np.take_along_axis(pkey, order, 1), np.take_along_axis(tokens, order, 1)
    dup = (sp[:, 1:] == sp[:, :-1]) & (st[:, 1:] == st[:, :-1]) & (sp[:, 1:] >= 0)
    hit = first(dup)
    if hit:
        b, j = hit
        i = int(order[b, j + 1])
        raise InvalidInstance(f"{at(b)}node {i}: token {int(tokens[b, i])} appears twice among the children of node "
                              f"{int(parents[b, i])}; merge duplicate prefixes into one node and count them in draws")
    listed = draws >= 0
    kid = np.where(listed, np.minimum(draws, N - 1), 0)
    kid_par = np.take_along_axis(parents, kid.reshape(B, -1), 1).reshape(kid.shape)
    bad = listed & ((draws <= 0) | (draws >= N) | (kid_par != node[None, :, None]))
    hit = first(bad.any(-1))
    if hit:
        b, u = hit
        c = int(draws[b, u][bad[b, u]][0])
        raise InvalidInstance(f"{at(b)}draws[{u}] lists node {c}, which is not a child of node {u}")
    count = np.zeros((B, N), dtype=np.int64)
    np.add.at(count, (np.broadcast_to(rows[:, :, None], draws.shape)[listed], draws[listed]), 1)
    hit = first(inner & (count == 0))
    if hit:
        b, c = hit
        u = int(parents[b, c])
        missing = [int(x) for x in np.flatnonzero(inner[b] & (count[b] == 0) & (parents[b] == u))]
        raise InvalidInstance(f"{at(b)}node {u}: children {missing} never appear in draws[{u}]")
    hit = first(inner & (mult < 1))
    if hit:
        b, c = hit
        raise InvalidInstance(f"{at(b)}node {c}: multiplicity {int(mult[b, c])}; every real node is drawn at least once")
    hit = first(inner & (count != mult))
    if hit:
        b, c = hit
        raise InvalidInstance(f"{at(b)}draws[{int(parents[b, c])}] must list node {c} as often as its multiplicity "
                              f"{int(mult[b, c])}, found {int(count[b, c])}")
    if sampling == "without_replacement":
        hit = first(inner & (mult != 1))
        if hit:
            b, c = hit
            raise InvalidInstance(f"{at(b)}node {int(parents[b, c])}: a without-replacement tree cannot draw the same "
                                  f"child twice (node {c} drawn {int(mult[b, c])} times)")


def _validate_tree(t: Tree) -> None:
    n = len(t.tokens)
    if n < 1:
        raise InvalidInstance("a tree needs at least the root node (N >= 1)")
    if len(t.parents) != n or len(t.draws) != n:
        raise InvalidInstance(
            f"tree arrays disagree in length: tokens {n}, parents {len(t.parents)}, "
            f"draws {len(t.draws)}"
        )
    check_sampling(t.sampling)
    if t.parents[0] != -1 or t.tokens[0] != -1:
        raise InvalidInstance(
            f"node 0 must be the root with token -1 and parent -1, got token {t.tokens[0]}, "
            f"parent {t.parents[0]}"
        )
    K = max(1, max(len(d) for d in t.draws))
    draws = np.full((1, n, K), -1, dtype=np.int64)
    mult = np.zeros((1, n), dtype=np.int64)
    for u, d in enumerate(t.draws):
        draws[0, u, : len(d)] = d
        for c in d:
            if 0 < c < n:
                mult[0, c] += 1
    parents = np.asarray(t.parents, dtype=np.int64)[None]
    # a non-root parent -1 is not padding in a Tree: report it as a parent that does not come first
    bad = np.flatnonzero(parents[0, 1:] < 0)
    if len(bad):
        i = int(bad[0]) + 1
        raise InvalidInstance(f"node {i}: parent {t.parents[i]} does not come before the child (nodes must be in "
                              "DFS pre-order with parents first)")
    check_tree_arrays(np.asarray(t.tokens)[None], parents, draws, mult, np.array([t.trunk]), t.sampling)
