"""The ``specoracle`` command line: ``report``, ``check``, ``bound``, ``bench``, ``claims``, ``engines``, ``hunt``.

A thin shell over public functions with the same parameter names; an option left out is not
passed, so the library's default applies:

- ``specoracle report [--quick] [--out DIR] [--seed S] [--device D] [--only KEYS]``:
  :func:`specoracle.reports.write_report` (``index.md``, self-contained ``index.html``,
  ``results.json``, PNG plots);
- ``specoracle check NAME [--model E2] [--scheme "iid(2,2)"] [--method exact|chi2|auto] [--budget S]``:
  :func:`specoracle.check.check_lossless` (exact engine, chi-squared on samples); with no
  ``--model`` or no ``--scheme``, the zero-configuration portfolio (:mod:`specoracle.portfolio`)
  under ``--budget`` seconds. With ``--device``, :func:`specoracle.gpu.checks.chi2_twin` against
  the target law (the torch twin sampled on that device; stateful twins: whole sequences).
  ``NAME`` is a registry name, a mutant name (:mod:`specoracle.mutants`), or your own verifier
  as ``my_module:my_verifier`` or ``path/to/file.py:my_verifier`` (:func:`load_object`: a
  ``verify(instance, rng)`` callable, optionally with ``fn.schemes``, a registry ``Entry``, a
  ``Mutant``, or a block sampler); ``--batched my_module:fn`` wraps a ``[B, L, V]`` function in
  :class:`specoracle.adapters.batched.BatchedVerifier`. ``--cluster ray`` (or ``ray://HOST:PORT``,
  ``local``, ``local:N``) draws the chi-squared samples in shards there (:mod:`specoracle.campaign`);
- ``specoracle bound --model E2 --scheme "iid(2,2)"``: the LP bounds of :mod:`specoracle.lp` next
  to the exact block efficiency of every registered verifier that accepts the scheme;
- ``specoracle bench``: :func:`specoracle.gpu.bench` (torch vs reference vs roofline);
- ``specoracle claims``: :func:`specoracle.claims.claim_rows` (the seed papers' claims, measured);
- ``specoracle engines [--engine E] [--quick] [--seed S]``:
  :func:`specoracle.adapters.conformance.conformance` (each installed engine's verdict on fixed
  cases with ``n`` and detectable TV; engines not installed listed as skipped with the install
  command); exit 1 when a case's verdict differs from the expected one or an engine raised, 4 when
  a case is inconclusive.
- ``specoracle hunt NAME [--budget 60] [--seed 0]``: :func:`specoracle.hunting.hunt`, the smallest
  counterexample found by a hypothesis search, printed as Python code (exit 1 if one is found).

Budgets: ``check`` and ``bound`` estimate their work first and refuse a request whose estimate
exceeds ``--max-seconds`` (default 900) or ``--max-memory-gb`` (default 4), naming the estimate
and what to change (:class:`specoracle.check.Estimate`). Long samplings print their expected time
and a progress bar on stderr (``--no-progress`` turns it off).

Output: every subcommand takes ``--json``: exactly one JSON object (``bench``, ``claims``: a
list) on stdout, errors included as ``{"error": {"type", "message", "exit_status"}}``. Solver
banners and progress go to stderr.

Verdict words (``check``): an exact pass reads ``LOSSLESS (exact, max error 2e-17, 38 cases)``; a
chi-squared pass reads ``NO LOSS DETECTED (chi2, n = 180,997: detects TV >= 0.0099 with power
0.99)``, never LOSSLESS. ``--json`` says the same: ``kind`` is ``"exact"`` or ``"statistical"``,
``verdict`` holds the words, ``status`` is ``lossless`` (exact pass), ``no loss detected``
(statistical pass), ``not lossless`` or ``inconclusive``; ``passed`` is true for either pass and
``lossless`` only for an exact one.

Exit status: 0 success (lossless or no loss detected, every report section ok); 1 a check failed (not lossless, a
report section failed); 2 bad usage or input (unknown name, bad argument, a budget exceeded, an
output path that is not a directory, a device that does not exist); 3 internal error (a bug: the
traceback goes to stderr); 4 inconclusive (a chi-squared check that did not reject but could not
see a TV error of ``--tv-ceiling``, default 0.1: raise ``--samples``).

Models: one parser for the CLI and the API (:func:`specoracle.examples.parse_model`): an example
name (``E1``...``E5``, ``HSDTOY``), ``random:V:seed[:divergence]``,
``ngram:V[:target_order:draft_order]`` or ``sparse:V:seed:pattern``, each optionally followed by
transforms ``|T=0.5[draft]``, ``|top_k=2[target]``, ``|top_p=0.9`` (side defaults to both); schemes as printed (``chain(2)``, ``iid(2,2)``,
``delayed(2,1,1)``, ``wor(2,1)``).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import sys
import traceback
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict

from specoracle.errors import SpecoracleError

__all__ = ["main", "build_parser", "load_object", "EXIT_OK", "EXIT_FAIL", "EXIT_USAGE", "EXIT_INTERNAL", "EXIT_INCONCLUSIVE"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL, EXIT_INCONCLUSIVE = 0, 1, 2, 3, 4
_STATUS_EXIT = {"lossless": EXIT_OK, "no loss detected": EXIT_OK, "not lossless": EXIT_FAIL,
                "inconclusive": EXIT_INCONCLUSIVE}


def _honest(out: dict, kind: str, words: str) -> dict:
    """``out`` with the verdict's ``kind`` (``exact`` or ``statistical``), its ``verdict`` words,
    ``passed``, and never ``lossless`` from sampling: a statistical pass has status
    ``"no loss detected"`` and ``lossless: false`` (exit status 0 all the same)."""
    passed = out["status"] == "lossless"
    if passed and kind != "exact":
        out["status"] = "no loss detected"
    out.update(kind=kind, verdict=words, passed=passed, lossless=passed and kind == "exact")
    return out


class UsageError(SpecoracleError):
    """The command line itself is wrong (argparse's complaint)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print and exit; raise so that --json can answer
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _kwargs(args, names: Sequence[str]) -> dict:
    """The options the user gave (None: left to the library's default)."""
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


# --- report ------------------------------------------------------------------------------------
def _cmd_report(args):
    from specoracle import reports
    from specoracle.errors import unknown_name
    from specoracle.reports.render import check_output
    from specoracle.reports.sections import SECTIONS

    only = tuple(s.strip() for s in args.only.split(",")) if args.only else None
    valid = [k for _, k, _, _ in SECTIONS]
    for k in only or ():
        if k not in valid:
            raise unknown_name("section", k, valid)
    check_output(args.out)
    if args.device is not None:
        from specoracle.gpu.checks import resolve_device

        resolve_device(args.device)
    preset = reports.quick if args.quick else reports.full
    cfg = preset(progress=not args.no_progress, **_kwargs(args, ("seed", "device")))
    report, paths = reports.write_report(cfg, args.out, command="specoracle " + " ".join(args.argv), only=only)
    statuses = [s.status for s in report.sections]
    code = next((c for st, c in (("error", EXIT_INTERNAL), ("fail", EXIT_FAIL), ("inconclusive", EXIT_INCONCLUSIVE))
                 if st in statuses), EXIT_OK)
    payload = {"out": str(args.out), "files": sorted(str(p) for p in paths.values()),
               "sections": {s.key: {"status": s.status, "summary": s.summary, "seconds": s.seconds}
                            for s in report.sections},
               "ok": code == EXIT_OK}
    lines = [f"specoracle report ({cfg.preset}, seed {cfg.seed}, device {cfg.device}) -> {args.out}/"]
    lines += [f"  {s.number}. {s.title:<55} {s.status:<12} {s.seconds:6.1f} s" for s in report.sections]
    lines.append(f"wrote {', '.join(sorted(p.name for p in paths.values()))}")
    bad = [s.key for s in report.sections if s.status != "ok"]
    if bad:
        lines.append(f"NOT OK sections: {', '.join(bad)}")
    return code, payload, "\n".join(lines)


# --- check -------------------------------------------------------------------------------------
_EXAMPLE_SCHEME = {"chain": "chain(2)", "iid": "iid(2,2)", "delayed": "delayed(2,1,1)", "without_replacement": "wor(2,1)"}


def _resolve_target(name: str):
    """``(verifier, default_model, default_scheme, entry_or_None)`` for a registry or mutant name,
    or a user's ``module:attr`` / ``path/to/file.py:attr`` (:func:`load_object`). The defaults
    serve ``--device`` only; without it a check with no model or scheme runs the portfolio."""
    from specoracle import mutants, registry
    from specoracle.drafting import KINDS
    from specoracle.errors import unknown_name

    if name in registry.names():
        entry = registry.get(name)
        kind = next(k for k in KINDS if k in entry.schemes)
        return entry, "E2", _EXAMPLE_SCHEME[kind], entry
    table = {m.name: m for m in list(mutants.catalog()) + list(mutants.true_negatives())}
    if name in table:
        m = table[name]
        return m, m.model, m.scheme, None
    if ":" in name:
        obj = load_object(name)
        if isinstance(obj, registry.Entry):
            return obj, "E2", _EXAMPLE_SCHEME[next(k for k in KINDS if k in obj.schemes)], obj
        return obj, "E2", "chain(2)", None
    raise unknown_name("verifier name (or module:function, path/to/file.py:function)", name,
                       [*registry.names(), *table])


def load_object(spec: str):
    """The object named by ``spec``: ``package.module:attr`` (imported with the working directory
    on ``sys.path``) or ``path/to/file.py:attr`` (loaded from that file); ``attr`` may be dotted.

    Errors are usage errors (exit 2) naming what is missing: the file, the module, the attribute
    (with the module's public names)."""
    import importlib
    import importlib.util
    from pathlib import Path

    from specoracle.errors import unknown_name

    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise UsageError(f"{spec!r}: expected module:function or path/to/file.py:function")
    if where.endswith(".py") or "/" in where or os.sep in where:
        path = Path(where)
        if not path.is_file():
            raise UsageError(f"{spec!r}: no file {where}")
        module_name = f"specoracle_user_{abs(hash(str(path.resolve())))}"
        loader = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader)
        sys.modules[module_name] = module  # dataclasses and pickling look the module up
        try:
            loader.loader.exec_module(module)
        except Exception as exc:
            raise UsageError(f"{spec!r}: importing {where} raised {type(exc).__name__}: {exc}") from exc
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            raise UsageError(f"{spec!r}: no module named {exc.name!r} (run from the directory that holds it, "
                             f"or give path/to/file.py:{attr})") from exc
        except Exception as exc:
            raise UsageError(f"{spec!r}: importing {where} raised {type(exc).__name__}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(obj) if not n.startswith("_")]
            raise unknown_name("attribute", part, public)
        obj = getattr(obj, part)
    return obj


def _case_row(c) -> dict:
    return {"model": c.model, "scheme": c.scheme, "kind": c.kind, "status": c.status, "verdict": c.words,
            "max_error": c.max_error, "n": c.n, "p_value": c.p_value, "detectable_tv": c.detectable_tv,
            "seconds": c.seconds}


def _cmd_check(args):
    from specoracle.drafting import parse_scheme
    from specoracle.examples import parse_model
    from specoracle.reports import jsonable

    if (args.name is None) == (args.batched is None):
        raise UsageError("check needs one verifier: NAME (registry, mutant, module:function, file.py:function) "
                         "or --batched module:function")
    if args.batched is not None:
        from specoracle.adapters.batched import BatchedVerifier

        label = args.batched
        verifier, dmodel, dscheme, entry = BatchedVerifier(load_object(args.batched), name=label), "E2", "chain(2)", None
    else:
        label = args.name
        verifier, dmodel, dscheme, entry = _resolve_target(args.name)
    design = ("alpha", "tv", "power", "seed", "n", "tv_ceiling", "max_memory_gb")
    if args.device is not None:
        if args.executor is not None:
            raise SpecoracleError("--cluster samples the reference verifier in shards; --device samples the torch "
                                  "twin on one device (drop one of them)")
        model, scheme = parse_model(args.model or dmodel), parse_scheme(args.scheme or dscheme)
        out = _check_twin(args, entry, model, scheme, _kwargs(args, design))
        text = None
    else:
        from specoracle.check import check_lossless

        model = parse_model(args.model) if args.model else None
        scheme = parse_scheme(args.scheme) if args.scheme else None
        kw = _kwargs(args, (*design, "method", "max_seconds", "executor", "confirm"))
        if model is None or scheme is None:
            kw.update(_kwargs(args, ("budget_seconds",)))
        elif entry is None and hasattr(verifier, "verify") and not callable(verifier):
            verifier = verifier.verify  # a mutant on one given case
        try:
            v = check_lossless(verifier, model, scheme, progress=not args.no_progress, **kw)
        except SpecoracleError:
            raise
        except Exception as exc:
            if args.batched is None and ":" not in args.name:
                raise  # a registered verifier or mutant that raises: a bug in specoracle (exit 3)
            traceback.print_exc(file=sys.stderr)
            raise UsageError(f"your verifier {label} raised {type(exc).__name__}: {exc} (its traceback is on "
                             f"stderr)") from exc
        out = {k: getattr(v, k) for k in v.__dataclass_fields__ if k not in ("tests", "worst_cells", "cases", "stages")}
        out["verifier"], out["table"] = label, v.table()
        out["confirmation"], out["stages"] = v.confirmation, [asdict(s) for s in v.stages]
        out["worst_cells"] = [asdict(c) for c in v.worst_cells]
        out["cases"] = [_case_row(c) for c in v.cases]
        out = _honest(out, v.kind, v.words)
        text = v.summary() if v.cases else None
    out = jsonable(out)
    return _STATUS_EXIT[out["status"]], out, text or _check_text(out, args.verbose)


def _check_text(out: dict, verbose: bool) -> str:
    lines = [f"{out['verifier']} on {out['model']} {out['scheme']}: {out['verdict']}"]
    skip = {"status", "lossless", "passed", "kind", "verdict", "verifier", "model", "scheme", "method", "table",
            "worst_cells", "estimated_seconds", "cases", "worst", "skipped", "notes", "minimal_case", "stages"}
    if out["method"] == "exact":  # the sampling design does not apply to an exact verdict
        skip |= {"n", "alpha", "power", "tv", "tv_ceiling", "detectable_tv", "seed", "seconds"}
    for k, v in out.items():
        if k not in skip and v is not None:
            lines.append(f"  {k}: {f'{v:.6g}' if isinstance(v, float) else v}")
    for i, st in enumerate(out.get("stages") or []):
        lines.append(f"  {('first stage', 'confirmation')[min(i, 1)]}: p = {st['p_value']:.3g} at alpha {st['alpha']}, "
                     f"n = {st['n']}, seed {st['seed']}")
    if out.get("worst_cells"):
        lines.append("  worst cells (observed vs expected):")
        lines += [f"    {c['label']:<14} {c['observed']:.6g} vs {c['expected']:.6g}" for c in out["worst_cells"]]
    if verbose and out.get("table"):
        lines.append(out["table"])
    return "\n".join(lines)


def _check_twin(args, entry, model, scheme, kw) -> dict:
    from specoracle.gpu.checks import chi2_twin

    if entry is None:
        raise SpecoracleError(f"--device tests a torch twin; {args.name!r} is a mutant with no twin (drop --device)")
    if args.method == "exact":
        raise SpecoracleError("--device samples the torch twin (chi-squared); --method exact runs on the "
                              "reference only (drop --device)")
    r = chi2_twin(entry.name, model, scheme, against="target", device=args.device, **kw)
    status = {"pass": "lossless", "fail": "not lossless"}.get(r.status, r.status)
    words = {"lossless": f"NO LOSS DETECTED (chi2, n = {r.n:,}: detects TV >= {r.detectable_tv:.2g} with power "
                         f"{r.power:g})",
             "not lossless": f"NOT LOSSLESS (chi2, n = {r.n:,}: p = {r.p_value:.2g} at alpha {r.alpha:g})"}.get(
        status, f"INCONCLUSIVE (chi2, n = {r.n:,}: detects only TV >= {r.detectable_tv:.2g}, above the ceiling "
                f"{r.tv_ceiling:g})")
    return _honest({"status": status, "verifier": args.name, "model": r.model,
            "scheme": r.scheme, "method": "chi2 (torch twin vs target)", "device": r.device, "n": r.n,
            "cells": r.cells, "statistic": r.statistic, "dof": r.dof, "p_value": r.p_value, "alpha": r.alpha,
            "power": r.power, "detectable_tv": r.detectable_tv, "tv_ceiling": r.tv_ceiling,
            "outside_support": r.outside_support, "seed": r.seed, "table": r.table(),
            "worst_cells": [asdict(c) for c in r.worst]}, "statistical", words)


# --- bound -------------------------------------------------------------------------------------
_BOUND_FNS = ("universal_bound", "path_selection_bound", "coverage_bound", "single_path_bound")


def _cmd_bound(args):
    from specoracle import exact, lp, registry
    from specoracle.check import estimate_bound, estimate_exact
    from specoracle.drafting import parse_scheme
    from specoracle.errors import unknown_name
    from specoracle.examples import parse_model

    model = parse_model(args.model)
    scheme = parse_scheme(args.scheme)
    which = [w.strip() for w in args.which.split(",")] if args.which else None
    for w in which or ():
        if w not in _BOUND_FNS and f"{w}_bound" not in _BOUND_FNS:
            raise unknown_name("bound", w, _BOUND_FNS)
    which = [w if w.endswith("_bound") else f"{w}_bound" for w in which] if which else [
        w for w in _BOUND_FNS if (w == "single_path_bound") == (scheme.kind == "chain") or w == "universal_bound"]
    budget = _kwargs(args, ("max_seconds", "max_memory_gb"))
    estimate_bound(model, scheme).require(**budget)
    verifiers = [] if args.no_verifiers else [e for e in registry.entries() if e.accepts(scheme) and not e.stateful]
    if verifiers:
        estimate_exact(model, scheme).require(**budget)
    bounds = {}
    for fn_name in which:
        b = lp.single_path_bound(model, scheme.depth) if fn_name == "single_path_bound" else getattr(lp, fn_name)(model, scheme)
        bounds[fn_name] = {"block_efficiency": b.block_efficiency, "expected_accepted": b.expected_accepted,
                           "status": b.status, "solver": b.solver, "n_variables": b.n_variables,
                           "n_constraints": b.n_constraints, "seconds": round(b.seconds, 3)}
    effs = {e.name: float(exact.evaluate(e, model, scheme).block_efficiency) for e in verifiers}
    payload = {"model": model.name, "scheme": scheme.name, "bounds": bounds, "verifiers": effs}
    lines = [f"LP bounds on block efficiency E[accepted] + 1 for {model.name}, {scheme.name}"]
    lines += [f"  {k:<22} {b['block_efficiency']:.6f}   ({b['status']}, {b['solver']}, {b['n_variables']} variables, "
              f"{b['seconds']:.2f} s)" for k, b in bounds.items()]
    if effs:
        top = max(b["block_efficiency"] for b in bounds.values())
        lines.append("exact block efficiency of the registered verifiers:")
        lines += [f"  {name:<22} {be:.6f}  ({100 * be / top:.1f}% of the largest bound)"
                  for name, be in sorted(effs.items(), key=lambda kv: -kv[1])]
    return EXIT_OK, payload, "\n".join(lines)


# --- bench -------------------------------------------------------------------------------------
def _cmd_bench(args):
    from specoracle.gpu import bench

    kwargs = _kwargs(args, ("B", "V", "dtype", "device", "repeats", "seed"))
    if args.verifier:
        kwargs["names"] = [args.verifier]
    if args.scheme:
        kwargs["schemes"] = tuple(args.scheme)
    rows = bench(progress=lambda msg: print(f"  timing {msg}", file=sys.stderr, flush=True), **kwargs)
    plain = []
    for r in rows:
        d = asdict(r)
        d["ratio"], d["speedup"] = r.ratio, r.speedup
        plain.append(d)
    head = f"{'verifier':<14} {'scheme':<16} {'B':>6} {'N':>4} {'V':>7} {'dtype':<8} {'device':<6} " \
           f"{'twin ms':>9} {'roofline ms':>11} {'x roofline':>10} {'reference ms':>12} {'speedup':>8}  note"

    def ms(x):
        return f"{1e3 * x:.3f}" if x is not None and math.isfinite(x) else "-"

    def num(x):
        return f"{x:.1f}" if x is not None and math.isfinite(x) else "-"

    lines = [head] + [
        f"{d['name']:<14} {d['scheme']:<16} {d['B']:>6} {d['N']:>4} {d['V']:>7} {d['dtype'].replace('torch.', ''):<8} "
        f"{d['device']:<6} {ms(d['twin_s']):>9} {ms(d['roofline_s']):>11} {num(d['ratio']):>10} "
        f"{ms(d['reference_s']):>12} {num(d['speedup']):>8}  {d['note']}" for d in plain]
    return EXIT_OK, plain, "\n".join(lines)


# --- claims ------------------------------------------------------------------------------------
def _cmd_claims(args):
    from specoracle.claims import claim_rows
    from specoracle.reports import jsonable

    rows = claim_rows(quick=args.quick)
    text = "\n".join(f"{r.paper}: {r.claim}\n  measured: {r.measured}\n  verdict: {r.verdict} "
                     f"(deciding case: {r.deciding_case})" for r in rows)
    return EXIT_OK, jsonable({"claims": [r.to_dict() for r in rows]}), text


# --- hunt --------------------------------------------------------------------------------------
def _cmd_hunt(args):
    from specoracle.hunting import hunt
    from specoracle.reports import jsonable

    verifier, _, _, entry = _resolve_target(args.name)
    kw = _kwargs(args, ("budget", "max_examples", "seed", "max_V", "max_depth", "max_k"))
    r = hunt(entry or (args.name if verifier is None else _named(verifier, args.name)), **kw)
    payload = {"verifier": args.name, "found": r.found, "error": r.error, "worst_error": r.worst_error,
               "examples": r.examples, "seconds": r.seconds, "kinds": list(r.kinds), "code": r.code,
               "case": None if r.case is None else r.case.describe()}
    return (EXIT_FAIL if r.found else EXIT_OK), jsonable(payload), r.summary()


def _named(verifier, name: str):
    """A mutant's name (its reproducer then reads ``mutants.get(name)``); other callables as given."""
    from specoracle import mutants

    return name if any(m.verify is verifier for m in mutants.catalog() + mutants.true_negatives()) else verifier


# --- engines -----------------------------------------------------------------------------------
def _cmd_engines(args):
    from specoracle.adapters.conformance import ALPHA, conformance, conformance_table
    from specoracle.reports import jsonable
    from specoracle.stats import false_alarm_rate

    rows = conformance(args.engine, quick=args.quick, **_kwargs(args, ("seed",)))
    verdicts = [r.verdict for r in rows]
    code = EXIT_FAIL if any(r.agrees is False or r.verdict == "error" for r in rows) else (
        EXIT_INCONCLUSIVE if "inconclusive" in verdicts else EXIT_OK)
    ran = sum(r.p_value is not None for r in rows)
    family = (f"{ran} cases ran, one family: Holm at alpha {ALPHA} at both stages (a flag is confirmed on an "
              f"independent seed); a table of lossless engines shows a false alarm with probability <= "
              f"{false_alarm_rate(ALPHA):.0e}")
    payload = {"rows": [r.as_dict() for r in rows], "alpha": ALPHA, "family": family,
               "ok": code == EXIT_OK}
    return code, jsonable(payload), conformance_table(rows) + "\n" + family


# --- parser ------------------------------------------------------------------------------------
def _int_at_least(lo: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            try:  # 1e8: an integer written in scientific notation
                f = float(text)
            except ValueError:
                f = math.nan
            if not (math.isfinite(f) and f.is_integer()):
                raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
            v = int(f)
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v

    parse.__name__ = f"integer >= {lo}"
    return parse


def _budget_flags(sub) -> None:
    sub.add_argument("--max-seconds", type=float, default=None,
                     help="refuse work estimated to take longer (default: 900)")
    sub.add_argument("--max-memory-gb", type=float, default=None,
                     help="refuse work estimated to need more memory, in GiB (default: 4)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``specoracle`` command (every subcommand has ``--help``)."""
    from specoracle import __version__

    p = _Parser(
        prog="specoracle",
        description="Correctness oracle for speculative-decoding verifiers: exact and statistical "
                    "losslessness, efficiency against LP bounds, torch twins against references.",
        epilog="Models: E1..E5, E1b, HSDTOY, random:V:seed[:divergence], ngram:V[:target:draft], "
               "sparse:V:seed:pattern, each optionally |T=t[side], |top_k=k[side], |top_p=p[side]. "
               "Schemes: chain(L), iid(k,L), delayed(k,trunk,branch), wor(b1,b2,...). Exit status: 0 ok, "
               "1 a check failed, 2 usage or input error, 3 internal error, 4 inconclusive.",
    )
    p.add_argument("--version", action="version", version=f"specoracle {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{report,check,bound,bench,claims,engines,hunt}")
    sub.required = True
    seed = dict(type=_int_at_least(0), default=None, help="base seed, >= 0 (default: 0)")

    r = sub.add_parser("report", help="write the full report (md, html, json, png)",
                       description="Run every section (exact losslessness, chi-squared of torch twins, "
                                   "efficiency vs LP bounds, parity, mutants, delayed expansion, selector, claims, "
                                   "real engines' conformance) "
                                   "and write index.md, index.html, results.json and PNG plots.")
    r.add_argument("--out", default="specoracle-report", help="output directory (default: %(default)s)")
    r.add_argument("--quick", action="store_true", help="small preset, under 2 minutes on 2 cores")
    r.add_argument("--seed", **seed)
    r.add_argument("--device", default=None, help="torch device for the twin sections (default: cpu)")
    r.add_argument("--only", default=None, help="comma-separated section keys: exact,chi2,bounds,parity,"
                                                "mutants,delayed,selector,claims,engines")
    r.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    r.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    r.set_defaults(func=_cmd_report)

    c = sub.add_parser("check", help="is one verifier (or mutant) lossless? exit 1 if not",
                       description="Exact and/or chi-squared losslessness check of a registered verifier or a "
                                   "mutant. With --device, the torch twin is sampled on that device and its "
                                   "extended law (stateful twins: whole sequences) tested against the target.")
    c.add_argument("name", nargs="?", default=None,
                   help="registry name (e.g. bv), mutant name (e.g. bv_forward_scan), your verifier as "
                        "module:function or path/to/file.py:function")
    c.add_argument("--batched", default=None, metavar="MODULE:FN",
                   help="your batched [B, L, V] chain function (specoracle.adapters.batched convention), "
                        "checked by chi-squared")
    c.add_argument("--model", default=None,
                   help="model (default: the zero-configuration portfolio; with --device: E2)")
    c.add_argument("--scheme", default=None,
                   help="drafting scheme, e.g. 'iid(2,2)' (default: the portfolio's, every kind the verifier accepts)")
    c.add_argument("--budget", dest="budget_seconds", type=float, default=None,
                   help="time budget in seconds of the portfolio run when --model or --scheme is left out "
                        "(default: 60)")
    c.add_argument("--method", choices=("exact", "chi2", "auto"), default=None,
                   help="exact enumeration, chi-squared on samples, or auto (default: auto)")
    c.add_argument("--device", default=None, help="sample the torch twin on this device (cpu, cuda, ...)")
    c.add_argument("--samples", dest="n", type=_int_at_least(1), default=None,
                   help="chi-squared sample size (default: from the power analysis)")
    c.add_argument("--alpha", type=float, default=None, help="false-fail rate of the test (default: 0.01)")
    c.add_argument("--tv", type=float, default=None, help="total-variation error to detect (default: 0.01)")
    c.add_argument("--power", type=float, default=None, help="power at that TV error (default: 0.99)")
    c.add_argument("--tv-ceiling", type=float, default=None,
                   help="a test that cannot see this TV is inconclusive, exit 4 (default: 0.1)")
    c.add_argument("--seed", **seed)
    c.add_argument("--cluster", dest="executor", default=None,
                   help="draw the chi-squared samples in shards on: local, local:N (worker processes), ray (the "
                        "running Ray cluster, else a local one) or ray://HOST:PORT (specoracle.campaign)")
    c.add_argument("--no-confirm", dest="confirm", action="store_const", const=False, default=None,
                   help="one chi-squared stage: a rejection is not rerun on an independent seed before NOT LOSSLESS "
                        "(false alarms at rate alpha instead of alpha^2)")
    _budget_flags(c)
    c.add_argument("--no-progress", action="store_true", help="no expected time or progress bar on stderr")
    c.add_argument("--verbose", action="store_true", help="also print the pooled chi-squared table")
    c.add_argument("--json", action="store_true", help="print the verdict as JSON")
    c.set_defaults(func=_cmd_check)

    b = sub.add_parser("bound", help="LP bounds on block efficiency for a model and scheme",
                       description="Solve the LP bounds of specoracle.lp (universal, path-selection, coverage; "
                                   "single-path for chains) and list the exact block efficiency of every "
                                   "registered verifier that accepts the scheme.")
    b.add_argument("--model", default="E2", help="model (default: %(default)s)")
    b.add_argument("--scheme", default="iid(2,2)", help="drafting scheme (default: %(default)s)")
    b.add_argument("--which", default=None, help="comma-separated: universal,path_selection,coverage,single_path")
    b.add_argument("--no-verifiers", action="store_true", help="skip the exact efficiencies of the verifiers")
    _budget_flags(b)
    b.add_argument("--json", action="store_true", help="print the bounds as JSON")
    b.set_defaults(func=_cmd_bound)

    n = sub.add_parser("bench", help="torch twins vs reference vs roofline (specoracle.gpu.bench)",
                       description="Time the batched torch verifiers against the NumPy references and the "
                                   "memory roofline measured in the same run.")
    n.add_argument("--verifier", default=None, help="one registry name (default: every registered verifier)")
    n.add_argument("--scheme", action="append", default=None,
                   help="drafting scheme, repeatable (default: the benchmark's iid(4,4) and delayed(4,2,2))")
    n.add_argument("--device", default=None, help="torch device (default: cpu)")
    n.add_argument("--dtype", default=None, choices=("float32", "float64"), help="dtype of p and q (default: float32)")
    n.add_argument("--batch", dest="B", type=_int_at_least(1), default=None, help="batch size B (default: 64)")
    n.add_argument("--vocab", dest="V", type=_int_at_least(2), default=None, help="vocabulary size V (default: 32000)")
    n.add_argument("--repeats", type=_int_at_least(1), default=None, help="timed repetitions, best kept (default: 5)")
    n.add_argument("--seed", **seed)
    n.add_argument("--json", action="store_true", help="print the rows as JSON")
    n.set_defaults(func=_cmd_bench)

    h = sub.add_parser("hunt", help="search for the smallest case a verifier gets wrong (exit 1 if found)",
                       description="specoracle.hunt: hypothesis search over small models (random, sparse, p ~= q "
                                   "rows, context-dependent) and the schemes the verifier accepts, maximising the "
                                   "exact error; prints the smallest counterexample as Python code.")
    h.add_argument("name", help="registry or mutant name")
    h.add_argument("--budget", type=float, default=None, help="seconds of search (default: 60)")
    h.add_argument("--max-examples", type=_int_at_least(1), default=None, help="most cases evaluated (default: 5000)")
    h.add_argument("--max-V", dest="max_V", type=_int_at_least(2), default=None, help="largest vocabulary (default: 6)")
    h.add_argument("--max-depth", type=_int_at_least(1), default=None, help="longest chain (default: 3)")
    h.add_argument("--max-k", type=_int_at_least(2), default=None, help="most paths/siblings (default: 3)")
    h.add_argument("--seed", **seed)
    h.add_argument("--json", action="store_true", help="print the result as JSON")
    h.set_defaults(func=_cmd_hunt)

    m = sub.add_parser("claims", help="the seed papers' headline claims next to measured values",
                       description="specoracle.claims.claim_rows: each claim of GBV, UniVer, SpecTr-GBV and DDTE "
                                   "with the value measured on toy and n-gram models and a verdict.")
    m.add_argument("--quick", action="store_true", help="fewer and smaller cases")
    m.add_argument("--json", action="store_true", help="print the rows as JSON")
    m.set_defaults(func=_cmd_claims)

    from specoracle.adapters.conformance import ENGINES

    e = sub.add_parser("engines", help="conformance of real engines (transformers, vLLM, EAGLE) through the adapters",
                       description="specoracle.adapters.conformance: each installed engine's verdict on a fixed "
                                   "set of cases, with n, detectable TV and both stages' p-values; engines "
                                   "not installed are listed as skipped with the install command. Exit 1 "
                                   "when a verdict differs from the expected one.")
    e.add_argument("--engine", action="append", choices=tuple(ENGINES), default=None,
                   help="one engine, repeatable (default: all)")
    e.add_argument("--quick", action="store_true", help="one cheap case per engine")
    e.add_argument("--seed", **seed)
    e.add_argument("--json", action="store_true", help="print the rows as JSON")
    e.set_defaults(func=_cmd_engines)
    return p


# --- entry point -------------------------------------------------------------------------------
@contextmanager
def _stdout_to_stderr():
    """Send everything written to stdout (Python and C: solver banners) to stderr meanwhile, so
    that stdout holds only the command's answer."""
    sys.stdout.flush()
    libc = ctypes.CDLL(None)
    saved = os.dup(1)
    os.dup2(2, 1)
    old, sys.stdout = sys.stdout, sys.stderr
    try:
        yield
    finally:
        sys.stderr.flush()
        libc.fflush(None)
        os.dup2(saved, 1)
        os.close(saved)
        sys.stdout = old


def _error(kind: str, message: str, code: int) -> tuple[int, dict, str | None]:
    """An error answer: its exit status, its JSON object, and no text (the message goes to stderr)."""
    return code, {"error": {"type": kind, "message": message, "exit_status": code}}, None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``specoracle`` console script; returns the exit status (module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    try:
        args = build_parser().parse_args(argv)  # --help / --version print here and exit 0
        args.argv = argv
    except SpecoracleError as exc:
        code, payload, text = _error(type(exc).__name__, str(exc), EXIT_USAGE)
    else:
        with _stdout_to_stderr():
            try:
                code, payload, text = args.func(args)
            except SpecoracleError as exc:
                code, payload, text = _error(type(exc).__name__, str(exc), EXIT_USAGE)
            except KeyboardInterrupt:
                code, payload, text = _error("interrupted", "interrupted", 130)
            except Exception as exc:  # a bug: exit 3 with the traceback on stderr, never a bare traceback
                traceback.print_exc(file=sys.stderr)
                code, payload, text = _error("internal", f"internal error {type(exc).__name__}: {exc} "
                                                         f"(a bug in specoracle; the traceback is on stderr)",
                                             EXIT_INTERNAL)
    if as_json:
        print(json.dumps(payload, indent=1, allow_nan=False))
    elif text is None:
        print(f"specoracle: error: {payload['error']['message']}", file=sys.stderr)
    else:
        print(text)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
