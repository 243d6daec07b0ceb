r"""Deep kernel learning: a feature extractor under the sparse variational GP (SV-DKL).

With a feature extractor :math:`g_W : \mathbb R^D \to \mathbb R^F` and the zoo's SVGP
(:class:`models.svgp.SVGP`: inducing inputs :math:`Z \in \mathbb R^{M \times F}` in feature space,
GPyTorch kernel :math:`k`, :math:`L` latent GPs sharing it), the model is

.. math::
    W \sim p(W)\ \text{(Bayesian trunk only)}, \qquad v \sim \mathcal N(0, I_M), \qquad
    f_l(x_n) \mid v, W \sim \mathcal N\big(a_n^\top v_l,\; k(g_W(x_n), g_W(x_n)) - a_n^\top a_n\big),
    \qquad a_n = L_{ZZ}^{-1} k(Z, g_W(x_n)),

    y_n \mid f(x_n) \sim p(y_n \mid f(x_n)),

i.e. the SVGP with the *deep kernel* :math:`k_W(x, x') = k(g_W(x), g_W(x'))` (Wilson, Hu,
Salakhutdinov & Xing 2016). Classification uses the softmax likelihood over ``num_classes``
latent GPs sharing one kernel, as SV-DKL does (their additive GP layer and mixing matrix are not
reproduced); regression the Gaussian, whose expected log-likelihood stays in closed form.

The model composes the SVGP rather than copying it: the trunk maps ``x`` to features and
:meth:`models.svgp.SVGP.observe` takes them from there (the same ``u`` site, the same
:func:`models.sparse_gp.svgp_conditional` effect, so the SVGP guides' ``MarginalizeInducing`` applies),
inside *this* model's data plate. Trunks (``trunk=``):

* ``"mlp"``: a deterministic MLP (``widths`` hidden layers, then a linear map to ``feature_dim``);
  its weights are point estimates trained with the kernel hyperparameters (type-II maximum
  likelihood through the ELBO, as in SV-DKL);
* ``"conv"``: :class:`models.cnn.ConvFeatures` on ``image_shape`` images then a linear map to
  ``feature_dim`` (deterministic);
* ``"bayes-mlp"``: the same MLP with every layer's ``[W | b]`` a latent site ``w{i}`` under the
  zoo's :class:`~models.priors.WeightPrior`, applied through :func:`models.base.bayes_linear`, so
  the ``mean-field`` machinery (closed-form KL, local reparameterisation) serves it. Each weight
  draw (ELBO particle, predictive sample) then has its own features, hence its own
  :math:`K_{XZ}`; :meth:`~models.svgp.SVGP.observe` takes the particle dims on the left.

Guides: :mod:`guides.dkl` (``dkl-cholesky``, ``dkl-mean-field``, ``dkl-auto-normal``).

References

[1] Wilson, Hu, Salakhutdinov, Xing. *Stochastic variational deep kernel learning*. NeurIPS 2016.
[2] Wilson, Hu, Salakhutdinov, Xing. *Deep kernel learning*. AISTATS 2016.
[3] Hensman, Matthews, Ghahramani. *Scalable variational Gaussian process classification*. 2015.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import torch
from torch import nn

from .base import ZooModel, bayes_linear
from .bnn import _activation, _kaiming_uniform
from .cnn import ConvFeatures
from .priors import WeightPrior
from .registry import register_model
from .svgp import SVGP

TRUNKS = ("mlp", "conv", "bayes-mlp")


class MLPTrunk(nn.Module):
    """Deterministic ``(N, D) -> (N, F)``: hidden layers with the activation, a linear last layer."""

    def __init__(self, sizes: Sequence[int], activation: str):
        super().__init__()
        self._act = _activation(activation)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = self._act(h)
        return h


class BayesMLPTrunk(nn.Module):
    """Bayesian ``(N, D) -> (..., N, F)``: layer ``i`` samples ``w{i}`` (``(out, in + 1)``, bias in
    the last column) from the prior and applies it by :func:`~models.base.bayes_linear`, as
    :class:`models.bnn.BayesianMLP` does; the particle dims of the weights come out on the left."""

    def __init__(self, sizes: Sequence[int], activation: str, prior: dict | None):
        super().__init__()
        self.sizes = tuple(int(s) for s in sizes)
        self._act = _activation(activation)
        self.prior = WeightPrior(**(prior or {}))

    @property
    def latent_sites(self) -> list[str]:
        return [f"w{i}" for i in range(len(self.sizes) - 1)]

    def initial_values(self) -> dict[str, torch.Tensor]:
        device = self.prior.sigma.device
        return {f"w{i}": _kaiming_uniform(b, a).to(device)
                for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:]))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        last = len(self.sizes) - 2
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            w = pyro.sample(f"w{i}", self.prior(torch.Size((b, a + 1))))
            h = bayes_linear(h, w, name=f"w{i}")  # (..., N, b)
            if i < last:
                h = self._act(h)
        return h


@register_model("dkl", family="gp",
                test_config=dict(in_features=2, trunk="mlp", widths=(4,), feature_dim=2,
                                 num_inducing=4))
class DKL(ZooModel):
    """SV-DKL: a trunk (module docstring) feeding :class:`models.svgp.SVGP`.

    :param int in_features: D (for ``trunk="conv"``: H·W of the flattened images).
    :param str trunk: one of :data:`TRUNKS`.
    :param widths: hidden widths of the MLP trunks (``()``: a linear map to the features).
    :param int feature_dim: F, the kernel's input dimension.
    :param str activation: of the MLP trunks (:data:`models.bnn.ACTIVATIONS`).
    :param image_shape: (H, W) of the conv trunk.
    :param channels: the conv trunk's two convolutions' channels.
    :param int conv_hidden: the conv trunk's dense width (before the map to F).
    :param dict prior: :class:`~models.priors.WeightPrior` arguments of the ``bayes-mlp`` trunk.
    :param num_inducing, kernel, mean, likelihood, num_classes, noise_std, learn_noise,
        student_df, whiten, learn_inducing, jitter: as for :class:`models.svgp.SVGP` (kernel on
        the F features; default RBF-ARD with an output scale).
    :param str dtype: ``"float32"`` or ``"float64"`` (the whole model).
    :param int num_data: training-set size (see :class:`~models.base.ZooModel`).
    """

    has_inducing = True

    def __init__(self, in_features: int = 1, trunk: str = "mlp", widths: Sequence[int] = (50,),
                 feature_dim: int = 2, activation: str = "relu",
                 image_shape: Sequence[int] = (28, 28), channels: Sequence[int] = (16, 32),
                 conv_hidden: int = 128, prior: dict | None = None, num_inducing: int = 64,
                 kernel: dict | None = None, mean: str = "zero", likelihood: str = "gaussian",
                 num_classes: int | None = None, noise_std: float = 0.1, learn_noise: bool = True,
                 student_df: float = 4.0, whiten: bool = True, learn_inducing: bool = True,
                 jitter: float | None = None, dtype: str = "float32",
                 num_data: int | None = None):
        super().__init__(num_data=num_data)
        if trunk not in TRUNKS:
            raise ValueError(f"trunk must be one of {TRUNKS}, got {trunk!r}")
        if int(in_features) < 1 or int(feature_dim) < 1 or any(int(w) < 1 for w in widths):
            raise ValueError(f"in_features, feature_dim and widths must be >= 1, got "
                             f"{in_features}, {feature_dim}, {tuple(widths)}")
        self.in_features, self.feature_dim = int(in_features), int(feature_dim)
        self.trunk_kind = trunk
        sizes = (self.in_features, *(int(w) for w in widths), self.feature_dim)
        if trunk == "mlp":
            self.trunk = MLPTrunk(sizes, activation)
        elif trunk == "bayes-mlp":
            self.trunk = BayesMLPTrunk(sizes, activation, prior)
        else:
            conv = ConvFeatures(image_shape, channels, conv_hidden)
            if conv.image_shape[0] * conv.image_shape[1] != self.in_features:
                raise ValueError(f"trunk='conv' on {tuple(image_shape)} images needs in_features "
                                 f"= {conv.image_shape[0] * conv.image_shape[1]}, got "
                                 f"{self.in_features}")
            self.trunk = nn.Sequential(conv, nn.Linear(conv.out_features, self.feature_dim))
        self.gp = SVGP(input_dim=self.feature_dim, num_inducing=num_inducing, kernel=kernel,
                       mean=mean, likelihood=likelihood, num_classes=num_classes,
                       noise_std=noise_std, learn_noise=learn_noise, student_df=student_df,
                       whiten=whiten, learn_inducing=learn_inducing, jitter=jitter,
                       dtype="float32")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if dtype == "float64":
            self.double()

    # what the SVGP guides and the predictive read from a model
    @property
    def likelihood(self):
        return self.gp.likelihood

    @property
    def num_latents(self) -> int:
        return self.gp.num_latents

    @property
    def num_inducing(self) -> int:
        return self.gp.num_inducing

    @property
    def inducing_points(self) -> torch.Tensor:
        return self.gp.inducing_points

    @property
    def dtype(self) -> torch.dtype:
        return self.gp.dtype

    @property
    def latent_sites(self) -> list[str]:
        """The trunk's weight sites (the inducing values ``u`` are the GP's)."""
        return getattr(self.trunk, "latent_sites", [])

    def initial_values(self) -> dict[str, torch.Tensor]:
        init = getattr(self.trunk, "initial_values", None)
        return {k: v.to(self.dtype) for k, v in init().items()} if init else {}

    def example_data(self, num_data: int, generator: torch.Generator | None = None):
        x = torch.randn(num_data, self.in_features, generator=generator, dtype=self.dtype)
        return x, self.likelihood.example_targets(x.sum(-1).sin(), generator)

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (N, {self.in_features}), got {tuple(x.shape)}"
                             + ("; flatten images with x.reshape(len(x), -1)"
                                if self.trunk_kind == "conv" else ""))
        return x.to(device=self.inducing_points.device, dtype=self.dtype)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's output ``(..., N, F)`` (a Bayesian trunk samples its weights: call it inside
        a trace, or under ``pyro.poutine`` handlers, as the model does)."""
        return self.trunk(self._check_x(x))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = self._check_x(x)
        y = self.gp._check_y(x, y)
        h = self.trunk(x)  # (..., N, F)
        return self.gp.observe(h, y, lambda: self.data_plate(x))

    @torch.no_grad()
    def initialize_inducing(self, x: torch.Tensor, method: str = "kmeans", seed: int = 0,
                            max_rows: int = 20000, progress: bool = True) -> torch.Tensor:
        """Set Z from the training inputs' features (:meth:`models.svgp.SVGP.initialize_inducing`):
        the deterministic trunk's output at its current weights, the Bayesian trunk's at
        :meth:`initial_values` (where the weight guides start). Call it after building the guide
        and before training, as for the SVGP."""
        x = self._check_x(x)
        if self.latent_sites:
            values = self.initial_values()
            h = pyro.poutine.condition(self.trunk, data=values)(x)
        else:
            h = torch.cat([self.trunk(x[i:i + 4096]) for i in range(0, x.shape[0], 4096)])
        return self.gp.initialize_inducing(h, method=method, seed=seed, max_rows=max_rows,
                                           progress=progress)
