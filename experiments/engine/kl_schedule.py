r"""Per-minibatch weighting of the KL (complexity) term, implemented once as a Pyro effect handler.

Blundell et al. (2015, §3.4) split an epoch's cost over its M minibatches as
:math:`F_i = \pi_i\,\mathrm{KL}[q(w)\,\|\,p(w)] - \mathbb E_q[\log p(\mathcal D_i \mid w)]` with
:math:`\sum_i \pi_i = 1`: either uniform :math:`\pi_i = 1/M`, or
:math:`\pi_i = 2^{M-i} / (2^M - 1)` (i = 1..M), so the prior dominates the first minibatches of an
epoch and the data the later ones.

Pyro's data plate already scales the minibatch log-likelihood by :math:`N/B`, so one SVI step
estimates the *full-data* loss :math:`\mathrm{KL} - \frac{N}{B}\log p(\mathcal D_i\mid w)`.
To keep that scale, the handler multiplies every latent site outside the data plate (in model and
guide alike, so both :math:`\log p(w)` and :math:`\log q(w)`, or the closed-form KL, are scaled) by
:math:`M\pi_i`; uniform weighting is then the unscaled ELBO.
"""

from __future__ import annotations

import math

import torch
from pyro.poutine.messenger import Messenger

from models.base import is_subsample

SCHEDULES = ("uniform", "blundell")


def kl_weights(num_batches: int, schedule: str = "uniform") -> list[float]:
    """The weights :math:`\\pi_1..\\pi_M` (they sum to one).

    Blundell's weights are computed in log space: :math:`2^M` overflows a double for M > 1023.
    """
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    if schedule == "uniform":
        return [1.0 / num_batches] * num_batches
    if schedule == "blundell":
        m = num_batches
        # log pi_i = (M - i) log 2 - log(2^M - 1) = -i log 2 - log(1 - 2^-M)
        log_norm = math.log(-math.expm1(-m * math.log(2.0)))
        return [math.exp(-i * math.log(2.0) - log_norm) for i in range(1, m + 1)]
    raise ValueError(f"kl schedule must be one of {SCHEDULES}, got {schedule!r}")


class KLScale(Messenger):
    """Multiply the log-density of latent sites outside the ``"data"`` plate by ``scale``.

    Used with ``scale = M * pi_i`` for the minibatch KL schedule and, for local latents too
    (``include_local=True``), as a KL warm-up / annealing factor. ``scale`` is a number (checked
    >= 0) or a 0-d tensor on the model's device, which a captured CUDA graph reads at replay.
    """

    def __init__(self, scale, include_local: bool = False):
        super().__init__()
        if torch.is_tensor(scale):  # a device tensor (a CUDA graph's static input): not read here
            self.scale = scale
        else:
            if not scale >= 0:
                raise ValueError(f"KL scale must be >= 0, got {scale!r}")
            self.scale = float(scale)
        self.include_local = include_local

    def _pyro_sample(self, msg):
        if msg["is_observed"] or is_subsample(msg):
            return
        if not self.include_local and any(f.name == "data" for f in msg["cond_indep_stack"]):
            return
        msg["scale"] = self.scale * msg["scale"]
