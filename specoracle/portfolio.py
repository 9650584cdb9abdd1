"""The zero-configuration portfolio: cases designed to catch verifier bugs, run under a time budget.

``check_lossless(verifier)`` with no model and no scheme (``specoracle check NAME`` with no
``--model``/``--scheme``) runs :data:`PORTFOLIO`, one table of :class:`Case` rows, in order:

- where bugs hide: vocabularies V = 2..6 (some bugs need V >= 5) and V = 9, 12, 17, 33 (just past
  the tiles of 8, 16, 32 tokens that kernels work in), random pairs at divergence 0.5,
  0.01, 0.001 (p close to q: ratios near 1, residuals near 0) and 0 (p == q), context-dependent rows
  (the named examples E1-E5, n-gram pairs fitted to real text), sparse rows (zeros in p, zeros in
  q, q = 0 where p > 0, one-hot rows; :func:`specoracle.models.sparse_model`), temperature, top-k and
  top-p applied to one side and to both, chains of depth 1..4 (block-verification bugs need
  L >= 2; some need L >= 3);
- and, for a verifier that accepts trees, every tree kind it accepts: i.i.d. drafts, delayed
  expansion and drafts without replacement with up to k = 3 drafts per node and depth up to 3,
  interleaved with the chains from the first tier on (never a chain-only check).

Each row is a model string (:func:`specoracle.examples.parse_model`) and a scheme string, so any
case can be rerun by hand: ``check_lossless(v, "random:5:3:0.001", "chain(3)")``. Rows are grouped
in tiers, most revealing per second first; within a tier a verifier runs the rows whose scheme kind
it accepts, cheapest first (:func:`specoracle.check.exact_work`).
Each row is checked exactly when :func:`specoracle.check.estimate_exact` fits in the budget left
(chi-squared for verifiers that cannot be enumerated); a row that no longer fits is skipped and
listed. A case on which the verifier raises is a failure too (its error is the evidence; a plain
callable's first case of a tree kind excepted, see below). The run stops at the first failure and
shrinks it (:func:`shrink`) to a minimal
failing case: the smallest scheme (depth, drafts, kind) that still fails, then the model made
context-free, tokens dropped (smallest V), and rows rounded to short decimals, each step kept only
while the failure persists. The verdict prints it as code to paste into a test.

Which tree kinds a verifier accepts: a registry entry's ``schemes``; an object with ``verify`` and
``schemes`` (a :class:`specoracle.mutants.Mutant`); a callable's ``fn.schemes`` attribute. A plain
callable with none of these is tried on every kind: a kind whose first case raises is reported as
not accepted (a chain verifier refuses branching trees), the others are checked.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from . import check
from .drafting import KINDS, Scheme, chain, delayed, iid, parse_scheme, without_replacement
from .errors import BudgetExceeded, InvalidArgument
from .examples import parse_model
from .exact import LOSSLESS_TOL
from .models import ToyModel, context_free, tabulated
from .randomness import KeyReuseError, NondeterministicVerifier
from .registry import Entry, get, resolve

__all__ = ["Case", "PORTFOLIO", "BUDGET_SECONDS", "CHI2_CASES", "STATEFUL_SLOWDOWN", "cases_for", "accepted_kinds", "run", "shrink", "Shrunk",
           "portfolio_table"]

BUDGET_SECONDS = 60.0
"""Default time budget of a zero-configuration check (``budget_seconds``, the CLI's ``--budget``)."""
STATEFUL_SLOWDOWN = 40.0
"""Measured ratio of wall time to :func:`specoracle.check.estimate_exact` for stateful verifiers
(sequence laws: 16-44x on the named examples, 2 cores); the run starts from it and then uses the
ratio it measures."""
CHI2_CASES = 10
"""At most this many cases are sampled for a verifier that cannot be enumerated; each is tested at
``alpha / CHI2_CASES`` (Bonferroni), so the whole run falsely fails with probability <= ``alpha``."""


@dataclass(frozen=True)
class Case:
    """One row of the portfolio.

    Attributes
    ----------
    tier : cost tier (1: milliseconds ... 4: seconds); rows run in table order, tier by tier.
    model : a model string (:func:`specoracle.examples.parse_model`).
    scheme : a scheme string (:func:`specoracle.drafting.parse_scheme`).
    why : the bug class the row is there to expose.
    """

    tier: int
    model: str
    scheme: str
    why: str

    @property
    def kind(self) -> str:
        """The scheme's kind (``chain``, ``iid``, ``delayed``, ``without_replacement``)."""
        return parse_scheme(self.scheme).kind


def _c(tier, model, scheme, why):
    return Case(tier, model, scheme, why)


PORTFOLIO: tuple[Case, ...] = (
    # tier 1: milliseconds each; the named examples and the first tree of every kind
    _c(1, "E1", "chain(1)", "V=2 context-free, the textbook case"),
    _c(1, "E3", "chain(1)", "V=2 context-dependent rows"),
    _c(1, "E5", "chain(2)", "V=4 context-dependent: p and q rotate with the prefix"),
    _c(1, "E2", "chain(2)", "V=3 context-dependent, uniform draft at depth 2"),
    _c(1, "E4", "chain(2)", "V=4 context-free, q the reverse of p"),
    _c(1, "E1", "chain(2)", "block verification needs L >= 2"),
    _c(1, "E3", "chain(2)", "context-dependent rows at L = 2"),
    _c(1, "E1", "iid(2,1)", "two i.i.d. drafts on V=2: duplicates are frequent"),
    _c(1, "E3", "wor(2,1)", "without replacement on V=2: both tokens drafted"),
    _c(1, "E3", "delayed(2,1,1)", "delayed expansion: a trunk then branches"),
    _c(1, "E5", "iid(2,1)", "two i.i.d. drafts: duplicates and multiplicities"),
    _c(1, "E5", "wor(2,1)", "drafts without replacement: residual order"),
    _c(1, "E2", "iid(2,2)", "two i.i.d. paths of depth 2"),
    _c(1, "random:5:1", "chain(2)", "V=5: bugs invisible on V <= 4"),
    _c(1, "random:5:2", "iid(2,1)", "V=5 tree"),
    _c(1, "random:5:3", "wor(2,1)", "V=5 without replacement"),
    _c(1, "random:5:4:0.001", "chain(2)", "p close to q: ratios near 1, residuals near 0"),
    _c(1, "random:4:5:0", "chain(2)", "p == q: every draft accepted, empty residual"),
    _c(1, "random:4:6:0.001", "iid(2,1)", "p close to q, two drafts"),
    _c(1, "random:4:7:0", "wor(2,1)", "p == q without replacement"),
    # tier 2: sparse rows, transforms, n-grams
    _c(2, "sparse:4:1:q_zeros", "chain(2)", "q = 0 where p > 0: reachable only by the residual"),
    _c(2, "sparse:4:2:p_zeros", "chain(2)", "p = 0 on drafted tokens: acceptance 0"),
    _c(2, "sparse:4:3:both_zeros", "chain(2)", "zeros on both sides"),
    _c(2, "sparse:4:4:onehot_p", "chain(2)", "greedy target (one-hot p)"),
    _c(2, "sparse:4:5:onehot_q", "chain(2)", "greedy draft (one-hot q)"),
    _c(2, "sparse:4:6:onehot_same", "chain(2)", "p == q one-hot"),
    _c(2, "sparse:4:1:q_zeros", "iid(2,1)", "residual-only tokens, two drafts"),
    _c(2, "sparse:4:5:onehot_q", "iid(2,1)", "identical drafts (one-hot q)"),
    _c(2, "sparse:4:2:p_zeros", "wor(2,1)", "drafts the target never takes, without replacement"),
    _c(2, "sparse:4:3:both_zeros", "delayed(2,1,1)", "zeros on both sides, delayed"),
    _c(2, "E5|T=0.5[draft]", "chain(2)", "temperature on the draft only"),
    _c(2, "E5|T=2.0[target]", "chain(2)", "temperature on the target only"),
    _c(2, "random:5:8|top_k=2[draft]", "chain(2)", "top-k draft: q = 0 outside its top 2"),
    _c(2, "random:5:9|top_k=3[target]", "chain(2)", "top-k target: drafts outside the target's support"),
    _c(2, "random:5:10|top_p=0.8[both]", "chain(2)", "top-p on both sides"),
    _c(2, "random:4:11|T=0.7[both]|top_k=3[target]", "iid(2,1)", "temperature and top-k, two drafts"),
    _c(2, "random:5:12|top_p=0.7[draft]", "wor(2,1)", "top-p draft without replacement"),
    _c(2, "random:9:22", "chain(1)", "V=9: a vocabulary tile of 8 and its tail"),
    _c(2, "random:17:23:0.01", "chain(1)", "V=17: tiles of 16, p near q"),
    _c(2, "random:33:24", "chain(1)", "V=33: tiles of 32"),
    _c(2, "random:9:25", "chain(2)", "V=9 at depth 2"),
    _c(2, "random:9:26", "iid(2,1)", "V=9, two drafts"),
    _c(2, "random:9:27", "wor(2)", "V=9 without replacement"),
    _c(2, "random:5:28|T=0.25[both]", "chain(2)", "sharp rows (T = 1/4): probabilities down to 1e-9"),
    _c(2, "ngram:4", "chain(3)", "n-gram pair fitted to text, depth 3"),
    _c(2, "ngram:3:2:1", "iid(2,2)", "n-gram pair, two paths of depth 2"),
    # tier 3: depth 3-4, k = 2-3, V = 5-6
    _c(3, "E5", "chain(3)", "depth 3"),
    _c(3, "random:5:13:0.01", "chain(3)", "V=5, depth 3, p near q"),
    _c(3, "E3", "chain(4)", "depth 4"),
    _c(3, "random:3:14:0.001", "chain(4)", "depth 4, p close to q"),
    _c(3, "E5", "iid(3,1)", "three i.i.d. drafts"),
    _c(3, "E5", "delayed(2,1,2)", "delayed, branches of depth 2"),
    _c(3, "E2", "delayed(3,1,1)", "delayed, three branches"),
    _c(3, "E5", "wor(3,1)", "three drafts without replacement"),
    _c(3, "E3", "iid(2,3)", "two paths of depth 3"),
    _c(3, "random:3:15", "wor(2,2)", "without replacement at depth 2"),
    _c(3, "E1", "wor(2,2,1)", "without replacement at depth 3"),
    _c(3, "random:6:16", "chain(2)", "V=6"),
    _c(3, "random:6:17:0.001", "chain(3)", "V=6, depth 3, p close to q"),
    _c(3, "random:5:18", "iid(2,2)", "V=5, two paths of depth 2"),
    _c(3, "random:5:19:0.01", "iid(3,1)", "V=5, three drafts, p near q"),
    _c(3, "sparse:5:7:q_zeros", "chain(3)", "residual-only tokens at depth 3"),
    _c(3, "E5", "chain(4)", "depth 4 on V=4"),
    _c(3, "E2", "iid(4,1)", "four i.i.d. drafts"),
    _c(3, "random:12:29:0.001", "chain(2)", "V=12, p close to q"),
    # tier 4: seconds each
    _c(4, "E5", "iid(2,2)", "two paths of depth 2 on V=4"),
    _c(4, "E2", "iid(3,2)", "three paths of depth 2"),
    _c(4, "E3", "iid(3,3)", "three paths of depth 3"),
    _c(4, "E5", "delayed(3,1,1)", "delayed, three branches on V=4"),
    _c(4, "E5", "wor(2,2)", "without replacement, depth 2 on V=4"),
    _c(4, "E2", "wor(3,2)", "three drafts without replacement at depth 2"),
    _c(4, "random:5:20:0.001", "chain(4)", "V=5, depth 4, p close to q"),
    _c(4, "random:6:21", "iid(2,2)", "V=6 tree"),
    _c(4, "E5", "iid(3,2)", "three paths of depth 2 on V=4"),
)
"""The portfolio, in the order it runs (see the module docstring)."""


def portfolio_table() -> str:
    """The portfolio as a Markdown table (the README's copy is checked against it by a test)."""
    lines = ["| tier | model | scheme | exposes |", "|---|---|---|---|"]
    lines += [f"| {c.tier} | `{c.model}` | `{c.scheme}` | {c.why} |" for c in PORTFOLIO]
    return "\n".join(lines)


# --- which cases a verifier runs ---------------------------------------------------------------
def _unwrap(verifier):
    """``(verifier, declared kinds or None)`` for a registry name, Entry, Mutant-like object
    (``verify`` + ``schemes``) or callable (``fn.schemes``)."""
    if isinstance(verifier, str):
        verifier = get(verifier)
    if isinstance(verifier, Entry):
        return verifier, frozenset(verifier.schemes)
    if not callable(verifier) and callable(getattr(verifier, "verify", None)):
        kinds = getattr(verifier, "schemes", None)
        fn = verifier.verify
        if getattr(verifier, "name", None) and getattr(fn, "__name__", None) != verifier.name:
            fn = _named(fn, verifier.name)
        return fn, frozenset(kinds) if kinds else None
    kinds = getattr(verifier, "schemes", None)
    return verifier, frozenset(kinds) if kinds else None


def _named(fn, name: str):
    def verify(*args):
        return fn(*args)

    verify.__name__ = name
    for attr in ("stateful", "enumerable"):
        if hasattr(fn, attr):
            setattr(verify, attr, getattr(fn, attr))
    return verify


def accepted_kinds(verifier) -> frozenset | None:
    """The scheme kinds ``verifier`` declares (registry entry, Mutant, ``fn.schemes``), or None
    when it declares none (then every kind is tried)."""
    kinds = _unwrap(verifier)[1]
    if kinds is not None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise InvalidArgument(f"unknown scheme kinds {sorted(unknown)} in the verifier's schemes (valid: {KINDS})")
    return kinds


def cases_for(verifier=None, *, model=None, scheme=None) -> list[Case]:
    """The portfolio rows ``verifier`` runs, in order: those of the kinds it accepts. A fixed
    ``model`` (or ``scheme``) replaces every row's model (scheme), duplicates dropped."""
    kinds = accepted_kinds(verifier) if verifier is not None else None
    out, seen = [], set()
    for c in PORTFOLIO:
        m = c.model if model is None else _model_label(model)
        s = c.scheme if scheme is None else _scheme_of(scheme).name
        if kinds is not None and parse_scheme(s).kind not in kinds:
            continue
        if (m, s) not in seen:
            seen.add((m, s))
            out.append(Case(c.tier, m, s, c.why if model is None and scheme is None else "given"))
    return out


def _model_label(model) -> str:
    return model if isinstance(model, str) else model.name


def _scheme_of(scheme) -> Scheme:
    return parse_scheme(scheme) if isinstance(scheme, str) else scheme


# --- the run -------------------------------------------------------------------------------------
def run(verifier, *, model=None, scheme=None, budget_seconds: float = BUDGET_SECONDS, seed: int = 0,
        progress: bool = False, max_seconds: float = math.inf, **options):
    """Run the portfolio on ``verifier`` under ``budget_seconds``; a
    :class:`specoracle.check.Verdict` with ``cases`` (one verdict per row run), ``skipped``, and
    for a failure ``minimal_case`` (code). ``model``/``scheme`` fix one side of every row.
    ``options`` go to :func:`specoracle.check.check_lossless` for each row; ``max_seconds`` caps
    any one case; ``progress`` prints each case's verdict on stderr as it comes.

    >>> v = run("naive", budget_seconds=3)
    >>> v.lossless, v.kind, len(v.cases) > 5
    (True, 'exact', True)
    """
    t0 = time.perf_counter()
    budget = _positive("budget_seconds", budget_seconds)
    fn, declared = _unwrap(verifier)
    fixed_model = model if not isinstance(model, str) else parse_model(model)
    rows = cases_for(verifier, model=model, scheme=scheme)
    if not rows:
        raise InvalidArgument(f"no portfolio case fits: the verifier accepts {sorted(declared or KINDS)}")
    stateful = resolve(fn).stateful
    built = {c.model: fixed_model if fixed_model is not None else parse_model(c.model) for c in rows}
    costs = {c: check.exact_work(built[c.model], parse_scheme(c.scheme), stateful=stateful, verifier=fn) for c in rows}
    # within a tier, cheapest first (the table order breaks ties)
    rows.sort(key=lambda c: (c.tier, costs[c]))
    if options.get("method") == "exact" and not _enumerable(fn):
        raise InvalidArgument("method='exact' is impossible: the verifier's randomness cannot be enumerated "
                              "(a block sampler, or enumerable=False); use method='chi2'")
    refused: dict[str, str] = {}
    alpha = options.pop("alpha", 0.01)
    if not _enumerable(fn) or options.get("method") == "chi2":
        alpha = alpha / CHI2_CASES
    # estimates are scaled by the slowdown measured so far (the machine's load, the verifier's cost)
    slowdown = STATEFUL_SLOWDOWN if stateful and _enumerable(fn) else 1.0
    spent_est, spent_real = 0.0, 0.0
    sampling_full = False  # a sampled case was refused for the budget: so would the next ones be
    first_refusal = ""
    ran, skipped, failure = [], [], None
    for case in rows:
        kind = parse_scheme(case.scheme).kind
        if kind in refused:
            continue
        left = budget - (time.perf_counter() - t0)
        if left <= 0:
            skipped.append((case, "over the budget left"))
            continue
        sampled = [v.seconds for _, v in ran if v.method != "exact"]
        if len(sampled) >= CHI2_CASES:
            skipped.append((case, f"{CHI2_CASES} chi-squared cases run (CHI2_CASES)"))
            continue
        if sampling_full or (sampled and left < 1.2 * sum(sampled) / len(sampled)):  # another will not fit
            skipped.append((case, "over the budget left"))
            continue
        m = built[case.model]
        try:
            v = check.check_lossless(fn, m, case.scheme, seed=seed, max_seconds=min(left / slowdown, max_seconds),
                                     **{**options, "alpha": alpha})
        except BudgetExceeded as exc:
            first_refusal = first_refusal or str(exc)
            skipped.append((case, "over the budget left"))
            sampling_full = sampling_full or not _enumerable(fn) or options.get("method") == "chi2"
            continue
        except (NondeterministicVerifier, KeyReuseError):
            raise  # the verifier breaks the randomness protocol: no verdict on any case, an error
        except Exception as exc:  # noqa: BLE001 - a verifier that raises on a case fails it
            if declared is None and kind != "chain" and not any(c.kind == kind for c, _ in ran):
                refused[kind] = str(exc).splitlines()[0]  # a plain callable refusing a kind it cannot verify
                continue
            v = _raised(fn, case, m, exc, options, alpha)
            ran.append((case, v))
            failure = (case, v, m, type(exc))
            break
        if progress:
            print(f"  {case.model:<40} {case.scheme:<16} {v.words}", file=sys.stderr, flush=True)
        ran.append((case, v))
        if v.estimated_seconds and v.estimated_seconds >= 0.005:  # below, fixed costs swamp the rate
            spent_est += v.estimated_seconds
            spent_real += v.seconds
            slowdown = max(1.0, spent_real / spent_est)
        if v.status == check.NOT_LOSSLESS:
            failure = (case, v, m, None)
            break
    if not ran:
        raise BudgetExceeded(f"no portfolio case fits in budget_seconds={budget:g} (--budget); raise the budget. "
                             f"The first case refused: {first_refusal}")
    minimal = ""
    if failure is not None and (failure[1].method == "exact" or failure[3] is not None):
        case, v, m, crash = failure
        left = max(budget - (time.perf_counter() - t0), 10.0)
        kinds = declared or tuple(k for k in KINDS if k not in refused)
        minimal = shrink(fn, m, parse_scheme(case.scheme), kinds, seconds=left, raises=crash,
                         method="exact" if _enumerable(fn) else "chi2").code(_verifier_label(verifier, fn))
    return _aggregate(verifier, fn, ran, skipped, refused, failure, minimal, t0)


def _raised(fn, case: Case, model: ToyModel, exc: Exception, options: dict, alpha: float):
    """The verdict of a case on which the verifier raised ``exc``: NOT LOSSLESS, with the error."""
    return check.Verdict(
        status=check.NOT_LOSSLESS, method="exact" if _enumerable(fn) and options.get("method") != "chi2" else "chi2",
        verifier=resolve(fn).name if not check.is_block_sampler(fn) else getattr(fn, "name", "sampler"),
        model=model.name, scheme=case.scheme, n=0, alpha=alpha, power=options.get("power", 0.99),
        tv=options.get("tv", 0.01), detectable_tv=0.0, block_efficiency=0.0, raised=f"{type(exc).__name__}: {exc}",
    )


def _enumerable(fn) -> bool:
    if check.is_block_sampler(fn) or getattr(fn, "batched", False) is True:
        return False
    return bool(getattr(resolve(fn).fn, "enumerable", True))


def _verifier_label(verifier, fn) -> str:
    if isinstance(verifier, str):
        return verifier
    if isinstance(verifier, Entry):
        return verifier.name
    return getattr(fn, "__name__", None) or "my_verifier"


def _aggregate(verifier, fn, ran, skipped, refused, failure, minimal, t0):
    verdicts = [v for _, v in ran]
    exact = [v for v in verdicts if v.method == "exact"]
    sampled = [v for v in verdicts if v.method != "exact"]
    if failure is not None:
        status, worst = check.NOT_LOSSLESS, failure[1]
    else:
        status = check.INCONCLUSIVE if any(v.status == check.INCONCLUSIVE for v in verdicts) \
            else check.LOSSLESS
        worst = max(exact, key=lambda v: v.max_error or 0.0) if exact and not sampled else \
            min(sampled, key=lambda v: v.p_value if v.p_value is not None else 1.0)
    name = resolve(fn).name if not isinstance(verifier, (str, Entry)) else _verifier_label(verifier, fn)
    notes = tuple(f"kind {k} not run: the verifier refused its first case ({why})" for k, why in refused.items())
    return replace(
        worst, status=status, verifier=name, model="portfolio", scheme=f"{len(verdicts)} cases",
        n=sum(v.n for v in verdicts), detectable_tv=max(v.detectable_tv for v in verdicts),
        max_error=max((v.max_error for v in exact if v.max_error is not None), default=None),
        tv_error=max((v.tv_error for v in exact if v.tv_error is not None), default=None),
        method="exact" if not sampled else "chi2", cases=tuple(verdicts),
        skipped=tuple(f"{c.model} {c.scheme}: {why}" for c, why in skipped), notes=notes,
        minimal_case=minimal, worst=f"{worst.model} {worst.scheme}", seconds=time.perf_counter() - t0,
        estimated_seconds=None,
    )


# --- shrinking -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shrunk:
    """A minimal failing case: ``model`` (its rows in ``p_rows``/``q_rows``, prefix -> row, the
    root row for every prefix not listed), ``scheme``, and the exact ``max_error`` it shows (or the
    exception type it ``raises``: ``max_error`` is then ``inf``)."""

    V: int
    p_rows: dict
    q_rows: dict
    scheme: Scheme
    max_error: float
    raises: str = ""

    @property
    def model(self) -> ToyModel:
        """The pair as a :class:`~specoracle.models.ToyModel`."""
        return _build(self.V, self.p_rows, self.q_rows)

    def code(self, verifier: str = "my_verifier") -> str:
        """Python test code reproducing the failure (paste it into a test file)."""
        fmt = _fmt_row
        if len(self.p_rows) == 1 and len(self.q_rows) == 1:
            build = (f"    model = context_free({fmt(self.p_rows[()])}, {fmt(self.q_rows[()])}, name=\"minimal\")\n")
            imports = "from specoracle.models import context_free\n"
        else:
            def table(rows):
                body = "".join(f"        {k!r}: {fmt(v)},\n" for k, v in rows.items())
                return "{\n" + body + "    }"
            build = (f"    p = {table(self.p_rows)}\n    q = {table(self.q_rows)}\n"
                     f"    model = tabulated({self.V}, p, q, name=\"minimal\")  # unlisted prefixes: the () row\n")
            imports = "from specoracle.models import tabulated\n"
        if _is_registry_name(verifier):
            target, note = repr(verifier), ""
        else:
            target, note = _ident(verifier), f"# {_ident(verifier)}: the verifier under test (import it here)\n"
        return (f"from specoracle import check_lossless\n{imports}{note}\n\n"
                f"def test_{_ident(verifier).strip('_')}_minimal_case():\n{build}"
                f"    verdict = check_lossless({target}, model, {self.scheme.name!r}, method=\"exact\")\n"
                f"    assert verdict.lossless, verdict.summary()  # fails today: "
                f"{f'raises {self.raises}' if self.raises else f'max |law - P| = {self.max_error:.3g}'}\n")


def _is_registry_name(name: str) -> bool:
    from .registry import names

    return name in names()


def _ident(name: str) -> str:
    if name.isidentifier():
        return name
    out = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")
    return out if out.isidentifier() else "my_verifier"


def _fmt_row(row) -> str:
    return "[" + ", ".join(repr(float(x)) for x in row) + "]"


def _build(V: int, p_rows: dict, q_rows: dict) -> ToyModel:
    if len(p_rows) == 1 and len(q_rows) == 1:
        return context_free(list(p_rows[()]), list(q_rows[()]), name="minimal")
    return tabulated(V, p_rows, q_rows, name="minimal")


def _prefixes(V: int, depth: int):
    out, level = [()], [()]
    for _ in range(depth):
        level = [u + (t,) for u in level for t in range(V)]
        out += level
    return out


def _candidate_schemes(scheme: Scheme, kinds) -> list[Scheme]:
    """Schemes no larger than ``scheme`` (depth, drafts per node), smallest first."""
    L, k = scheme.depth, max(scheme.k, max(scheme.branching, default=1))
    out = [chain(d) for d in range(1, L + 1)]
    for kk in range(2, k + 1):
        for d in range(1, L + 1):
            out.append(iid(kk, d))
            out += [delayed(kk, t, d - t) for t in range(1, d)]
            out += [without_replacement((kk,) + (b,) * (d - 1)) for b in (1, kk) if d > 1 or b == 1]
    out = [s for s in out if s.kind in kinds]
    out.sort(key=lambda s: (s.depth + s.draws, s.draws, KINDS.index(s.kind)))
    seen, uniq = set(), []
    for s in out + [scheme]:
        if s.name not in seen:
            seen.add(s.name)
            uniq.append(s)
    return uniq


def _round_row(row: np.ndarray, d: int) -> np.ndarray | None:
    """``row`` rounded to multiples of ``1/d`` (largest remainders, sum exactly 1), or None when a
    positive entry would vanish or a zero appear."""
    scaled = np.asarray(row, float) * d
    base = np.floor(scaled).astype(int)
    short = d - int(base.sum())
    order = np.argsort(-(scaled - base), kind="stable")
    base[order[:short]] += 1
    if np.any((base == 0) != (np.asarray(row) == 0)):
        return None
    return np.array([float(Fraction(int(b), d)) for b in base])


def shrink(verifier, model: ToyModel, scheme: Scheme, kinds, *, seconds: float = 20.0, tol: float = LOSSLESS_TOL,
           raises: type | None = None, method: str = "exact") -> Shrunk:
    """A minimal failing case for ``verifier``, known to fail exactly on ``model``/``scheme`` (or,
    with ``raises``, known to raise that exception type there; ``method="chi2"`` for a verifier
    that cannot be enumerated, which only shrinks such crashes).

    Steps, each kept only while the exact check still fails: the smallest scheme of the accepted
    ``kinds`` (by depth + drafts); the model as tables of the prefixes that scheme reads; one row
    for every prefix (context-free); tokens dropped one at a time (smallest V, rows renormalised);
    rows of deep prefixes left to the root row; rows rounded to multiples of 1/2, 1/4, 1/5, 1/10,
    1/20, 1/100 (zeros kept); the model steps twice, then the scheme once more. Work stops after
    ``seconds``; the case found so far is returned.
    """
    t0 = time.perf_counter()

    def fails(m: ToyModel, s: Scheme):
        if time.perf_counter() - t0 > seconds:
            return None
        try:
            v = check.check_lossless(verifier, m, s, method=method, tol=tol, n=100 if method == "chi2" else None,
                                     max_seconds=max(seconds - (time.perf_counter() - t0), 1e-3))
        except BudgetExceeded:
            return None
        except Exception as exc:  # noqa: BLE001 - the crash being shrunk, or another failure
            return math.inf if raises is not None and isinstance(exc, raises) else None
        return v.max_error if raises is None and v.status == check.NOT_LOSSLESS else None

    err = fails(model, scheme)
    if err is None:
        raise InvalidArgument(f"shrink needs a failing case; {model.name} {scheme.name} passes")
    for s in _candidate_schemes(scheme, kinds):
        e = fails(model, s)
        if e is not None:
            scheme, err = s, e
            break
    V = model.V
    p = {u: np.asarray(model.p(u), float) for u in _prefixes(V, scheme.depth)}
    q = {u: np.asarray(model.q(u), float) for u in _prefixes(V, scheme.depth)}

    def attempt(V2, p2, q2):
        e = fails(_build(V2, p2, q2), scheme)
        return e

    for _ in range(2):  # a second pass: rounding can make rows equal that context or tokens needed
        V, p, q, err = _simplify(V, p, q, err, scheme, attempt)
    for s in _candidate_schemes(scheme, kinds):  # the simpler model may fail on a smaller scheme
        if s.name == scheme.name:
            break
        e = fails(_build(V, p, q), s)
        if e is not None:
            scheme, err = s, e
            break
    p = {u: tuple(float(x) for x in r) for u, r in p.items()}
    q = {u: tuple(float(x) for x in r) for u, r in q.items()}
    return Shrunk(V, p, q, scheme, float(err), raises.__name__ if raises is not None else "")


def _simplify(V, p, q, err, scheme, attempt):
    """One pass of the model steps of :func:`shrink`: context-free, drop tokens, prune deep rows,
    round rows; each kept only while ``attempt(V, p, q)`` still fails."""
    # one row for every prefix
    cf_p, cf_q = {(): p[()]}, {(): q[()]}
    e = attempt(V, cf_p, cf_q)
    if e is not None:
        p, q, err = cf_p, cf_q, e
    # drop tokens while the failure persists
    dropped = True
    while dropped and V > 2:
        dropped = False
        for j in range(V - 1, -1, -1):
            cand = _drop(V, p, q, j)
            if cand is None:
                continue
            e = attempt(V - 1, *cand)
            if e is not None:
                V, (p, q), err, dropped = V - 1, cand, e, True
                break
    # rows of deeper prefixes replaced by the root row (unlisted), deepest level first
    for depth in range(scheme.depth, 0, -1):
        level = [u for u in p if len(u) == depth]
        if not level:
            continue
        cand = ({u: r for u, r in p.items() if len(u) != depth}, {u: r for u, r in q.items() if len(u) != depth})
        e = attempt(V, *cand)
        if e is not None:
            (p, q), err = cand, e
            continue
        for u in level:
            for side in (0, 1):
                tables = [dict(p), dict(q)]
                if u not in tables[side]:
                    continue
                del tables[side][u]
                e = attempt(V, *tables)
                if e is not None:
                    (p, q), err = tables, e
    # simplify rows
    for d in (2, 4, 5, 10, 20, 100):
        rp = {u: _round_row(r, d) for u, r in p.items()}
        rq = {u: _round_row(r, d) for u, r in q.items()}
        if any(r is None for r in (*rp.values(), *rq.values())):
            continue
        e = attempt(V, rp, rq)
        if e is not None:
            p, q, err = rp, rq, e
            break
    return V, p, q, err


def _drop(V: int, p: dict, q: dict, j: int):
    """Tables without token ``j`` (prefixes through it removed, tokens above it renumbered, rows
    renormalised), or None when a row would lose all its mass."""
    def row(r):
        r = np.delete(np.asarray(r, float), j)
        s = r.sum()
        return None if not s > 0 else r / s

    def relabel(u):
        return tuple(t - (t > j) for t in u)

    out = []
    for rows in (p, q):
        new = {}
        for u, r in rows.items():
            if j in u:
                continue
            nr = row(r)
            if nr is None:
                return None
            new[relabel(u)] = nr
        out.append(new)
    return tuple(out)


def _positive(name: str, x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{name} must be a positive number of seconds, got {x!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise InvalidArgument(f"{name} must be a positive number of seconds, got {x!r}")
    return v
