"""Batched torch verifiers and drafting (CPU and CUDA).

:func:`twin` maps a registry name to its batched torch implementation (a :class:`~.batch.Twin`:
``twin(batch, uniforms=U)`` or ``twin(batch, generator=g)`` -> :class:`~.batch.TwinResult`).
Twins are collected from the modules listed in ``_TWIN_MODULES``, each exposing ``TWINS`` (a
missing module is an ImportError).

Entry points used by tests and reports: :func:`parity` (shared randomness against the reference),
:func:`sample_blocks` (independent randomness, torch drafting + twin), :func:`chi2_twin`
(chi-squared test of a twin in law, against the reference or the target), the whole-sequence
forms for stateful verifiers (:func:`parity_sequences`, :func:`sample_sequences`), :func:`bench`
(CPU/GPU timing against the memory roofline).
"""
from __future__ import annotations

import importlib

from specoracle.errors import unknown_name

_CHECKS = ("parity", "sample_blocks", "chi2_twin", "ParityResult", "resolve_device", "parity_sequences",
           "sample_sequences")
__all__ = ["twin", "TWINS", "bench", *_CHECKS]

_TWIN_MODULES = ("chain", "traversal", "topdown", "gbv", "univer", "spectr_gbv", "rsbv")

TWINS: dict = {}


def _collect() -> None:
    for mod in _TWIN_MODULES:
        TWINS.update(importlib.import_module(f"{__name__}.{mod}").TWINS)


_collect()


def twin(name: str):
    """The torch twin of registry verifier ``name``."""
    if name not in TWINS:
        raise unknown_name("torch twin", name, TWINS)
    return TWINS[name]


def __getattr__(name: str):
    if name in _CHECKS:
        return getattr(importlib.import_module(f"{__name__}.checks"), name)
    if name == "bench":
        return importlib.import_module(f"{__name__}.timing").bench
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
