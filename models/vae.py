r"""The variational autoencoder of Kingma & Welling (2014) as a zoo model (latent-variable uncertainty).

The Pyro model, for images :math:`x_n \in \mathbb R^D` (flattened) and a latent code per image:

.. math::
    z_n \sim \mathcal N(0, I_K), \qquad x_n \mid z_n \sim p_\theta(x_n \mid z_n)
    = \prod_{d=1}^D p(x_{nd} \mid g_\theta(z_n)_d),

with the decoder :math:`g_\theta` an MLP (the paper's one hidden tanh layer, or deeper) or a small
transposed-convolution net, and the likelihood (``likelihood=``)

- ``"bernoulli"``: :math:`x_{nd} \sim \mathrm{Bernoulli}(\sigma(\ell_{nd}))` for binary images
  (binarised MNIST; the data must be exactly 0/1, see :meth:`VAE.check_data`);
- ``"gaussian"``: :math:`x_{nd} \sim \mathcal N(\mu_{nd}, s_{nd}^2)` with
  :math:`\mu = \sigma(a)` (the paper's Frey Face decoder: mean constrained to [0, 1]) or the
  identity (``gaussian_mean="identity"``; with no hidden layer and ``gaussian_scale="shared"`` this
  is probabilistic PCA, the analytic oracle of the tests), and
  :math:`s = s_{\min} + \mathrm{softplus}(b)` per pixel from the network (``"network"``, as in the
  paper), one learned value per pixel (``"pixel"``) or one shared value (``"shared"``);
- ``"continuous-bernoulli"``: :math:`x_{nd} \sim \mathcal{CB}(\sigma(\ell_{nd}))` for grey levels
  in [0, 1] (Loaiza-Ganem & Cunningham 2019), normalised where the Bernoulli is not.

Sites: ``z`` (local latent, inside the data plate), ``f`` (deterministic decoder mean parameter:
Bernoulli probabilities, Gaussian mean) and ``obs``. The amortised guides :math:`q_\phi(z \mid x)`
are in :mod:`guides.vae`; both are trained by maximising

.. math:: \mathcal L(x) = \mathbb E_{q_\phi(z\mid x)}[\log p_\theta(x\mid z)]
          - \mathrm{KL}[q_\phi(z\mid x)\,\|\,p(z)] \;\le\; \log p_\theta(x)

with the zoo's one SVI loop (:func:`experiments.engine.training.fit`, data ``(x,)``).

The model is unsupervised: ``forward(x, y=None)`` observes ``x``; ``y`` must be ``None``.
:meth:`VAE.decode` and :meth:`VAE.sample` give decoder means for latent codes / prior draws.

References

[1] Kingma, Welling. *Auto-Encoding Variational Bayes*. ICLR 2014.
[2] Burda, Grosse, Salakhutdinov. *Importance Weighted Autoencoders*. ICLR 2016.
[3] Loaiza-Ganem, Cunningham. *The continuous Bernoulli*. NeurIPS 2019.
[4] Tipping, Bishop. *Probabilistic principal component analysis*. JRSS B 1999.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from .base import ZooModel, record
from .likelihoods import image_likelihood_for
from .registry import register_model

LIKELIHOODS = ("bernoulli", "gaussian", "continuous-bernoulli")
ARCHS = ("mlp", "conv")
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus, "elu": nn.ELU,
               "identity": nn.Identity}


def _check_choice(value, choices, what):
    if value not in choices:
        raise ValueError(f"{what} must be one of {list(choices)}, got {value!r}")


def mlp(in_features: int, hidden: Sequence[int], out_features: int, activation: str = "tanh"
        ) -> nn.Sequential:
    """``Linear -> act -> ... -> Linear``; acts on the last dim, any leading dims."""
    _check_choice(activation, ACTIVATIONS, "activation")
    sizes = (in_features, *hidden)
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(sizes[-1], out_features))
    return nn.Sequential(*layers)


def _check_conv_shape(image_shape):
    if len(image_shape) != 2 or image_shape[0] % 4 or image_shape[1] % 4:
        raise ValueError(f"the conv architecture needs a 2-D image shape divisible by 4 (e.g. 28x28), "
                         f"got {tuple(image_shape)}; use arch='mlp'")


class ConvEncoderNet(nn.Module):
    """Two stride-2 4x4 convolutions (32, 64 channels) and a linear layer: ``(..., H*W) -> (..., out)``."""

    def __init__(self, image_shape: Sequence[int], hidden: int, out_features: int,
                 activation: str = "relu"):
        super().__init__()
        _check_conv_shape(image_shape)
        self.image_shape = tuple(image_shape)
        h, w = self.image_shape
        act = ACTIVATIONS[activation]
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1), act(), nn.Conv2d(32, 64, 4, 2, 1), act(), nn.Flatten(),
            nn.Linear(64 * (h // 4) * (w // 4), hidden), act(), nn.Linear(hidden, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        out = self.body(x.reshape(-1, 1, *self.image_shape))  # (B, out)
        return out.reshape(*lead, -1)


class ConvDecoderNet(nn.Module):
    """The mirror of :class:`ConvEncoderNet`: ``(..., K) -> (..., channels * H*W)``."""

    def __init__(self, image_shape: Sequence[int], in_features: int, hidden: int, channels: int,
                 activation: str = "relu"):
        super().__init__()
        _check_conv_shape(image_shape)
        self.image_shape = tuple(image_shape)
        h, w = self.image_shape
        self.channels = channels
        act = ACTIVATIONS[activation]
        self.head = nn.Sequential(nn.Linear(in_features, hidden), act(),
                                  nn.Linear(hidden, 64 * (h // 4) * (w // 4)), act())
        self.body = nn.Sequential(nn.ConvTranspose2d(64, 32, 4, 2, 1), act(),
                                  nn.ConvTranspose2d(32, channels, 4, 2, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        h, w = self.image_shape
        out = self.body(self.head(z.reshape(-1, z.shape[-1])).reshape(-1, 64, h // 4, w // 4))
        # (B, C, H, W) -> (..., C * H * W), channel-major: chunk(C, -1) splits the channels
        return out.reshape(*lead, self.channels * h * w)


def make_net(arch: str, image_shape, in_features: int, hidden: Sequence[int], out_features: int,
             activation: str, role: str) -> nn.Module:
    """An encoder (``role="encoder"``: image -> features) or decoder (latent -> per-pixel params)."""
    _check_choice(arch, ARCHS, "arch")
    if arch == "mlp":
        return mlp(in_features, hidden, out_features, activation)
    width = int(hidden[-1]) if len(hidden) else 256
    if role == "encoder":
        return ConvEncoderNet(image_shape, width, out_features, activation)
    d = math.prod(image_shape)
    if out_features % d:
        raise ValueError(f"decoder outputs {out_features} values, not a multiple of D={d}")
    return ConvDecoderNet(image_shape, in_features, width, out_features // d, activation)


@register_model("vae", family="vae",
                test_config=dict(image_shape=(4, 3), z_dim=2, hidden=(5,)))
class VAE(ZooModel):
    """Variational autoencoder: prior :math:`\\mathcal N(0, I)` on ``z``, decoder, likelihood on x.

    :param image_shape: ``(H, W)`` of one image (or ``(D,)``); data may be given as ``(N, H, W)``
        or flattened ``(N, H*W)``.
    :param int z_dim: latent size K.
    :param hidden: decoder hidden widths, e.g. ``(500,)`` (Kingma & Welling, MNIST), ``(200,)``
        (Frey Face), ``(200, 200)`` (Burda et al.), ``()`` for a linear decoder. For
        ``arch="conv"`` the last entry is the width of the dense layer.
    :param str activation: hidden activation (``tanh`` as in both papers).
    :param str arch: ``"mlp"`` or ``"conv"`` (28x28-style images, sides divisible by 4).
    :param str likelihood: one of :data:`LIKELIHOODS`.
    :param str gaussian_mean: ``"sigmoid"`` (paper) or ``"identity"``.
    :param str gaussian_scale: ``"network"`` (paper), ``"pixel"`` or ``"shared"``.
    :param float min_scale: :math:`s_{\\min}` of the Gaussian likelihood (its density is unbounded
        as the scale goes to 0; the floor keeps the bound finite).
    :param bool check_data: check the shape and value range of the data (:meth:`check_data`):
        ``fit`` checks the whole training set once before training (:meth:`validate_data`) and
        no batch after that; other calls of the model (evaluation, the predictive) check their
        input, one vectorised comparison each.
    :param int num_data: training-set size (set by ``fit``).
    """

    def __init__(self, image_shape: Sequence[int] = (28, 28), z_dim: int = 20,
                 hidden: Sequence[int] = (500,), activation: str = "tanh", arch: str = "mlp",
                 likelihood: str = "bernoulli", gaussian_mean: str = "sigmoid",
                 gaussian_scale: str = "network", min_scale: float = 1e-2,
                 check_data: bool = True, num_data: int | None = None):
        super().__init__(num_data=num_data)
        _check_choice(likelihood, LIKELIHOODS, "likelihood")
        _check_choice(gaussian_mean, ("sigmoid", "identity"), "gaussian_mean")
        _check_choice(gaussian_scale, ("network", "pixel", "shared"), "gaussian_scale")
        if int(z_dim) < 1 or any(int(h) < 1 for h in hidden) or any(int(s) < 1 for s in image_shape):
            raise ValueError(f"sizes must be positive: image_shape={tuple(image_shape)}, z_dim={z_dim}, "
                             f"hidden={tuple(hidden)}")
        if not min_scale >= 0:
            raise ValueError(f"min_scale must be >= 0, got {min_scale!r}")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.x_dim = math.prod(self.image_shape)
        self.z_dim = int(z_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.arch = arch
        self.likelihood_name = likelihood
        self.gaussian_mean = gaussian_mean
        self.gaussian_scale = gaussian_scale
        self.min_scale = float(min_scale)
        self.check = bool(check_data)
        # models.likelihoods' image likelihood: it reads the decoder's per-pixel outputs
        self.likelihood = image_likelihood_for(likelihood, self.x_dim, mean=gaussian_mean,
                                               scale=gaussian_scale, min_scale=min_scale)
        self.decoder = make_net(arch, self.image_shape, self.z_dim, self.hidden,
                                self.likelihood.num_outputs, activation, role="decoder")
        # prior N(0, I) as buffers, so that .to(device) moves it
        self.register_buffer("z_loc", torch.zeros(self.z_dim))
        self.register_buffer("z_scale", torch.ones(self.z_dim))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # files saved before the likelihood module held the Gaussian's scale_raw
        old = prefix + "scale_raw"
        if old in state_dict:
            state_dict[prefix + "likelihood.scale_raw"] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------------------------------
    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, *image_shape)`` or ``(N, D)`` -> ``(N, D)``; anything else is a clear error."""
        if x.dim() >= 2 and (tuple(x.shape[1:]) == self.image_shape or
                             (x.dim() == 2 and x.shape[1] == self.x_dim)):
            return x.reshape(x.shape[0], self.x_dim)
        raise ValueError(f"images must have shape (N, {', '.join(map(str, self.image_shape))}) or "
                         f"(N, {self.x_dim}) for this VAE, got {tuple(x.shape)}")

    def check_data(self, x: torch.Tensor) -> torch.Tensor:
        """Flatten ``x`` and check its values against the likelihood's support.

        Bernoulli needs exactly 0/1 (binarise grey images first: dynamically, a fresh
        :math:`x \\sim \\mathrm{Bernoulli}(\\text{intensity})` per epoch, as
        :class:`experiments.harness.vae.DynamicBinarization` does, or use the continuous Bernoulli);
        the continuous Bernoulli and the sigmoid-mean Gaussian need [0, 1]. Without this check
        (and with Pyro's validation off, as in training) a Bernoulli log-density of grey values is
        finite but meaningless, and out-of-range values give NaN.
        """
        x = self.flatten(x)
        if not x.is_floating_point():
            raise ValueError(f"images must be floating point (0/1 or [0, 1]), got dtype {x.dtype}")
        if not self.check or getattr(self, "_data_validated", False):
            return x  # (in fit: validate_data checked every image once, before training)
        # one pass (aminmax) for range and finiteness: boolean element-wise tests and reductions
        # cost ~10x more on CPU, which showed in the step time
        lo, hi = (float(v) for v in torch.aminmax(x.detach()))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("images hold NaN or inf")
        self.likelihood.check_pixels(x, lo, hi)  # (models.likelihoods.ImageLikelihood)
        return x

    # ------------------------------------------------------------------------------------------
    def _decode(self, z: torch.Tensor):
        """Decoder output (..., num_outputs) of per-pixel parameters, and the distribution of x
        (event dim 1) they give."""
        out = self.decoder(z)
        return out, self.likelihood.distribution(out)

    def validate_data(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """:meth:`check_data` on the whole training set, once (``fit`` calls it before training
        and then skips the per-batch check: no host read per step)."""
        if self.check:
            for chunk in torch.split(x, 8192):
                self.check_data(chunk)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The Pyro model; ``x``: (N, H, W) or (N, D) images; returns the ``obs`` value (N, D)."""
        if y is not None:
            raise ValueError("the VAE is unsupervised: call it as model(x) and fit it on data=(x,), "
                             "not (x, y)")
        x = self.check_data(x)
        with self.data_plate(x):
            z = pyro.sample("z", dist.Normal(self.z_loc, self.z_scale).to_event(1))  # (..., N, K)
            out, px = self._decode(z)
            # the mean image f (..., N, D), for the predictive (not computed in a training step)
            record("f", lambda: self.likelihood.mean(out), event_dim=1)
            return pyro.sample("obs", px, obs=x)

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder mean parameter :math:`f(z)` for codes ``z`` (..., K), as images (..., *image_shape)."""
        f = self.likelihood.mean(self.decoder(z))
        return f.reshape(*z.shape[:-1], *self.image_shape)

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decoder means of ``num`` prior draws :math:`z \\sim \\mathcal N(0, I)`: (num, *image_shape)."""
        z = torch.randn(num, self.z_dim, generator=generator).to(self.z_loc.device)
        return self.decode(z)

    def example_data(self, num_data: int, generator: torch.Generator | None = None):
        u = torch.rand(num_data, *self.image_shape, generator=generator)
        return (self.likelihood.example_images(u),)


__all__ = ["VAE", "LIKELIHOODS", "make_net", "mlp"]
