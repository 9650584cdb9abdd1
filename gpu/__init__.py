"""Batched torch verifiers and drafting (CPU and CUDA).

:func:`twin` maps a registry name to its batched torch implementation.
"""
from __future__ import annotations

from specoracle.errors import unknown_name

__all__ = ["twin", "TWINS"]

TWINS: dict = {}


def twin(name: str):
    """The torch twin of registry verifier ``name``."""
    if name not in TWINS:
        raise unknown_name("torch twin", name, TWINS)
    return TWINS[name]
