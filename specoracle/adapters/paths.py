"""The candidate paths x depth layout of EAGLE / Medusa-style tree verifiers, as an adapter.

Such code verifies one draft tree (batch 1) whose siblings were drawn one after another WITHOUT
replacement from the draft law at their parent. :func:`paths_layout` lays a specoracle instance
out the way these projects do (node order and path order as EAGLE's ``generate_tree_buffers``)::

    tree_choices      tuple of rank tuples   every draft node as the draw ranks along its path,
                                             sorted by (depth, ranks): (0, 1) is the 2nd child
                                             drawn at the 1st child of the root
    nodes             [N]                    specoracle node of each layout node; layout node 0 is
                                             the root, node k + 1 is tree_choices[k]
    parents           LongTensor [N]         layout parent of each node (root: -1)
    tree_tokens       LongTensor [N]         token of each node (root: ``root_token``)
    retrieve_indices  LongTensor [P, L+1]    one row per root-to-leaf path: the layout nodes on
                                             it (column 0 = root), -1 padded; rows sorted as EAGLE
    candidates        LongTensor [P, L+1]    tokens on each path, -1 padded
    logits            Tensor [P, L+1, V]     RAW target logits after each cell's prefix (padding: 0)
    node_logits       Tensor [N, V]          the same per node
    draft_probs       Tensor [N, V]          draft law q at each node (the law its children were
                                             drawn from), already processed
    candidate_probs   Tensor [P, L+1]        conditional draft probability of each cell's token
                                             given its earlier siblings: q(x) / (1 - sum of q over
                                             the siblings drawn before it); 1 at column 0 and padding

The raw-logits-plus-processor convention. These verifiers receive raw target logits and apply a
logits processor (temperature, top-k, top-p) themselves, in some places but maybe not all (EAGLE
1.2.1 forgets it when it draws the token after an accepted leaf). specoracle's model is the law
the user asked for, the PROCESSED law ``p``; the harness derives raw logits with
``processor(raw) = log p`` up to a constant: for temperature ``T``, ``raw = T log p`` (``-inf`` where
``p = 0``) and ``processor(x) = x / T``. :func:`paths_layout` checks that the processor the verifier
will apply really maps the derived raw logits back to ``p`` (``softmax``, every node) and refuses
otherwise, so a lossy verdict cannot come from a convention mismatch in the harness. Draft laws are
passed processed (these projects sample drafts from the processed draft law).

:class:`PathsVerifier` turns ``fn(layout) -> (path, accept_length, token)`` into a reference-style
``verify(instance, rng)`` (``enumerable = False``: such code draws from torch's and Python's global
RNGs, which the adapter seeds per call and restores). :func:`reference_paths_verify` is a correct
verifier in this layout (recursive rejection sampling without replacement, top-down; Jeon et al.
2024), :func:`unconditional_q_paths_verify` the same with a classic bug: it uses the unconditional
``q(x)`` of a sibling (and ``q`` with earlier siblings left in for the residual).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from specoracle.errors import InvalidArgument, InvalidInstance
from specoracle.instance import Instance, Outcome
from specoracle.randomness import is_sampling

from .common import global_rng

__all__ = [
    "PathsLayout",
    "PathsVerifier",
    "paths_layout",
    "raw_logits",
    "temperature_processor",
    "reference_paths_verify",
    "unconditional_q_paths_verify",
]

CONVENTION_TOL = 1e-5  # max |softmax(processor(raw)) - p| accepted (float32 logits)


def raw_logits(p: np.ndarray, temperature: float) -> np.ndarray:
    """``T log p`` (``-inf`` where ``p = 0``): raw logits whose temperature-``T`` law is ``p``."""
    with np.errstate(divide="ignore"):
        return temperature * np.log(np.asarray(p, dtype=np.float64))


def temperature_processor(temperature: float) -> Callable:
    """``x -> x / T``: the temperature step of a logits processor."""
    if not temperature > 0:
        raise InvalidArgument(f"temperature must be > 0 (greedy verification has no law to check), got {temperature}")
    return lambda x: x / temperature


@dataclass(frozen=True)
class PathsLayout:
    """One tree in the candidate paths x depth layout (see the module docstring for the fields)."""

    tree_choices: tuple
    nodes: tuple
    parents: object
    tree_tokens: object
    retrieve_indices: object
    candidates: object
    logits: object
    node_logits: object
    draft_probs: object
    candidate_probs: object
    processor: Callable
    temperature: float

    @property
    def V(self) -> int:
        """Vocabulary size."""
        return int(self.node_logits.shape[-1])

    def children(self, node: int) -> list[int]:
        """Layout children of ``node`` in draw order."""
        return [int(c) for c in (self.parents == node).nonzero()[:, 0]]


def _choices(tree) -> list[tuple[int, ...]]:
    """Draw-rank path of every node (root: ``()``); siblings must be distinct draws."""
    ranks: list[tuple[int, ...]] = [()] * tree.size
    for u in range(tree.size):
        if len(set(tree.draws[u])) != len(tree.draws[u]):
            raise InvalidInstance(
                f"node {u} drew the same child twice (i.i.d. sampling); the paths layout describes trees whose "
                "siblings are drawn without replacement: use a wor(...) or chain(...) scheme"
            )
        for r, c in enumerate(tree.draws[u]):
            ranks[c] = ranks[u] + (r,)
    return ranks


def paths_layout(instance: Instance, *, temperature: float = 1.0, processor: Callable | None = None,
                 root_token: int = 0, dtype=None) -> PathsLayout:
    """Lay ``instance`` out in the paths x depth layout, raw logits derived for ``temperature``.

    ``processor`` (default ``x / T``) is what the verifier under test applies to raw logits; it is
    checked to map them back to ``instance.p`` (``InvalidInstance`` otherwise).
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    processor = temperature_processor(temperature) if processor is None else processor
    tree = instance.tree
    ranks = _choices(tree)
    order = sorted(range(1, tree.size), key=lambda c: (len(ranks[c]), ranks[c]))
    nodes = (0, *order)
    pos = {n: k for k, n in enumerate(nodes)}
    N = tree.size
    p = np.asarray(instance.p, dtype=np.float64)[list(nodes)]
    q = np.asarray(instance.q, dtype=np.float64)[list(nodes)]
    node_logits = torch.from_numpy(raw_logits(p, temperature)).to(dtype)
    back = torch.softmax(processor(node_logits.clone()).double(), dim=-1).numpy()
    err = np.abs(back - p).max(axis=1)
    if (err > CONVENTION_TOL).any():
        k = int(np.argmax(err))
        raise InvalidInstance(
            f"the processor does not map the derived raw logits T log p (T = {temperature}) back to the model's law at "
            f"node {nodes[k]}: max |softmax(processor(raw)) - p| = {err[k]:.3g}; pass the temperature the verifier uses"
        )
    parents = torch.tensor([-1] + [pos[tree.parents[c]] for c in order])
    tokens = torch.tensor([int(root_token)] + [tree.tokens[c] for c in order])
    # conditional probability of each draw given the siblings drawn before it
    cond = np.ones(N)
    for u in range(N):
        drawn = 0.0
        for c in tree.draws[u]:
            qx = float(instance.q[u][tree.tokens[c]])
            cond[pos[c]] = qx / (1.0 - drawn) if drawn < 1.0 else 1.0
            drawn += qx
    paths = [[pos[n] for n in tree.path(leaf)] for leaf in tree.leaves]
    width = max(len(r) for r in paths)
    rows = sorted((r + [-1] * (width - len(r)) for r in paths), key=lambda r: [x if x >= 0 else N + 5 for x in r])
    retrieve = torch.tensor(rows)
    valid = retrieve >= 0
    idx = retrieve.clamp(min=0)
    logits = torch.where(valid[..., None], node_logits[idx], torch.zeros((), dtype=dtype))
    cond_t = torch.from_numpy(cond).to(dtype)
    return PathsLayout(
        tree_choices=tuple(ranks[c] for c in order), nodes=nodes, parents=parents, tree_tokens=tokens,
        retrieve_indices=retrieve, candidates=torch.where(valid, tokens[idx], -1), logits=logits,
        node_logits=node_logits, draft_probs=torch.from_numpy(q).to(dtype),
        candidate_probs=torch.where(valid, cond_t[idx], torch.ones((), dtype=dtype)),
        processor=processor, temperature=float(temperature),
    )


class PathsVerifier:
    """``verify(instance, rng) -> Outcome`` around ``fn(layout) -> (path, accept_length, token)``.

    ``path`` indexes ``layout.retrieve_indices``, ``accept_length`` is the number of drafts
    accepted along it, ``token`` the token emitted after them.

    Parameters
    ----------
    fn : the verifier in this layout.
    temperature : the sampling temperature: the model's law is the processed law; raw logits are
        ``T log p``.
    processor : what ``fn`` applies to raw logits (default ``x / T``); checked per instance.
    root_token : token id placed at the root (the last emitted token; these verifiers ignore it).
    python_random : also seed Python's ``random`` per call (EAGLE draws its coins from it).
    dtype : torch dtype of logits and probabilities (float32, as these projects run).
    name : label in verdicts.
    """

    enumerable = False
    stateful = False

    def __init__(self, fn: Callable, *, temperature: float = 1.0, processor: Callable | None = None, root_token: int = 0,
                 python_random: bool = False, dtype=None, name: str | None = None) -> None:
        if not callable(fn):
            raise InvalidArgument(f"fn must be callable, got {type(fn).__name__}")
        temperature_processor(temperature)  # validates T
        self.fn = fn
        self.temperature = float(temperature)
        self.processor = processor
        self.root_token = int(root_token)
        self.python_random = bool(python_random)
        self.dtype = dtype
        self.__name__ = name or getattr(fn, "__name__", "paths_verifier")
        self._last: tuple | None = None  # (instance, layout): check_lossless calls one instance many times

    def __repr__(self) -> str:
        return f"PathsVerifier({self.__name__!r}, temperature={self.temperature})"

    def layout(self, instance: Instance) -> PathsLayout:
        """The layout of ``instance`` (cached for consecutive calls on the same instance)."""
        if self._last is None or self._last[0] is not instance:
            lay = paths_layout(instance, temperature=self.temperature, processor=self.processor,
                               root_token=self.root_token, dtype=self.dtype)
            self._last = (instance, lay)
        return self._last[1]

    def __call__(self, instance: Instance, rng) -> Outcome:
        if not is_sampling(rng):
            raise InvalidArgument(
                f"{self.__name__} draws from global RNGs and cannot be enumerated or coupled; "
                "use check_lossless(..., method='chi2') (a Sampling source seeds them)"
            )
        lay = self.layout(instance)
        with global_rng(int(rng.gen.integers(2**62)), python_random=self.python_random):
            path, acc, token = self.fn(lay)
        path, acc, token = int(path), int(acc), int(token)
        P, W = lay.retrieve_indices.shape
        if not 0 <= path < P or not 0 <= acc < W or int(lay.retrieve_indices[path, acc]) < 0:
            raise InvalidInstance(
                f"{self.__name__} returned path {path}, accept_length {acc}: no such cell in retrieve_indices of shape {(P, W)}"
            )
        if not 0 <= token < lay.V:
            raise InvalidInstance(f"{self.__name__} emitted token id {token} outside [0, V={lay.V})")
        return Outcome(lay.nodes[int(lay.retrieve_indices[path, acc])], token)


# --- verifiers written in this layout --------------------------------------------------------------
def _rrs_paths(lay: PathsLayout, conditional: bool):
    import torch

    node = 0
    while True:
        p = torch.softmax(lay.processor(lay.node_logits[node].double()), dim=-1)
        kids = lay.children(node)
        q = lay.draft_probs[node].double().clone()
        for c in kids:
            x = int(lay.tree_tokens[c])
            qx = float(lay.candidate_probs[lay.retrieve_indices == c][0]) if conditional else float(q[x])
            if float(torch.rand(())) * qx < float(p[x]):
                node = c
                break
            if conditional:  # residual against the law x was drawn from, then remove x from it
                resid = torch.clamp(p - q / q.sum(), min=0)
                q[x] = 0
            else:
                resid = torch.clamp(p - lay.draft_probs[node].double(), min=0)
            p = resid / resid.sum() if float(resid.sum()) > 0 else p
        else:
            token = int(torch.multinomial(p, 1))
            break
    depth = 0
    u = node
    while int(lay.parents[u]) >= 0:
        u, depth = int(lay.parents[u]), depth + 1
    path = int((lay.retrieve_indices[:, depth] == node).nonzero()[0, 0])
    return path, depth, token


def reference_paths_verify(lay: PathsLayout):
    """Recursive rejection sampling without replacement in the paths layout (a correct verifier).

    At node ``u`` with target law ``p = softmax(processor(logits_u))`` and children ``x_1..x_k`` in
    draw order: accept ``x_j`` iff ``U c_j < p_j(x_j)`` with ``c_j`` its conditional draft
    probability; else ``p_{j+1} = norm((p_j - q_j)_+)`` where ``q_j`` is ``q_u`` without
    ``x_1..x_{j-1}``, renormalised. An accepted child is entered; otherwise (or at a leaf) the token
    is drawn from the current ``p`` (``torch.multinomial``). Randomness: torch's global RNG.
    """
    return _rrs_paths(lay, True)


def unconditional_q_paths_verify(lay: PathsLayout):
    """:func:`reference_paths_verify` with the unconditional ``q_u(x_j)`` in the ratio and the full
    ``q_u`` in every residual (earlier siblings not removed): lossy once a node has two children."""
    return _rrs_paths(lay, False)
