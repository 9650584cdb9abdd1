"""Report configuration, model names and deterministic seeds.

A :class:`ReportConfig` fixes everything a report computes: models, schemes, sample sizes, seed
and device. Two presets exist: :func:`quick` (CI, under two minutes on 2 cores) and :func:`full`
(the default of ``specoracle report``, under fifteen minutes on 2 cores). The configuration is
written into ``results.json`` and the report header, so a report can be regenerated exactly.

Models are named as on the command line and in the API (:func:`specoracle.examples.parse_model`,
re-exported here), among them:

- an example name of :mod:`specoracle.examples` (``E1``, ``E2``, ... ``HSDTOY``);
- ``random:V:seed`` (optionally ``random:V:seed:divergence``), a Dirichlet pair
  (:func:`specoracle.models.random_model`);
- ``ngram:V`` (optionally ``ngram:V:target_order:draft_order``), a character n-gram pair fitted
  to the Python standard library's sources (:func:`specoracle.models.ngram_pair`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from specoracle.drafting import Scheme, parse_scheme
from specoracle.examples import parse_model
from specoracle.stats import derive_seed

__all__ = ["ReportConfig", "quick", "full", "parse_model", "derive_seed", "parse_schemes", "PRESETS"]


@dataclass(frozen=True)
class ReportConfig:
    """Everything a report computes (see module docstring).

    Attributes
    ----------
    preset : "quick" or "full" (label only).
    seed : base seed; every sampled quantity derives its own seed from it and a label.
    models : model names for the exact-losslessness grid (section 1).
    schemes : scheme strings for the exact grid (each verifier runs on those it accepts).
    chi2_models, chi2_schemes : model/scheme grid for the torch chi-squared table (section 2).
    chi2_samples : samples per chi-squared test (section 2); ``None`` asks
        ``specoracle.stats.sample_size`` for the size detecting ``chi2_tv`` at ``power``.
    chi2_tv, alpha, power : design of the chi-squared tests (TV error to detect, family-wise
        false-fail rate shared with Holm's correction, power).
    bound_models, bound_schemes : grid for efficiency against LP bounds (section 3; iid and
        delayed schemes).
    parity_models, parity_schemes, parity_instances : torch-vs-reference grid (section 4).
    mutant_chi2_samples : samples for the statistical column of the mutant table (section 5;
        0 disables it).
    delayed_vocab, delayed_k, delayed_depth : the n-gram model ``ngram:V`` and the delayed
        schemes ``delayed(k, d, L - d)``, ``d = 0..L`` of section 6.
    device : torch device for sections 2 and 4 ("cpu", "cuda", ...).
    stateful_models, stateful_schemes : the (smaller) grid for stateful verifiers in sections 1 and
        2, judged on whole sequences with :func:`specoracle.exact.sequence_law` (its cost grows like
        the number of iteration histories, so V=2 models and small trees).
    stateful_length : sequence length for stateful verifiers in section 1 (``None``: ``2L + 1``).
    """

    preset: str = "full"
    seed: int = 0
    models: tuple[str, ...] = ("E1", "E2", "E3", "E5")
    schemes: tuple[str, ...] = ("chain(2)", "iid(2,2)", "delayed(2,1,1)", "wor(2,1)")
    chi2_models: tuple[str, ...] = ("E5",)
    chi2_schemes: tuple[str, ...] = ("chain(2)", "iid(2,2)", "delayed(2,1,1)", "wor(2,1)")
    chi2_samples: int | None = None
    chi2_tv: float = 0.03
    alpha: float = 0.01
    power: float = 0.99
    bound_models: tuple[str, ...] = ("E2", "E3")
    bound_schemes: tuple[str, ...] = ("iid(2,2)", "delayed(2,1,1)", "iid(3,1)")
    parity_models: tuple[str, ...] = ("E5",)
    parity_schemes: tuple[str, ...] = ("chain(2)", "iid(2,2)", "delayed(2,1,1)", "wor(2,1)")
    parity_instances: int = 10000
    mutant_chi2_samples: int = 20000
    delayed_vocab: int = 4
    delayed_k: int = 2
    delayed_depth: int = 3
    device: str = "cpu"
    stateful_models: tuple[str, ...] = ("E1", "E3")
    stateful_schemes: tuple[str, ...] = ("chain(2)", "iid(2,1)", "iid(2,2)")
    stateful_length: int | None = None
    progress: bool = field(default=True, compare=False)

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready) of the configuration."""
        d = asdict(self)
        d.pop("progress")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def with_(self, **changes) -> "ReportConfig":
        """A copy with some fields changed."""
        return replace(self, **changes)


def quick(seed: int = 0, device: str = "cpu", progress: bool = True) -> ReportConfig:
    """The ``--quick`` preset: small models (E1/E2/E3), few schemes, small samples."""
    return ReportConfig(
        preset="quick",
        seed=seed,
        models=("E1", "E2", "E3"),
        schemes=("chain(2)", "iid(2,2)", "delayed(2,1,1)", "wor(2,1)"),
        chi2_models=("E2",),
        chi2_schemes=("chain(2)", "iid(2,2)", "delayed(2,1,1)", "wor(2,1)"),
        chi2_samples=3000,
        bound_models=("E2",),
        bound_schemes=("iid(2,2)", "delayed(2,1,1)"),
        parity_models=("E2",),
        parity_schemes=("chain(2)", "iid(2,2)", "delayed(2,1,1)", "wor(2,1)"),
        parity_instances=500,
        mutant_chi2_samples=2000,
        delayed_vocab=3,
        delayed_k=2,
        delayed_depth=2,
        stateful_models=("E1", "E3"),
        stateful_schemes=("chain(2)", "iid(2,2)"),
        device=device,
        progress=progress,
    )


def full(seed: int = 0, device: str = "cpu", progress: bool = True) -> ReportConfig:
    """The default preset of ``specoracle report``."""
    return ReportConfig(preset="full", seed=seed, device=device, progress=progress)


PRESETS = {"quick": quick, "full": full}


def parse_schemes(texts) -> list[Scheme]:
    """Schemes from their printed names (``iid(2,2)`` ...)."""
    return [parse_scheme(t) for t in texts]
