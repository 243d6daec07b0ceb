"""Posterior predictive by Monte Carlo, in chunks so that memory stays bounded.

:func:`posterior_predictive` draws ``num_samples`` joint samples of the latents from the guide and
runs the model on ``x`` for each, through :class:`pyro.infer.Predictive` (vectorised over a
sample plate), ``sample_chunk`` samples and ``data_chunk`` rows at a time. Weight samples are
global, so every chunk of rows sees the same function draws: samples of one column are coherent
functions, as a plotted band needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyro
import torch
from pyro.infer import Predictive

from guides.base import predictive_guide
from models.base import module_device


def posterior_guide(guide, *data):
    """The guide to predict with (:meth:`guides.base.ZooGuide.predictive_guide`): the ``laplace``
    guide is MAP during training and becomes the Gaussian at the mode here (its Hessian is
    evaluated on ``data``); every other guide is returned unchanged."""
    return predictive_guide(guide, *data)


@torch.no_grad()
def posterior_predictive(model, guide, x: torch.Tensor, num_samples: int = 100,
                         return_sites: Sequence[str] = ("obs", "f"), sample_chunk: int = 100,
                         data_chunk: int | None = None, seed: int | None = None,
                         ) -> dict[str, torch.Tensor]:
    """Samples of ``return_sites`` at inputs ``x``.

    :param torch.Tensor x: (N, ...) inputs, on any device (moved to the model's).
    :param int num_samples: S, the number of joint latent draws.
    :param return_sites: model sites to return; ``"f"`` is the noise-free function value.
    :param int sample_chunk: draws per vectorised model evaluation.
    :param int data_chunk: rows per model evaluation (``None``: all of ``x`` at once).
    :param int seed: seed Pyro's RNG first, for reproducible predictions.
    :returns: dict site -> (S, N, ...) tensor on the CPU.
    """
    if num_samples < 1 or sample_chunk < 1:
        raise ValueError(f"num_samples and sample_chunk must be >= 1, got {num_samples}, "
                         f"{sample_chunk}")
    if seed is not None:
        pyro.set_rng_seed(seed)
    x = x.to(module_device(model))
    n = x.shape[0]
    data_chunk = data_chunk or n
    sites = list(return_sites)
    out: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    done = 0
    while done < num_samples:
        s = min(sample_chunk, num_samples - done)
        # one guide draw per chunk of samples, shared across every chunk of rows
        guide_trace = _guide_samples(guide, x[: min(n, data_chunk)], s)
        cols: dict[str, list[torch.Tensor]] = {k: [] for k in sites}
        for start in range(0, n, data_chunk):
            xb = x[start:start + data_chunk]
            pred = Predictive(model, posterior_samples=guide_trace, num_samples=s, parallel=True,
                              return_sites=sites)(xb)
            for k in sites:
                v = pred[k]
                rows = xb.shape[0]
                # Predictive broadcasts even a deterministic net's sites to (s, rows, ...)
                if v.dim() < 2 or v.shape[:2] != (s, rows):
                    raise ValueError(f"site {k!r} came back with shape {tuple(v.shape)}; "
                                     f"expected ({s}, {rows}, ...): is it inside the data plate?")
                cols[k].append(v.cpu())
        for k in sites:
            out[k].append(torch.cat(cols[k], dim=1))
        done += s
    return {k: torch.cat(v, dim=0) for k, v in out.items()}


def _guide_samples(guide, x, num_samples: int) -> dict[str, torch.Tensor]:
    """Draw ``num_samples`` joint samples of every latent site from ``guide`` (vectorised)."""
    return Predictive(guide, num_samples=num_samples, parallel=True)(x)
