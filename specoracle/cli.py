"""The ``specoracle`` command line: ``report``, ``check``, ``bound``, ``bench``.

A thin shell over public functions with the same parameter names:

- ``specoracle report [--quick] [--out DIR] [--seed S] [--device D]``:
  :func:`specoracle.reports.write_report` (``index.md``, self-contained ``index.html``,
  ``results.json``, PNG plots);
- ``specoracle check NAME [--model E2] [--scheme "iid(2,2)"] [--method exact|chi2|auto]
  [--device cpu]``: ``specoracle.check.check_lossless`` (exact engine, chi-squared on samples),
  or, with ``--device``, a chi-squared test of the torch twin sampled on that device against the
  target law (blocks extended by target sampling; stateful twins: whole sequences). ``NAME`` is a
  registry name or a mutant name (:mod:`specoracle.mutants`). Exit status 1 when not lossless;
- ``specoracle bound --model E2 --scheme "iid(2,2)"``: the LP bounds of :mod:`specoracle.lp` next
  to the exact block efficiency of every registered verifier that accepts the scheme;
- ``specoracle bench``: ``specoracle.gpu.bench`` (torch vs reference vs roofline).

Every subcommand takes ``--json`` (machine-readable output on stdout). Exit status: 0 success,
1 a check failed (not lossless, a report section failed), 2 bad usage (unknown name, bad
argument) or a missing component.

Models: an example name (``E1``...``E5``, ``HSDTOY``), ``random:V:seed[:divergence]`` or
``ngram:V[:target_order:draft_order]``; schemes as printed (``chain(2)``, ``iid(2,2)``,
``delayed(2,1,1)``, ``wor(2,1)``).
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _dump(obj) -> None:
    from specoracle.reports import jsonable

    print(json.dumps(jsonable(obj), indent=1, allow_nan=False))


def _err(msg: str) -> int:
    print(f"specoracle: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


# --- report ------------------------------------------------------------------------------------
def _cmd_report(args) -> int:
    from specoracle import reports

    preset = reports.quick if args.quick else reports.full
    cfg = preset(seed=args.seed, device=args.device, progress=not args.no_progress)
    only = tuple(s.strip() for s in args.only.split(",")) if args.only else None
    if only:
        from specoracle.reports.sections import SECTIONS

        valid = {k for _, k, _, _ in SECTIONS}
        bad = [k for k in only if k not in valid]
        if bad:
            from specoracle.errors import unknown_name

            raise unknown_name("section", bad[0], valid)
    command = "specoracle " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["report"] else ""
    report, paths = reports.write_report(cfg, args.out, command=command, only=only)
    failed = [s for s in report.sections if s.status in ("fail", "error")]
    if args.json:
        _dump({"out": str(args.out), "files": sorted(str(p) for p in paths.values()),
               "sections": {s.key: {"status": s.status, "summary": s.summary, "seconds": s.seconds}
                            for s in report.sections},
               "ok": not failed})
    else:
        print(f"specoracle report ({cfg.preset}, seed {cfg.seed}, device {cfg.device}) -> {args.out}/")
        for s in report.sections:
            print(f"  {s.number}. {s.title:<55} {s.status:<8} {s.seconds:6.1f} s")
        print(f"wrote {', '.join(sorted(p.name for p in paths.values()))}")
        if failed:
            print(f"FAILED sections: {', '.join(s.key for s in failed)}")
    return EXIT_FAIL if failed else EXIT_OK


# --- check -------------------------------------------------------------------------------------
def _resolve_target(name: str):
    """``(label, verifier, default_model, default_scheme, entry_or_None)`` for a registry or mutant name."""
    from specoracle import mutants, registry
    from specoracle.errors import unknown_name

    if name in registry.names():
        entry = registry.get(name)
        order = ("chain", "iid", "delayed", "without_replacement")
        kind = next((k for k in order if k in entry.schemes), None)
        scheme = {"chain": "chain(2)", "iid": "iid(2,2)", "delayed": "delayed(2,1,1)",
                  "without_replacement": "wor(2,1)"}.get(kind, "chain(2)")
        return name, entry, "E2", scheme, entry
    table = {m.name: m for m in list(mutants.catalog()) + list(mutants.true_negatives())}
    if name in table:
        m = table[name]
        return name, m.verify, m.model, m.scheme, None
    raise unknown_name("verifier name", name, [*registry.names(), *table])


def _cmd_check(args) -> int:
    from specoracle import exact
    from specoracle.drafting import parse_scheme
    from specoracle.reports import parse_model

    label, verifier, dmodel, dscheme, entry = _resolve_target(args.name)
    model = parse_model(args.model or dmodel)
    scheme = parse_scheme(args.scheme or dscheme)
    if args.device is not None:
        out = _check_twin(args, label, entry, model, scheme)
    else:
        out = _check_reference(args, label, verifier, model, scheme, exact)
    if out is None:
        return EXIT_USAGE
    if args.json:
        _dump(out)
    else:
        verdict = "LOSSLESS" if out["lossless"] else "NOT LOSSLESS"
        print(f"{label} on {out['model']} {out['scheme']} [{out['method']}]: {verdict}")
        skip = {"lossless", "verifier", "model", "scheme", "method", "table", "worst_cells"}
        if out["method"] == "exact":  # the sampling design does not apply to an exact verdict
            skip |= {"samples", "alpha", "power", "tv", "detectable_tv", "seed"}
        for k, v in out.items():
            if k in skip or v is None:
                continue
            if isinstance(v, float):
                v = f"{v:.6g}"
            print(f"  {k}: {v}")
        if out.get("worst_cells"):
            print("  worst cells (observed vs expected):")
            for c in out["worst_cells"]:
                print(f"    {c['cell']:<14} {c['observed']:.6g} vs {c['expected']:.6g}")
        if args.verbose and out.get("table"):
            print(out["table"])
    return EXIT_OK if out["lossless"] else EXIT_FAIL


def _check_reference(args, label, verifier, model, scheme, exact):
    from specoracle.errors import SpecoracleError

    try:
        from specoracle.check import check_lossless
    except ImportError:
        check_lossless = None
    if check_lossless is not None:
        kw = dict(method=args.method, seed=args.seed)
        for k in ("alpha", "tv", "power"):
            if getattr(args, k) is not None:
                kw[k] = getattr(args, k)
        if args.samples is not None:
            kw["n"] = args.samples
        v = check_lossless(verifier, model, scheme, **kw)
        fields = getattr(v, "__dataclass_fields__", None) or vars(v)
        out = {"verifier": label, "model": model.name, "scheme": scheme.name}
        for k in fields:
            val = getattr(v, k)
            if isinstance(val, (bool, int, float, str)) or val is None:
                out[k] = val
            elif k == "worst_cells":
                out[k] = [{"cell": str(getattr(c, "label", c)), "observed": getattr(c, "observed", None),
                           "expected": getattr(c, "expected", None),
                           "contribution": getattr(c, "contribution", None)} for c in list(val)[:5]]
        out["lossless"] = bool(v.lossless)
        out["method"] = str(getattr(v, "method", args.method))
        return out
    if args.method == "chi2":
        raise SpecoracleError("--method chi2 needs specoracle.check.check_lossless, which does not exist in "
                              "this installation; use --method exact or --device to test the torch twin")
    res = exact.evaluate(verifier, model, scheme)
    return {"verifier": label, "model": model.name, "scheme": scheme.name, "method": "exact",
            "lossless": bool(res.lossless), "max_error": float(res.max_error),
            "block_efficiency": float(res.block_efficiency), "n_trees": res.n_trees,
            "fallback_mass": float(res.fallback_mass)}


def _check_twin(args, label, entry, model, scheme):
    from specoracle.errors import SpecoracleError
    from specoracle.reports import derive_seed
    from specoracle.reports.sampling import target_cells, twin_target_chi2

    if entry is None:
        raise SpecoracleError(f"--device tests a torch twin; {label!r} is a mutant with no twin (drop --device)")
    if args.method == "exact":
        raise SpecoracleError("--device samples the torch twin (chi-squared); --method exact runs on the "
                              "reference only (drop --device)")
    n = args.samples
    if n is None:
        from specoracle import stats

        size = getattr(stats, "sample_size", None)
        if size is None:
            raise SpecoracleError("give --samples (specoracle.stats.sample_size does not exist here)")
        cells = target_cells(model, scheme, entry.stateful)
        n = int(size(args.tv or 0.02, cells=cells, alpha=args.alpha or 0.01, power=args.power or 0.99))
    r = twin_target_chi2(entry.name, model, scheme, n, device=args.device,
                         seed=derive_seed(args.seed, "check", label), alpha=args.alpha or 0.01,
                         power=args.power or 0.99)
    lossless = r.p_value >= (args.alpha or 0.01)
    return {"verifier": label, "model": model.name, "scheme": r.scheme, "method": "chi2 (torch twin vs target)",
            "lossless": lossless, "device": r.device, "samples": r.samples, "cells": r.cells,
            "statistic": r.statistic if r.statistic != float("inf") else None, "p_value": r.p_value,
            "detectable_tv": r.detectable_tv, "outside_support": r.outside_support}


# --- bound -------------------------------------------------------------------------------------
_BOUND_FNS = ("universal_bound", "path_selection_bound", "coverage_bound", "single_path_bound")


def _cmd_bound(args) -> int:
    import importlib
    import time

    from specoracle import exact, registry
    from specoracle.drafting import parse_scheme
    from specoracle.errors import SpecoracleError, unknown_name
    from specoracle.reports import parse_model

    model = parse_model(args.model)
    scheme = parse_scheme(args.scheme)
    which = [w.strip() for w in args.which.split(",")] if args.which else None
    if which:
        for w in which:
            if w not in _BOUND_FNS and f"{w}_bound" not in _BOUND_FNS:
                raise unknown_name("bound", w, _BOUND_FNS)
        which = [w if w.endswith("_bound") else f"{w}_bound" for w in which]
    try:
        lp = importlib.import_module("specoracle.lp")
    except ImportError as exc:
        raise SpecoracleError(f"specoracle.lp cannot be imported ({exc})") from None
    bounds, missing = {}, []
    for fn_name in which or _BOUND_FNS:
        fn = getattr(lp, fn_name, None)
        if fn is None:
            missing.append(fn_name)
            continue
        if fn_name == "single_path_bound":
            if scheme.kind != "chain" and not which:
                continue
            call = lambda fn=fn: fn(model, scheme.depth)  # noqa: E731
        else:
            if scheme.kind == "chain" and not which and fn_name != "universal_bound":
                continue
            call = lambda fn=fn: fn(model, scheme)  # noqa: E731
        t0 = time.perf_counter()
        b = call()
        bounds[fn_name] = {"block_efficiency": float(b.block_efficiency),
                           "expected_accepted": float(getattr(b, "expected_accepted", b.block_efficiency - 1)),
                           "status": str(getattr(b, "status", "")), "solver": str(getattr(b, "solver", "")),
                           "n_variables": getattr(b, "n_variables", None),
                           "n_constraints": getattr(b, "n_constraints", None),
                           "seconds": round(time.perf_counter() - t0, 3)}
    verifiers = {}
    if not args.no_verifiers:
        for e in registry.entries():
            if e.accepts(scheme) and not e.stateful:
                verifiers[e.name] = float(exact.evaluate(e, model, scheme).block_efficiency)
    out = {"model": model.name, "scheme": scheme.name, "bounds": bounds, "verifiers": verifiers,
           "missing": missing}
    if args.json:
        _dump(out)
        return EXIT_OK if bounds else EXIT_USAGE
    print(f"LP bounds on block efficiency E[accepted] + 1 for {model.name}, {scheme.name}")
    for k, b in bounds.items():
        print(f"  {k:<22} {b['block_efficiency']:.6f}   ({b['status']}, {b['solver']}, "
              f"{b['n_variables']} variables, {b['seconds']:.2f} s)")
    for k in missing:
        print(f"  {k:<22} (not available: specoracle.lp has no {k})")
    if verifiers:
        top = max(bounds.values(), key=lambda b: b["block_efficiency"])["block_efficiency"] if bounds else None
        print("exact block efficiency of the registered verifiers:")
        for name, be in sorted(verifiers.items(), key=lambda kv: -kv[1]):
            pct = f"  ({100 * be / top:.1f}% of the largest bound)" if top else ""
            print(f"  {name:<22} {be:.6f}{pct}")
    return EXIT_OK if bounds else EXIT_USAGE


# --- bench -------------------------------------------------------------------------------------
def _cmd_bench(args) -> int:
    import importlib
    import math

    from specoracle.errors import SpecoracleError

    try:
        gpu = importlib.import_module("specoracle.gpu")
        bench = gpu.bench
    except (ImportError, AttributeError) as exc:
        raise SpecoracleError(f"specoracle.gpu.bench is not available in this installation ({exc})") from None
    wanted = {"names": [args.verifier] if args.verifier else None, "B": args.batch, "V": args.vocab,
              "schemes": tuple(args.scheme) if args.scheme else None, "dtype": args.dtype, "device": args.device,
              "repeats": args.repeats, "seed": args.seed}
    params = inspect.signature(bench).parameters
    kwargs = {k: v for k, v in wanted.items() if v is not None and k in params}
    if "progress" in params and not args.json:
        kwargs["progress"] = lambda msg: print(f"  timing {msg}", file=sys.stderr, flush=True)
    rows = bench(**kwargs)
    plain = [_as_plain(r) for r in rows]
    for r, d in zip(rows, plain):
        for k in ("ratio", "speedup"):
            v = getattr(r, k, None)
            d[k] = v if v is None or math.isfinite(v) else None
    if args.json:
        _dump(plain)
        return EXIT_OK
    head = f"{'verifier':<14} {'scheme':<16} {'B':>6} {'N':>4} {'V':>7} {'dtype':<8} {'device':<6} " \
           f"{'twin ms':>9} {'roofline ms':>11} {'x roofline':>10} {'reference ms':>12} {'speedup':>8}  note"
    print(head)
    for d in plain:
        def ms(x):
            return f"{1e3 * x:.3f}" if isinstance(x, float) and math.isfinite(x) else "-"

        def num(x):
            return f"{x:.1f}" if isinstance(x, float) and math.isfinite(x) else "-"

        print(f"{d.get('name', ''):<14} {d.get('scheme', ''):<16} {d.get('B', ''):>6} {d.get('N', ''):>4} "
              f"{d.get('V', ''):>7} {str(d.get('dtype', '')).replace('torch.', ''):<8} {str(d.get('device', '')):<6} "
              f"{ms(d.get('twin_s')):>9} {ms(d.get('roofline_s')):>11} {num(d.get('ratio')):>10} "
              f"{ms(d.get('reference_s')):>12} {num(d.get('speedup')):>8}  {d.get('note', '')}")
    return EXIT_OK


def _as_plain(res):
    if hasattr(res, "to_dict"):
        return res.to_dict()
    if hasattr(res, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(res)
    return res


# --- claims ------------------------------------------------------------------------------------
def _cmd_claims(args) -> int:
    from specoracle.claims import claim_rows

    rows = claim_rows(quick=args.quick)
    if args.json:
        _dump([r.to_dict() for r in rows])
        return EXIT_OK
    for r in rows:
        print(f"{r.paper}: {r.claim}\n  measured: {r.measured}\n  verdict: {r.verdict} "
              f"(deciding case: {r.deciding_case})")
    return EXIT_OK


# --- parser ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``specoracle`` command (every subcommand has ``--help``)."""
    from specoracle import __version__

    p = argparse.ArgumentParser(
        prog="specoracle",
        description="Correctness oracle for speculative-decoding verifiers: exact and statistical "
                    "losslessness, efficiency against LP bounds, torch twins against references.",
        epilog="Models: E1..E5, E1b, HSDTOY, random:V:seed[:divergence], ngram:V[:target:draft]. "
               "Schemes: chain(L), iid(k,L), delayed(k,trunk,branch), wor(b1,b2,...).",
    )
    p.add_argument("--version", action="version", version=f"specoracle {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{report,check,bound,bench,claims}")
    sub.required = True

    r = sub.add_parser("report", help="write the full report (md, html, json, png)",
                       description="Run every section (exact losslessness, chi-squared of torch twins, "
                                   "efficiency vs LP bounds, parity, mutants, delayed expansion, selector) "
                                   "and write index.md, index.html, results.json and PNG plots.")
    r.add_argument("--out", default="specoracle-report", help="output directory (default: %(default)s)")
    r.add_argument("--quick", action="store_true", help="small preset, under 2 minutes on 2 cores")
    r.add_argument("--seed", type=int, default=0, help="base seed; same seed, same numbers (default: 0)")
    r.add_argument("--device", default="cpu", help="torch device for the twin sections (default: cpu)")
    r.add_argument("--only", default=None, help="comma-separated section keys: exact,chi2,bounds,parity,"
                                                "mutants,delayed,selector")
    r.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")
    r.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    r.set_defaults(func=_cmd_report)

    c = sub.add_parser("check", help="is one verifier (or mutant) lossless? exit 1 if not",
                       description="Exact and/or chi-squared losslessness check of a registered verifier or a "
                                   "mutant. With --device, the torch twin is sampled on that device and its "
                                   "extended law (stateful twins: whole sequences) tested against the target.")
    c.add_argument("name", help="registry name (e.g. bv, specinfer) or mutant name (e.g. bv_forward_scan)")
    c.add_argument("--model", default=None, help="model (default: E2, or the mutant's own model)")
    c.add_argument("--scheme", default=None, help="drafting scheme, e.g. 'iid(2,2)' (default: one it accepts)")
    c.add_argument("--method", choices=("exact", "chi2", "auto"), default="auto",
                   help="exact enumeration, chi-squared on samples, or auto (default: %(default)s)")
    c.add_argument("--device", default=None, help="sample the torch twin on this device (cpu, cuda, ...)")
    c.add_argument("--samples", type=int, default=None, help="chi-squared sample size (default: from power)")
    c.add_argument("--alpha", type=float, default=None, help="false-fail rate of the test")
    c.add_argument("--tv", type=float, default=None, help="total-variation error to detect")
    c.add_argument("--power", type=float, default=None, help="power at that TV error")
    c.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
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
    b.add_argument("--json", action="store_true", help="print the bounds as JSON")
    b.set_defaults(func=_cmd_bound)

    n = sub.add_parser("bench", help="torch twins vs reference vs roofline (specoracle.gpu.bench)",
                       description="Time the batched torch verifiers against the NumPy references and the "
                                   "memory roofline measured in the same run.")
    n.add_argument("--verifier", default=None, help="one registry name (default: every registered verifier)")
    n.add_argument("--scheme", action="append", default=None,
                   help="drafting scheme, repeatable (default: the benchmark's iid(4,4) and delayed(4,2,2))")
    n.add_argument("--device", default=None, help="torch device (default: cpu)")
    n.add_argument("--dtype", default=None, choices=("float32", "float64", "bfloat16", "float16"),
                   help="dtype of p and q (default: float32)")
    n.add_argument("--batch", type=int, default=None, help="batch size B (default: 64)")
    n.add_argument("--vocab", type=int, default=None, help="vocabulary size V (default: 32000)")
    n.add_argument("--repeats", type=int, default=None, help="timed repetitions, best kept (default: 5)")
    n.add_argument("--seed", type=int, default=None, help="seed (default: 0)")
    n.add_argument("--json", action="store_true", help="print the rows as JSON")
    n.set_defaults(func=_cmd_bench)

    m = sub.add_parser("claims", help="the seed papers' headline claims next to measured values",
                       description="specoracle.claims.claim_rows: each claim of GBV, UniVer, SpecTr-GBV and DDTE "
                                   "with the value measured on toy and n-gram models and a verdict.")
    m.add_argument("--quick", action="store_true", help="fewer and smaller cases")
    m.add_argument("--json", action="store_true", help="print the rows as JSON")
    m.set_defaults(func=_cmd_claims)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``specoracle`` console script; returns the exit status."""
    from specoracle.errors import SpecoracleError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except SpecoracleError as exc:
        return _err(str(exc))
    except KeyboardInterrupt:  # pragma: no cover - interactive
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
