r"""One prediction API for every family: :func:`predict` returns a :class:`Prediction`.

For inputs :math:`x_n` and a trained pair (model :math:`p(y \mid f)`, guide :math:`q(\theta)`),
the predictive distribution is :math:`p(y_n \mid x_n) = \mathbb E_{q(\theta)}[p(y_n \mid
f_\theta(x_n))]`. :func:`predict` reports its moments, split by the law of total variance,

.. math::
    \mathbb E[y_n] = \mathbb E_q[\mu(f_n)], \qquad
    \mathrm{Var}[y_n] = \underbrace{\mathrm{Var}_q[\mu(f_n)]}_{\text{epistemic}}
        + \underbrace{\mathbb E_q[\sigma^2(f_n)]}_{\text{aleatoric}},

with :math:`\mu(f) = \mathbb E[y \mid f]` and :math:`\sigma^2(f) = \mathrm{Var}[y \mid f]` of
the likelihood (:mod:`models.likelihoods`):

* ``gaussian``: :math:`\mu = f`, :math:`\sigma^2` the learned noise variance;
* ``heteroscedastic-gaussian``: :math:`\mu = f_1`,
  :math:`\sigma^2 = (s_{\min} + \mathrm{softplus}(f_2))^2`;
* ``student-t``: :math:`\mu = f`, :math:`\sigma^2 = s^2 \nu / (\nu - 2)` (``inf`` for
  :math:`\nu \le 2`);
* ``bernoulli``: :math:`\mu = p = \sigma(f)` (y in {0, 1}), :math:`\sigma^2 = p (1 - p)`;
* ``categorical``: per class, for the one-hot y, :math:`\mu_c = p_c = \mathrm{softmax}(f)_c`,
  :math:`\sigma^2_c = p_c (1 - p_c)`.

The expectations over :math:`q` are Monte Carlo averages over S joint draws
:math:`\theta_s \sim q` (``num_samples``), with the population variance
:math:`\mathrm{Var}_q[a] \approx \frac1S\sum_s (a_s - \bar a)^2`, so that ``epistemic +
aleatoric = variance`` exactly and ``variance`` is the variance of the S-component mixture.
For classification ``probs`` :math:`\bar p_{nc} = \frac1S\sum_s p_{snc}` is the predictive
distribution itself (and ``mean``); the entropy split of it is
:func:`~experiments.engine.metrics.mutual_information`.

Given targets ``y``, ``log_likelihood`` is the mean log predictive density

.. math:: \mathrm{LL} = \frac1N\sum_n \log \frac1S \sum_s p(y_n \mid f_{\theta_s}(x_n))

(log-mean-exp over draws, :func:`~experiments.engine.metrics.log_mean_exp`; for classification
:math:`\log \bar p_{n y_n}`, minus the NLL).

Per family:

* ``bnn`` / ``mlp`` / ``rff-gp`` (and any model whose ``f`` site feeds a likelihood of the table):
  Monte Carlo through :func:`~experiments.engine.predictive.posterior_predictive` (chunks of
  ``sample_chunk`` draws and ``data_chunk`` rows), from the guide's predictive form
  (:func:`~experiments.engine.predictive.posterior_guide`: the ``laplace`` guide becomes the
  Gaussian at its mode, which needs the training data: ``train_data=(x, y)``).
* ``svgp``: the closed-form marginal :math:`q(f_n) = \mathcal N(m_n, v_n)` of
  :meth:`models.svgp.SVGP.predict`. Gaussian likelihood: all in closed form, ``epistemic`` =
  :math:`v_n`, ``aleatoric`` = :math:`\sigma^2`, and
  :math:`\mathrm{LL} = \frac1N\sum_n \log\mathcal N(y_n \mid m_n, v_n + \sigma^2)`. Other
  likelihoods: Monte Carlo over S independent draws :math:`f_{sn} \sim \mathcal N(m_n, v_n)`
  per point (exact for per-point quantities; the draws are not coherent functions).
* ``vae``: the reconstruction mean :math:`\mathbb E_{q(z \mid x)}[g_\theta(z)]` (the decoder
  mean parameter, averaged over S codes) and, as ``log_likelihood``, the importance-weighted
  bound :math:`\mathcal L_S(x) \le \log p(x)` with k = S (:func:`~experiments.engine.iwae.
  iwae_bound`); the targets are the inputs, so ``y`` must be ``None``. No variance is reported.

Inputs may live on any device (they are moved to the model's); every tensor of the result is on
the CPU. Bad inputs (wrong shape, NaN or inf, labels outside the classes) are a
:class:`ValueError` naming the value and the expected form.
"""

from __future__ import annotations

from typing import Any

import torch

from experiments.engine import metrics as M
from guides.base import ZooGuide, has_q_u
from models.base import ZooModel, module_device
from models.likelihoods import LIKELIHOODS, PREDICTIVE_KINDS

from .mixture import Ensemble, mixture
from .prediction import Prediction  # (re-exported: Prediction's home until now)
from .predictive import posterior_guide, posterior_predictive

__all__ = ["Prediction", "needs_train_data", "predict", "predict_ensemble"]

#: the likelihood classes :func:`predict` knows the moments of: those of a predictive
#: :attr:`~models.likelihoods.Likelihood.kind`
PREDICTABLE = tuple(dict.fromkeys(c for c in LIKELIHOODS.values() if c.kind in PREDICTIVE_KINDS))


# ------------------------------------------------------------------------------------------------
# entry point


@torch.no_grad()
def predict(model, guide, x: Any, num_samples: int = 100, y: Any = None,
            return_samples: bool = False, *, train_data: tuple | None = None,
            seed: int | None = None, sample_chunk: int = 100,
            data_chunk: int | None = None) -> Prediction:
    """The predictive distribution of a trained pair at inputs ``x`` (module docstring).

    :param model: a zoo model (``bnn``, ``mlp``, ``rff-gp``, ``svgp``, ``vae``, or any model
        with a ``likelihood`` of a kind in :data:`~models.likelihoods.PREDICTIVE_KINDS` and an ``f`` site),
        or an :class:`~experiments.engine.ensemble.Ensemble` (with ``guide=None``: the mixture of
        its members, :func:`~experiments.engine.ensemble.predict_ensemble`; ``num_samples`` per
        member).
    :param guide: its trained guide (``None`` for an ensemble).
    :param x: (N, D) inputs (VAE: images (N, H, W) or (N, D)); a tensor on any device or an
        array-like.
    :param int num_samples: S, draws of the latents (SVGP: of f, for non-Gaussian likelihoods;
        VAE: importance samples of the bound).
    :param y: (N,) targets for ``log_likelihood``: real numbers (regression), 0/1 (Bernoulli),
        integer classes in [0, C) (categorical).
    :param bool return_samples: keep the (S, N, ...) per-draw means in ``samples``.
    :param tuple train_data: the training ``(x, y)``, for guides whose predictive form is built
        from it (the ``laplace`` guide's Hessian).
    :param int seed: seed the random draws first (``None``: use the current random state).
    :param int sample_chunk: draws per vectorised model evaluation.
    :param int data_chunk: rows per model evaluation (``None``: all at once).
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    if isinstance(model, Ensemble):
        if guide is not None:
            raise ValueError("an Ensemble carries its members' guides: call predict(ensemble, "
                             f"None, x, ...), got guide={type(guide).__name__}")
        return predict_ensemble(model, x, num_samples, y, return_samples, train_data=train_data,
                                seed=seed, sample_chunk=sample_chunk, data_chunk=data_chunk)
    if guide is None:
        raise ValueError(f"guide is None: pass the trained guide of this {type(model).__name__} "
                         "(guide=None is only for an Ensemble, which holds its members' guides)")
    from models.svgp import SVGP
    from models.vae import VAE

    x = _inputs(model, x)
    if isinstance(model, VAE):
        if y is not None:
            raise ValueError("the VAE's targets are its inputs: call predict(model, guide, x) "
                             "without y (log_likelihood is the importance-weighted bound of x)")
        return _predict_vae(model, guide, x, num_samples, return_samples, seed, sample_chunk,
                            data_chunk)
    lik = getattr(model, "likelihood", None)
    if getattr(lik, "kind", None) not in PREDICTIVE_KINDS:
        raise ValueError(f"predict knows the likelihoods {_names(PREDICTABLE)}; "
                         f"this {type(model).__name__} has {type(lik).__name__}")
    y = _targets(lik, y, x.shape[0])
    if isinstance(model, SVGP):
        return _predict_svgp(model, guide, x, y, num_samples, return_samples, seed)
    guide = _predictive_guide(guide, train_data, _first_float(model))
    f = posterior_predictive(model, guide, x, num_samples=num_samples, return_sites=("f",),
                             sample_chunk=sample_chunk, data_chunk=data_chunk, seed=seed)["f"]
    return _from_draws(lik, f, y, return_samples)


# ------------------------------------------------------------------------------------------------
# checks


def _names(classes) -> str:
    return ", ".join(c.__name__ for c in classes)


def _first_float(model) -> torch.Tensor | None:
    for t in (*model.parameters(), *model.buffers()):
        if t.is_floating_point():
            return t
    return None


def _inputs(model, x) -> torch.Tensor:
    """``x`` as a floating tensor on the model's device and in its dtype, its shape and values
    checked."""
    if x is None:
        raise ValueError("x is None; pass the (N, D) inputs to predict at")
    try:
        x = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"x must be a tensor or an array of numbers, got {type(x).__name__} "
                         f"({exc})") from None
    like = _first_float(model)
    dtype = like.dtype if like is not None else torch.get_default_dtype()
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError(f"x must hold real numbers, got dtype {x.dtype}")
    width = model.in_features if isinstance(model, ZooModel) else None
    if width is not None and (x.dim() != 2 or x.shape[1] != width):
        raise ValueError(f"x must have shape (N, {width}) for this {type(model).__name__} "
                         f"(one row per point, {width} feature(s)), got shape {tuple(x.shape)}")
    if x.dim() == 0 or x.shape[0] == 0:
        raise ValueError(f"x is empty (shape {tuple(x.shape)}); need at least one row")
    x = x.to(dtype=dtype)
    bad = ~torch.isfinite(x).reshape(x.shape[0], -1).all(-1)
    if bad.any():
        rows = bad.nonzero()[:5, 0].tolist()
        raise ValueError(f"x holds NaN or inf in {int(bad.sum())} row(s) (first: {rows}); drop "
                         "or impute them before predicting")
    return x.to(like.device) if like is not None else x


def _targets(lik, y, n: int) -> torch.Tensor | None:
    """``y`` checked against the likelihood: (n,) finite reals, 0/1, or classes in [0, C)."""
    if y is None:
        return None
    y = torch.as_tensor(y).detach().cpu()
    if y.dim() != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape (N,) = ({n},), one target per row of x, got shape "
                         f"{tuple(y.shape)}")
    if y.is_floating_point() and not torch.isfinite(y).all():
        rows = (~torch.isfinite(y)).nonzero()[:5, 0].tolist()
        raise ValueError(f"y holds NaN or inf at rows {rows}; drop them before scoring")
    return lik.score_targets(y)


def needs_train_data(guide) -> bool:
    """Whether ``guide`` builds its predictive form from the training data (it overrides
    :meth:`~guides.base.ZooGuide.predictive_guide`, as the ``laplace`` guide does)."""
    return isinstance(guide, ZooGuide) and \
        type(guide).predictive_guide is not ZooGuide.predictive_guide


def _predictive_guide(guide, train_data, like: torch.Tensor | None):
    """The guide's predictive form (:func:`posterior_guide`); a guide that builds it from the
    training data needs ``train_data`` (moved to the device of ``like``, the model's first
    floating tensor, floating data also to its dtype)."""
    if needs_train_data(guide) and train_data is None:
        raise ValueError(f"the {type(guide).__name__} guide predicts from a form built on the "
                         "training data (the Laplace approximation's Hessian): pass "
                         "train_data=(x_train, y_train)")
    data = [torch.as_tensor(t) for t in (train_data or ())]
    if like is not None:
        data = [t.to(device=like.device, dtype=like.dtype if t.is_floating_point() else t.dtype)
                for t in data]
    with torch.enable_grad():  # the Laplace approximation differentiates the log joint
        return posterior_guide(guide, *data)


# ------------------------------------------------------------------------------------------------
# from draws of f


def _from_draws(lik, f: torch.Tensor, y: torch.Tensor | None, return_samples: bool,
                num_samples: int | None = None) -> Prediction:
    """The :class:`Prediction` from S draws of the likelihood's input ``f`` (S, N, L) (CPU)."""
    s = f.shape[0]
    if lik.kind != "regression":
        p = lik.class_probabilities(f)  # (S, N, K): K = 2 for "binary"
        probs = p.mean(0)
        epistemic = p.var(0, unbiased=False)
        aleatoric = (p * (1 - p)).mean(0)
        binary = lik.kind == "binary"  # (mean, variances: of the positive class)
        mean = probs[:, 1] if binary else probs
        if binary:
            epistemic, aleatoric = epistemic[:, 1], aleatoric[:, 1]
        ll = None if y is None else _mc_log_density(lik, f, y)
        return Prediction("classification", mean=mean, variance=epistemic + aleatoric,
                          epistemic=epistemic, aleatoric=aleatoric, probs=probs,
                          samples=p if return_samples else None, log_likelihood=_mean(ll),
                          log_likelihood_per_point=ll, num_samples=num_samples or s)
    loc = f[..., 0]  # (S, N)
    aleatoric = lik.noise_variance(f)
    ll = None
    if y is not None:  # closed form per draw for a Gaussian observation model, Monte Carlo else
        scale = lik.noise_scale(f)
        ll = _mc_log_density(lik, f, y) if scale is None else \
            M.gaussian_log_likelihood_per_point(loc, scale, y)
    epistemic = loc.var(0, unbiased=False)
    return Prediction("regression", mean=loc.mean(0), variance=epistemic + aleatoric,
                      epistemic=epistemic, aleatoric=aleatoric,
                      samples=loc if return_samples else None, log_likelihood=_mean(ll),
                      log_likelihood_per_point=ll, num_samples=num_samples or s)


def _mc_log_density(lik, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """:math:`\\log \\frac1S\\sum_s p(y_n \\mid f_{sn})` per point: (N,), on the CPU."""
    dev = module_device(lik)
    f = f.to(dev)
    y = y.to(device=dev, dtype=f.dtype if y.is_floating_point() else y.dtype)
    lp = lik.distribution(f).log_prob(y).cpu()  # (S, N)
    return M.log_mean_exp(lp, dim=0)


def _mean(ll: torch.Tensor | None) -> float | None:
    return None if ll is None else float(ll.mean())


# ------------------------------------------------------------------------------------------------
# families with their own route


def _predict_svgp(model, guide, x, y, num_samples, return_samples, seed) -> Prediction:
    """Closed form for the Gaussian likelihood; Monte Carlo over the marginal q(f_n) else."""
    if not has_q_u(guide):
        raise ValueError(f"the svgp predicts from a guide on its inducing values (cholesky, "
                         f"mean-field-u, delta), got {type(guide).__name__}")
    out = model.predict(x, guide)
    f_mean, f_var = out["f_mean"], out["f_var"]  # (N, L)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None

    def draws():
        eps = torch.randn((num_samples, *f_mean.shape), generator=gen, dtype=f_mean.dtype)
        return f_mean + f_var.sqrt() * eps  # (S, N, L)

    if "y_mean" in out:  # closed form (Likelihood.predictive_moments: the Gaussian)
        mean, variance = out["y_mean"], out["y_var"]
        epistemic = f_var[:, 0]
        # y_var = f_var + σ², the very sum: epistemic + aleatoric == variance
        aleatoric = model.likelihood.noise_variance(f_mean.unsqueeze(0))
        ll = None if y is None else M.gaussian_log_likelihood_per_point(mean, variance.sqrt(), y)
        return Prediction("regression", mean=mean, variance=variance, epistemic=epistemic,
                          aleatoric=aleatoric,
                          samples=draws()[..., 0] if return_samples else None,
                          log_likelihood=_mean(ll), log_likelihood_per_point=ll, num_samples=0)
    return _from_draws(model.likelihood, draws(), y, return_samples, num_samples)


def _predict_vae(model, guide, x, num_samples, return_samples, seed, sample_chunk, data_chunk
                 ) -> Prediction:
    """Reconstruction mean over S codes z ~ q(z|x), and the IWAE bound with k = S."""
    from .iwae import iwae_bound

    f = posterior_predictive(model, guide, x, num_samples=num_samples, return_sites=("f",),
                             sample_chunk=sample_chunk, data_chunk=data_chunk, seed=seed)["f"]
    shape = (f.shape[0], *x.shape)
    ll = iwae_bound(model, guide, x, k=num_samples, k_chunk=sample_chunk,
                    data_chunk=data_chunk or 100, reduce=False)
    return Prediction("reconstruction", mean=f.mean(0).reshape(x.shape),
                      samples=f.reshape(shape) if return_samples else None,
                      log_likelihood=_mean(ll), log_likelihood_per_point=ll,
                      num_samples=num_samples)


# ------------------------------------------------------------------------------------------------
# ensembles


def predict_ensemble(ens, x, num_samples: int = 100, y=None, return_samples: bool = False, *,
                     train_data: tuple | None = None, seed: int | None = None,
                     sample_chunk: int = 100, data_chunk: int | None = None) -> Prediction:
    """The mixture predictive of an :class:`Ensemble` at ``x`` (module docstring).

    Each member goes through :func:`~experiments.engine.predict.predict` with ``num_samples``
    draws (so the :class:`~experiments.engine.predict.Prediction` has ``num_samples`` = K times
    that, 0 for closed-form members) and, with ``seed``, its draws seeded by ``seed + k``; the
    results are combined by :func:`mixture`. ``train_data`` goes to every member (the
    ``laplace`` guide's Hessian). Regression and classification; a VAE member is refused.
    """
    from models.vae import VAE

    if not isinstance(ens, Ensemble):
        raise TypeError(f"predict_ensemble needs an Ensemble (train_ensemble, ensemble or "
                        f"Ensemble([(model, guide), ...])), got {type(ens).__name__}")
    for i, (model, _) in enumerate(ens):
        if isinstance(model, VAE):
            raise ValueError(f"ensemble member {i} is a VAE: an ensemble predicts p(y|x) for "
                             "regression or classification; predict a VAE on its own with "
                             "predict(model, guide, x)")
    preds = [predict(model, guide, x, num_samples, y, return_samples, train_data=train_data,
                     seed=None if seed is None else seed + i, sample_chunk=sample_chunk,
                     data_chunk=data_chunk)
             for i, (model, guide) in enumerate(ens)]
    return mixture(preds)
