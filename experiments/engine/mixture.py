r"""Deep ensembles' containers and their mixture predictive, with no training and no model code:
:class:`Ensemble` (K trained (model, guide) pairs) and :func:`mixture`, the equal-weight mixture
:math:`p(y \mid x) = \frac1K \sum_k p_k(y \mid x)` of the members' predictions
(:mod:`experiments.engine.ensemble` trains them; :func:`~experiments.engine.predict.predict`
predicts with them)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from .prediction import Prediction

__all__ = ["Ensemble", "mixture"]


class Ensemble:
    """K trained (model, guide) pairs that predict as their equal-weight mixture.

    ``len(ens)`` is K; iterating yields the ``(model, guide)`` pairs; ``ens[i]`` is member i.
    Pass it to :func:`predict_ensemble`, or to :func:`~experiments.engine.predict.predict` as
    the model with ``guide=None``.
    """

    def __init__(self, members: Sequence[tuple]):
        members = list(members)
        if not members:
            raise ValueError("an Ensemble needs at least one member, got an empty list; pass "
                             "[(model, guide), ...]")
        for i, pair in enumerate(members):
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise ValueError(f"Ensemble member {i} must be a (model, guide) pair, got "
                                 f"{type(pair).__name__}")
        self.members: list[tuple] = [tuple(p) for p in members]

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.members)

    def __getitem__(self, i: int) -> tuple:
        return self.members[i]

    def to(self, device) -> Ensemble:
        """Move every member's model and guide to ``device``; returns ``self``."""
        for model, guide in self.members:
            model.to(device)
            if guide is not None:
                guide.to(device)
        return self

    def __repr__(self) -> str:
        names = sorted({f"{type(m).__name__}/{type(g).__name__}" for m, g in self.members})
        return f"Ensemble({len(self)} members: {', '.join(names)})"


def mixture(predictions: Sequence[Prediction]) -> Prediction:
    """The equal-weight mixture of the members' predictions (module docstring): means averaged,
    variance ``mean(v_k) + Var_k(mu_k)``, epistemic ``mean(epistemic_k) + Var_k(mu_k)``,
    aleatoric averaged, class probabilities averaged, per-point log density
    ``logsumexp_k(ll_k) - log K``; ``samples`` concatenated (K S draws) when every member has
    them; ``num_samples`` the sum."""
    preds = list(predictions)
    if not preds:
        raise ValueError("mixture needs the predictions of at least one member, got none")
    kinds = sorted({p.kind for p in preds})
    if len(kinds) > 1:
        raise ValueError(f"the members predict different kinds ({', '.join(kinds)}); an "
                         "ensemble's members must share one task")
    kind = kinds[0]
    if kind == "reconstruction":
        raise ValueError("a VAE ensemble has no mixture predictive here (predict gives a "
                         "reconstruction and an IWAE bound, not p(y|x)); ensemble regression or "
                         "classification pairs")
    shapes = sorted({tuple(p.mean.shape) for p in preds})
    if len(shapes) > 1:
        raise ValueError(f"the members' predictive means have different shapes {shapes}; the "
                         "members must predict the same outputs (same classes) at the same x")
    k = len(preds)

    def stack(attr: str) -> torch.Tensor | None:
        values = [getattr(p, attr) for p in preds]
        return None if any(v is None for v in values) else torch.stack(values)

    means = stack("mean")
    mean = means.mean(0)
    spread = means.var(0, unbiased=False) if k > 1 else torch.zeros_like(mean)  # Var_k[mu_k]
    var, epi, ale = stack("variance"), stack("epistemic"), stack("aleatoric")
    probs = stack("probs")
    ll_pp = stack("log_likelihood_per_point")
    if ll_pp is None and any(p.log_likelihood_per_point is not None for p in preds):
        raise ValueError("some members were scored against targets and some not; pass y to "
                         "every member's prediction or to none")
    if ll_pp is not None:
        ll_pp = torch.logsumexp(ll_pp, 0) - math.log(k)
    samples = [p.samples for p in preds]
    return Prediction(
        kind, mean=mean,
        variance=None if var is None else var.mean(0) + spread,
        epistemic=None if epi is None else epi.mean(0) + spread,
        aleatoric=None if ale is None else ale.mean(0),
        probs=None if probs is None else probs.mean(0),
        samples=None if any(s is None for s in samples) else torch.cat(samples, 0),
        log_likelihood=None if ll_pp is None else float(ll_pp.mean()),
        log_likelihood_per_point=ll_pp,
        num_samples=sum(p.num_samples for p in preds))
