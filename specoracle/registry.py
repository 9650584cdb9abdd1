"""The one registry of verifiers: name -> reference, torch twin, schemes, claims, random layout.

Entries are declared next to their code: every module of :mod:`specoracle.reference` exposes a
list ``ENTRIES`` of :class:`Entry`; they are collected on first use. Tests, reports and the CLI
loop over :func:`names`. The torch twin is looked up lazily in ``specoracle.gpu`` so that importing
the registry never imports torch.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from .errors import InvalidArgument, SpecoracleError, unknown_name
from .tree import Tree

__all__ = ["Entry", "Resolved", "names", "get", "entries", "register", "resolve"]


@dataclass(frozen=True)
class Entry:
    """One registered verifier.

    Attributes
    ----------
    name : registry name (also the test id).
    reference : ``verify(instance, rng) -> Outcome``; stateful ones
        ``verify(instance, rng, state) -> (Outcome, state)`` with ``state=None`` first.
    keys : ``keys(tree) -> tuple`` of random keys, the column layout of
        :class:`~specoracle.randomness.Coupled` shared with the torch twin.
    schemes : drafting-scheme kinds it accepts (see ``specoracle.drafting.KINDS``).
    family : module/family name.
    lossless : claimed iteration-wise lossless (stateful: lossless on whole sequences).
    stateful : carries state across iterations (judge with ``exact.sequence_law``).
    rational : runs in exact Fraction mode (no irrational steps such as bisection).
    optimal_within : the class in which it is claimed optimal, or None.
    bound : name of the LP in ``specoracle.lp`` that states that optimality, or None.
    description : one line; reconstructions say so.
    draw_order_invariant : the law of the emitted block is the same for every order of the i.i.d.
        paths of a tree, so the exact engine may verify each multiset of paths once, weighted by
        its number of orders (``tests/test_exact_engines.py`` checks every declaration).
    top_down : the verifier walks down from the root; its decision at node ``u`` reads only
        ``p_u``, ``q_u`` and the tokens drawn at ``u``, and after entering a child only that child's
        subtree, so the exact engine may compose memoised one-level laws
        (:mod:`specoracle.enumeration`; checked against the reference engine likewise).
    terminal_draws : whenever a categorical draw is the last random decision of a call, the call
        returns ``Outcome(node, drawn)`` with ``node`` independent of the drawn value, so the exact
        engine rebuilds the outcome of every value instead of replaying the call per value
        (deferred categorical draws; checked against the reference engine likewise).
    """

    name: str
    reference: Callable
    keys: Callable[[Tree], tuple[Hashable, ...]]
    schemes: frozenset[str]
    family: str
    lossless: bool = True
    stateful: bool = False
    rational: bool = True
    optimal_within: str | None = None
    bound: str | None = None
    description: str = ""
    draw_order_invariant: bool = False
    top_down: bool = False
    terminal_draws: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    def accepts(self, scheme) -> bool:
        """True when this verifier runs on trees of ``scheme`` (a Scheme or a kind string)."""
        kind = scheme if isinstance(scheme, str) else scheme.kind
        return kind in self.schemes

    def require(self, scheme) -> None:
        """Raise :class:`InvalidArgument` unless this verifier accepts ``scheme``."""
        if not self.accepts(scheme):
            label = scheme if isinstance(scheme, str) else scheme.name
            raise InvalidArgument(
                f"verifier {self.name!r} does not accept scheme {label} (accepts: {sorted(self.schemes)})"
            )

    @property
    def torch(self) -> Callable:
        """The batched torch twin (imports torch on first use)."""
        gpu = importlib.import_module("specoracle.gpu")
        twin = getattr(gpu, "twin", None)
        if twin is None:
            raise SpecoracleError("specoracle.gpu provides no twin() lookup")
        return twin(self.name)


_ENTRIES: dict[str, Entry] = {}
_LOADED = False


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    ref = importlib.import_module("specoracle.reference")
    for mod in sorted(pkgutil.iter_modules(ref.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"specoracle.reference.{mod.name}")
        for entry in getattr(module, "ENTRIES", ()):
            register(entry)


def register(entry: Entry, *, replace: bool = False) -> Entry:
    """Add an entry (user verifiers too); a duplicate name raises unless ``replace``."""
    if entry.name in _ENTRIES and not replace and _ENTRIES[entry.name] is not entry:
        raise SpecoracleError(f"verifier {entry.name!r} is already registered")
    _ENTRIES[entry.name] = entry
    return entry


def names() -> list[str]:
    """Registered verifier names, in registration order."""
    _load()
    return list(_ENTRIES)


def entries() -> list[Entry]:
    """Registered entries, in registration order."""
    _load()
    return list(_ENTRIES.values())


def get(name: str) -> Entry:
    """The entry for ``name``; an unknown name raises with the valid names and the closest."""
    _load()
    try:
        return _ENTRIES[name]
    except KeyError:
        raise unknown_name("verifier", name, _ENTRIES) from None


@dataclass(frozen=True)
class Resolved:
    """A verifier ready to run: its ``name``, reference-style callable ``fn``, whether it is
    ``stateful`` and its registry ``entry`` (None for a plain callable)."""

    name: str
    fn: Callable
    stateful: bool
    entry: Entry | None


def resolve(verifier, scheme=None) -> Resolved:
    """Resolve a registry name, :class:`Entry` or plain ``verify(instance, rng)`` callable.

    With ``scheme`` (a Scheme or a kind string), a registered verifier that does not accept it
    raises :class:`InvalidArgument` naming the schemes it accepts. A plain callable is marked
    stateful by ``fn.stateful = True``.
    """
    if isinstance(verifier, str):
        verifier = get(verifier)
    if isinstance(verifier, Entry):
        if scheme is not None:
            verifier.require(scheme)
        return Resolved(verifier.name, verifier.reference, verifier.stateful, verifier)
    if callable(verifier):
        name = getattr(verifier, "__name__", None) or repr(verifier)
        return Resolved(name, verifier, bool(getattr(verifier, "stateful", False)), None)
    raise InvalidArgument(f"verifier must be a registry name, an Entry or a callable, got {type(verifier).__name__}")
