r"""The importance-weighted bound (Burda et al. 2016) of a model with local latents, in chunks.

For one datapoint x and a guide :math:`q(z \mid x)`, with :math:`z_1..z_k \sim q` independent,

.. math::
    \mathcal L_k(x) = \mathbb E\Big[\log \frac1k \sum_{i=1}^k w_i\Big], \qquad
    w_i = \frac{p(x, z_i)}{q(z_i \mid x)},

satisfies :math:`\mathcal L_1 = \mathrm{ELBO} \le \mathcal L_k \le \mathcal L_{k+1} \le \log p(x)`
and :math:`\mathcal L_k \to \log p(x)` as :math:`k \to \infty` (for bounded weights). With
k = 5000 it is the test-NLL estimate of the IWAE paper: NLL = :math:`-\frac1N\sum_n \mathcal L_k(x_n)`.

The log-weights come from traces: the guide is run under a particle plate of size ``k_chunk`` (left
of the data plate) and the model replayed on its samples; the log-weight of datapoint n is the sum
of the *unscaled* log-densities of every model site minus every guide site inside the data plate (the
data plate's minibatch scale N/B is for training, not for a per-datapoint bound). The sum over k is
a running log-sum-exp in float64 over chunks of ``k_chunk`` samples and ``data_chunk`` rows, so the
memory is O(k_chunk x data_chunk x D) whatever k is.
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine

from models.base import is_subsample, module_device

PARTICLE_PLATE = "_iwae_particles"


def _site_log_probs(trace, k: int, n: int) -> torch.Tensor:
    """Sum over sample sites of their unscaled log-density, as a (k, n) tensor."""
    total = 0.0
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or is_subsample(site):
            continue
        if site["infer"].get("_deterministic"):
            continue  # pyro.deterministic: a masked Delta, contributes nothing
        if not any(f.name == "data" for f in site["cond_indep_stack"]):
            raise ValueError(f"site {name!r} is outside the data plate: the importance-weighted bound "
                             "here is per datapoint, for models whose latents are all local")
        lp = site["fn"].log_prob(site["value"])
        if site["mask"] is not None:
            lp = lp * site["mask"]
        total = total + lp.double().expand(k, n)
    if isinstance(total, float):
        raise ValueError("the trace has no sample site inside the data plate")
    return total


@torch.no_grad()
def log_weights(model, guide, x: torch.Tensor, k: int) -> torch.Tensor:
    """Log importance weights :math:`\\log p(x_n, z_{in}) - \\log q(z_{in} \\mid x_n)`: (k, N) float64."""
    n = x.shape[0]
    with pyro.plate(PARTICLE_PLATE, k, dim=-2):
        guide_trace = poutine.trace(guide).get_trace(x)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
    return _site_log_probs(model_trace, k, n) - _site_log_probs(guide_trace, k, n)


@torch.no_grad()
def iwae_bound(model, guide, x: torch.Tensor, k: int = 5000, k_chunk: int = 500,
               data_chunk: int = 100, reduce: bool = True) -> torch.Tensor | float:
    """One Monte Carlo estimate of :math:`\\mathcal L_k(x_n)` per datapoint (nats).

    :param torch.Tensor x: (N, ...) data, on any device (moved to the model's); the bound is
        returned on the CPU.
    :param int k: importance samples per datapoint (k = 1 is the ELBO estimate).
    :param int k_chunk: samples per model evaluation.
    :param int data_chunk: rows per model evaluation.
    :param bool reduce: return the mean over datapoints as a float (else the (N,) float64 tensor).
    """
    if k < 1 or k_chunk < 1 or data_chunk < 1:
        raise ValueError(f"k, k_chunk and data_chunk must be >= 1, got {k}, {k_chunk}, {data_chunk}")
    if isinstance(model, torch.nn.Module):
        x = x.to(module_device(model))
    # evaluation mode for modules (dropout etc.); plain callables are used as they are
    modules = [m for m in (model, guide) if isinstance(m, torch.nn.Module)]
    was_training = [m.training for m in modules]
    for m in modules:
        m.eval()
    out = []
    try:
        # the model checks its data itself; Pyro's per-site support checks would cost a pass over
        # every (k, n, D) tensor
        with pyro.validation_enabled(False):
            for start in range(0, x.shape[0], data_chunk):
                xb = x[start:start + data_chunk]
                acc = torch.full((xb.shape[0],), -math.inf, dtype=torch.float64, device=x.device)
                done = 0
                while done < k:
                    kc = min(k_chunk, k - done)
                    lw = log_weights(model, guide, xb, kc)  # (kc, n)
                    acc = torch.logaddexp(acc, torch.logsumexp(lw, dim=0))
                    done += kc
                out.append((acc - math.log(k)).cpu())
    finally:
        for m, mode in zip(modules, was_training):
            m.train(mode)
    bound = torch.cat(out)
    return float(bound.mean()) if reduce else bound


def iwae_bounds(model, guide, x: torch.Tensor, ks=(1, 5, 50, 5000), **kwargs) -> dict[str, float]:
    """``{"iwae_k": mean bound}`` for each k, plus ``"nll_k" = -bound`` (nats per datapoint)."""
    out: dict[str, float] = {}
    for k in ks:
        b = iwae_bound(model, guide, x, k=int(k), **kwargs)
        out[f"iwae_{k}"] = b
        out[f"nll_{k}"] = -b
    return out


__all__ = ["iwae_bound", "iwae_bounds", "log_weights"]
