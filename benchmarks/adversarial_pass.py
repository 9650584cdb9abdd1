"""A fresh adversarial pass over the public API and the CLI (issue 13's closing measurement).

Every input is what a hurried or hostile user might pass: malformed tables, lying verifiers,
impossible budgets, wrong devices. Each runs in its own interpreter under a wall-clock limit and an
address-space limit, and is classified as

- ``clear error``: refused with a specoracle error (API) or exit status 2 with a message (CLI);
- ``correct``: an answer, and the right one (the expected verdict or exit status);
- ``silent``: an answer, and a wrong one (or an answer where a refusal was due, or output that is
  not the promised single JSON object);
- ``traceback``: any other exception (API) or exit status 3 / an uncaught traceback (CLI);
- ``hang``: no answer within the limit, or the memory limit hit.

Run: ``python benchmarks/adversarial_pass.py [--jobs 2] [--timeout 90] [--json OUT]``. It prints one
line per input and the counts per class; the process exits 1 if any input is silent or hangs.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

CLASSES = ("clear error", "correct", "silent", "traceback", "hang")
MEMORY_GB = 6.0

# The API harness: runs the case's code, which binds ``result``; prints one JSON line.
API_HARNESS = r'''
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
from specoracle.errors import SpecoracleError
try:
{body}
    print("@@" + json.dumps({{"outcome": "answer", "value": result}}, default=str))
except SpecoracleError as exc:
    print("@@" + json.dumps({{"outcome": "error", "type": type(exc).__name__, "message": str(exc)[:300]}}))
except MemoryError:
    print("@@" + json.dumps({{"outcome": "memory"}}))
except BaseException as exc:
    print("@@" + json.dumps({{"outcome": "crash", "type": type(exc).__name__, "message": str(exc)[:300]}}))
'''

# Verifiers a user might write, shared by the API cases (source text, defined in the harness).
LIARS = r'''
import random
import numpy as np
from specoracle import Outcome, check_lossless, exact, drafting, examples, models
def out_of_range(inst, rng):          # token V + y: lands in another block's cells if unchecked
    y = rng.categorical(inst.p[0], ("residual", 0))
    return Outcome(0, int(y) + inst.V)
def node_minus_one(inst, rng):         # node -1 silently read as the last node if unchecked
    return Outcome(-1, int(rng.categorical(inst.p[0], ("residual", 0))))
def hidden_randomness(inst, rng):      # branches on randomness outside rng
    if random.random() < 0.5:
        return Outcome(0, int(rng.categorical(inst.p[0], ("residual", 0))))
    return Outcome(0, int(rng.categorical(inst.q[0], ("residual", 0))))
def not_an_outcome(inst, rng):
    return "zero"
def raises(inst, rng):
    raise RuntimeError("user bug")
def key_reuse(inst, rng):
    rng.bernoulli(0.5, ("k",))
    return Outcome(0, int(rng.categorical(inst.p[0], ("k",))))
def draft_law(inst, rng):               # lossy: emits from the draft
    return Outcome(0, int(rng.categorical(inst.q[0], ("residual", 0))))
def target_law(inst, rng):              # lossless: ignores the draft
    return Outcome(0, int(rng.categorical(inst.p[0], ("residual", 0))))
'''


@dataclass(frozen=True)
class Case:
    label: str
    kind: str            # "api" | "cli"
    code: str            # API: Python binding ``result``; CLI: argv joined by " | "
    expect: object       # "error", or the expected answer (API value / CLI exit status)


def api(label: str, code: str, expect) -> Case:
    return Case(label, "api", code, expect)


def cli(label: str, argv: str, expect) -> Case:
    return Case(label, "cli", argv, expect)


def _status(v: str) -> str:
    return f"result = check_lossless({v}).status"


def _write_liars() -> None:
    """The liars as a file, for the CLI's ``path/to/file.py:function`` cases."""
    from pathlib import Path

    Path(__file__).with_name("adversarial_liars.py").write_text(LIARS)


CASES = [
    # --- the exact engine must not be fooled (issue 13.1, 13.2) ---
    api("exact: verifier emits token V+y", _status("out_of_range, 'E1', 'chain(1)', method='exact'"), "error"),
    api("exact: verifier emits node -1", _status("node_minus_one, 'E1', 'chain(1)', method='exact'"), "error"),
    api("exact: randomness outside rng", _status("hidden_randomness, 'E2', 'chain(1)', method='exact'"), "error"),
    api("exact: returns a string", _status("not_an_outcome, 'E1', 'chain(1)', method='exact'"), "error"),
    api("exact: verifier raises (its own exception, unchanged)", _status("raises, 'E1', 'chain(1)', method='exact'"),
        "raises RuntimeError"),
    cli("cli: your verifier raises", "check | benchmarks/adversarial_liars.py:raises | --model | E1 | --scheme | "
        "chain(1) | --json", "error"),
    api("exact: reused key", _status("key_reuse, 'E1', 'chain(1)', method='exact'"), "error"),
    api("chi2: reused key", _status("key_reuse, 'E1', 'chain(1)', method='chi2', n=2000"), "error"),
    api("chi2: verifier emits token V+y", _status("out_of_range, 'E1', 'chain(1)', method='chi2', n=2000"), "error"),
    api("exact: lossy draft-law verifier", _status("draft_law, 'E2', 'chain(1)', method='exact'"), "not lossless"),
    api("exact: lossless target-law verifier", _status("target_law, 'E2', 'chain(1)', method='exact'"), "lossless"),
    api("chi2: lossy draft-law verifier", _status("draft_law, 'E2', 'chain(1)', method='chi2'"), "not lossless"),
    api("exact: registered lossy mutant", "from specoracle import mutants\nm = mutants.catalog()[0]\n"
        "result = check_lossless(m.verify, m.model, m.scheme, method='exact').status", "not lossless"),
    # --- tables and models ---
    api("model: negative entry", "m = models.context_free([1.2, -0.2], [0.5, 0.5])\n"
        "result = check_lossless('naive', m, 'chain(1)').status", "error"),
    api("model: row sums to 0.9", "m = models.context_free([0.5, 0.4], [0.5, 0.5])\n"
        "result = check_lossless('naive', m, 'chain(1)').status", "error"),
    api("model: NaN entry", "m = models.context_free([float('nan'), 1.0], [0.5, 0.5])\n"
        "result = check_lossless('naive', m, 'chain(1)').status", "error"),
    api("model: V = 1", "m = models.context_free([1.0], [1.0])\n"
        "result = check_lossless('naive', m, 'chain(1)').status", "lossless"),
    api("model: q = 0 where p > 0", "m = models.context_free([0.5, 0.5], [1.0, 0.0])\n"
        "result = check_lossless('naive', m, 'chain(2)', method='exact').status", "lossless"),
    api("model: one-hot p and q", "m = models.context_free([0.0, 1.0, 0.0], [1.0, 0.0, 0.0])\n"
        "result = check_lossless('bv', m, 'chain(2)', method='exact').status", "lossless"),
    api("model: -2e-16 rounding, exact", "m = models.context_free([0.5 + 2e-16, 0.5, -2e-16], [0.4, 0.3, 0.3])\n"
        "result = check_lossless('naive', m, 'chain(1)', method='exact').status", "error"),
    api("model: -2e-16 rounding, chi2", "m = models.context_free([0.5 + 2e-16, 0.5, -2e-16], [0.4, 0.3, 0.3])\n"
        "result = check_lossless('naive', m, 'chain(1)', method='chi2', n=5000).status", "error"),
    api("model: unknown name", _status("'naive', 'E9', 'chain(1)'"), "error"),
    api("model: string random:5:3 in the API", _status("'naive', 'random:5:3', 'chain(1)', method='exact'"),
        "lossless"),
    api("model: not a model", _status("'naive', 42, 'chain(1)'"), "error"),
    # --- schemes ---
    api("scheme: chain(0) (no draft: one token from p)", _status("'naive', 'E1', 'chain(0)'"), "lossless"),
    api("scheme: iid(0,2)", _status("'specinfer', 'E1', 'iid(0,2)'"), "error"),
    api("scheme: garbage", _status("'naive', 'E1', 'tree please'"), "error"),
    api("scheme: naive on iid(2,2)", _status("'naive', 'E1', 'iid(2,2)'"), "error"),
    api("scheme: specinfer on wor(2,2)", _status("'specinfer', 'E5', 'wor(2,2)', method='exact'"), "error"),
    api("scheme: wor(3) at V=2 (drafts what exists)", _status("'rrs_wor', 'E1', 'wor(3)', method='exact'"), "lossless"),
    # --- budgets instead of hangs (issue 13.5) ---
    api("budget: exact V=50 chain(6)", _status("'naive', models.random_model(50, 0), 'chain(6)', method='exact'"),
        "error"),
    api("budget: auto V=50 chain(6)", _status("'naive', models.random_model(50, 0), 'chain(6)', max_seconds=30"),
        "error"),
    api("budget: chi2 V=5000", _status("'naive', models.random_model(5000, 0), 'chain(2)', method='chi2', "
                                       "max_seconds=30"), "error"),
    api("budget: tv 1e-7", _status("'naive', 'E1', 'chain(1)', method='chi2', tv=1e-7"), "error"),
    api("budget: NaN max_seconds", _status("'naive', 'E1', 'chain(1)', max_seconds=float('nan')"), "error"),
    # --- vacuous passes (issue 13.8) ---
    api("vacuous: chi2 with n = 1", _status("'bv', 'E1', 'chain(1)', method='chi2', n=1"), "inconclusive"),
    api("vacuous: chi2 with n = 50", _status("'bv', 'E2', 'chain(2)', method='chi2', n=50"), "inconclusive"),
    api("vacuous: parity n_instances=-5", "from specoracle.gpu import checks\n"
        "result = checks.parity('bv', examples.E1(), drafting.chain(2), n_instances=-5).mismatches", "error"),
    api("vacuous: parity n_instances=0", "from specoracle.gpu import checks\n"
        "result = checks.parity('bv', examples.E1(), drafting.chain(2), n_instances=0).mismatches", "error"),
    # --- statistics arguments ---
    api("stats: alpha = 0", _status("'naive', 'E1', 'chain(1)', method='chi2', alpha=0.0"), "error"),
    api("stats: alpha = 1.5", _status("'naive', 'E1', 'chain(1)', method='chi2', alpha=1.5"), "error"),
    api("stats: power = 1", _status("'naive', 'E1', 'chain(1)', method='chi2', power=1.0"), "error"),
    api("stats: seed = -1", _status("'naive', 'E1', 'chain(1)', method='chi2', seed=-1"), "error"),
    api("stats: method 'magic'", _status("'naive', 'E1', 'chain(1)', method='magic'"), "error"),
    api("stats: tol = NaN", _status("'naive', 'E1', 'chain(1)', method='exact', tol=float('nan')"), "error"),
    # --- twins and from_tensors (issue 13.3, 13.4) ---
    api("twin: specinfer on wor(2,2)", "from specoracle.gpu import checks\n"
        "result = checks.parity('specinfer', examples.E5(), drafting.parse_scheme('wor(2,2)'), n_instances=100)"
        ".mismatches", "error"),
    api("from_tensors: duplicate sibling tokens", "import torch\nfrom specoracle.gpu import batch as gb\n"
        "p = torch.full((1, 3, 3), 1/3, dtype=torch.float64)\n"
        "b = gb.from_tensors(torch.tensor([[0, 1, 1]]), torch.tensor([-1, 0, 0]), p, p.clone())\n"
        "result = 'accepted'", "error"),
    api("from_tensors: q = 0 on a drafted token", "import torch\nfrom specoracle.gpu import batch as gb\n"
        "p = torch.full((1, 2, 3), 1/3, dtype=torch.float64)\nq = p.clone(); q[0, 0] = torch.tensor([0.5, 0.0, 0.5])\n"
        "b = gb.from_tensors(torch.tensor([[0, 1]]), torch.tensor([-1, 0]), p, q)\nresult = 'accepted'", "error"),
    api("from_tensors: B = 0", "import torch\nfrom specoracle.gpu import batch as gb\n"
        "p = torch.full((0, 2, 3), 1/3, dtype=torch.float64)\n"
        "b = gb.from_tensors(torch.zeros((0, 2), dtype=torch.long), torch.tensor([-1, 0]), p, p.clone())\n"
        "result = 'accepted'", "error"),
    api("from_tensors: NaN in p", "import torch\nfrom specoracle.gpu import batch as gb\n"
        "p = torch.full((1, 2, 3), 1/3, dtype=torch.float64)\np[0, 1, 0] = float('nan')\n"
        "b = gb.from_tensors(torch.tensor([[0, 1]]), torch.tensor([-1, 0]), p, p.clone().nan_to_num(1/3))\n"
        "result = 'accepted'", "error"),
    api("twin: uniforms equal to 1.5", "import torch\nfrom specoracle import Instance, gpu\nfrom specoracle.gpu import batch as gb\n"
        "m = examples.E1()\ninst = Instance.from_model(m, drafting.chain(2).sample(m, 0))\n"
        "b = gb.from_instances([inst], dtype=torch.float64)\ntw = gpu.twin('bv')\n"
        "U = torch.full((1, len(tw.keys(b))), 1.5, dtype=torch.float64)\n"
        "result = tw(b, uniforms=U).token.tolist()", "error"),
    # --- the CLI (issue 13.6, 13.7) ---
    cli("cli: check bv --json", "check | bv | --json", 0),
    cli("cli: check unknown verifier --json", "check | nope | --json", "error"),
    cli("cli: check lossy mutant", "check | bv_forward_scan | --json", 1),
    cli("cli: --samples 1", "check | bv | --method | chi2 | --samples | 1 | --json", 4),
    cli("cli: --seed -1 chi2", "check | bv | --method | chi2 | --seed | -1 | --json", "error"),
    cli("cli: --device cuda without CUDA", "check | bv | --device | cuda | --json", "error"),
    cli("cli: --tv 1e-7", "check | bv | --method | chi2 | --tv | 1e-7 | --json", "error"),
    cli("cli: --tv -1", "check | bv | --tv | -1 | --json", "error"),
    cli("cli: --alpha abc", "check | bv | --alpha | abc | --json", "error"),
    cli("cli: bench --vocab 0", "bench | --vocab | 0 | --json", "error"),
    cli("cli: bound on random:8 iid(3,3)", "bound | --model | random:8:0 | --scheme | iid(3,3) | --max-seconds | 30"
        " | --json", "error"),
    cli("cli: chi2 on V=50 chain(6)", "check | naive | --model | random:50:0 | --scheme | chain(6) | --method | chi2"
        " | --max-seconds | 30 | --json", "error"),
    cli("cli: exact on V=50 chain(6)", "check | naive | --model | random:50:0 | --scheme | chain(6) | --method | "
        "exact | --json", "error"),
    cli("cli: spectr_gbv_lossless chi2 (big design)", "check | spectr_gbv_lossless | --method | chi2 | "
        "--max-seconds | 30 | --json", "error"),
    cli("cli: report --out /dev/null/x", "report | --quick | --out | /dev/null/x | --json", "error"),
    cli("cli: model garbage", "check | bv | --model | random:x:y | --json", "error"),
    cli("cli: scheme garbage", "check | bv | --scheme | chain( | --json", "error"),
    cli("cli: bv on iid(2,2)", "check | bv | --scheme | iid(2,2) | --json", "error"),
    cli("cli: no subcommand", "--json", "error"),
    cli("cli: claims --json", "claims | --quick | --json", 0),
]


def _harness(body: str) -> str:
    inner = LIARS + body
    return API_HARNESS.format(mem=int(MEMORY_GB * 2**30), body="\n".join("    " + ln for ln in inner.splitlines()))


def classify(case: Case, timeout: float) -> tuple[str, str]:
    """(class, detail) of one case."""
    if case.kind == "api":
        cmd = [sys.executable, "-c", _harness(case.code)]
    else:
        argv = [a.strip() for a in case.code.split("|")]
        cmd = [sys.executable, "-c", f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, "
               f"({int(MEMORY_GB * 2**30)}, {int(MEMORY_GB * 2**30)})); from specoracle.cli import main; "
               f"sys.exit(main({argv!r}))"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "hang", f"no answer within {timeout:g} s"
    if case.kind == "api":
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@")]
        if not lines:
            return "traceback", (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        res = json.loads(lines[-1][2:])
        if res["outcome"] == "memory":
            return "hang", "memory limit hit"
        if res["outcome"] == "crash":
            if case.expect == f"raises {res['type']}":  # the user's own exception, passed through
                return "correct", f"{res['type']}: {res['message']} (the verifier's own exception)"
            return "traceback", f"{res['type']}: {res['message']}"
        if res["outcome"] == "error":
            return "clear error", f"{res['type']}: {res['message'][:160]}"
        got = res["value"]
        return ("correct" if got == case.expect else "silent"), f"answer {got!r} (expected {case.expect!r})"
    # CLI: every --json run prints exactly one JSON object on stdout
    if "--json" in case.code:
        try:
            obj = json.loads(proc.stdout)
            assert isinstance(obj, dict)
        except (ValueError, AssertionError):
            return "silent", f"exit {proc.returncode}, stdout is not one JSON object: {proc.stdout[:120]!r}"
    if proc.returncode == 2:
        msg = (proc.stderr.strip().splitlines() or [""])[-1]
        if "--json" in case.code:
            msg = obj.get("error", {}).get("message", "")
        if not msg:
            return "silent", "exit 2 with no message"
        return "clear error", f"exit 2: {msg[:160]}"
    if proc.returncode not in (0, 1, 4):
        return "traceback", f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or [''])[-1][:160]}"
    ok = proc.returncode == case.expect
    return ("correct" if ok else "silent"), f"exit {proc.returncode} (expected {case.expect!r})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--json", default=None, help="write the rows and counts to this file")
    ap.add_argument("-k", default=None, help="only cases whose label contains this text")
    args = ap.parse_args(argv)
    cases = [c for c in CASES if args.k is None or args.k in c.label]
    _write_liars()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: classify(c, args.timeout), cases))
    counts = {k: 0 for k in CLASSES}
    rows = []
    for case, (klass, detail) in zip(cases, results):
        counts[klass] += 1
        rows.append({"label": case.label, "kind": case.kind, "class": klass, "detail": detail})
        print(f"{klass:12s} {case.kind:3s} {case.label:45s} {detail}")
    n_api = sum(c.kind == "api" for c in cases)
    print(f"\n{len(cases)} inputs ({n_api} API, {len(cases) - n_api} CLI) in {time.perf_counter() - t0:.0f} s: "
          + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"counts": counts, "rows": rows}, fh, indent=1)
    return 1 if counts["silent"] or counts["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
