r"""Sparse variational Gaussian process (Titsias 2009; Hensman, Fusi & Lawrence 2013) as a Pyro model.

With inducing inputs :math:`Z` (M × D, learnable), kernel :math:`k` and mean :math:`m` from
GPyTorch, and :math:`L` latent functions (1 for regression and binary classification, C for
softmax classification) sharing the kernel, the model is

.. math::
    v \sim \mathcal N(0, I_M)\ \text{(whitened, default)}, \qquad u = m(Z) + L_{ZZ} v,
    \qquad L_{ZZ} L_{ZZ}^\top = K_{ZZ} + \epsilon I,

    f(x_n) \mid u \sim \mathcal N\big(m(x_n) + a_n^\top v,\; k(x_n, x_n) - a_n^\top a_n\big),
    \qquad a_n = L_{ZZ}^{-1} k_Z(x_n),

    y_n \mid f(x_n) \sim p(y_n \mid f(x_n)) \quad\text{inside}\quad
    \texttt{pyro.plate("data", N, subsample=...)}.

Unwhitened (``whiten=False``) the site is :math:`u \sim \mathcal N(m(Z), K_{ZZ})` itself and
:math:`a_n^\top v` becomes :math:`b_n^\top (u - m(Z))`, :math:`b_n = K_{ZZ}^{-1} k_Z(x_n)`.
The sample site ``u`` has event shape ``(L, M)``.

The ELBO is :math:`\sum_n \mathbb E_{q(f_n)}[\log p(y_n \mid f_n)] - \mathrm{KL}[q(u)\,\|\,p(u)]`.
Two ways to compute the data term share this model:

* *as written* (prediction, or a guide without a handler): ``u`` is drawn from the guide, ``f``
  from :math:`p(f \mid u)`; for the Gaussian likelihood the expectation over :math:`f \mid u` is
  exact: :math:`\log\mathcal N(y \mid \mu, \sigma^2) - s^2/(2\sigma^2)`.
* *marginalised* (training with the zoo's SVGP guides): the conditional is an effect,
  :func:`svgp_conditional`, which the guide's :meth:`elbo_context` handler replaces by the
  marginal :math:`q(f_n) = \mathcal N(\mu_n, s_n^2)` of :math:`q(u) = \mathcal N(\mu_u, S)`:
  :math:`\mu_n = m(x_n) + a_n^\top \mu_u,\ s_n^2 = k_{nn} - a_n^\top a_n + a_n^\top S a_n`.
  With the Gaussian likelihood the data term is then in closed form (Hensman et al. 2013, eq. 7);
  otherwise one reparameterised :math:`f_n \sim q(f_n)` per point and particle is drawn (the GP
  analogue of the local reparameterisation trick).

The kernel algebra the model shares with its guides (the Cholesky factor, the whitened prior,
the conditional and the marginal moments, k-means placement) is :mod:`models.sparse_gp`.

The q(u) used at a step is always computed from the guide's current parameters. This is why the
pair does not use GPyTorch's ``ApproximateGP.pyro_model``/``pyro_guide``: that guide reads q(u)
from a cache filled at the previous step, so a plain ``Trace_ELBO`` fails on the second step
("backward through the graph a second time"), and ``retain_graph=True`` (GPyTorch's example) makes
the guide's q(u) one step stale. Kernels, means and their hyperparameters are GPyTorch's; the
hyperparameters, inducing inputs and likelihood parameters are point estimates owned by the module
(type-II maximum likelihood through the same ELBO).

References

[1] Titsias. *Variational learning of inducing variables in sparse Gaussian processes*. AISTATS 2009.
[2] Hensman, Fusi, Lawrence. *Gaussian processes for big data*. UAI 2013.
[3] Hensman, Matthews, Ghahramani. *Scalable variational Gaussian process classification*. 2015.
"""

from __future__ import annotations

import gpytorch
import pyro
import pyro.distributions as dist
import torch
from torch import nn

from .base import ZooModel, check_size
from .kernels import (
    build_kernel,
    build_mean,
    host_comparing_kernels,
    hyperparameters,
    inputs_equal,
)
from .likelihoods import likelihood_for
from .registry import register_model
from .sparse_gp import (  # noqa: F401  (their home until sparse_gp; still importable from here)
    CholeskyError,
    Conditional,
    WhitenedPrior,
    default_jitter,
    marginal_moments,
    minibatch_kmeans,
    stable_cholesky,
    svgp_conditional,
)

#: the likelihoods of :mod:`models.likelihoods` the SVGP takes (one latent GP per output)
LIKELIHOODS = ("gaussian", "bernoulli", "student-t", "softmax", "categorical",
               "heteroscedastic-gaussian")
DEFAULT_KERNEL = {"type": "rbf", "ard": True, "lengthscale": 1.0, "outputscale": 1.0}


@register_model("svgp", family="gp", test_config=dict(input_dim=2, num_inducing=4))
class SVGP(ZooModel):
    """The sparse variational GP model (see the module docstring for the math).

    :param int input_dim: D.
    :param int num_inducing: M.
    :param dict kernel: a kernel spec for :func:`models.kernels.build_kernel` (default RBF-ARD
        with an output scale), or a ready GPyTorch kernel.
    :param str mean: ``"zero"`` or ``"constant"`` (GPyTorch ``ZeroMean`` / ``ConstantMean``).
    :param str likelihood: a name of :data:`models.likelihoods.LIKELIHOODS` among
        :data:`LIKELIHOODS`: ``"gaussian"`` (learned noise, closed-form expected log-likelihood),
        ``"bernoulli"`` (logit link, labels 0/1 as floats), ``"student-t"`` (robust regression,
        learned scale, fixed ``student_df``), ``"softmax"``/``"categorical"`` (``num_classes``
        latent GPs sharing the kernel; integer labels) or ``"heteroscedastic-gaussian"`` (two
        latent GPs, mean and log-scale; Monte Carlo data term). One latent GP per output.
    :param bool whiten: sample the whitened ``v`` (default) rather than ``u``.
    :param bool learn_inducing: learn Z (otherwise a buffer).
    :param float jitter: added to the diagonal of K_ZZ (default: GPyTorch's 1e-6 / 1e-8 in
        float32 / float64); retried ×10 on a failed Cholesky.
    :param str dtype: ``"float32"`` or ``"float64"`` (inputs are cast to it).
    """

    def __init__(self, input_dim: int = 1, num_inducing: int = 64, kernel=None, mean: str = "zero",
                 likelihood: str = "gaussian", num_classes: int | None = None,
                 noise_std: float = 0.1, learn_noise: bool = True, student_df: float = 4.0,
                 whiten: bool = True, learn_inducing: bool = True, jitter: float | None = None,
                 dtype: str = "float32", num_data: int | None = None):
        super().__init__(num_data=num_data)
        if int(input_dim) < 1 or int(num_inducing) < 1:
            raise ValueError(f"input_dim and num_inducing must be >= 1, got {input_dim}, "
                             f"{num_inducing}")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.input_dim, self.num_inducing = int(input_dim), int(num_inducing)
        m = self.num_inducing  # Z, and q(u)'s factor and K_uu's Cholesky (M x M each)
        check_size(m * self.input_dim + 2 * m * m, f"num_inducing={m}", "use fewer inducing points")
        self.whiten = bool(whiten)
        self.likelihood_name = likelihood
        self.likelihood = likelihood_for(likelihood, LIKELIHOODS, noise_std=noise_std,
                                         learn_noise=learn_noise, num_classes=num_classes,
                                         student_df=student_df)
        self.num_latents = self.likelihood.num_outputs
        self.kernel = kernel if isinstance(kernel, gpytorch.kernels.Kernel) else \
            build_kernel(kernel or DEFAULT_KERNEL, self.input_dim)
        self.mean_module = build_mean(mean)
        z = torch.randn(self.num_inducing, self.input_dim, generator=torch.Generator().manual_seed(0))
        if learn_inducing:
            self.inducing_points = nn.Parameter(z)
        else:
            self.register_buffer("inducing_points", z)
        self._jitter = jitter
        if dtype == "float64":
            self.double()

    has_inducing = True

    # ------------------------------------------------------------------ set-up
    @property
    def in_features(self) -> int:
        """D, the ``input_dim`` (:attr:`models.base.ZooModel.in_features`)."""
        return self.input_dim

    @property
    def dtype(self) -> torch.dtype:
        return self.inducing_points.dtype

    @property
    def jitter(self) -> float:
        return self._jitter if self._jitter is not None else default_jitter(self.dtype)

    @torch.no_grad()
    def initialize_inducing(self, x: torch.Tensor, method: str = "kmeans", seed: int = 0,
                            max_rows: int = 20000, progress: bool = True) -> torch.Tensor:
        """Set Z from training inputs: ``"kmeans"``, ``"random"`` (a random subset of rows) or
        ``"data"`` (Z = X, needs M = N).

        ``"kmeans"``: up to ``max_rows`` rows, scipy's k-means (k-means++ seeding, then Lloyd's
        iterations over all rows). Above it, whose Lloyd iterations cost O(N M D) each and took
        most of the set-up on kin40k, k-means++ seeds the M centres on a random subsample of
        ``max(10 000, 3M)`` rows and mini-batch k-means (Sculley 2010; scikit-learn's
        ``MiniBatchKMeans``, batches of 2048) refines them over three passes through every row,
        with a progress bar (:func:`minibatch_kmeans`).
        """
        x = self._check_x(x)
        n = x.shape[0]
        if self.num_inducing > n:
            raise ValueError(f"num_inducing={self.num_inducing} exceeds the {n} training rows; use "
                             f"num_inducing <= {n} (num_inducing = N with Z = X is the exact GP)")
        g = torch.Generator().manual_seed(seed)
        if method == "data":
            if self.num_inducing != n:
                raise ValueError(f"method='data' needs num_inducing == N, got {self.num_inducing}"
                                 f" and {n}")
            z = x.clone()
        elif method == "random":
            z = x[torch.randperm(n, generator=g)[: self.num_inducing]].clone()
        elif method == "kmeans":
            rows = x.detach().cpu().double().numpy()
            if n <= max_rows:
                from scipy.cluster.vq import kmeans2

                centroids, _ = kmeans2(rows, self.num_inducing, minit="++", seed=seed)
            else:
                centroids = minibatch_kmeans(rows, self.num_inducing, seed=seed,
                                             progress=progress)
            z = torch.as_tensor(centroids)
        else:
            raise ValueError(f"method must be 'kmeans', 'random' or 'data', got {method!r}")
        self.inducing_points.data.copy_(z.to(self.inducing_points))
        return self.inducing_points

    def start(self, x: torch.Tensor, y: torch.Tensor, guide=None, seed: int = 0,
              progress: bool = True) -> None:
        """The start ``fit`` gives an SVGP on a table (GPyTorch's examples do the first half):
        inducing inputs at the k-means centres of ``x`` (:meth:`initialize_inducing`), then, for
        the Gaussian likelihood and a q(u) guide (``cholesky``, ``mean-field-u``, ``delta``), q(u)
        at Titsias' optimum for the current hyperparameters (:meth:`optimal_q_u`): the
        collapsed bound's q(u), from which SVI refines kernel, noise and Z. Call it before
        :func:`~experiments.engine.training.fit`."""
        self.initialize_inducing(x, method="kmeans", seed=seed, progress=progress)
        if self.likelihood.conjugate and guide is not None and guide.has_q_u:
            x = self._check_x(x)
            guide(x[:2], self._check_y(x, y)[:2])
            guide.set_q_u(*self.optimal_q_u(x, y))

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[-1] != self.input_dim:
            raise ValueError(f"x must have shape (N, {self.input_dim}), got {tuple(x.shape)}")
        return x.to(device=self.inducing_points.device, dtype=self.dtype)

    def _check_y(self, x: torch.Tensor, y: torch.Tensor | None):
        if y is None:
            return None
        if y.shape != x.shape[:1]:
            raise ValueError(f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")
        if self.likelihood.integer_targets:
            if y.dtype not in (torch.int64, torch.int32):
                raise ValueError(f"softmax labels must be integers, got dtype {y.dtype}")
            return y.to(self.inducing_points.device)
        return y.to(device=self.inducing_points.device, dtype=self.dtype)

    def example_data(self, num_data: int, generator: torch.Generator | None = None):
        x = torch.randn(num_data, self.input_dim, generator=generator, dtype=self.dtype)
        return x, self.likelihood.example_targets(x.sum(-1).sin(), generator)

    # ------------------------------------------------------------------ the model
    def prior_u(self, cond: Conditional) -> dist.Distribution:
        """p(v) = N(0, I) (whitened) or p(u) = N(m(Z), K_ZZ), batch (L,), event (M,), as one
        ``(L, M)`` event."""
        shape = (self.num_latents, self.num_inducing)
        if self.whiten:  # O(M²) log-density and KL (see WhitenedPrior)
            return WhitenedPrior.standard(shape, cond.L.dtype, cond.L.device).to_event(1)
        return dist.MultivariateNormal(cond.mean_z.expand(shape),
                                       scale_tril=cond.L.expand(shape + cond.L.shape[-1:])
                                       ).to_event(1)

    def conditional(self, x: torch.Tensor) -> Conditional:
        """Kernel algebra of one step: chol(K_ZZ), projections and the conditional variance."""
        z = self.inducing_points
        # inputs_equal: GPyTorch would ask torch.equal(x1, x2), a host read, in every evaluation
        with inputs_equal(True):
            Kzz = self.kernel(z).to_dense()
            kxx = self.kernel(x, diag=True)
        L = stable_cholesky(Kzz, self.jitter)
        # K_ZX as the transpose of a row-major K_XZ: column-major, the layout LAPACK's triangular
        # solve works in, so neither the solve nor its backward copies the (M, N) matrix
        with inputs_equal(False):
            Kzx = self.kernel(x, z).to_dense().mT
        A = torch.linalg.solve_triangular(L, Kzx, upper=False)  # (M, N)
        var = (kxx - A.pow(2).sum(-2)).clamp_min(1e-10)
        proj = A if self.whiten else torch.linalg.solve_triangular(L.transpose(-1, -2), A,
                                                                   upper=True)
        mean_x = self.mean_module(x)
        mean_z = self.mean_module(z).unsqueeze(0) if not self.whiten else \
            mean_x.new_zeros(1, self.num_inducing)
        return Conditional(proj=proj, A=A, var=var, mean_x=mean_x, mean_z=mean_z, L=L,
                           whiten=self.whiten)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = self._check_x(x)
        return self.observe(x, self._check_y(x, y), lambda: self.data_plate(x))

    def observe(self, x: torch.Tensor, y: torch.Tensor | None, data_plate) -> torch.Tensor:
        """The model from checked kernel inputs on: the hook of :mod:`models.dkl`, whose inputs
        are a feature extractor's outputs.

        :param torch.Tensor x: (..., N, D) kernel inputs; dims left of N (a Bayesian feature
            extractor's particles) give every particle its own kernel matrices against Z.
        :param y: (N,) checked targets or ``None``.
        :param data_plate: ``data_plate()`` opens the data plate over the N rows (the calling
            model's own, with its ``num_data``); it is called after ``u`` is sampled, since a
            plate records its subsample site when it is made.
        """
        cond = self.conditional(x)
        u = pyro.sample("u", self.prior_u(cond))
        loc, var = svgp_conditional(cond, u, name="u")  # (..., N, L)
        with data_plate():  # closed form for a conjugate likelihood, one draw of f otherwise
            return self.likelihood.expected_log_prob(loc, var, y)

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def predict(self, x: torch.Tensor, guide, chunk_size: int = 4096) -> dict[str, torch.Tensor]:
        """Closed-form predictive moments under the guide's q(u), ``chunk_size`` rows at a time.

        :param torch.Tensor x: (N, D) inputs, on any device (moved to the model's).
        :returns: ``f_mean``, ``f_var`` of shape (N, L) and, for the Gaussian likelihood,
            ``y_mean``, ``y_var`` of shape (N,) (noise variance added); all on the CPU.
        """
        x = self._check_x(x)
        if not torch.isfinite(x).all():
            raise ValueError("x holds NaN or inf; drop or impute those rows before predicting")
        q_loc, q_tril = guide.q_u()
        means, variances = [], []
        for start in range(0, x.shape[0], chunk_size):
            cond = self.conditional(x[start:start + chunk_size])
            m, v = marginal_moments(cond, q_loc, q_tril)
            means.append(m.cpu())
            variances.append(v.cpu())
        out = {"f_mean": torch.cat(means), "f_var": torch.cat(variances)}
        moments = self.likelihood.predictive_moments(out["f_mean"], out["f_var"])
        if moments is not None:
            out["y_mean"], out["y_var"] = moments
        return out

    @torch.no_grad()
    def optimal_q_u(self, x: torch.Tensor, y: torch.Tensor, chunk_size: int = 8192
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Titsias' optimal :math:`q(u)` for the Gaussian likelihood on the full data
        (hyperparameters fixed), in the model's parameterisation. Whitened:

        .. math:: S = (I + \sigma^{-2} A A^\top)^{-1},\qquad \mu = \sigma^{-2} S A (y - m(X)).

        At this q(u) the ELBO equals Titsias' collapsed bound, and with Z = X the exact log
        marginal likelihood. :math:`AA^\top` and :math:`A(y - m)` are accumulated ``chunk_size``
        rows at a time (O(M² + M·chunk) memory, O(N M²) time), so it also serves as the
        initialisation of q(u) on large data ("collapsed" start: Adam on q(u) from the prior
        needs thousands of steps when the noise is small against the signal).
        Returns ``(loc (1, M), scale_tril (1, M, M))``.
        """
        if not self.likelihood.conjugate:
            raise ValueError("optimal_q_u is closed-form for the gaussian likelihood only")
        x = self._check_x(x)
        y = self._check_y(x, y)
        # the sums and the solves in float64: the precision's eigenvalues reach N/sigma^2, which
        # float32 sums over 10^5 rows round away (the result is cast back to the model's dtype)
        noise_var = self.likelihood.noise_std.detach().double() ** 2
        eye = torch.eye(self.num_inducing, dtype=torch.float64, device=x.device)
        prec, rhs = eye.clone(), eye.new_zeros(self.num_inducing)
        for start in range(0, x.shape[0], chunk_size):
            cond = self.conditional(x[start:start + chunk_size])
            A = cond.A.double()
            prec += A @ A.T / noise_var
            rhs += A @ (y[start:start + chunk_size] - cond.mean_x).double() / noise_var
        S = torch.cholesky_inverse(torch.linalg.cholesky(prec))
        loc = S @ rhs
        tril = torch.linalg.cholesky(S)
        if not self.whiten:  # u = m(Z) + L v: mean and covariance through L
            L = cond.L.double()
            loc = self.mean_module(self.inducing_points).double() + L @ loc
            tril = torch.linalg.cholesky(L @ S @ L.T)
        return loc.unsqueeze(0).to(self.dtype), tril.unsqueeze(0).to(self.dtype)

    def capture_blockers(self) -> list[str]:
        out = list(self.likelihood.capture_blockers())
        comparing = host_comparing_kernels(self.kernel)
        if comparing:
            out.append(f"its kernel has parts that compare their inputs on the host in every "
                       f"evaluation ({', '.join(comparing)}: GPyTorch calls torch.equal in their "
                       "forward), which cannot be captured: use sums of rbf/matern/rq/periodic "
                       "terms")
        return out

    def hyperparameters(self) -> dict:
        """Kernel hyperparameters, the likelihood's noise and the mean constant, for reports."""
        out = hyperparameters(self.kernel)
        noise = getattr(self.likelihood, "noise_std", None)
        if noise is not None:
            out["noise_std"] = float(noise.detach())
        if hasattr(self.mean_module, "constant"):
            out["mean_constant"] = float(self.mean_module.constant.detach().reshape(-1)[0])
        return out

