"""Toy language-model pairs: a target ``p`` and a draft ``q`` over a small vocabulary.

A :class:`ToyModel` maps a prefix (tuple of tokens after the prompt) to next-token probability
vectors of length ``V``. Values are cached per prefix. Probabilities are float64 arrays, or object
arrays of :class:`fractions.Fraction` for the exact rational mode (``model.rational``).

Constructors: :func:`context_free`, :func:`random_model`, :func:`ngram_pair`; transforms
:func:`temperature`, :func:`top_k`, :func:`top_p` (applied to both sides by default, or to one
side to model real mismatches).
"""
from __future__ import annotations

import sysconfig
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import InvalidArgument, InvalidInstance, unknown_name
from .instance import validate_distribution

__all__ = [
    "ToyModel",
    "context_free",
    "random_model",
    "ngram_pair",
    "default_corpus",
    "temperature",
    "top_k",
    "top_p",
    "rationalize",
    "sparse_model",
    "tabulated",
    "SIDES",
    "SPARSE_PATTERNS",
]

Dist = Callable[[tuple], np.ndarray]
SIDES = ("both", "target", "draft")


def _as_prob_vector(v, V: int, who: str, prefix: tuple, rational: bool) -> np.ndarray:
    if rational:
        arr = np.array([x if isinstance(x, Fraction) else Fraction(x) for x in v], dtype=object)
    else:
        arr = np.asarray(v, dtype=np.float64)
    if arr.shape != (V,):
        raise InvalidInstance(f"{who}{prefix} has shape {arr.shape}, expected ({V},)")
    return arr


class ToyModel:
    """A target/draft pair of conditional next-token laws over ``V`` tokens.

    Parameters
    ----------
    V : int, vocabulary size (>= 1).
    target, draft : callables ``prefix_tuple -> probability vector [V]``.
    rational : bool, values are :class:`~fractions.Fraction` (exact mode).
    name : str, for reports.

    ``p(prefix)``, ``q(prefix)`` return cached read-only vectors; ``P(prefix)``, ``Q(prefix)`` joint
    probabilities ``prod_i p(u_i | u_<i)``.

    Examples
    --------
    >>> m = context_free([0.5, 0.5], [0.9, 0.1])
    >>> float(m.P((0, 1))), float(m.Q((0, 1)))
    (0.25, 0.09000000000000001)
    """

    def __init__(
        self,
        V: int,
        target: Dist,
        draft: Dist,
        *,
        rational: bool = False,
        name: str = "toy",
    ) -> None:
        if not isinstance(V, (int, np.integer)) or isinstance(V, bool):
            raise InvalidArgument(f"V must be an int, got {type(V).__name__}")
        if V < 1:
            raise InvalidInstance(f"vocabulary size V must be >= 1, got V={V}")
        self.V = int(V)
        self._target = target
        self._draft = draft
        self.rational = bool(rational)
        self.name = name
        self._cache: dict[tuple[str, tuple], np.ndarray] = {}

    def _get(self, which: str, fn: Dist, prefix: tuple) -> np.ndarray:
        prefix = tuple(int(t) for t in prefix)
        key = (which, prefix)
        hit = self._cache.get(key)
        if hit is None:
            hit = _as_prob_vector(fn(prefix), self.V, which, prefix, self.rational)
            validate_distribution(hit, name=f"{self.name}: {which}(prefix={prefix})")
            hit.setflags(write=False)
            self._cache[key] = hit
        return hit

    def p(self, prefix: Sequence[int] = ()) -> np.ndarray:
        """Target next-token law after ``prefix``, shape [V]."""
        return self._get("p", self._target, tuple(prefix))

    def q(self, prefix: Sequence[int] = ()) -> np.ndarray:
        """Draft next-token law after ``prefix``, shape [V]."""
        return self._get("q", self._draft, tuple(prefix))

    def P(self, prefix: Sequence[int]):
        """Joint target probability of ``prefix``."""
        return self._joint(self.p, prefix)

    def Q(self, prefix: Sequence[int]):
        """Joint draft probability of ``prefix``."""
        return self._joint(self.q, prefix)

    def _joint(self, law, prefix):
        prefix = tuple(prefix)
        out = Fraction(1) if self.rational else 1.0
        for i, tok in enumerate(prefix):
            out = out * law(prefix[:i])[tok]
        return out

    def target_law(self, length: int) -> np.ndarray:
        """Dense joint target law on ``V^length``, shape ``[V] * length`` (C order)."""
        dtype = object if self.rational else np.float64
        law = np.ones((1,), dtype=dtype) if not self.rational else np.array([Fraction(1)], dtype=object)
        prefixes: list[tuple] = [()]
        for _ in range(length):
            rows = np.stack([self.p(u) for u in prefixes])  # [n, V]
            law = (law[:, None] * rows).reshape(-1)
            prefixes = [u + (t,) for u in prefixes for t in range(self.V)]
        return law.reshape((self.V,) * length) if length else law.reshape(())

    def __repr__(self) -> str:
        return f"ToyModel(name={self.name!r}, V={self.V}, rational={self.rational})"


# --- constructors ----------------------------------------------------------------------------
def context_free(p: Sequence, q: Sequence, *, name: str = "context_free") -> ToyModel:
    """Same ``p`` and ``q`` after every prefix. Fractions in both give a rational model.

    >>> from fractions import Fraction as F
    >>> context_free([F(2, 3), F(1, 3)], [F(1, 3), F(2, 3)]).rational
    True
    """
    rational = all(isinstance(x, Fraction) for x in list(p) + list(q))
    pv = _as_prob_vector(p, len(p), "p", (), rational)
    qv = _as_prob_vector(q, len(p), "q", (), rational)
    return ToyModel(len(pv), lambda u: pv, lambda u: qv, rational=rational, name=name)


def random_model(
    V: int,
    seed: int,
    *,
    concentration: float = 1.0,
    divergence: float = 0.5,
    smoothing: float = 0.0,
    name: str | None = None,
) -> ToyModel:
    """Context-dependent random pair: ``p_u ~ Dirichlet(concentration)`` per prefix ``u``.

    ``q_u = (1 - divergence) p_u + divergence r_u`` with an independent ``r_u ~ Dirichlet``, so
    ``divergence=0`` gives ``q == p`` and ``divergence=1`` independent laws. ``smoothing`` mixes
    both with the uniform law (keeps masses away from 0 for LP tests). Deterministic in
    ``(seed, prefix)``.
    """
    if not 0.0 <= divergence <= 1.0:
        raise InvalidInstance(f"divergence must lie in [0, 1], got {divergence}")
    if not 0.0 <= smoothing <= 1.0:
        raise InvalidInstance(f"smoothing must lie in [0, 1], got {smoothing}")
    if concentration <= 0:
        raise InvalidInstance(f"concentration must be > 0, got {concentration}")
    V = int(V)
    alpha = np.full(V, float(concentration))

    def pair(u: tuple) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), len(u), *u]))
        p = rng.dirichlet(alpha)
        r = rng.dirichlet(alpha)
        q = (1 - divergence) * p + divergence * r
        uni = np.full(V, 1.0 / V)
        p = (1 - smoothing) * p + smoothing * uni
        q = (1 - smoothing) * q + smoothing * uni
        return p / p.sum(), q / q.sum()

    return ToyModel(
        V,
        lambda u: pair(u)[0],
        lambda u: pair(u)[1],
        name=name or f"random(V={V},seed={seed},div={divergence})",
    )


SPARSE_PATTERNS = ("p_zeros", "q_zeros", "both_zeros", "onehot_p", "onehot_q", "onehot_same")
"""Zero patterns of :func:`sparse_model`, the boundary rows where verifiers divide by zero, draft
tokens the target never takes, or must reach a token only through the residual."""


def sparse_model(V: int, seed: int, pattern: str, *, name: str | None = None) -> ToyModel:
    """Context-dependent random pair with zeros placed on purpose (deterministic in ``(seed, prefix)``).

    ``p_u``, ``r_u ~ Dirichlet(1)`` per prefix and ``q_u = (p_u + r_u) / 2``, then by ``pattern``:

    - ``p_zeros``: ``p = 0`` on ``floor(V/2)`` random tokens (q > 0 there: drafts the target never takes);
    - ``q_zeros``: ``q = 0`` on ``floor(V/2)`` random tokens (p > 0 there: reachable only by the residual);
    - ``both_zeros``: both, on independent random sets;
    - ``onehot_p``: ``p`` one-hot on a random token (a greedy target), ``q`` dense;
    - ``onehot_q``: ``q`` one-hot (every draft is the same token), ``p`` dense;
    - ``onehot_same``: ``p == q``, both one-hot on the same token.

    Each row keeps at least one positive entry and is renormalised after masking.

    >>> m = sparse_model(4, 0, "q_zeros")
    >>> int((m.q(()) == 0).sum()), int((m.p(()) == 0).sum())
    (2, 0)
    """
    if pattern not in SPARSE_PATTERNS:
        raise unknown_name("sparse pattern", pattern, SPARSE_PATTERNS)
    V = int(V)
    if V < 2:
        raise InvalidInstance(f"a sparse model needs V >= 2, got V={V}")

    def pair(u: tuple) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7919, len(u), *u]))
        p, r = rng.dirichlet(np.ones(V)), rng.dirichlet(np.ones(V))
        q = (p + r) / 2
        zp, zq = rng.permutation(V)[: V // 2], rng.permutation(V)[: V // 2]
        hot = int(rng.integers(V))
        if pattern in ("p_zeros", "both_zeros"):
            p[zp] = 0.0
        if pattern in ("q_zeros", "both_zeros"):
            q[zq] = 0.0
        if pattern in ("onehot_p", "onehot_same"):
            p = np.eye(V)[hot]
        if pattern in ("onehot_q", "onehot_same"):
            q = np.eye(V)[hot]
        return p / p.sum(), q / q.sum()

    return ToyModel(V, lambda u: pair(u)[0], lambda u: pair(u)[1], name=name or f"sparse:{V}:{seed}:{pattern}")


def tabulated(V: int, p_rows: dict, q_rows: dict, *, name: str = "table") -> ToyModel:
    """A pair given by tables ``prefix tuple -> row [V]``; a prefix not listed takes the root
    row ``()`` (which both tables must hold). Fractions in every row give a rational model.

    >>> m = tabulated(2, {(): [0.5, 0.5], (1,): [1.0, 0.0]}, {(): [0.9, 0.1]})
    >>> m.p((1,)).tolist(), m.p((0, 0)).tolist(), m.q((1,)).tolist()
    ([1.0, 0.0], [0.5, 0.5], [0.9, 0.1])
    """
    for who, rows in (("p_rows", p_rows), ("q_rows", q_rows)):
        if () not in rows:
            raise InvalidInstance(f"{who} must hold the root row () (the row of every prefix not listed)")
    rational = all(isinstance(x, Fraction) for rows in (p_rows, q_rows) for row in rows.values() for x in row)
    p = {tuple(k): v for k, v in p_rows.items()}
    q = {tuple(k): v for k, v in q_rows.items()}
    return ToyModel(V, lambda u: p.get(u, p[()]), lambda u: q.get(u, q[()]), rational=rational, name=name)


def default_corpus(max_chars: int = 200_000) -> str:
    """A fixed slice of the Python standard library's own sources (deterministic)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = []
    for fname in ("textwrap.py", "string.py", "heapq.py", "bisect.py", "fnmatch.py", "glob.py",
                  "shlex.py", "difflib.py", "random.py", "os.py"):
        path = stdlib / fname
        if path.exists():
            text.append(path.read_text(encoding="utf-8", errors="replace"))
    corpus = "\n".join(text)[:max_chars]
    if not corpus:
        raise InvalidInstance(f"no standard-library sources found under {stdlib}")
    return corpus


def _tokenize(text: str, vocab: int | str) -> tuple[list[int], list[str]]:
    if isinstance(vocab, str):
        symbols = list(dict.fromkeys(vocab))
        if len(symbols) < 1:
            raise InvalidInstance("vocab string must name at least one character")
        lookup = {c: i for i, c in enumerate(symbols)}
        other = len(symbols)
        names = symbols + ["<other>"]
        ids = [lookup.get(c, other) for c in text]
        if other not in ids:
            names = symbols
            ids = [lookup[c] for c in text]
        return ids, names
    V = int(vocab)
    if V < 2:
        raise InvalidInstance(f"an integer vocab must be >= 2 (V-1 frequent characters + other), got {V}")
    common = [c for c, _ in Counter(text).most_common(V - 1)]
    lookup = {c: i for i, c in enumerate(common)}
    return [lookup.get(c, V - 1) for c in text], common + ["<other>"]


def _fit_ngram(ids: list[int], order: int, V: int, alpha: float) -> Callable[[tuple], np.ndarray]:
    counts: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros(V))
    arr = np.asarray(ids, dtype=np.int64)
    for n in range(order):  # all context lengths 0..order-1 for back-off
        if len(arr) <= n:
            break
        # every window (context of n tokens, next token) as one base-V code, counted per distinct code
        codes = np.zeros(len(arr) - n, dtype=np.int64)
        for j in range(n + 1):
            codes = codes * V + arr[j : len(arr) - n + j]
        distinct, freq = np.unique(codes, return_counts=True)
        for code, c in zip(distinct.tolist(), freq.tolist()):
            row = []
            for _ in range(n + 1):
                code, t = divmod(code, V)
                row.append(t)
            row.reverse()
            counts[tuple(row[:-1])][row[-1]] += c

    def law(context: tuple) -> np.ndarray:
        ctx = tuple(context[-(order - 1):]) if order > 1 else ()
        while ctx and ctx not in counts:
            ctx = ctx[1:]  # back off to shorter contexts never seen in the corpus
        c = counts[ctx] if ctx in counts else counts[()]
        v = c + alpha
        return v / v.sum()

    return law


def ngram_pair(
    text: str | None = None,
    target_order: int = 3,
    draft_order: int = 1,
    *,
    vocab: int | str = 4,
    prompt: Sequence[int] = (),
    smoothing: float = 0.5,
    name: str | None = None,
) -> ToyModel:
    """Character n-gram target and draft fitted to real text (default: stdlib sources).

    ``vocab`` is an int ``V`` (the ``V-1`` most frequent characters plus an "other" class) or a
    string of characters. Orders count the predicted token (order 1 = unigram). ``prompt`` is the
    context before the root. Additive ``smoothing`` keeps every probability positive.
    """
    if target_order < 1 or draft_order < 1:
        raise InvalidInstance(f"orders must be >= 1, got {target_order}, {draft_order}")
    text = default_corpus() if text is None else text
    if not text:
        raise InvalidInstance("ngram_pair needs a non-empty text")
    ids, names = _tokenize(text, vocab)
    V = len(names)
    tgt = _fit_ngram(ids, target_order, V, smoothing)
    dft = _fit_ngram(ids, draft_order, V, smoothing)
    prompt = tuple(int(t) for t in prompt)
    model = ToyModel(
        V,
        lambda u: tgt(prompt + u),
        lambda u: dft(prompt + u),
        name=name or f"ngram(V={V},{target_order}/{draft_order})",
    )
    model.token_names = names  # type: ignore[attr-defined]
    return model


# --- transforms ------------------------------------------------------------------------------
def _transform(model: ToyModel, fn: Callable[[np.ndarray], np.ndarray], side: str, tag: str) -> ToyModel:
    if side not in SIDES:
        raise unknown_name("side", side, SIDES)
    if model.rational:
        raise InvalidArgument(f"{tag} is not defined for rational models (it needs floating point)")
    tgt = (lambda u: fn(np.asarray(model.p(u), float))) if side in ("both", "target") else model.p
    dft = (lambda u: fn(np.asarray(model.q(u), float))) if side in ("both", "draft") else model.q
    out = ToyModel(model.V, tgt, dft, name=f"{model.name}|{tag}[{side}]")
    if hasattr(model, "token_names"):
        out.token_names = model.token_names  # type: ignore[attr-defined]
    return out


def temperature(model: ToyModel, T: float, *, side: str = "both") -> ToyModel:
    """``p -> p^(1/T) / Z`` (T > 0); applied to ``side`` ('both', 'target' or 'draft')."""
    if not T > 0:
        raise InvalidInstance(f"temperature must be > 0, got {T}")

    def fn(v: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            logits = np.log(v) / T
        logits -= logits.max()
        w = np.exp(logits)
        return w / w.sum()

    return _transform(model, fn, side, f"T={T}")


def top_k(model: ToyModel, k: int, *, side: str = "both") -> ToyModel:
    """Keep the ``k`` most likely tokens (ties: lower index first), renormalise."""
    if k < 1:
        raise InvalidInstance(f"top-k needs k >= 1, got {k}")

    def fn(v: np.ndarray) -> np.ndarray:
        keep = np.argsort(-v, kind="stable")[:k]
        out = np.zeros_like(v)
        out[keep] = v[keep]
        return out / out.sum()

    return _transform(model, fn, side, f"top_k={k}")


def top_p(model: ToyModel, top: float, *, side: str = "both") -> ToyModel:
    """Keep the smallest most-likely set with mass >= ``top`` (nucleus), renormalise."""
    if not 0 < top <= 1:
        raise InvalidInstance(f"top-p needs 0 < p <= 1, got {top}")

    def fn(v: np.ndarray) -> np.ndarray:
        order = np.argsort(-v, kind="stable")
        csum = np.cumsum(v[order])
        n = int(np.searchsorted(csum, top - 1e-12) + 1)
        out = np.zeros_like(v)
        out[order[:n]] = v[order[:n]]
        return out / out.sum()

    return _transform(model, fn, side, f"top_p={top}")


def rationalize(model: ToyModel, *, max_denominator: int = 10**6) -> ToyModel:
    """Rational copy of a float model: each row rounded to Fractions, last entry fixed so it sums to 1."""

    def conv(fn):
        def law(u):
            v = [Fraction(float(x)).limit_denominator(max_denominator) for x in fn(u)]
            j = int(np.argmax([float(x) for x in v]))
            v[j] += 1 - sum(v)
            return np.array(v, dtype=object)

        return law

    return ToyModel(model.V, conv(model.p), conv(model.q), rational=True, name=f"{model.name}|rational")
