"""Exact NumPy reference verifiers, one module per family, written against the randomness protocol.

Every module exposes ``ENTRIES`` (see :mod:`specoracle.registry`). Importing this package never
imports torch or cvxpy.
"""
__all__: list[str] = []
