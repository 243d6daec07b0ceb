"""The UCI benchmark's fits (:mod:`experiments.uci_benchmark`): one method on one split, scored on
its test rows in original units: Bayes by Backprop, MC dropout (with Gal & Ghahramani's grid
selection), the SVGP and the deep ensemble (:data:`FITTERS`, by method name)."""

from __future__ import annotations

import logging
import math

from experiments import data as zoo_data
from experiments.engine import metrics as M
from experiments.engine.ensemble import Ensemble, train_ensemble
from experiments.engine.predict import predict
from experiments.harness.spec import RunContext, train_pair

from .protocol import (
    DropoutPair,
    EnsemblePair,
    StepsPair,
    SvgpPair,
    _with_point,
    dropout_weight_decay,
    grid_points,
    select_grid_point,
    sized,
    validation_split,
)

# the experiment's logger: run.log names the experiment's module, as before the split
log = logging.getLogger("experiments.uci_benchmark")


def _test_metrics(model, guide, data: zoo_data.RegressionData, **predict_args) -> dict:
    """RMSE and LL on the test split in original units, and the learned noise, from
    :func:`~experiments.engine.predict.predict` (Monte Carlo for the nets, closed form for the
    SVGP, the members' mixture for an :class:`~experiments.engine.ensemble.Ensemble`)."""
    pred = predict(model, guide, data.x_test, y=data.y_test, **predict_args)
    pred = pred.to_original_units(data.y_mean, data.y_std)
    return {"rmse": M.rmse(pred.mean, data.unstandardize_y(data.y_test)),
            "ll": pred.log_likelihood,
            "noise_std": _noise_std(model) * data.y_std}


def _noise_std(model) -> float:
    r"""The learned noise sd (standardised units); for an ensemble the root mean square over its
    members, :math:`\sqrt{\frac1K\sum_k\sigma_k^2}` (the mixture's aleatoric sd)."""
    if isinstance(model, Ensemble):
        return math.sqrt(sum(m.likelihood.noise_std.item() ** 2 for m, _ in model) / len(model))
    return model.likelihood.noise_std.item()


def fit_bbb(data, spec: StepsPair, ctx: RunContext, *, hidden: int, split: int, name: str,
            num_samples: int) -> dict:
    """Bayes by Backprop on one split (seed ``ctx.seed + split``), scored on its test rows."""
    model, guide, _ = train_pair(sized(spec, data.n_train), (data.x_train, data.y_train), ctx,
                                 name, model_args={"in_features": data.input_dim,
                                                   "widths": (hidden,)}, seed_offset=split)
    return _test_metrics(model, guide, data, num_samples=num_samples, seed=ctx.seed + split)


def _fit_dropout_once(data, spec: DropoutPair, ctx: RunContext, *, hidden: int, split: int,
                      name: str, num_samples: int) -> dict:
    decay = dropout_weight_decay(spec.lengthscale, spec.model_cfg.get("dropout", 0.0))
    model, guide, _ = train_pair(sized(spec, data.n_train, weight_decay=decay),
                                 (data.x_train, data.y_train), ctx, name,
                                 model_args={"in_features": data.input_dim, "widths": (hidden,)},
                                 seed_offset=split)
    return _test_metrics(model, guide, data, num_samples=num_samples, seed=ctx.seed + split)


def fit_dropout(data, spec: DropoutPair, ctx: RunContext, *, hidden: int, split: int, name: str,
                num_samples: int) -> dict:
    """MC dropout; with a ``grid`` in ``spec``, Gal & Ghahramani's selection first.

    Without a grid: one fit with ``spec``'s values. With one: every grid point
    (:func:`grid_points`) is fitted on the training split minus a held-out ``val_fraction``
    (:func:`validation_split`, seeded by ``ctx.seed + split``) and scored by its validation
    log-likelihood; the best point (:func:`select_grid_point`) is refitted on the whole training
    split and evaluated on the test split. The result records ``selected`` (the chosen point) and
    ``grid`` (every point with its validation LL and RMSE).
    """
    once = {"hidden": hidden, "split": split, "num_samples": num_samples}
    points = grid_points(spec.grid)
    if not points:
        return _fit_dropout_once(data, spec, ctx, name=name, **once)
    val_data = validation_split(data, spec.val_fraction, ctx.seed + split)
    scored = []
    for i, point in enumerate(points):
        try:
            res = _fit_dropout_once(val_data, _with_point(spec, point), ctx,
                                    name=f"{name}/grid{i}", **once)
            scored.append({**point, "val_ll": res["ll"], "val_rmse": res["rmse"]})
        except (RuntimeError, FloatingPointError) as exc:  # a diverged point just loses
            log.warning("%s split %d dropout grid point %s failed: %s", data.name, data.split,
                        point, exc)
            scored.append({**point, "val_ll": None, "error": str(exc)})
    best = points[select_grid_point([s["val_ll"] for s in scored])]
    res = _fit_dropout_once(data, _with_point(spec, best), ctx, name=name, **once)
    return {**res, "selected": best, "grid": scored}


def fit_svgp(data, spec: SvgpPair, ctx: RunContext, *, hidden: int, split: int, name: str,
             num_samples: int) -> dict:
    """The SVGP started at k-means inducing inputs and Titsias' q(u); closed-form predictive."""
    dev = ctx.torch_device
    x, y = data.x_train.to(dev), data.y_train.to(dev)

    def prepare(model, guide):
        model.to(dev)
        model.initialize_inducing(x, method="kmeans", seed=ctx.seed + split)
        guide(x[:2], y[:2])
        guide.set_q_u(*model.optimal_q_u(x, y))  # Titsias' q(u) at the initial hyperparameters

    model, guide, _ = train_pair(
        sized(spec, data.n_train), (data.x_train, data.y_train), ctx, name,
        model_args={"input_dim": data.input_dim,
                    "num_inducing": min(spec.num_inducing, data.n_train)},
        prepare=prepare, seed_offset=split)
    return _test_metrics(model, guide, data)


def fit_ensemble(data, spec: EnsemblePair, ctx: RunContext, *, hidden: int, split: int,
                 name: str, num_samples: int) -> dict:
    """A deep ensemble of ``spec.members`` nets on one split (member i: seed offset split +
    1000 i, folder ``name/member<i>``), scored by its mixture predictive. A plain net (dropout 0)
    is deterministic, so one predictive draw per member is exact; with dropout,
    ``num_samples`` per member."""
    ens, _ = train_ensemble(sized(spec, data.n_train), (data.x_train, data.y_train), ctx, name,
                            spec.members, model_args={"in_features": data.input_dim,
                                                      "widths": (hidden,)},
                            seed_offset=split)
    draws = num_samples if spec.model_cfg.get("dropout", 0.0) > 0 else 1
    return {**_test_metrics(ens, None, data, num_samples=draws, seed=ctx.seed + split),
            "members": spec.members}


FITTERS = {"bbb": fit_bbb, "dropout": fit_dropout, "svgp": fit_svgp, "ensemble": fit_ensemble}
