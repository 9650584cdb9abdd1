"""SGLang / FlashInfer-style tree verification kernels (linked-tree layout) as a block sampler.

The contract is the signature of sgl-kernel's ``tree_speculative_sampling_target_only`` (a CUDA
kernel; this module tests the layout with a pure-torch verifier written to the same signature)::

    fn(predicts, accept_index, accept_token_num, candidates, retrive_index, retrive_next_token,
       retrive_next_sibling, uniform_samples, uniform_samples_for_final_sampling, target_probs,
       threshold_single=1.0, threshold_acc=1.0, deterministic=True) -> None   (writes the outputs)

    candidates            LongTensor [B, N]     token of each node; node 0 is the root (the last
                                                verified token), N = draft tokens per request
    retrive_index         LongTensor [B, N]     flat index of each node into predicts (b N + i)
    retrive_next_token    LongTensor [B, N]     first child of each node, -1 if none
    retrive_next_sibling  LongTensor [B, N]     next sibling of each node, -1 if none
    uniform_samples       Tensor [B, N]         one coin per node, used to choose among its children
    uniform_samples_for_final_sampling  Tensor [B]   the coin of the final (residual / bonus) draw
    target_probs          Tensor [B, N, V]      target law after each node's prefix (probabilities)
    predicts              IntTensor [B N]       out: at each accepted node's retrive_index, the token
                                                emitted after it (the accepted child, or the final
                                                token at the last accepted node)
    accept_index          IntTensor [B, L+1]    out: retrive_index of the accepted nodes, root first;
                                                the caller fills it with -1; L+1 = its width
    accept_token_num      IntTensor [B]         out: number of accepted drafts

"Target only": no draft probabilities. At a node with target law ``p`` and children
``c_1, c_2, ...`` (in next-sibling order) one coin ``u`` is compared with the running sum
``p(c_1) + ... + p(c_j)``; the first child with ``u`` below it is accepted (the next node's coin is
then used); otherwise the final token is drawn from ``p`` without the rejected children. For ANY
fixed set of children this emits a sample of ``p``, so it is lossless whatever drafted the tree.
``threshold_single`` / ``threshold_acc`` below 1 relax acceptance (a documented lossy knob).

:class:`SGLangTreeVerifier` drafts trees with the harness's scheme (node order: specoracle's, root
first; children linked in draw order), pads a batch to the largest tree, draws the uniforms in the
kernel's dtype, calls the function and reads the emitted block back, checking the output contract
(accepted nodes form a path from the root, through real children; counts and ids in range).
:func:`reference_tree_sampling` is a correct torch implementation of the contract;
:func:`reused_coin_tree_sampling` keeps the root's coin at every depth (FlashInfer #424/#425's class
of reused uniforms), which is lossy.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from specoracle.errors import InvalidArgument, InvalidInstance
from specoracle.instance import Instance, Outcome
from specoracle.randomness import is_sampling

from .common import draw_trees, uniforms

__all__ = ["SGLangTreeVerifier", "LinkedTrees", "reference_tree_sampling", "reused_coin_tree_sampling"]


class LinkedTrees:
    """A batch of instances (same ``V``) in the linked layout (tensors as in the module docstring).

    Attributes: ``candidates``, ``retrive_index``, ``retrive_next_token``, ``retrive_next_sibling``
    (LongTensor [B, N]), ``target_probs`` (Tensor [B, N, V]), ``parents`` (np [B, N], -1 for the root
    and for padding), ``trees`` (the specoracle trees), ``L`` (largest depth).
    """

    def __init__(self, instances: list[Instance], *, root_token: int = 0, dtype=None, device="cpu") -> None:
        import torch

        B, N = len(instances), max(i.N for i in instances)
        V, L = instances[0].V, max(i.tree.depth for i in instances)
        cand = np.zeros((B, N), dtype=np.int64)
        nxt = np.full((B, N), -1, dtype=np.int64)
        sib = np.full((B, N), -1, dtype=np.int64)
        parents = np.full((B, N), -1, dtype=np.int64)
        probs = np.zeros((B, N, V))
        probs[:, :, 0] = 1.0  # padding rows: a valid law nobody reads
        for b, inst in enumerate(instances):
            t = inst.tree
            cand[b, : t.size] = (root_token, *t.tokens[1:])
            parents[b, : t.size] = t.parents
            probs[b, : t.size] = np.asarray(inst.p, dtype=np.float64)
            for u in range(t.size):
                kids = list(dict.fromkeys(t.draws[u]))  # distinct children in draw order
                if kids:
                    nxt[b, u] = kids[0]
                for a, c in zip(kids, kids[1:]):
                    sib[b, a] = c
        dev = device
        self.trees = [i.tree for i in instances]
        self.parents, self.L, self.V = parents, L, V
        self.candidates = torch.from_numpy(cand).to(dev)
        self.retrive_index = (torch.arange(B)[:, None] * N + torch.arange(N)[None, :]).to(dev)
        self.retrive_next_token = torch.from_numpy(nxt).to(dev)
        self.retrive_next_sibling = torch.from_numpy(sib).to(dev)
        self.target_probs = torch.from_numpy(probs).to(device=dev, dtype=torch.float32 if dtype is None else dtype)


class SGLangTreeVerifier:
    """A function with sgl-kernel's tree-sampling contract, as a block sampler and a verifier.

    Parameters
    ----------
    fn : the function (e.g. ``sgl_kernel.tree_speculative_sampling_target_only`` on CUDA).
    threshold_single, threshold_acc, deterministic : passed to ``fn``.
    batch_size : trees per call.
    dtype : dtype of ``target_probs`` and the uniforms (float32, as the kernel).
    device : torch device.
    name : label in verdicts.
    """

    enumerable = False
    stateful = False

    def __init__(self, fn: Callable, *, threshold_single: float = 1.0, threshold_acc: float = 1.0,
                 deterministic: bool = True, batch_size: int = 2048, dtype=None, device="cpu",
                 name: str | None = None) -> None:
        if not callable(fn):
            raise InvalidArgument(f"fn must be callable, got {type(fn).__name__}")
        import torch

        self.fn = fn
        self.kwargs = dict(threshold_single=float(threshold_single), threshold_acc=float(threshold_acc),
                           deterministic=bool(deterministic))
        self.batch_size = int(batch_size)
        self.dtype = torch.float32 if dtype is None else dtype
        self.device = device
        self.name = name or getattr(fn, "__name__", "tree_speculative_sampling")
        self.__name__ = self.name

    def __repr__(self) -> str:
        return f"SGLangTreeVerifier({self.name!r}, {self.kwargs})"

    def run(self, instances: list[Instance], gen) -> list[tuple[int, int]]:
        """Verify one batch; ``gen`` a seeded ``torch.Generator``. Returns ``(node, token)`` per tree."""
        import torch

        lt = LinkedTrees(instances, dtype=self.dtype, device=self.device)
        B, N = lt.candidates.shape
        u = uniforms((B, N), gen, self.dtype).to(self.device)
        u_final = uniforms((B,), gen, self.dtype).to(self.device)
        predicts = torch.full((B * N,), -1, dtype=torch.int32, device=self.device)
        accept_index = torch.full((B, lt.L + 1), -1, dtype=torch.int32, device=self.device)
        accept_num = torch.zeros(B, dtype=torch.int32, device=self.device)
        self.fn(predicts, accept_index, accept_num, lt.candidates, lt.retrive_index, lt.retrive_next_token,
                lt.retrive_next_sibling, u, u_final, lt.target_probs, **self.kwargs)
        return _read(lt, predicts.cpu().numpy(), accept_index.cpu().numpy(), accept_num.cpu().numpy(), self.name)

    def sample_blocks(self, model, scheme, n: int, *, seed: int = 0) -> np.ndarray:
        """``n`` emitted blocks [n, L+1] (-1 padded) on trees drafted with ``scheme``."""
        import torch

        gen = np.random.default_rng(seed)
        tgen = torch.Generator().manual_seed(int(gen.integers(2**62)))
        insts = []
        for tree, count in draw_trees(model, scheme, n, gen):
            inst = Instance.from_model(model, tree)
            insts.extend([inst] * count)
        insts = [insts[i] for i in gen.permutation(n)]
        blocks = np.full((n, scheme.depth + 1), -1, dtype=np.int64)
        for s in range(0, n, self.batch_size):
            for b, (node, tok) in enumerate(self.run(insts[s:s + self.batch_size], tgen)):
                block = insts[s + b].block(Outcome(node, tok))
                blocks[s + b, : len(block)] = block
        return blocks

    def __call__(self, instance: Instance, rng) -> Outcome:
        """One instance as a batch of one (``rng``: a :class:`~specoracle.randomness.Sampling`)."""
        import torch

        if not is_sampling(rng):
            raise InvalidArgument(f"{self.name} draws its own uniforms and cannot be enumerated or coupled; use method='chi2'")
        node, tok = self.run([instance], torch.Generator().manual_seed(int(rng.gen.integers(2**62))))[0]
        return Outcome(node, tok)


def _read(lt: LinkedTrees, predicts, accept_index, accept_num, name: str) -> list[tuple[int, int]]:
    """Emitted ``(last accepted node, token)`` per tree, after the output contract checks."""
    B, N = lt.candidates.shape
    out = []
    for b in range(B):
        tau = int(accept_num[b])
        if not 0 <= tau <= lt.L:
            raise InvalidInstance(f"{name}: tree {b} reports accept_token_num = {tau}, outside [0, L = {lt.L}]")
        acc = accept_index[b, : tau + 1] - b * N
        if acc[0] != 0 or (acc < 0).any() or (acc >= N).any():
            raise InvalidInstance(f"{name}: tree {b} accept_index {accept_index[b].tolist()} does not start at its root {b * N}")
        for a, c in zip(acc, acc[1:]):
            if lt.parents[b, c] != a:
                raise InvalidInstance(f"{name}: tree {b} accepts node {c} after node {a}, which is not its parent")
        tok = int(predicts[b * N + acc[-1]])
        if not 0 <= tok < lt.V:
            raise InvalidInstance(f"{name}: tree {b} emitted token id {tok} outside [0, V={lt.V})")
        out.append((int(acc[-1]), tok))
    return out


# --- pure-torch implementations of the contract ----------------------------------------------------
def _tree_sampling(predicts, accept_index, accept_token_num, candidates, retrive_index, retrive_next_token,
                   retrive_next_sibling, uniform_samples, uniform_samples_for_final_sampling, target_probs,
                   threshold_single, threshold_acc, *, reuse_coin: bool):
    import torch

    from specoracle.gpu.batch import categorical

    B, N, V = target_probs.shape
    S = accept_index.shape[1]
    ar = torch.arange(B, device=target_probs.device)
    p = target_probs.double()
    cur = torch.zeros(B, dtype=torch.long, device=p.device)  # last accepted node
    alive = torch.ones(B, dtype=torch.bool, device=p.device)  # still descending
    n_acc = torch.zeros(B, dtype=torch.long, device=p.device)
    rejected = torch.zeros((B, V), dtype=p.dtype, device=p.device)  # p of the children rejected at cur
    coin = uniform_samples[:, 0].double()
    accept_index[:, 0] = retrive_index[:, 0].to(accept_index.dtype)
    for _ in range(1, S):
        child = torch.where(alive, retrive_next_token[ar, cur], -1)
        run = torch.zeros(B, dtype=p.dtype, device=p.device)
        taken = torch.full((B,), -1, dtype=torch.long, device=p.device)
        rejected[alive] = 0  # a new node for the rows still descending; the others keep their record
        for _ in range(N):  # walk the sibling lists
            live = child >= 0
            if not bool(live.any()):
                break
            c = child.clamp(min=0)
            tok = candidates[ar, c]
            pc = p[ar, cur, tok]
            run = run + torch.where(live, pc, 0.0)
            ok = live & ((coin < run / threshold_acc) | (pc >= threshold_single))
            taken = torch.where(ok, c, taken)
            no = live & ~ok
            rejected[ar[no], tok[no]] = pc[no]
            child = torch.where(ok | ~live, -1, retrive_next_sibling[ar, c])
        got = taken >= 0
        tok = candidates[ar, taken.clamp(min=0)]
        predicts[retrive_index[ar, cur][got]] = tok[got].to(predicts.dtype)
        n_acc = n_acc + got.long()
        accept_index[ar[got], n_acc[got]] = retrive_index[ar, taken.clamp(min=0)][got].to(accept_index.dtype)
        cur = torch.where(got, taken, cur)
        if not reuse_coin:
            coin = torch.where(got, uniform_samples[ar, cur].double(), coin)
        alive = got
    accept_token_num.copy_(n_acc.to(accept_token_num.dtype))
    # final draw from p at the last accepted node without the children rejected there (rows still
    # alive accepted at the last depth and tried no child of cur)
    resid = torch.clamp(p[ar, cur] - rejected * (~alive)[:, None], min=0)
    mass = resid.sum(-1, keepdim=True)
    law = torch.where(mass > 0, resid / torch.where(mass > 0, mass, 1.0), p[ar, cur])
    final = categorical(uniform_samples_for_final_sampling.double(), law)
    predicts[retrive_index[ar, cur]] = final.to(predicts.dtype)


def reference_tree_sampling(predicts, accept_index, accept_token_num, candidates, retrive_index, retrive_next_token,
                            retrive_next_sibling, uniform_samples, uniform_samples_for_final_sampling, target_probs,
                            threshold_single=1.0, threshold_acc=1.0, deterministic=True):
    """sgl-kernel's target-only tree sampling contract in torch (a correct verifier; shapes in the
    module docstring). At the current node accept child ``c_j`` iff ``u < (p(c_1) + ... + p(c_j)) /
    threshold_acc`` or ``p(c_j) >= threshold_single`` (strict ``<``: the CUDA kernel's ``<=`` accepts a
    zero-probability child when ``u = 0``); the next node's coin decides below it. The final token is
    drawn by inverse CDF from ``p`` at the last accepted node with the rejected children removed (a
    node left because the depth ran out keeps its whole ``p``)."""
    _tree_sampling(predicts, accept_index, accept_token_num, candidates, retrive_index, retrive_next_token,
                   retrive_next_sibling, uniform_samples, uniform_samples_for_final_sampling, target_probs,
                   threshold_single, threshold_acc, reuse_coin=False)


def reused_coin_tree_sampling(predicts, accept_index, accept_token_num, candidates, retrive_index, retrive_next_token,
                              retrive_next_sibling, uniform_samples, uniform_samples_for_final_sampling, target_probs,
                              threshold_single=1.0, threshold_acc=1.0, deterministic=True):
    """:func:`reference_tree_sampling` that keeps the root's coin at every depth: after an acceptance
    the coin is uniform on the accepted child's interval, not on ``[0, 1)``, so deeper acceptances
    are biased (a reused-uniform bug)."""
    _tree_sampling(predicts, accept_index, accept_token_num, candidates, retrive_index, retrive_next_token,
                   retrive_next_sibling, uniform_samples, uniform_samples_for_final_sampling, target_probs,
                   threshold_single, threshold_acc, reuse_coin=True)
