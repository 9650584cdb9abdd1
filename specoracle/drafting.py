"""Drafting schemes: how the draft model grows a tree before verification.

Each scheme writes its drafting procedure once, against the randomness protocol
(:mod:`specoracle.randomness`), so the same code samples a tree (:meth:`Scheme.sample`) and
enumerates every tree with its exact probability (:meth:`Scheme.enumerate`).

- :func:`chain` ``(L)``: one path of ``L`` tokens.
- :func:`iid` ``(k, L)``: ``k`` i.i.d. paths of ``L`` tokens; duplicate prefixes merge.
- :func:`delayed` ``(k, trunk, branch)``: one trunk path of ``trunk`` tokens (a single draw per
  edge, multiplicity 1), then ``k`` i.i.d. branches of ``branch`` tokens from its end.
- :func:`without_replacement` ``(branching)``: at depth ``d`` every node draws ``branching[d]``
  distinct children one after another without replacement from its ``q`` (fewer if ``q`` has
  fewer tokens with positive mass).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import count

import numpy as np

from .errors import InvalidInstance, unknown_name
from .models import ToyModel
from .randomness import RandomSource, Sampling, enumerate_law
from .tree import Tree, TreeBuilder

__all__ = ["Scheme", "chain", "iid", "delayed", "without_replacement", "KINDS", "parse_scheme"]

KINDS = ("chain", "iid", "delayed", "without_replacement")


@dataclass(frozen=True)
class Scheme:
    """A drafting scheme. Build with :func:`chain`, :func:`iid`, :func:`delayed`,
    :func:`without_replacement`.

    Attributes
    ----------
    kind : one of ``KINDS``.
    k : number of i.i.d. paths (1 for chains; for without-replacement, the root branching).
    trunk, branch : delayed shape (``trunk=0, branch=L`` for iid and chain).
    branching : per-depth sibling counts (without replacement only).
    """

    kind: str
    k: int = 1
    trunk: int = 0
    branch: int = 0
    branching: tuple[int, ...] = ()

    @property
    def depth(self) -> int:
        """Largest depth L of a drafted tree."""
        if self.kind == "without_replacement":
            return len(self.branching)
        return self.trunk + self.branch

    @property
    def draws(self) -> int:
        """Most draft tokens drawn for one tree: the non-root nodes of its largest tree
        (``trunk + k * branch``; without replacement, ``b1 + b1 b2 + ...``)."""
        if self.kind == "without_replacement":
            total, width = 0, 1
            for b in self.branching:
                width *= b
                total += width
            return total
        return self.trunk + self.k * self.branch

    @property
    def name(self) -> str:
        """Short label, e.g. ``iid(2,2)``, ``delayed(2,1,1)``, ``wor(2,1)``."""
        if self.kind == "chain":
            return f"chain({self.branch})"
        if self.kind == "iid":
            return f"iid({self.k},{self.branch})"
        if self.kind == "delayed":
            return f"delayed({self.k},{self.trunk},{self.branch})"
        return "wor(" + ",".join(map(str, self.branching)) + ")"

    def __str__(self) -> str:
        return self.name

    # --- the drafting procedure, written once ----------------------------------------------
    def draft(self, model: ToyModel, rng: RandomSource) -> Tree:
        """Draft one tree from ``model``'s draft law, drawing through ``rng``."""
        counter = count()
        if self.kind == "without_replacement":
            builder = TreeBuilder(sampling="without_replacement")
            self._draft_wor(model, rng, builder, 0, (), 0, counter)
            return builder.build()
        builder = TreeBuilder(sampling="iid", trunk=self.trunk)
        node, prefix = 0, ()
        for _ in range(self.trunk):
            tok = rng.categorical(model.q(prefix), ("draft", next(counter)))
            node, prefix = builder.draw(node, tok), prefix + (tok,)
        for _ in range(self.k if self.branch else 0):
            n, u = node, prefix
            for _ in range(self.branch):
                tok = rng.categorical(model.q(u), ("draft", next(counter)))
                n, u = builder.draw(n, tok), u + (tok,)
        return builder.build()

    def _draft_wor(self, model, rng, builder, node, prefix, depth, counter) -> None:
        if depth >= len(self.branching):
            return
        q = model.q(prefix)
        remaining = np.array(q, dtype=object if model.rational else np.float64)
        kids = []
        for _ in range(self.branching[depth]):
            mass = remaining.sum()
            if mass <= 0:
                break
            tok = rng.categorical(remaining / mass, ("draft", next(counter)))
            kids.append((builder.draw(node, tok), tok))
            remaining[tok] = 0
        for child, tok in kids:
            self._draft_wor(model, rng, builder, child, prefix + (tok,), depth + 1, counter)

    def sample(self, model: ToyModel, rng: np.random.Generator | int | None = None) -> Tree:
        """One tree drawn from the scheme (``rng``: Generator or seed)."""
        return self.draft(model, rng if isinstance(rng, Sampling) else Sampling(rng))

    def enumerate(self, model: ToyModel) -> list[tuple[Tree, float | Fraction]]:
        """Every tree with positive probability, with that probability (they sum to 1)."""
        law, _ = enumerate_law(lambda r: self.draft(model, r), rational=model.rational)
        merged: dict[Tree, float | Fraction] = {}
        for tree, pr in law:
            merged[tree] = merged.get(tree, 0) + pr
        return list(merged.items())


def _check_int(name: str, v, lo: int) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
        raise InvalidInstance(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


def chain(L: int) -> Scheme:
    """A single draft path of ``L`` tokens."""
    return Scheme("chain", k=1, branch=_check_int("L", L, 0))


def iid(k: int, L: int) -> Scheme:
    """``k`` i.i.d. draft paths of ``L`` tokens each (merged into a tree)."""
    return Scheme("iid", k=_check_int("k", k, 1), branch=_check_int("L", L, 0))


def delayed(k: int, trunk: int, branch: int) -> Scheme:
    """Trunk of ``trunk`` tokens (one draw per edge), then ``k`` i.i.d. branches of ``branch``."""
    return Scheme(
        "delayed",
        k=_check_int("k", k, 1),
        trunk=_check_int("trunk", trunk, 0),
        branch=_check_int("branch", branch, 0),
    )


def without_replacement(branching: Sequence[int]) -> Scheme:
    """Fixed topology; at depth d each node draws ``branching[d]`` distinct children."""
    b = tuple(_check_int("branching entry", x, 1) for x in branching)
    return Scheme("without_replacement", k=b[0] if b else 1, branching=b)


def parse_scheme(text: str) -> Scheme:
    """Parse ``chain(2)``, ``iid(2,2)``, ``delayed(2,1,1)``, ``wor(2,1)`` (as printed by ``name``)."""
    text = text.strip().replace(" ", "")
    head, _, rest = text.partition("(")
    if not rest.endswith(")"):
        raise InvalidInstance(f"cannot parse scheme {text!r}; expected e.g. 'iid(2,2)'")
    try:
        args = [int(x) for x in rest[:-1].split(",") if x]
    except ValueError:
        raise InvalidInstance(f"cannot parse scheme {text!r}: arguments must be integers") from None
    makers = {
        "chain": lambda a: chain(*a),
        "iid": lambda a: iid(*a),
        "delayed": lambda a: delayed(*a),
        "wor": lambda a: without_replacement(a),
        "without_replacement": lambda a: without_replacement(a),
    }
    if head not in makers:
        raise unknown_name("scheme", head, makers)
    try:
        return makers[head](args)
    except TypeError:
        raise InvalidInstance(f"wrong number of arguments in scheme {text!r}") from None
