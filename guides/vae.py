r"""Amortised guides of the VAE (:mod:`models.vae`): the encoder :math:`q_\phi(z \mid x)`.

``encoder`` (Kingma & Welling 2014, appendix C.2): a network maps each image to the mean and scale
of a diagonal Gaussian,

.. math:: q_\phi(z_n \mid x_n) = \mathcal N\big(z_n \mid \mu_\phi(x_n),
          \mathrm{diag}\,\sigma_\phi^2(x_n)\big), \qquad
          z_n = \mu_\phi(x_n) + \sigma_\phi(x_n) \circ \epsilon_n,\; \epsilon_n \sim \mathcal N(0, I),

so one network evaluation gives the posterior of every datapoint (amortised inference) and the
reparameterised sample carries gradients to :math:`\phi`. With the standard-normal prior its KL is
closed-form (:class:`~pyro.infer.TraceMeanField_ELBO`, ``fit(..., {"elbo": "meanfield"})``).

``flow-encoder`` (Kingma et al. 2016, inverse autoregressive flow): the same Gaussian followed by
``num_flows`` conditional affine autoregressive transforms whose networks also see a context vector
:math:`h_\phi(x)` from the encoder,

.. math:: z^{(0)} \sim q_\phi(z \mid x) \text{ as above},\quad
          z^{(t)} = \mu_t(z^{(t-1)}, h) + \sigma_t(z^{(t-1)}, h) \circ z^{(t-1)},\quad
          \log q(z^{(T)}) = \log q(z^{(0)}) - \sum_t \sum_i \log \sigma_{t,i},

(Pyro's :func:`~pyro.distributions.transforms.conditional_affine_autoregressive`, sampled in the
fast direction; the log-density of its own samples uses the cached inverse). The KL is then
estimated by Monte Carlo (``elbo="trace"``).

Both guides sample ``z`` inside the model's data plate (``model.data_plate(x)``, the same size and
subsample), so minibatch scaling and vectorised particles work as for every zoo pair.

References

[1] Kingma, Welling. *Auto-Encoding Variational Bayes*. ICLR 2014.
[2] Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling. *Improved Variational Inference with
    Inverse Autoregressive Flow*. NeurIPS 2016.
[3] Rezende, Mohamed. *Variational Inference with Normalizing Flows*. ICML 2015.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule
from torch import nn

from models.vae import make_net

from .base import ZooGuide
from .registry import register_guide


class EncoderGuide(ZooGuide, PyroModule):
    """Diagonal Gaussian :math:`q_\\phi(z\\mid x)` from an encoder network.

    :param model: the :class:`~models.vae.VAE` (its image shape, latent size and default
        architecture are read; it is not registered as a submodule, so its parameters stay the
        model's).
    :param hidden: encoder hidden widths (default: the decoder's).
    :param str activation: default: the model's.
    :param str arch: ``"mlp"`` or ``"conv"`` (default: the model's).
    :param float min_scale: floor added to :math:`\\sigma_\\phi = \\mathrm{softplus}(\\cdot)`.
    """

    context_dim = 0

    def __init__(self, model, hidden: Sequence[int] | None = None, activation: str | None = None,
                 arch: str | None = None, min_scale: float = 1e-4):
        super().__init__()
        self._model = (model,)  # a tuple: not a submodule
        self.hidden = tuple(int(h) for h in (model.hidden if hidden is None else hidden))
        self.activation = activation or model.activation
        self.arch = arch or model.arch
        self.min_scale = float(min_scale)
        self.z_dim = model.z_dim
        self.encoder = make_net(self.arch, model.image_shape, model.x_dim, self.hidden,
                                2 * self.z_dim + self.context_dim, self.activation, role="encoder")

    def encode(self, x: torch.Tensor):
        """``(loc, scale, context)`` of :math:`q(z\\mid x)` for images x: (N, K), (N, K), (N, C)."""
        model = self._model[0]
        out = self.encoder(model.flatten(x))  # (N, 2K + C)
        k = self.z_dim
        loc, s, h = out[..., :k], out[..., k:2 * k], out[..., 2 * k:]
        return loc, F.softplus(s) + self.min_scale, h

    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """:math:`q(z\\mid x)` as a distribution with batch shape (N,) and event shape (K,)."""
        loc, scale, _ = self.encode(x)
        return dist.Normal(loc, scale).to_event(1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        model = self._model[0]
        qz = self.posterior(x)
        with model.data_plate(x):
            return pyro.sample("z", qz)  # (..., N, K)


class FlowEncoderGuide(EncoderGuide):
    """The encoder's Gaussian followed by conditional inverse autoregressive flows.

    :param int num_flows: number of conditional affine autoregressive transforms.
    :param int context_dim: size of the context :math:`h_\\phi(x)` the flows are conditioned on.
    :param flow_hidden: hidden widths of each flow's autoregressive network (default ``(4K,)``).
    """

    def __init__(self, model, num_flows: int = 2, context_dim: int = 16,
                 flow_hidden: Sequence[int] | None = None, **encoder_cfg):
        if model.z_dim < 2:
            raise ValueError("the flow encoder needs z_dim >= 2 (an autoregressive flow on one "
                             "dimension is an affine map); use the 'encoder' guide")
        if num_flows < 1 or context_dim < 1:
            raise ValueError(f"num_flows and context_dim must be >= 1, got {num_flows}, {context_dim}")
        self.context_dim = int(context_dim)
        super().__init__(model, **encoder_cfg)
        hidden = list(flow_hidden) if flow_hidden is not None else [4 * model.z_dim]
        self.flows = nn.ModuleList(
            T.conditional_affine_autoregressive(model.z_dim, self.context_dim, hidden_dims=hidden)
            for _ in range(num_flows))

    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        loc, scale, h = self.encode(x)
        base = dist.Normal(loc, scale).to_event(1)
        return dist.TransformedDistribution(base, [f.condition(h) for f in self.flows])


@register_guide("encoder", models=("vae",), family="vae")
def build_encoder(model, hidden: Sequence[int] | None = None, activation: str | None = None,
                  arch: str | None = None, min_scale: float = 1e-4) -> EncoderGuide:
    """Amortised diagonal Gaussian (see :class:`EncoderGuide` for the arguments)."""
    return EncoderGuide(model, hidden=hidden, activation=activation, arch=arch,
                        min_scale=min_scale)


@register_guide("flow-encoder", models=("vae",), family="vae")
def build_flow_encoder(model, num_flows: int = 2, context_dim: int = 16,
                       flow_hidden: Sequence[int] | None = None,
                       hidden: Sequence[int] | None = None, activation: str | None = None,
                       arch: str | None = None, min_scale: float = 1e-4) -> FlowEncoderGuide:
    """Amortised Gaussian + conditional IAF (see :class:`FlowEncoderGuide` and
    :class:`EncoderGuide` for the arguments)."""
    return FlowEncoderGuide(model, num_flows=num_flows, context_dim=context_dim,
                            flow_hidden=flow_hidden, hidden=hidden, activation=activation,
                            arch=arch, min_scale=min_scale)
