r"""Training an SVGP with the marginal :math:`q(f_n)`: the effect handler
:class:`MarginalizeInducing`, every q(u) guide's :meth:`~guides.base.ZooGuide.elbo_context`,
answers the model's :func:`models.sparse_gp.svgp_conditional` with the moments of

.. math:: q(f_n) = \int p(f_n \mid u)\, q(u)\, du = \mathcal N\big(m(x_n) + a_n^\top \mu_u,\;
          k_{nn} - a_n^\top a_n + a_n^\top S a_n\big)

(:func:`models.sparse_gp.marginal_moments`) instead of :math:`p(f_n \mid u)` at a draw of u, and
:class:`DrawnMultivariateNormal` scores the guide's own draw of u exactly. Both are importable
from :mod:`guides.svgp` too.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger
from torch.distributions.utils import _standard_normal

from models.sparse_gp import marginal_moments


class MarginalizeInducing(Messenger):
    """Replace :func:`models.sparse_gp.svgp_conditional` by the moments of the marginal q(f).

    It records the distribution each ``u`` sample came from (the guide runs first under SVI and
    the model replays the very same tensor), then answers ``svgp_conditional(cond, u, name="u")``
    from that distribution. A ``u`` it has not seen (e.g. drawn from the prior) goes through to
    the conditional given ``u``.
    """

    def __init__(self):
        super().__init__()
        self._q: dict[str, tuple[torch.Tensor, object]] = {}

    def _pyro_post_sample(self, msg):
        if msg["is_observed"]:
            return
        seen = self._q.get(msg["name"])
        if seen is not None and seen[0] is msg["value"]:
            return  # the model replaying the guide's draw: keep the guide's distribution
        fn = msg["fn"]
        while isinstance(fn, torch.distributions.Independent):
            fn = fn.base_dist
        self._q[msg["name"]] = (msg["value"], fn)

    def _pyro_svgp_conditional(self, msg):
        cond, u = msg["args"]
        seen = self._q.get(msg["name"])
        if seen is None or seen[0] is not u:
            return
        fn = seen[1]
        if isinstance(fn, dist.MultivariateNormal):
            # the unexpanded factor (L, M, M): particles share it, no P-fold copies
            msg["value"] = marginal_moments(cond, fn.loc, fn._unbroadcasted_scale_tril)
        elif isinstance(fn, dist.Delta):
            msg["value"] = marginal_moments(cond, fn.v, None)
        else:
            return
        msg["done"] = True


class DrawnMultivariateNormal(dist.MultivariateNormal):
    r"""A ``MultivariateNormal`` that scores its own reparameterised draw exactly.

    A draw :math:`u = \mu + R\varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I)`, has

    .. math:: \log q(u) = -\tfrac12\|\varepsilon\|^2 - \textstyle\sum_i \log R_{ii}
              - \tfrac M2 \log 2\pi,

    which this class returns for the very tensor :meth:`rsample` made, from the :math:`\varepsilon`
    it drew. ``MultivariateNormal.log_prob`` recovers :math:`\varepsilon = R^{-1}(u - \mu)` by a
    triangular solve instead, whose error grows with the condition number of R: after a Titsias
    start (diagonal of R near :math:`\sigma/\sqrt{N}`) one Adam step of size lr on every
    off-diagonal entry makes :math:`\mathrm{cond}(R)` grow like :math:`(\mathrm{lr}/\min_i
    R_{ii})^M`, and in float32 (float64 too, for M = 500) the solve returned numbers of order
    1e13, a Monte Carlo KL of -1e13 and a non-finite loss at step 3. Value and gradient are the
    same in exact arithmetic (the total derivative of :math:`\log q(\mu + R\varepsilon)` in
    :math:`(\mu, R)` is that of :math:`-\sum_i \log R_{ii}`), so the ELBO estimator is unchanged.
    Any other value is scored by the solve, as before.
    """

    _draw: tuple[torch.Tensor, torch.Tensor] | None = None

    def rsample(self, sample_shape=()):
        shape = self._extended_shape(torch.Size(sample_shape))
        eps = _standard_normal(shape, dtype=self.loc.dtype, device=self.loc.device)  # (torch's)
        value = self.loc + (self._unbroadcasted_scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
        self._draw = (value, eps)
        return value

    def log_prob(self, value):
        draw = self._draw
        if draw is None or value is not draw[0]:
            return super().log_prob(value)
        eps = draw[1]
        half_log_det = self._unbroadcasted_scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        return -0.5 * (self._event_shape[0] * math.log(2 * math.pi) + eps.pow(2).sum(-1)) \
            - half_log_det


__all__ = ["DrawnMultivariateNormal", "MarginalizeInducing"]
