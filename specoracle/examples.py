"""The named test models of ALGORITHMS.md §1.5 and ALGORITHMS-2.md §1.5 (E1-E5, HSDTOY), and
the one parser of model strings (:func:`parse_model`) shared by the API and the command line.

Each factory returns a fresh :class:`~specoracle.models.ToyModel`; ``rational=True`` gives exact
Fraction tables (E1-E5 have rational entries).
"""
from __future__ import annotations

import re
from fractions import Fraction as F

import numpy as np

from .errors import InvalidArgument, InvalidInstance, unknown_name
from .models import ToyModel, context_free

__all__ = ["E1", "E1b", "E2", "E3", "E4", "E5", "HSDTOY", "MODELS", "get", "parse_model", "MODEL_SYNTAX"]


def _vec(values, rational: bool):
    if rational:
        return np.array([F(str(v)) if not isinstance(v, F) else v for v in values], dtype=object)
    return np.array([float(v) for v in values])


def E1(rational: bool = False) -> ToyModel:
    """Context-free V=2: p = (2/3, 1/3), q = (1/3, 2/3). BV paper toy: naive 10/9, BV 11/9 (L=2)."""
    if rational:
        return context_free([F(2, 3), F(1, 3)], [F(1, 3), F(2, 3)], name="E1")
    return context_free([2 / 3, 1 / 3], [1 / 3, 2 / 3], name="E1")


def E1b(rational: bool = False) -> ToyModel:
    """E1 with tokens swapped: p = (1/3, 2/3), q = (2/3, 1/3)."""
    if rational:
        return context_free([F(1, 3), F(2, 3)], [F(2, 3), F(1, 3)], name="E1b")
    return context_free([1 / 3, 2 / 3], [2 / 3, 1 / 3], name="E1b")


def _table_model(name, V, table_p, table_q, default_p, default_q, rational):
    def law(table, default):
        def f(u):
            return _vec(table.get(tuple(u), default), rational)
        return f
    return ToyModel(V, law(table_p, default_p), law(table_q, default_q), rational=rational, name=name)


def E2(rational: bool = False) -> ToyModel:
    """V=3 context-dependent (ALGORITHMS.md §1.5); depth >= 2 contexts: p = (.4,.3,.3), q uniform."""
    tp = {(): (".5", ".3", ".2"), (0,): (".6", ".2", ".2"), (1,): (".1", ".8", ".1"), (2,): (".3", ".3", ".4")}
    tq = {(): (".3", ".5", ".2"), (0,): (".2", ".6", ".2"), (1,): (".3", ".4", ".3"), (2,): (".6", ".2", ".2")}
    third = F(1, 3) if rational else 1 / 3
    return _table_model("E2", 3, tp, tq, (".4", ".3", ".3"), (third, third, third), rational)


def E3(rational: bool = False) -> ToyModel:
    """V=2 context-dependent (ALGORITHMS.md §1.5); depth >= 2 contexts: p = q = (.5, .5)."""
    tp = {(): (".6", ".4"), (0,): (".7", ".3"), (1,): (".2", ".8")}
    tq = {(): (".3", ".7"), (0,): (".4", ".6"), (1,): (".5", ".5")}
    return _table_model("E3", 2, tp, tq, (".5", ".5"), (".5", ".5"), rational)


def E4(rational: bool = False) -> ToyModel:
    """Context-free V=4: p = (.4,.3,.2,.1), q = (.1,.2,.3,.4)."""
    return _table_model("E4", 4, {}, {}, (".4", ".3", ".2", ".1"), (".1", ".2", ".3", ".4"), rational)


def E5(rational: bool = False) -> ToyModel:
    """V=4 context-dependent: p(.|u) = roll((.4,.3,.2,.1), sum(u) % 4),
    q(.|u) = roll((.25,.4,.15,.2), (|u| + 2 sum(u)) % 4). Catches every mutant of ALGORITHMS-2 §11."""
    base_p = _vec((".4", ".3", ".2", ".1"), rational)
    base_q = _vec((".25", ".4", ".15", ".2"), rational)
    return ToyModel(
        4,
        lambda u: np.roll(base_p, sum(u) % 4),
        lambda u: np.roll(base_q, (len(u) + 2 * sum(u)) % 4),
        rational=rational,
        name="E5",
    )


def HSDTOY(rational: bool = False) -> ToyModel:
    """HSD repo toy: context-free V=2, q = (2/3, 1/3), p = (1/3, 2/3) (draft length 10 there)."""
    m = E1b(rational)
    m.name = "HSDTOY"
    return m


MODELS = {"E1": E1, "E1b": E1b, "E2": E2, "E3": E3, "E4": E4, "E5": E5, "HSDTOY": HSDTOY}


def get(name: str, rational: bool = False) -> ToyModel:
    """A named example model; unknown names raise with the valid ones."""
    if name not in MODELS:
        raise unknown_name("example model", name, MODELS)
    return MODELS[name](rational)


MODEL_SYNTAX = ("E1..E5, E1b, HSDTOY, random:V:seed[:divergence], ngram:V[:target_order:draft_order], "
                "sparse:V:seed:pattern, each optionally followed by transforms |T=t[side], |top_k=k[side], "
                "|top_p=p[side] with side both, target or draft")
"""The grammar of :func:`parse_model`, in words (CLI help and error messages)."""

_TRANSFORMS = {"T": ("temperature", float), "top_k": ("top_k", int), "top_p": ("top_p", float)}


def _base_model(text: str) -> ToyModel:
    from . import models

    head, _, rest = text.partition(":")
    args = [a for a in rest.split(":") if a] if rest else []
    try:
        if head == "random":
            if len(args) not in (2, 3):
                raise InvalidInstance(f"model {text!r}: expected random:V:seed[:divergence]")
            div = float(args[2]) if len(args) == 3 else 0.5
            return models.random_model(int(args[0]), int(args[1]), divergence=div, name=text)
        if head == "ngram":
            if len(args) not in (1, 3):
                raise InvalidInstance(f"model {text!r}: expected ngram:V[:target_order:draft_order]")
            to, do = (int(args[1]), int(args[2])) if len(args) == 3 else (3, 1)
            return models.ngram_pair(vocab=int(args[0]), target_order=to, draft_order=do, name=text)
        if head == "sparse":
            if len(args) != 3:
                raise InvalidInstance(f"model {text!r}: expected sparse:V:seed:pattern with pattern one of "
                                      f"{', '.join(models.SPARSE_PATTERNS)}")
            return models.sparse_model(int(args[0]), int(args[1]), args[2], name=text)
    except ValueError as exc:
        if isinstance(exc, InvalidInstance):
            raise
        raise InvalidInstance(f"model {text!r}: arguments must be numbers ({exc})") from None
    if head in MODELS and not args:
        return get(head)
    raise unknown_name("model", text, [*MODELS, "random:V:seed", "ngram:V", "sparse:V:seed:pattern"])


def parse_model(text) -> ToyModel:
    """A model from its string (:data:`MODEL_SYNTAX`); a :class:`~specoracle.models.ToyModel` is
    returned as is. The API (``check_lossless``) and the CLI read models through this one parser.

    Transforms apply left to right: ``"E5|T=0.5[draft]|top_k=2"`` is E5 with the draft at
    temperature 0.5, then top-2 on both sides. The model's ``name`` is the string itself
    (transforms print their side: ``E5|T=0.5[draft]|top_k=2[both]``).

    >>> parse_model("E2").V, parse_model("random:5:1").V, parse_model("ngram:4").V
    (3, 5, 4)
    >>> parse_model("random:3:0|top_k=2[target]").name
    'random:3:0|top_k=2[target]'
    """
    from . import models

    if isinstance(text, ToyModel):
        return text
    if not isinstance(text, str):
        raise InvalidArgument(f"model must be a ToyModel or a model string ({MODEL_SYNTAX}), got {type(text).__name__}")
    base, *steps = [part.strip() for part in text.strip().split("|")]
    model = _base_model(base)
    for step in steps:
        match = re.fullmatch(r"(\w+)=([^\[\]]+)(?:\[(\w+)\])?", step)
        if match is None or match.group(1) not in _TRANSFORMS:
            raise unknown_name("model transform", step, [f"{k}=..." for k in _TRANSFORMS])
        key, value, side = match.group(1), match.group(2), match.group(3) or "both"
        fn, cast = _TRANSFORMS[key]
        try:
            arg = cast(value)
        except ValueError:
            raise InvalidInstance(f"model {text!r}: transform {step!r} needs a number, got {value!r}") from None
        model = getattr(models, fn)(model, arg, side=side)
    return model
