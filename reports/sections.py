"""The sections of ``specoracle report``, each a function ``(ctx) -> Section``.

Every section loops over the registry (:func:`specoracle.registry.entries`), the torch twins
(``specoracle.gpu.TWINS``) or the mutant catalog, so a new verifier, twin or mutant shows up in
the report without touching this file. Heavy parts (torch, cvxpy, matplotlib) are imported inside
the section that needs them.

1. exact losslessness per verifier x model x scheme (exact engine);
2. chi-squared of every torch twin against the reference's exact block law
   (:func:`specoracle.gpu.checks.chi2_twin`, Holm over the family);
3. block efficiency against the universal and path-selection LP bounds (iid and delayed);
4. torch twin vs reference under shared randomness (mismatches, float32 near-ties, device);
5. mutant detection (exact, and chi-squared with :func:`specoracle.check.check_lossless`);
6. efficiency vs branching position ``d`` of ``delayed(k, d, L - d)`` on an n-gram model of text;
7. the delayed tree expansion selector (``specoracle.selector.summary``);
8. the seed papers' claims next to the measured values (:mod:`.claims`);
9. real engines' conformance through the shipped adapters (:mod:`.conformance`).
"""
from __future__ import annotations

import math
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from specoracle import exact, registry, stats
from specoracle.drafting import Scheme, delayed, parse_scheme
from specoracle.models import ToyModel

from .claims import claims
from .conformance import engines
from .config import ReportConfig, derive_seed, parse_model
from .document import Figure, Section, Table

__all__ = ["Context", "SECTIONS", "run_section", "exact_losslessness", "chi2_twins",
           "efficiency_bounds", "parity", "mutant_detection", "delayed_expansion", "selector"]

TOL_BOUND = 1e-6  # a lossless verifier's BE may exceed an LP bound by solver tolerance only


@dataclass
class Context:
    """Shared state of one report run: configuration, model cache, exact-result memo."""

    cfg: ReportConfig
    _models: dict = field(default_factory=dict)
    _exact: dict = field(default_factory=dict)
    _sequences: dict = field(default_factory=dict)

    def model(self, name: str) -> ToyModel:
        if name not in self._models:
            self._models[name] = parse_model(name)
        return self._models[name]

    def exact(self, verifier, model_name: str, scheme: Scheme, label: str | None = None):
        """Memoised :func:`specoracle.exact.evaluate` (first iteration for stateful verifiers)."""
        key = (label or getattr(verifier, "name", verifier), model_name, scheme.name)
        if key not in self._exact:
            self._exact[key] = exact.evaluate(verifier, self.model(model_name), scheme)
        return self._exact[key]

    def sequence(self, entry, model_name: str, scheme: Scheme):
        """Memoised :func:`specoracle.exact.sequence_law` of a stateful verifier (``stateful_length``
        tokens, default ``2L + 1``)."""
        length = self.cfg.stateful_length or exact.judged_length(scheme, stateful=True)
        key = (entry.name, model_name, scheme.name, length)
        if key not in self._sequences:
            self._sequences[key] = exact.sequence_law(entry, self.model(model_name), scheme, length)
        return self._sequences[key]

    def progress(self, iterable, desc: str, total: int | None = None):
        """A tqdm progress bar on stderr (disabled with ``cfg.progress=False``)."""
        if not self.cfg.progress:
            return iterable
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False, dynamic_ncols=True)


def _twin_names() -> list[str]:
    """Registry names that have a torch twin."""
    from specoracle import gpu

    return [e.name for e in registry.entries() if e.name in gpu.TWINS]


def _f(x) -> float:
    return float(x)


def _fmt_err(x: float) -> str:
    return "0" if x == 0 else f"{x:.2e}"


# --- 1. exact losslessness ---------------------------------------------------------------------
def exact_losslessness(ctx: Context) -> Section:
    """Exact max error and block efficiency of every verifier on every model x accepted scheme."""
    cfg = ctx.cfg
    schemes = [parse_scheme(s) for s in cfg.schemes]
    st_schemes = [parse_scheme(s) for s in cfg.stateful_schemes]
    jobs = []
    for e in registry.entries():
        grid = (cfg.stateful_models, st_schemes) if e.stateful else (cfg.models, schemes)
        jobs += [(e, m, s) for m in grid[0] for s in grid[1] if e.accepts(s)]
    rows, data, wrong = [], [], []
    for entry, mname, scheme in ctx.progress(jobs, "1/7 exact losslessness"):
        t0 = time.perf_counter()
        if entry.stateful:
            res = ctx.sequence(entry, mname, scheme)
            err, be, how = _f(res.max_error), _f(res.tokens_per_call), f"sequence law, {res.length} tokens"
        else:
            res = ctx.exact(entry, mname, scheme)
            err, be, how = _f(res.max_error), _f(res.block_efficiency), "one step"
        lossless = exact.is_lossless(err)
        # a lossless claim is contradicted by any lossy case; a "lossy" claim (lossy in general) is
        # not contradicted by a case where the verifier happens to be exact (checked per verifier below)
        agrees = lossless or not entry.lossless
        if not agrees:
            wrong.append(f"{entry.name} on {mname} {scheme.name}")
        seconds = time.perf_counter() - t0
        rows.append((entry.name, mname, scheme.name, _fmt_err(err), round(be, 6),
                     "lossless" if lossless else "NOT lossless",
                     "lossless" if entry.lossless else "lossy", "yes" if agrees else "NO", how))
        data.append({"verifier": entry.name, "model": mname, "scheme": scheme.name, "max_error": err,
                     "block_efficiency": be, "lossless": lossless, "claimed_lossless": entry.lossless,
                     "agrees": agrees, "stateful": entry.stateful, "seconds": seconds})
    notes = []
    for name in dict.fromkeys(d["verifier"] for d in data if not d["claimed_lossless"]):
        cases = [d for d in data if d["verifier"] == name]
        lossy = [f"{d['model']} {d['scheme']} (err {d['max_error']:.2g})" for d in cases if not d["lossless"]]
        notes.append(f"{name} is registered as lossy: "
                     + (f"shown lossy on {', '.join(lossy)}." if lossy else
                        "exact on every case of this grid (its failure needs a larger case)."))
    n_ok = sum(d["lossless"] for d in data)
    summary = (f"{len(data)} exact evaluations over {len({d['verifier'] for d in data})} registered verifiers: "
               f"{n_ok} lossless (max |extended law - target| < {exact.LOSSLESS_TOL:g}), {len(data) - n_ok} not; "
               + ("no verifier registered as lossless is lossy anywhere." if not wrong
                  else f"{len(wrong)} cases contradict a lossless claim: {', '.join(wrong)}."))
    cols = list(dict.fromkeys(f"{d['model']} {d['scheme']}" for d in data))
    grid: dict[str, dict[str, str]] = {}
    for d in data:
        mark = "✓" if d["lossless"] else f"✗ err {d['max_error']:.1e}"
        grid.setdefault(d["verifier"], {})[f"{d['model']} {d['scheme']}"] = f"{d['block_efficiency']:.4f} {mark}"
    pivot = Table(("verifier", *cols), tuple((v, *[grid[v].get(c, "") for c in cols]) for v in grid),
                  f"block efficiency E[accepted] + 1 and the exact verdict (✓ lossless, max error < {exact.LOSSLESS_TOL:g}; "
                  "✗ with its max error); blank: the verifier does not accept the scheme")
    table = Table(("verifier", "model", "scheme", "max error", "block eff.", "exact verdict", "claimed",
                   "agrees", "judged on"), tuple(rows),
                  "every exact evaluation: max error = max over V^(L+1) of |law of (block + target "
                  "continuation) - target law|", collapsed=True)
    fig = Figure("exact_losslessness.png", "log10 of the exact max error (white: not applicable; "
                 "green: exactly lossless)", lambda path: _plot_exact(data, path))
    return Section("exact", 1, "Exact losslessness", "fail" if wrong else "ok", summary, (pivot, table), (fig,),
                   notes=tuple(notes), data=data)


def _plot_exact(data: list[dict], path: str) -> None:
    import matplotlib.pyplot as plt

    verifiers = list(dict.fromkeys(d["verifier"] for d in data))
    cols = list(dict.fromkeys(f"{d['model']}\n{d['scheme']}" for d in data))
    grid = np.full((len(verifiers), len(cols)), np.nan)
    for d in data:
        grid[verifiers.index(d["verifier"]), cols.index(f"{d['model']}\n{d['scheme']}")] = \
            np.log10(max(d["max_error"], 1e-17))
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(cols) + 2), max(3, 0.35 * len(verifiers) + 1.5)))
    cmap = plt.get_cmap("RdYlGn_r").copy()
    cmap.set_bad("white")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-17, vmax=0, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, fontsize=7, rotation=90)
    ax.set_yticks(range(len(verifiers)), verifiers, fontsize=8)
    fig.colorbar(im, ax=ax, label="log10 max error (-17: exactly 0)")
    ax.set_title("Exact losslessness: log10 max |extended law - target|")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- 2. chi-squared per torch twin -------------------------------------------------------------
def chi2_twins(ctx: Context) -> Section:
    """Chi-squared test of every torch twin's sampled blocks against the exact block law."""
    from specoracle.gpu.checks import chi2_twin

    cfg = ctx.cfg
    schemes = [parse_scheme(s) for s in cfg.chi2_schemes]
    st_schemes = [parse_scheme(s) for s in cfg.stateful_schemes]
    jobs = []
    for entry in (registry.get(n) for n in _twin_names()):
        # stateful twins: whole sequences on the stateful grid (their law only exists there)
        grid = (cfg.stateful_models, st_schemes) if entry.stateful else (cfg.chi2_models, schemes)
        jobs += [(entry, m, s) for m in grid[0] for s in grid[1] if entry.accepts(s)]
    notes = []
    per_test_alpha = cfg.alpha / len(jobs)
    results = []
    for entry, mname, scheme in ctx.progress(jobs, "2/7 chi-squared (torch)"):
        if entry.stateful:
            seq = ctx.sequence(entry, mname, scheme)
            law, length = seq.law, seq.length
        else:
            law, length = ctx.exact(entry, mname, scheme).block_law, None
        results.append(chi2_twin(entry.name, ctx.model(mname), scheme, law=law, length=length, n=cfg.chi2_samples,
                                 tv=cfg.chi2_tv, alpha=per_test_alpha, power=cfg.power, device=cfg.device,
                                 seed=derive_seed(cfg.seed, "chi2", entry.name, mname, scheme.name)))
    family = stats.holm([r.p_value for r in results], cfg.alpha)
    rows, data = [], []
    for r, adjusted in zip(results, family.adjusted):
        verdict = stats.judge(adjusted, cfg.alpha, r.detectable_tv, r.tv_ceiling)
        rows.append((r.verifier, r.model, r.scheme, r.device, r.n, r.cells,
                     "inf" if not math.isfinite(r.statistic) else round(r.statistic, 3),
                     f"{r.p_value:.3g}", round(r.detectable_tv, 4), "FAIL" if verdict == stats.FAIL else verdict))
        data.append({"verifier": r.verifier, "model": r.model, "scheme": r.scheme, "device": r.device, "n": r.n,
                     "cells": r.cells, "statistic": r.statistic, "dof": r.dof, "p_value": r.p_value,
                     "detectable_tv": r.detectable_tv, "outside_support": r.outside_support,
                     "rejected": verdict == stats.FAIL, "status": verdict})
    n_fail = sum(d["rejected"] for d in data)
    n_inc = sum(d["status"] == stats.INCONCLUSIVE for d in data)
    if cfg.chi2_samples is not None:
        notes.append(f"Fixed sample size {cfg.chi2_samples} per test (preset {cfg.preset}); the detectable "
                     f"TV column states what that size buys.")
    summary = (f"{len(results)} tests over {len({r.verifier for r in results})} torch twins on device "
               f"{cfg.device}; Holm family-wise alpha = {cfg.alpha} (per-test design alpha "
               f"{per_test_alpha:.2g}), power {cfg.power}: {n_fail} rejected"
               + (f", {n_inc} inconclusive (detectable TV above {stats.TV_CEILING})." if n_inc else "."))
    table = Table(("twin", "model", "scheme", "device", "samples", "cells", "statistic", "p-value",
                   f"detectable TV (power {cfg.power})", "verdict"), tuple(rows),
                  "H0: the twin's emitted block has the reference's exact block law (section 1 proves "
                  "that law lossless); for stateful twins, the first tokens of whole sequences (state "
                  "handed on between calls) have the reference's exact sequence law. Cells pooled from "
                  "the expected law.")
    status = "fail" if n_fail else ("inconclusive" if n_inc else "ok")
    return Section("chi2", 2, "Chi-squared per torch verifier", status, summary, (table,), notes=tuple(notes),
                   data=data)


# --- 3. efficiency vs LP bounds ----------------------------------------------------------------
_BOUNDS = ("universal_bound", "path_selection_bound")


def efficiency_bounds(ctx: Context) -> Section:
    """Exact block efficiency of every verifier next to the universal and path-selection LP bounds."""
    from specoracle import lp

    cfg = ctx.cfg
    schemes = [parse_scheme(s) for s in cfg.bound_schemes]
    blocks = [(m, s) for m in cfg.bound_models for s in schemes]
    rows, data, violations = [], [], []
    for mname, scheme in ctx.progress(blocks, "3/7 efficiency vs LP bounds"):
        model = ctx.model(mname)
        bounds = {}
        for fn_name in _BOUNDS:
            b = getattr(lp, fn_name)(model, scheme)
            bounds[fn_name] = {"block_efficiency": _f(b.block_efficiency), "status": b.status,
                               "n_variables": int(b.n_variables), "seconds": b.seconds}
        verifiers = {}
        for entry in registry.entries():
            if not entry.accepts(scheme) or entry.stateful:
                continue
            res = ctx.exact(entry, mname, scheme)
            be = _f(res.block_efficiency)
            lossless = exact.is_lossless(_f(res.max_error))
            verifiers[entry.name] = {"block_efficiency": be, "lossless": lossless}
            cells = []
            for fn_name in _BOUNDS:
                ub = bounds[fn_name]["block_efficiency"]
                if fn_name == "universal_bound" and lossless and be > ub + TOL_BOUND:
                    violations.append(f"{entry.name} on {mname} {scheme.name} exceeds the universal bound")
                cells += [round(ub, 6), f"{100 * be / ub:.1f}%"]
            rows.append((mname, scheme.name, entry.name, round(be, 6), *cells,
                         "yes" if lossless else "NO"))
        data.append({"model": mname, "scheme": scheme.name, "bounds": bounds, "verifiers": verifiers})
    summary = (f"Exact block efficiency E[accepted] + 1 of {len({v for d in data for v in d['verifiers']})} "
               f"verifiers on {len(blocks)} model x scheme pairs, against the LP bounds ({', '.join(_BOUNDS)})."
               + (f" Violations: {'; '.join(violations)}." if violations else
                  " No lossless verifier exceeds the universal bound."))
    table = Table(("model", "scheme", "verifier", "block eff.", "universal LP", "% of universal",
                   "path-selection LP", "% of path-sel.", "lossless"), tuple(rows),
                  "The universal LP bounds every iteration-wise lossless verifier for the scheme; "
                  "the path-selection LP bounds verifiers that accept one drafted path.")
    fig = Figure("efficiency_bounds.png", "Block efficiency per verifier (bars) against the LP bounds "
                 "(lines)", lambda path: _plot_bounds(data, path))
    return Section("bounds", 3, "Block efficiency against the LP bounds", "fail" if violations else "ok", summary,
                   (table,), (fig,), data=data)


def _plot_bounds(data: list[dict], path: str) -> None:
    import matplotlib.pyplot as plt

    n = len(data)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False)
    styles = {"universal_bound": ("universal LP", "tab:red", "-"),
              "path_selection_bound": ("path-selection LP", "tab:purple", "--")}
    for ax, d in zip(axes.flat, data):
        names = list(d["verifiers"])
        vals = [d["verifiers"][v]["block_efficiency"] for v in names]
        colors = ["tab:blue" if d["verifiers"][v]["lossless"] else "tab:gray" for v in names]
        ax.bar(range(len(names)), vals, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        for key, b in d["bounds"].items():
            label, color, ls = styles.get(key, (key, "k", ":"))
            ax.axhline(b["block_efficiency"], color=color, ls=ls, lw=1.4, label=f"{label} {b['block_efficiency']:.3f}")
        lo = min(vals + [1.0])
        ax.set_ylim(max(0.9, lo - 0.05), max(vals + [b["block_efficiency"] for b in d["bounds"].values()]) * 1.04)
        ax.set_title(f"{d['model']}  {d['scheme']}", fontsize=9)
        ax.set_ylabel("block efficiency")
        if d["bounds"]:
            ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- 4. torch vs reference under shared randomness ---------------------------------------------
def parity(ctx: Context) -> Section:
    """Mismatches of every torch twin against its reference under shared uniforms."""
    import torch

    from specoracle.gpu.checks import parity as par, parity_sequences as seq_par

    cfg = ctx.cfg
    names = _twin_names()
    schemes = [parse_scheme(s) for s in cfg.parity_schemes]
    jobs = [(n, m, s, dt) for n in names for m in cfg.parity_models for s in schemes
            if registry.get(n).accepts(s) for dt in (torch.float64, torch.float32)]
    # stateful twins: also whole sequences of 2L + 1 tokens (the state handed on between calls)
    jobs += [(n, m, s, dt, True) for n, m, s, dt in jobs if registry.get(n).stateful]
    rows, data, bad = [], [], []
    for name, mname, scheme, dtype, *whole in ctx.progress(jobs, "4/7 torch vs reference"):
        seed = derive_seed(cfg.seed, "parity", name, mname, scheme.name)
        if whole:
            r = seq_par(name, ctx.model(mname), scheme, n_sequences=cfg.parity_instances, dtype=dtype,
                        device=cfg.device, seed=seed)
        else:
            r = par(name, ctx.model(mname), scheme, n_instances=cfg.parity_instances, dtype=dtype,
                    device=cfg.device, seed=seed)
        mism, ties = int(r.mismatches), int(r.near_ties)
        dt = str(dtype).replace("torch.", "")
        ok = mism == 0 if dtype == torch.float64 else mism <= ties
        if not ok:
            bad.append(f"{name} {mname} {r.scheme} {dt}")
        rows.append((name, mname, r.scheme, r.device, dt, int(r.n), int(r.calls), mism, ties,
                     "ok" if ok else "MISMATCH"))
        data.append({"verifier": name, "model": mname, "scheme": r.scheme, "dtype": dt, "device": r.device,
                     "n": int(r.n), "calls": int(r.calls), "mismatches": mism, "near_ties": ties, "ok": ok})
    summary = (f"{len(data)} parity runs ({cfg.parity_instances} instances each, shared uniforms from the "
               f"published Coupled layout; stateful twins also on {cfg.parity_instances} whole sequences, "
               f"every call compared): float64 must match exactly; float32 mismatches must all be "
               f"near-ties (|u - threshold| < 1e-6). "
               + ("All pass." if not bad else f"Failing: {'; '.join(bad)}."))
    table = Table(("twin", "model", "scheme", "device", "dtype", "instances", "calls", "mismatches",
                   "float32 near-ties", "verdict"), tuple(rows),
                  "instances: trees, or sequences for the 'sequences of' rows (a sequence mismatches "
                  "when any of its calls does).")
    return Section("parity", 4, "Torch vs reference under shared randomness", "fail" if bad else "ok", summary,
                   (table,), data=data)


# --- 5. mutants --------------------------------------------------------------------------------
def mutant_detection(ctx: Context) -> Section:
    """Every mutant must be flagged and every true negative passed (exact, and chi-squared)."""
    from specoracle import mutants
    from specoracle.check import check_lossless

    cfg = ctx.cfg
    items = list(mutants.catalog()) + list(mutants.true_negatives())
    rows, data, missed = [], [], []
    for m in ctx.progress(items, "5/7 mutants", total=len(items)):
        model = ctx.model(m.model)  # an example name or random:V:seed[:divergence]
        scheme = parse_scheme(m.scheme)
        res = ctx.exact(m.verify, m.model, scheme, label=f"mutant:{m.name}")
        err = _f(res.max_error)
        tv = 0.5 * float(np.abs(np.asarray(res.extended_law, float) - np.asarray(res.target_law, float)).sum())
        flagged = not exact.is_lossless(err)
        caught = flagged != m.lossless
        d = {"mutant": m.name, "model": m.model, "scheme": m.scheme, "expected": "lossless" if m.lossless else "bug",
             "exact_max_error": err, "exact_tv": tv, "exact_flagged": flagged, "exact_correct": caught}
        chi = ("-", "-", "-", "-")
        if cfg.mutant_chi2_samples:
            v = check_lossless(m.verify, model, scheme, method="chi2", alpha=cfg.alpha, power=cfg.power,
                               seed=derive_seed(cfg.seed, "mutant", m.name), n=cfg.mutant_chi2_samples)
            d.update({"chi2_samples": v.n, "chi2_p_value": v.p_value, "chi2_detectable_tv": v.detectable_tv,
                      "chi2_flagged": v.status == "not lossless", "chi2_status": v.status})
            chi = (v.n, f"{v.p_value:.3g}", round(v.detectable_tv, 4),
                   {"not lossless": "flagged", "lossless": "passed"}.get(v.status, v.status))
        if not caught:
            missed.append(m.name)
        data.append(d)
        rows.append((m.name, d["expected"], m.model, m.scheme, _fmt_err(err), _fmt_err(tv),
                     "flagged" if flagged else "passed",
                     *chi, "yes" if caught else "NO", m.description))
    n_bugs = sum(1 for m in items if not m.lossless)
    summary = (f"{n_bugs} mutants and {len(items) - n_bugs} true negatives: the exact check "
               + ("flags every mutant and passes every true negative." if not missed
                  else f"gets {len(missed)} wrong: {', '.join(missed)}."))
    if cfg.mutant_chi2_samples:
        chi_missed = [d["mutant"] for d in data if d.get("chi2_flagged") is False and d["expected"] == "bug"]
        chi_false = [d["mutant"] for d in data if d.get("chi2_flagged") is True and d["expected"] == "lossless"]
        summary += f" Chi-squared at {cfg.mutant_chi2_samples} samples: "
        summary += ("flags every mutant" if not chi_missed else
                    f"misses {len(chi_missed)} mutants ({', '.join(chi_missed)}) whose TV is below what this sample "
                    f"size detects (the exact check catches them)")
        n_inc = sum(d["chi2_status"] == "inconclusive" for d in data)
        if n_inc:
            summary += f"; {n_inc} verdicts are inconclusive (detectable TV above {stats.TV_CEILING})"
        summary += (" and passes every true negative." if not chi_false else
                    f"; false alarm on {', '.join(chi_false)} (confirmed on an independent seed: expected at rate "
                    f"alpha^2 = {stats.false_alarm_rate(cfg.alpha):.1g}).")
    table = Table(("mutant", "expected", "model", "scheme", "exact max error", "exact TV", "exact", "chi2 samples",
                   "chi2 p-value", "chi2 detectable TV", "chi2", "correct", "what it models"), tuple(rows),
                  "exact: max error and total variation of the extended law on V^(L+1) against the target; "
                  "chi2: specoracle.check.check_lossless(method='chi2') on reference samples, which can only "
                  "flag a mutant whose TV is near or above its detectable TV")
    return Section("mutants", 5, "Mutant detection", "fail" if missed else "ok", summary, (table,), data=data)


# --- 6. delayed expansion ----------------------------------------------------------------------
def delayed_expansion(ctx: Context) -> Section:
    """Block efficiency of ``delayed(k, d, L - d)`` over the branch depth ``d`` on an n-gram model."""
    from specoracle.lp import universal_bound
    from specoracle.reference.topdown import TOPDOWN, scheme_block_efficiency

    cfg = ctx.cfg
    k, L = cfg.delayed_k, cfg.delayed_depth
    mname = f"ngram:{cfg.delayed_vocab}"
    model = ctx.model(mname)
    schemes = [delayed(k, d, L - d) for d in range(L + 1)]
    entries = [e for e in registry.entries() if e.accepts("delayed") and not e.stateful]
    notes = []
    series: dict[str, list[float]] = {e.name: [] for e in entries}
    bound: list[float] = []
    how: dict[str, str] = {}
    lossy: list[str] = []
    jobs = [(e, s) for s in schemes for e in entries]
    for entry, scheme in ctx.progress(jobs, "6/7 delayed expansion"):
        if entry.name in TOPDOWN:
            be = _f(scheme_block_efficiency(entry.name, model, scheme))
            how[entry.name] = "DDTE Eq. 3 (branching probabilities)"
        else:
            res = ctx.exact(entry, mname, scheme)
            be = _f(res.block_efficiency)
            how[entry.name] = "exact engine"
            if entry.lossless and not exact.is_lossless(_f(res.max_error)):
                lossy.append(f"{entry.name} {scheme.name} (max error {_f(res.max_error):.2g})")
        series[entry.name].append(be)
    for scheme in ctx.progress(schemes, "6/7 universal bound"):
        bound.append(_f(universal_bound(model, scheme).block_efficiency))
    rows = []
    for i, s in enumerate(schemes):
        top = max(series[n][i] for n in series)
        best_names = [n for n in series if series[n][i] >= top - 1e-9]
        best = "/".join(best_names) if len(best_names) <= 3 else f"tie ({len(best_names)} verifiers)"
        rows.append((i, s.name, *[round(series[n][i], 5) for n in series],
                     round(bound[i], 5), best))
    best_d = {n: int(np.argmax(v)) for n, v in series.items()}
    if lossy:
        notes.append("Not lossless on this model (exact engine): " + "; ".join(lossy) + ".")
    tokens = getattr(model, "token_names", None)
    summary = (f"n-gram model of the Python standard library's sources (V={model.V}, trigram target, unigram "
               f"draft{', tokens ' + repr(tokens) if tokens else ''}); k={k} branches, depth L={L}; d = tokens "
               f"drafted as one trunk before branching (d=0: i.i.d. tree, d=L: a single chain). Best d per "
               f"verifier: " + ", ".join(f"{n} d={d}" for n, d in best_d.items()) + ".")
    table = Table(("d", "scheme", *series, "universal LP", "best verifier"), tuple(rows),
                  "Exact block efficiency E[accepted] + 1 per branch depth d.")
    data = {"model": mname, "k": k, "L": L, "d": list(range(L + 1)), "schemes": [s.name for s in schemes],
            "block_efficiency": series, "universal_bound": bound, "method": how, "best_d": best_d}
    fig = Figure("delayed_expansion.png", f"Block efficiency vs branch depth d of delayed({k}, d, {L}-d) on "
                 f"{mname}", lambda path: _plot_delayed(data, path))
    return Section("delayed", 6, "Efficiency vs branching position (delayed expansion)",
                   "fail" if lossy else "ok", summary, (table,), (fig,), notes=tuple(notes), data=data)


def _plot_delayed(data: dict, path: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    d = data["d"]
    markers = "os^vD<>phx*+"
    for i, (name, vals) in enumerate(data["block_efficiency"].items()):
        ax.plot(d, vals, marker=markers[i % len(markers)], label=name)
    if data["universal_bound"]:
        ax.plot(d, data["universal_bound"], "k--", lw=1.5, label="universal LP bound")
    ax.set_xticks(d)
    ax.set_xlabel(f"branch depth d  (delayed({data['k']}, d, {data['L']} - d))")
    ax.set_ylabel("block efficiency E[tau] + 1")
    ax.set_title(f"Delayed tree expansion on {data['model']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- 7. selector -------------------------------------------------------------------------------
def _flatten(d, prefix=""):
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def selector(ctx: Context) -> Section:
    """The learned delay-and-branch selector against static choices and traversal
    (``specoracle.selector.summary`` and ``specoracle.selector.margins``)."""
    from specoracle.selector import compare_verifiers
    from specoracle.selector import margins as selector_margins
    from specoracle.selector import summary as selector_summary

    summ = selector_summary()
    policies = [summ[k] for k in ("selector", "best_static", "static_per_temperature", "oracle")]
    policies += list(summ["static"].values())
    prow = [(v["name"], _round(v["throughput"]), _round(v["aggregate_throughput"]), _round(v["block_efficiency"]),
             v["verifier"], str(tuple(v["action"])), v["n_distinct"]) for v in policies]
    rows = []
    for key, v in _flatten({k: v for k, v in summ.items() if k not in
                            ("selector", "best_static", "static_per_temperature", "oracle", "static")}):
        if isinstance(v, (list, tuple)) and len(v) > 8:
            v = f"[{len(v)} values]"
        rows.append((key, _round(v) if isinstance(v, float) else v if isinstance(v, (int, bool)) or v is None
                     else str(v)))
    margins = selector_margins()
    mrow = [(m.kind, m.seed, ", ".join(m.verifiers), _round(m.selector), f"{100 * m.over_static['specinfer']:+.2f}%",
             _round(m.static["traversal"]), f"{100 * m.over_traversal:+.2f}%",
             ", ".join(f"{v} {100 * x:.0f}%" for v, x in m.choices.items()), m.n_distinct) for m in margins]
    tables = (
        Table(("policy", "throughput (tokens / t_q)", "aggregate throughput", "block eff.", "verifier",
               "action (K, L1, L2)", "distinct actions"), tuple(prow),
              "joint selector (seed 0), held-out contexts; throughput = E[tau + 1] / modelled latency, "
              "every verifier paying its measured twin cost"),
        Table(("selector", "seed", "chooses among", "throughput", "over SpecInfer best static",
               "traversal best static", "over traversal best static", "verifiers chosen", "distinct actions"), tuple(mrow),
              "specoracle.selector.margins(): shipped checkpoints, held-out contexts"),
        _verifier_table(compare_verifiers()),
        Table(("quantity", "value"), tuple(rows), "as returned by specoracle.selector.summary()"),
    )
    figs = (Figure("selector.png", "Held-out throughput and block efficiency per policy",
                   lambda path: _plot_selector(prow, path)),)
    trav = [m.over_traversal for m in margins if m.kind == "joint"]
    spec = [m.over_static["specinfer"] for m in margins if m.kind == "specinfer"]
    summary = ("Throughput of the learned delay-and-branch selector on held-out contexts, every verifier paying "
               "its measured cost. SpecInfer-only selector over SpecInfer's best static action: "
               + ", ".join(f"{100 * x:+.1f}%" for x in spec) + " (seeds 0, 1); selector choosing the verifier too, "
               "over traversal at its best static action: " + ", ".join(f"{100 * x:+.1f}%" for x in trav)
               + ". Distinct actions on the held-out roots: " + ", ".join(str(m.n_distinct) for m in margins)
               + " (validation picks early, nearly static policies).")
    return Section("selector", 7, "Delayed tree expansion selector", "ok", summary, tables, figs,
                   data={**summ, "margins": [m.to_dict() for m in margins]})


def _verifier_table(cmp) -> Table:
    """Each verifier at its best static action, measured cost per node, and the per-context oracles."""
    rows = [(v, _round(cmp.latency.verify_cost(v)), str(cmp.static_action[v]), _round(t)) for v, t in cmp.static.items()]
    rows += [("oracle over " + " + ".join(names), "-", "per context", _round(t)) for names, t in cmp.oracle.items()]
    return Table(("verifier", "cost per node (draft steps)", "best static action", "throughput"), tuple(rows),
                 f"specoracle.selector.compare_verifiers(): {cmp.n_test} held-out roots with SpecTr and GBV scored "
                 "on the same trees, statics fitted in-sample (optimistic for every verifier)")


def _round(v, nd: int = 5):
    return round(v, nd) if isinstance(v, float) and math.isfinite(v) else v


def _plot_selector(prow, path: str) -> None:
    import matplotlib.pyplot as plt

    names = [r[0] for r in prow]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, col, label in ((axes[0], 1, "throughput (tokens per t_q)"), (axes[1], 3, "block efficiency")):
        vals = [r[col] if isinstance(r[col], (int, float)) else np.nan for r in prow]
        colors = ["tab:green" if n == "selector" else "tab:gray" if "oracle" in n else "tab:blue" for n in names]
        ax.bar(range(len(names)), vals, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel(label)
        finite = [v for v in vals if np.isfinite(v)]
        if finite:
            ax.set_ylim(min(finite) * 0.9, max(finite) * 1.05)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- driver ------------------------------------------------------------------------------------
SECTIONS: tuple[tuple[int, str, str, Callable[[Context], Section]], ...] = (
    (1, "exact", "Exact losslessness", exact_losslessness),
    (2, "chi2", "Chi-squared per torch verifier", chi2_twins),
    (3, "bounds", "Block efficiency against the LP bounds", efficiency_bounds),
    (4, "parity", "Torch vs reference under shared randomness", parity),
    (5, "mutants", "Mutant detection", mutant_detection),
    (6, "delayed", "Efficiency vs branching position (delayed expansion)", delayed_expansion),
    (7, "selector", "Delayed tree expansion selector", selector),
    (8, "claims", "The seed papers' claims, measured", claims),
    (9, "engines", "Real engines' conformance", engines),
)


def run_section(ctx: Context, number: int, key: str, title: str, fn: Callable[[Context], Section]) -> Section:
    """Run one section; an exception becomes a section with status ``error`` that says so (a bug in
    one section must not hide the others; the CLI exits with status 3, internal error)."""
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        sec = fn(ctx)
    except Exception as exc:
        tb = traceback.format_exc(limit=-3)
        sec = Section(key, number, title, "error", f"The section raised {type(exc).__name__}: {exc}",
                      notes=(tb,))
    return Section(sec.key, sec.number, sec.title, sec.status, sec.summary, sec.tables, sec.figures, sec.notes,
                   sec.data, time.perf_counter() - t0, time.process_time() - c0)
