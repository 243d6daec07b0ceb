r"""The guide half of the contract, written down: :class:`ZooGuide`.

``fit`` and the predictive call these hooks on a guide, and find them by ``isinstance(guide,
ZooGuide)``, never by looking for attributes or reading signatures:

- :meth:`ZooGuide.elbo_context` ``(closed_form_kl: bool = False)``: a context manager (a Pyro effect
  handler) that ``fit`` enters around every loss evaluation. ``closed_form_kl`` is ``True`` when the
  ELBO is :class:`~experiments.engine.elbo.MeanFieldELBO` (KL in closed form where torch registers
  it, latent values read nowhere else), so that a guide may skip work only a Monte Carlo KL needs
  (the mean-field guide skips the weight draw under local reparameterisation). Default: none.
- :meth:`ZooGuide.predictive_guide` ``(*data)``: the guide to draw predictions from after training.
  Default: the guide itself; the Laplace guide returns the Gaussian at its mode.
- :meth:`ZooGuide.natural_gradient_parameters` ``()``: parameters that ``fit`` must step by
  natural-gradient descent, i.e. plain ``torch.optim.SGD(params, lr=guide.ngd_lr)``, and keep
  out of the configured optimiser. Default: none; the SVGP guide ``cholesky`` with
  ``natural_gradient=True`` returns its natural parameters of q(u).

- :meth:`ZooGuide.numerical_problems` ``()``: what about the guide's current state no float
  computation can represent (``fit`` stops with the reasons after an epoch). Default: none; the
  SVGP's q(u) guides report a Cholesky factor with a condition number beyond float precision.
- :meth:`ZooGuide.fit_advice` ``(model, config)``: the settings that help this pair when a fit
  goes non-finite or reports nonsense, as ``--set`` strings (``fit`` puts them in its error).

And the attributes read on a guide, declared here with their defaults:

- :attr:`ZooGuide.ngd_lr`: the step size :math:`\rho` of the natural-gradient descent on the
  parameters :meth:`~ZooGuide.natural_gradient_parameters` returns,
  :math:`\theta \leftarrow \theta - \rho\, \widetilde\nabla_\theta \mathcal L` (``None``: none).
- :attr:`ZooGuide.has_q_u`, :meth:`ZooGuide.q_u` ``()``, :meth:`ZooGuide.set_q_u` ``(loc,
  scale_tril=None)``: a guide over the inducing values of a sparse GP holds a Gaussian
  :math:`q(u) = \mathcal N(\mu_u, R R^\top)` with batch ``(L,)`` and event ``(M,)``, in the
  model's parameterisation (whitened :math:`v` or :math:`u`); ``q_u()`` returns
  ``(loc (L, M), scale_tril (L, M, M) or None for a point mass)``, from which the SVGP predicts
  in closed form, and ``set_q_u`` sets it (e.g. at Titsias' optimum,
  :meth:`models.svgp.SVGP.optimal_q_u`).
- :attr:`ZooGuide.zoo_guide_name`: the name the guide was built under by
  :func:`guides.registry.create_guide` (``None`` for a guide built otherwise); read it with
  :func:`guides.registry.guide_name_of`.

A plain Pyro guide (any callable) still trains and predicts: it just has no hooks.
"""

from __future__ import annotations

import contextlib

from models.base import _MISSING, held_attribute


class ZooGuide:
    """Mixin declaring the zoo's guide hooks (see the module docstring); put it first among the
    bases, e.g. ``class MyGuide(ZooGuide, PyroModule)``."""

    #: the name :func:`guides.registry.create_guide` built the guide under (stamped there)
    zoo_guide_name: str | None = None
    #: natural-gradient step size; set by a guide whose natural_gradient_parameters() is non-empty
    ngd_lr: float | None = None
    #: whether the guide holds a Gaussian q(u) over inducing values (q_u and set_q_u work)
    has_q_u: bool = False

    def __getattr__(self, name: str):
        value = held_attribute(self, name)  # (fit's steps: see models.base.loss_only)
        if value is not _MISSING:
            return value
        parent = getattr(super(), "__getattr__", None)  # (PyroModule's, for module guides)
        if parent is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return parent(name)

    def elbo_context(self, closed_form_kl: bool = False):
        """The effect handler ``fit`` enters around each loss evaluation (default: none)."""
        return contextlib.nullcontext()

    def predictive_guide(self, *data):
        """The guide to predict with, given the training ``data`` (default: ``self``)."""
        return self

    def natural_gradient_parameters(self) -> list:
        """Parameters stepped by natural-gradient descent (default: none).

        The contract with ``fit``'s ``setup``: it calls this after the guide's first run (lazy
        parameters exist then), leaves these parameters out of the configured optimiser and steps
        them with a second optimiser, ``torch.optim.SGD(params, lr=self.ngd_lr)`` (no momentum, no
        weight decay, not clipped), saved in the checkpoint beside the first. The guide makes
        their ``.grad`` the gradient in its expectation parameters, so that this SGD step *is*
        the natural-gradient step on the full-data-scaled loss (no num_data factor); a guide that
        returns a non-empty list must set the float attribute :attr:`ngd_lr`."""
        return []

    def q_u(self):
        """``(loc (L, M), scale_tril (L, M, M) or None)`` of q(u), for a guide with
        :attr:`has_q_u` (module docstring)."""
        raise NotImplementedError(f"{type(self).__name__} holds no q(u) over inducing values")

    def set_q_u(self, loc, scale_tril=None) -> None:
        """Set q(u) to ``N(loc, scale_tril scale_tril^T)`` (a guide with :attr:`has_q_u`)."""
        raise NotImplementedError(f"{type(self).__name__} holds no q(u) over inducing values")

    def numerical_problems(self) -> list[str]:
        """Why the guide's current state cannot be computed with in its dtype (default: none)."""
        return []

    def fit_advice(self, model, config) -> list[str]:
        """Settings that help this pair train when its loss goes non-finite, most effective first,
        each a ``--set`` string with the value to use (default: :func:`generic_advice`)."""
        return generic_advice(config)


def generic_advice(config) -> list[str]:
    """An lr of at most a tenth of the current one and at most 1e-3 (Adam's usual range; a tenth
    of an lr far out of range still diverges), then gradient clipping (``clip_norm``)."""
    lr = min(float(config.lr) / 10, 1e-3)
    tips = [f"--set fit.lr={lr:.3g} (now {float(config.lr):.3g})"]
    if config.clip_norm is None:
        tips.append("--set fit.clip_norm=10 (clip the gradient norm)")
    return tips


def fit_advice(guide, model, config) -> list[str]:
    """``guide.fit_advice(model, config)`` for a :class:`ZooGuide`, :func:`generic_advice`
    otherwise."""
    if isinstance(guide, ZooGuide):
        return guide.fit_advice(model, config)
    return generic_advice(config)


class ImplausibleSettingWarning(UserWarning):
    """A setting that is valid but almost surely not what was meant (it trains, to nonsense)."""


def warn_init_scale(init_scale: float, what: str = "init_scale") -> None:
    """Warn when a weight guide starts wider than its N(0, 1)-scale prior (std > 1): the first
    draws then make activations explode, and the fit ends far off (init_scale=1e6 gave a test
    RMSE of 7.7e11). Values of 1e-3 to 1e-1 are the usual ones."""
    import warnings

    if init_scale > 1.0:
        warnings.warn(f"{what}={init_scale:g} starts every weight with a standard deviation above "
                      "1; usual values are 1e-3 to 1e-1 (Blundell et al. start near a deterministic "
                      "net)", ImplausibleSettingWarning, stacklevel=3)


def elbo_context(guide, closed_form_kl: bool = False):
    """``guide.elbo_context(closed_form_kl=...)`` for a :class:`ZooGuide`, none for another guide."""
    if isinstance(guide, ZooGuide):
        return guide.elbo_context(closed_form_kl=closed_form_kl)
    return contextlib.nullcontext()


def predictive_guide(guide, *data):
    """``guide.predictive_guide(*data)`` for a :class:`ZooGuide`, the guide itself otherwise."""
    return guide.predictive_guide(*data) if isinstance(guide, ZooGuide) else guide


def natural_gradient_parameters(guide) -> list:
    """``guide.natural_gradient_parameters()`` for a :class:`ZooGuide`, none for another guide."""
    return guide.natural_gradient_parameters() if isinstance(guide, ZooGuide) else []


def has_q_u(guide) -> bool:
    """Whether ``guide`` is a :class:`ZooGuide` holding a q(u) over inducing values
    (:attr:`ZooGuide.has_q_u`)."""
    return isinstance(guide, ZooGuide) and guide.has_q_u
