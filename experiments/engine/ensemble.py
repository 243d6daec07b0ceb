r"""Deep ensembles (Lakshminarayanan et al. 2017) as a first-class method: K pairs trained from
different seeded initialisations and minibatch orders, predicting as the equal-weight mixture.

Member :math:`k` of :math:`K` is any trained (model, guide) pair; its predictive
:math:`p_k(y \mid x)` is what :func:`~experiments.engine.predict.predict` reports (a plain net
with the ``deterministic`` guide, a BNN, an SVGP, ...). The ensemble's predictive is the mixture

.. math:: p(y \mid x) = \frac1K \sum_{k=1}^K p_k(y \mid x).

Its moments follow from the members' by the law of total variance (over the member index, a
uniform draw of :math:`k`), with :math:`\mu_k, v_k` member k's mean and total variance:

.. math::
    \mathbb E[y] = \bar\mu = \frac1K\sum_k \mu_k, \qquad
    \mathrm{Var}[y] = \frac1K\sum_k (v_k + \mu_k^2) - \bar\mu^2
                    = \frac1K\sum_k v_k + \mathrm{Var}_k[\mu_k],

with the population variance :math:`\mathrm{Var}_k[\mu_k] = \frac1K\sum_k(\mu_k - \bar\mu)^2`
(the second form is the one computed: it does not cancel large means). The split into
epistemic and aleatoric parts keeps ``epistemic + aleatoric = variance``:

.. math::
    \text{epistemic} = \frac1K\sum_k \text{epistemic}_k + \mathrm{Var}_k[\mu_k], \qquad
    \text{aleatoric} = \frac1K\sum_k \text{aleatoric}_k

(the disagreement between members is epistemic). For classification the predictive class
probabilities are the average :math:`\bar p_c = \frac1K\sum_k p_{kc}`, and the same formulas,
applied to the one-hot :math:`y_c` (mean :math:`p_{kc}`, variance :math:`p_{kc}(1 - p_{kc})`),
give :math:`\mathrm{Var}[y_c] = \bar p_c (1 - \bar p_c)`. Given targets, the per-point log
predictive density is

.. math:: \log p(y_n \mid x_n) = \operatorname{logsumexp}_k \log p_k(y_n \mid x_n) - \log K,

so the members' Monte Carlo draws (S per member) pool into one mixture of :math:`K S` equally
weighted components. The VAE has no predictive of this kind and is refused.

Three entry points:

* :func:`train_ensemble` for experiments: K calls of :func:`~experiments.harness.spec.train_pair`,
  member i in ``<name>/member<i>`` (its history and checkpoint) with seed offset
  ``seed_offset + 1000 i``; a resumed run (``ctx.resume``) restores each member from its own
  checkpoint (a finished member is not trained again).
* :func:`ensemble` for plain Python, the counterpart of :func:`~experiments.engine.training.fit`:
  ``make_pair()`` builds each member, trained with ``seed = run.seed + i``.
* :func:`predict_ensemble` (also reached through ``predict(ensemble, None, x, ...)``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from experiments.harness.spec import train_pair

from .mixture import Ensemble, mixture
from .predict import predict_ensemble
from .seeding import seed_everything
from .settings import FitConfig, RunOptions
from .training import fit

__all__ = ["Ensemble", "MEMBER_SEED_STRIDE", "ensemble", "mixture", "predict_ensemble",
           "train_ensemble"]

log = logging.getLogger("experiments")

#: member i of :func:`train_ensemble` trains with seed offset ``seed_offset + i * stride``
#: (member 0 is seeded exactly as a single fit would be)
MEMBER_SEED_STRIDE = 1000


def _check_k(k, what: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{what}={k!r} is invalid: an ensemble needs an integer number of "
                         "members >= 1 (1 is a single fit)")
    return k


# ------------------------------------------------------------------------------------------------
# training


def train_ensemble(spec, data, ctx, name: str, k: int, *, model_args: dict | None = None,
                   prepare: Callable | None = None, eval_fn: Callable | None = None,
                   seed_offset: int = 0) -> tuple[Ensemble, list]:
    """Train K members of the pair ``spec`` (a :class:`~experiments.harness.spec.PairSpec`) on
    ``data``: ``(Ensemble, [TrainState, ...])``.

    Member i is ``train_pair(spec, data, ctx, f"{name}/member{i}", seed_offset=seed_offset +
    1000 i, ...)``: its own seeded initialisation and minibatch order, its own subfolder of the
    run (history, checkpoint). With ``ctx.resume`` each member resumes from its own checkpoint as
    :func:`~experiments.harness.spec.train_pair` does: a finished member is restored, not trained
    again; one without a checkpoint is trained from scratch. Members train one after the other;
    a failing member raises (the finished members' checkpoints stay on disk).

    :param int k: the number of members K >= 1.
    :param int seed_offset: added to every member's offset (e.g. the split index).
    """
    k = _check_k(k)
    members, states = [], []
    for i in range(k):
        member = f"{name}/member{i}"
        t0 = time.perf_counter()
        try:
            model, guide, state = train_pair(spec, data, ctx, member, eval_fn=eval_fn,
                                             model_args=model_args, prepare=prepare,
                                             seed_offset=seed_offset + MEMBER_SEED_STRIDE * i)
        except BaseException:
            kept = [f"{name}/member{j}" for j in range(i)]
            ctx.logger.error("%s: member %d of %d failed%s", name, i + 1, k,
                             f" (finished members kept: {', '.join(kept)})" if kept else "")
            raise
        last = state.history[-1] if state.history else {}
        ctx.logger.info("%s: member %d of %d done (%s): %d epochs, final loss %s, %.1f s", name,
                        i + 1, k, member, state.epoch,
                        f"{last['loss']:.4g}" if "loss" in last else "n/a",
                        time.perf_counter() - t0)
        members.append((model, guide))
        states.append(state)
    return Ensemble(members), states


def ensemble(make_pair: Callable[[], tuple], data, k: int,
             config: FitConfig | dict | None = None, run: RunOptions | dict | None = None, *,
             eval_fn: Callable | None = None) -> Ensemble:
    """Train a deep ensemble of K fresh pairs: the plain-Python counterpart of
    :func:`~experiments.engine.training.fit`.

    Member i: the random streams are seeded with ``run.seed + i``, ``make_pair()`` builds a
    fresh ``(model, guide)`` (so its initialisation differs from the other members'), and
    ``fit`` trains it with ``seed = run.seed + i`` (its minibatch order), ``desc`` suffixed
    with ``member<i>`` and, when ``run.out_dir`` is set, ``out_dir/member<i>`` for its
    history and checkpoint.

    :param make_pair: ``make_pair() -> (model, guide)``, called once per member; it must build
        new modules each call.
    :param data: the training set, as for ``fit``.
    :param int k: the number of members K >= 1.
    :param config: a :class:`~experiments.engine.settings.FitConfig` or a dict of its fields,
        shared by every member.
    :param run: the :class:`~experiments.engine.settings.RunOptions` (or a dict of its fields)
        the members' are derived from.
    """
    k = _check_k(k)
    if not callable(make_pair):
        raise TypeError(f"make_pair must be a callable returning a fresh (model, guide), got "
                        f"{type(make_pair).__name__}")
    cfg = config if isinstance(config, FitConfig) else FitConfig.from_dict(config)
    run = run if isinstance(run, RunOptions) else RunOptions.from_dict(run)
    members, seen = [], set()
    for i in range(k):
        # the member's initialisation: make_pair() builds its modules before fit's setup seeds
        # (with the same seed), so this seeding is kept
        seed_everything(run.seed + i)
        pair = make_pair()
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(f"make_pair() must return a (model, guide) pair, got "
                             f"{type(pair).__name__}")
        model, guide = pair
        if id(model) in seen or id(guide) in seen:
            raise ValueError(f"make_pair() returned the model or guide of an earlier member for "
                             f"member {i}: it must build new modules on every call (e.g. "
                             "lambda: (m := create_model(...), create_guide(g, m)))")
        seen.update((id(model), id(guide)))
        member_run = dataclasses.replace(
            run, seed=run.seed + i, desc=f"{run.desc} member{i}",
            out_dir=None if run.out_dir is None else str(Path(run.out_dir) / f"member{i}"))
        t0 = time.perf_counter()
        state = fit(model, guide, data, cfg, member_run, eval_fn=eval_fn)
        last = state.history[-1] if state.history else {}
        log.info("ensemble member %d of %d: %d epochs, final loss %s, %.1f s", i + 1, k,
                 state.epoch, f"{last['loss']:.4g}" if "loss" in last else "n/a",
                 time.perf_counter() - t0)
        members.append((model, guide))
    return Ensemble(members)


# ------------------------------------------------------------------------------------------------
# prediction
