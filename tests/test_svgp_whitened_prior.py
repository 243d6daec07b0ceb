"""The O(M²) whitened prior of the SVGP against torch's generic MultivariateNormal formulas."""

from __future__ import annotations

import pyro.distributions as dist
import torch

from models.sparse_gp import WhitenedPrior


def _generic(shape):
    m = shape[-1]
    return dist.MultivariateNormal(torch.zeros(shape, dtype=torch.float64),
                                   scale_tril=torch.eye(m, dtype=torch.float64).expand(*shape, m))


def test_kl_log_prob_entropy_match_generic_mvn():
    g = torch.Generator().manual_seed(0)
    shape = (3, 7)
    R = torch.randn(3, 7, 7, generator=g, dtype=torch.float64).tril()
    R.diagonal(dim1=-2, dim2=-1).copy_(torch.rand(3, 7, generator=g, dtype=torch.float64) + 0.3)
    q = dist.MultivariateNormal(torch.randn(shape, generator=g, dtype=torch.float64), scale_tril=R)
    p = WhitenedPrior.standard(shape, torch.float64, "cpu")
    ref = torch.distributions.kl._kl_multivariatenormal_multivariatenormal(q, _generic(shape))
    assert torch.allclose(torch.distributions.kl_divergence(q, p), ref)
    # through Pyro's Independent wrappers, as TraceMeanField_ELBO calls it
    kl = torch.distributions.kl_divergence(q.to_event(1), p.to_event(1))
    assert torch.allclose(kl, ref.sum())
    v = torch.randn(5, *shape, generator=g, dtype=torch.float64)
    assert torch.allclose(p.log_prob(v), _generic(shape).log_prob(v))
    assert torch.allclose(p.entropy(), _generic(shape).entropy())
    assert p.expand((2, 3)).log_prob(torch.zeros(2, 3, 7, dtype=torch.float64)).shape == (2, 3)
    assert p.rsample((4,)).shape == (4, *shape)
