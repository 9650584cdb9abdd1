"""Fast paths of the torch twins at large vocabularies against the reference's arithmetic (issue 19):
the same result up to rounding, on rows where the fast path's shortcuts are exercised."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from specoracle.gpu.topdown import kseq_rho
from specoracle.reference.topdown import kseq_rho as reference_kseq_rho


@pytest.mark.parametrize("V", [2, 3, 7, 300, 5000])
def test_kseq_rho_matches_the_reference_bisection(V):
    """Binned first steps + candidate bisection == the reference's full-row bisection (float64),
    including q = 0 entries (ratio inf or NaN) and k = 1 rows. (Rows with p == q are left out on
    purpose: there g(1) = 0 and g is flat, so any rounding of beta moves the root.)"""
    g = torch.Generator().manual_seed(V)
    p = torch.rand(40, V, generator=g, dtype=torch.float64) ** 3
    q = torch.rand(40, V, generator=g, dtype=torch.float64) ** 3
    q[:4, 0] = 0
    p[2:6, 0] = 0
    p /= p.sum(1, keepdim=True)
    q /= q.sum(1, keepdim=True)
    k = torch.randint(1, 6, (40,), generator=g)
    got = kseq_rho(p, q, k).numpy()
    want = np.array([reference_kseq_rho(p[i].numpy(), q[i].numpy(), int(k[i])) for i in range(40)])
    assert np.allclose(got, want, rtol=1e-13, atol=0), np.abs(got - want).max()
    assert (got[k.numpy() == 1] == 1).all()
    assert (want > 1).sum() >= 10  # the bisection ran on most rows
