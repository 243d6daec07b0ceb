r"""Numbers a fit can report that no correct fit can: :func:`fit` checks each epoch against them
and stops with :class:`ImplausibleFitError` instead of reporting nonsense as a finished run.

Three checks, each a necessary condition of any correct run:

* **The KL is not negative.** :math:`\mathrm{KL}[q \,\|\, p] \ge 0` for any two distributions, so
  the mean of the epoch's per-step estimates :math:`\widehat{\mathrm{KL}}_t = \hat\ell_t -
  \widehat{\mathrm{ELBO}}_t` (closed form, or Monte Carlo with the draw's noise) must not lie
  below zero by more than its Monte Carlo error:

  .. math:: \overline{\mathrm{KL}} < -\bigl(z\,\hat s / \sqrt T + \epsilon\,
            (|\bar{\mathcal L}| + |\bar\ell|)\bigr)

  is an error, with :math:`\hat s` the standard deviation of the T per-step estimates (pooled
  over earlier epochs while an epoch has fewer than :data:`MIN_STEPS` steps), :math:`z` =
  :data:`KL_Z` and :math:`\epsilon` = :data:`ROUNDING` the rounding of a float32 loss. Guides of
  point estimates (``map``, ``delta``, ``laplace``, registered with ``point_estimate=True``)
  report :math:`-\log p(w)` there, which may be negative, and are not checked.
* **The ELBO is not above what the likelihood allows.** :math:`\mathrm{ELBO} \le \mathbb E_q
  \log p(\mathcal D \mid \cdot) \le N \sup_{y, f} \log p(y \mid f)`, and the supremum is known
  for the usual likelihoods (:meth:`models.likelihoods.Likelihood.max_log_density`: 0 for class
  labels, :math:`-\log\sigma - \frac12\log 2\pi` for the Gaussian). An epoch whose mean expected
  log-likelihood exceeds it, at the larger of its values at the epoch's start and end, by more
  than :data:`LL_SLACK` nats per point (the noise scale moves within an epoch) is an error.
* **The guide's own state is representable** (:meth:`guides.base.ZooGuide.numerical_problems`),
  e.g. the Cholesky factor of the SVGP's q(u) with a condition number beyond the precision of
  its dtype, where no float computation with it means anything.

Each error names the quantity, the epoch and what to try (:func:`advice`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from guides.base import ZooGuide, fit_advice
from guides.registry import GUIDES, guide_name_of

#: z-score of the Monte Carlo error a negative mean KL may be excused by
KL_Z = 5.0
#: relative rounding of a float32 loss summed over a minibatch (the KL is a difference of two)
ROUNDING = 1e-5
#: fewest steps to estimate the KL's Monte Carlo error from (pooled over epochs when fewer)
MIN_STEPS = 8
#: nats per data point the expected log-likelihood may exceed N x max_log_density by (the
#: likelihood's parameters move within an epoch: the check is for estimates off by orders of
#: magnitude, as a broken KL's are, not for small excursions)
LL_SLACK = 1.0


class ImplausibleFitError(ArithmeticError):
    """A fit reported a value no correct fit can (a negative KL, an ELBO above the likelihood's
    maximum, a posterior factor beyond float precision): it is broken, not finished."""


@dataclass
class KLPool:
    """Per-step KL estimates pooled over epochs until there are enough for a standard error."""

    steps: int = 0
    total: float = 0.0
    squares: float = 0.0
    #: the likelihood's max_log_density at the end of the last epoch (or the start of the fit)
    last_sup: float | None = None

    def add(self, steps: int, total: float, squares: float) -> None:
        if self.steps >= MIN_STEPS:  # the previous pool was judged: start a new one
            self.steps, self.total, self.squares = 0, 0.0, 0.0
        self.steps += steps
        self.total += total
        self.squares += squares

    @property
    def mean(self) -> float:
        return self.total / self.steps

    @property
    def standard_error(self) -> float:
        var = max(self.squares / self.steps - self.mean ** 2, 0.0)
        return math.sqrt(var / max(self.steps - 1, 1))


def max_log_density(model) -> float | None:
    """``model.likelihood.max_log_density()`` where the model has such a likelihood."""
    lik = getattr(model, "likelihood", None)
    return lik.max_log_density() if hasattr(lik, "max_log_density") else None


def checks_kl(guide) -> bool:
    """Whether the history's ``kl`` of ``guide`` is a divergence (not a point estimate's
    :math:`-\\log p(w)`)."""
    name = guide_name_of(guide)
    return name is None or not GUIDES.meta(name).get("point_estimate", False)


def advice(model, guide, config) -> str:
    """What to try, for this pair (:func:`guides.base.fit_advice`), as one sentence of
    ``--set`` settings with the Python equivalents named."""
    tips = fit_advice(guide, model, config)
    return "try " + "; or ".join(tips)


def epoch_problem(state, row: dict, pool: KLPool, steps: int, kl_sums: tuple[float, float]
                  ) -> str | None:
    """Why the epoch just recorded in ``row`` cannot be right, or ``None``.

    :param pool: the pooled per-step KL estimates (updated here).
    :param steps: steps of the epoch; ``kl_sums`` their (sum, sum of squares) of per-step KLs.
    """
    epoch, loss, ll = row["epoch"], row["loss"], row["log_likelihood"]
    if checks_kl(state.guide):
        pool.add(steps, *kl_sums)
        if pool.steps >= MIN_STEPS or (state.epoch == state.config.epochs and pool.steps >= 3):
            se = pool.standard_error
            tol = KL_Z * se + ROUNDING * (abs(loss) + abs(ll))
            if pool.mean < -tol:
                return (f"epoch {epoch}: the KL term is {pool.mean:.4g} (Monte Carlo standard "
                        f"error {se:.2g} over {pool.steps} steps), but KL[q || p] >= 0: the "
                        "ELBO estimate is numerically broken, not converged")
    sup = max_log_density(state.model)
    sup, pool.last_sup = (sup if pool.last_sup is None or sup is None
                          else max(sup, pool.last_sup)), sup
    lik = getattr(state.model, "likelihood", None)
    n = getattr(state.model, "num_data", None)
    if sup is not None and n and math.isfinite(ll):
        limit = n * (sup + LL_SLACK) + ROUNDING * abs(ll)
        if ll > limit or -loss > limit:
            what = "expected log-likelihood" if ll > limit else "ELBO"
            value = ll if ll > limit else -loss
            return (f"epoch {epoch}: the {what} is {value:.4g}, above the {n} x {sup:.4g} = "
                    f"{n * sup:.4g} nats that {type(lik).__name__} allows at its current "
                    "parameters: the estimate is numerically broken")
    if isinstance(state.guide, ZooGuide):
        problems = state.guide.numerical_problems()
        if problems:
            return f"epoch {epoch}: " + "; ".join(problems)
    return None


__all__ = ["ImplausibleFitError", "KLPool", "advice", "checks_kl", "epoch_problem"]
