r"""Full-covariance Gaussian guide: :class:`~pyro.infer.autoguide.AutoMultivariateNormal`.

.. math:: q(w) = \mathcal N(w \mid \mu, L L^\top), \qquad L \text{ lower triangular},

over all latents jointly, O(P²) parameters in P latent dimensions: meant for models with a few
hundred to a few thousand latents, such as the weight-space GP ``rff-gp``, whose exact posterior
is Gaussian and therefore in this family (the ELBO's optimum is the exact posterior).
"""

from __future__ import annotations

from pyro.infer.autoguide import AutoMultivariateNormal

from .auto import init_at_model_values
from .base import ZooGuide
from .registry import register_guide


@register_guide("auto-mvn", models=("rff-gp",), family="gp")
def build_auto_mvn(model, init_scale: float = 1e-2):
    """Full-covariance Gaussian autoguide, its mean started at the model's :meth:`initial_values`."""
    return ZooAutoMVN(model, init_loc_fn=init_at_model_values(model), init_scale=init_scale)


class ZooAutoMVN(ZooGuide, AutoMultivariateNormal):
    """:class:`~pyro.infer.autoguide.AutoMultivariateNormal` with the zoo's guide hooks."""
