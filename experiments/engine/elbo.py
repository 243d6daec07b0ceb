r"""The two ELBO estimators :func:`~experiments.engine.training.fit` offers (``FitConfig.elbo``).

* ``"trace"``: Pyro's :class:`~pyro.infer.Trace_ELBO`, the Monte Carlo estimate
  :math:`\log p(y, z) - \log q(z)` at :math:`z \sim q`.
* ``"meanfield"``: Pyro's :class:`~pyro.infer.TraceMeanField_ELBO`,

  .. math:: \mathcal L = \sum_{\text{observed}} \log p(y \mid \cdot)
            - \sum_{z} \mathrm{KL}[q(z) \,\|\, p(z)],

  with each KL in closed form where torch registers one for the (guide, prior) pair and the
  Monte Carlo term :math:`\log p(z) - \log q(z)` otherwise. :class:`MeanFieldELBO` is that
  estimator, value for value, with two savings that matter for Bayes by Backprop, whose latent
  sites hold every weight of the net: Pyro's version computes :math:`\log p(z)` and
  :math:`\log q(z)` of *every* latent site before it knows whether the KL is closed-form (for a
  784-400-400-10 net, four unused log-densities over 478k weights per step), and torch's
  ``kl_normal_normal`` spends two full-size divisions and a ``pow`` where
  :func:`normal_kl` needs one multiplication by a reciprocal (and none at all for a scalar prior,
  the usual case). Both estimators record the expected log-likelihood of each evaluation
  (``last_log_likelihood``) for the history's ``log_likelihood - kl`` split.

A guide can also skip drawing a latent whose draw this ELBO never reads (closed-form KL, and the
model reads the value only through an effect the guide's handler answers): see
:meth:`guides.mean_field.MeanFieldGuide.elbo_context`.
"""

from __future__ import annotations

import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.trace_elbo import _compute_log_r
from pyro.infer.trace_mean_field_elbo import _check_mean_field_requirement
from pyro.infer.util import check_fully_reparametrized, is_identically_zero, is_validation_enabled
from pyro.poutine.util import prune_subsample_sites
from pyro.util import check_if_enumerated, check_model_guide_match, check_site_shape
from torch.distributions import Independent, Normal, kl_divergence

from models.base import is_subsample


def _scalar_if_constant(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself, or its one value as a 0-d view when ``t`` is a broadcast (all strides 0) of a
    single number, as ``Normal(0., s).expand(shape)``'s parameters are: then the KL's arithmetic
    with it costs nothing per weight."""
    if t.dim() > 0 and all(s == 0 for s in t.stride()):
        return t[(0,) * t.dim()]
    return t


def normal_kl(q: Normal, p: Normal) -> torch.Tensor:
    r""":math:`\mathrm{KL}[\mathcal N(\mu_q, \sigma_q^2) \,\|\, \mathcal N(\mu_p, \sigma_p^2)]`
    elementwise, the same value as torch's ``kl_normal_normal``:

    .. math:: \log\sigma_p - \log\sigma_q
              + \frac{\sigma_q^2 + (\mu_q - \mu_p)^2}{2\sigma_p^2} - \frac12 .
    """
    loc_p, scale_p = _scalar_if_constant(p.loc), _scalar_if_constant(p.scale)
    half_prec_p = 0.5 * scale_p.pow(-2)
    diff = q.loc - loc_p
    quad = (q.scale * q.scale + diff * diff) * half_prec_p
    kl = quad - q.scale.log() + (scale_p.log() - 0.5)
    shape = _broadcast_shape(q.batch_shape, p.batch_shape)
    return kl if kl.shape == shape else kl.expand(shape)


def _broadcast_shape(a: torch.Size, b: torch.Size) -> torch.Size:
    """``torch.broadcast_shapes(a, b)`` for two shapes that broadcast, in plain Python (torch's
    goes through its reference implementation: about 0.3 ms, 3 % of a VAE step on the CPU)."""
    if a == b:
        return a
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    return torch.Size(x if y == 1 else y for x, y in zip(a, b))


def _strip_independent(fn) -> tuple[torch.distributions.Distribution, int]:
    dims = 0
    while isinstance(fn, Independent):
        dims += fn.reinterpreted_batch_ndims
        fn = fn.base_dist
    return fn, dims


def closed_form_kl(q, p) -> torch.Tensor | None:
    """``KL[q || p]`` with shape ``q.batch_shape`` where torch registers it (Normal against Normal
    via :func:`normal_kl`), else ``None``: the estimator then falls back to Monte Carlo."""
    q_base, q_dims = _strip_independent(q)
    p_base, p_dims = _strip_independent(p)
    if isinstance(q_base, Normal) and isinstance(p_base, Normal) and q_dims == p_dims \
            and q.event_shape == p.event_shape:
        if q_dims == 0:
            return normal_kl(q_base, p_base)
        dims = tuple(range(-q_dims, 0))
        loc_p, scale_p = _scalar_if_constant(p_base.loc), _scalar_if_constant(p_base.scale)
        if loc_p.dim() or scale_p.dim():
            return normal_kl(q_base, p_base).sum(dims)
        # a scalar prior N(m, s^2): the sum over the event of
        # normal_kl, rearranged to reduce per-weight arithmetic to sigma^2, (mu - m)^2, log sigma
        diff = q_base.loc - loc_p
        quad = (q_base.scale * q_base.scale).sum(dims) + (diff * diff).sum(dims)
        const = (scale_p.log() - 0.5) * q.event_shape.numel()
        return quad * (0.5 * scale_p.pow(-2)) - q_base.scale.log().sum(dims) + const
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        return None


def has_closed_form_kl(q, p) -> bool:
    """Whether :class:`MeanFieldELBO` takes ``KL[q || p]`` in closed form (evaluates it once)."""
    with torch.no_grad():
        return closed_form_kl(q, p) is not None


class _ELBOParts:
    """Mixin making an ELBO sync-free and recording the expected log-likelihood of each loss
    evaluation, so the history can split the ELBO into ``log_likelihood - kl`` at no extra model
    evaluation.

    *Sync-free*: nothing here reads a tensor to the host. ``last_log_likelihood`` is a detached
    0-d tensor on the model's device, and :meth:`differentiable_loss` returns the loss as a
    tensor without Pyro's ``warn_if_nan`` (a host read of the loss every step, which on a GPU
    stalls the queue and breaks CUDA-graph capture); the non-finite check is ``fit``'s, on the
    device (:class:`~experiments.engine.guards.FiniteGate`). It wraps ``_get_traces``, which
    ``loss``, ``differentiable_loss`` and ``loss_and_grads`` all draw their (model, guide) traces
    from, observed log-densities already computed.
    """

    last_log_likelihood: torch.Tensor | float = 0.0
    #: whether the surrogate's value is the loss (no score-function terms): the loss is then
    #: the surrogate itself, with no ``loss + (surrogate - surrogate.detach())`` on top
    _surrogate_is_loss = False

    def _get_traces(self, model, guide, args, kwargs):
        self.last_log_likelihood = 0.0
        total = None
        for model_trace, guide_trace in super()._get_traces(model, guide, args, kwargs):
            ll = None
            for site in model_trace.nodes.values():
                if site["type"] == "sample" and site["is_observed"] and not is_subsample(site) \
                        and not is_deterministic(site):
                    ll = _plus(ll, _detached(site["log_prob_sum"]))
            if ll is not None:
                total = _plus(total, _per_particle(ll, self.num_particles))
                self.last_log_likelihood = total
            yield model_trace, guide_trace

    def differentiable_loss(self, model, guide, *args, **kwargs):
        """The surrogate loss whose value is the negative ELBO estimate and whose gradient is the
        ELBO's (Pyro's ``differentiable_loss`` without its host-side NaN check)."""
        loss = surrogate = None
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss_p, surrogate_p = self._differentiable_loss_particle(model_trace, guide_trace)
            loss = _plus(loss, _per_particle(loss_p, self.num_particles))
            surrogate = _plus(surrogate, _per_particle(surrogate_p, self.num_particles))
        surrogate = torch.as_tensor(0.0 if surrogate is None else surrogate)
        if self._surrogate_is_loss:
            return surrogate
        return _detached(loss) + (surrogate - surrogate.detach())


def _plus(total, term):
    """``total + term``, where ``None`` is an empty sum: ``0.0 + term`` would be one more tensor
    op per term (a kernel launch on a GPU) for the same value."""
    return term if total is None else total + term


def _per_particle(value, num_particles: int):
    """``value / num_particles``, without the division by 1 (same value, one op fewer)."""
    return value if num_particles == 1 else value / num_particles


def _run_pair(model, guide, args, kwargs):
    """``(model_trace, guide_trace)``: the guide traced, then the model traced replaying it (the
    first half of Pyro's ``get_importance_trace``, for callable guides)."""
    guide_trace = poutine.trace(guide, graph_type="flat").get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace),
                                graph_type="flat").get_trace(*args, **kwargs)
    return model_trace, guide_trace


def _detached(value) -> torch.Tensor | float:
    """A log-density (sum) as a detached tensor, or the Python number it is (no host read)."""
    return value.detach() if torch.is_tensor(value) else value


class TraceELBO(_ELBOParts, Trace_ELBO):
    """Pyro's :class:`~pyro.infer.Trace_ELBO`, sync-free (see :class:`_ELBOParts`) and recording
    ``last_log_likelihood``. Its per-particle loss is Pyro's with detached tensors where Pyro
    calls ``torch_item`` on every site's log-density."""

    def _get_trace(self, model, guide, args, kwargs):
        """Pyro's ``get_importance_trace`` with the model's log-densities computed for every
        sample site but the deterministic ones (0 by construction)."""
        if isinstance(poutine.unwrap(guide), poutine.messenger.Messenger) or is_validation_enabled():
            return super()._get_trace(model, guide, args, kwargs)  # Pyro's path and checks
        model_trace, guide_trace = _run_pair(model, guide, args, kwargs)
        guide_trace = prune_subsample_sites(guide_trace)
        model_trace = prune_subsample_sites(model_trace)
        model_trace.compute_log_prob(lambda name, site: not is_deterministic(site))
        guide_trace.compute_score_parts()
        return model_trace, guide_trace

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        elbo, surrogate, log_r = None, None, None
        for site in model_trace.nodes.values():
            if site["type"] == "sample" and "log_prob_sum" in site:
                elbo = _plus(elbo, _detached(site["log_prob_sum"]))
                surrogate = _plus(surrogate, site["log_prob_sum"])
        elbo = 0.0 if elbo is None else elbo
        surrogate = 0.0 if surrogate is None else surrogate
        for site in guide_trace.nodes.values():
            if site["type"] != "sample":
                continue
            _, score_function_term, entropy_term = site["score_parts"]
            elbo = elbo - _detached(site["log_prob_sum"])
            if not is_identically_zero(entropy_term):
                surrogate = surrogate - entropy_term.sum()
            if not is_identically_zero(score_function_term):
                if log_r is None:
                    model_trace.compute_log_prob()  # (the deterministic sites' zeros too)
                    log_r = _compute_log_r(model_trace, guide_trace)
                term = log_r.sum_to(site["cond_indep_stack"])
                surrogate = surrogate + (term * score_function_term).sum()
        return -elbo, -surrogate


def is_deterministic(site) -> bool:
    """Whether a sample site is a ``pyro.deterministic`` record: a Delta at its own value, whose
    log-density is 0 by construction (both ELBOs skip it rather than compute ``log 1`` over
    every element)."""
    return site["infer"].get("_deterministic", False)


def _observed(name, site) -> bool:
    return site["is_observed"] and not is_deterministic(site)


def _named(name: str):
    return lambda n, site: n == name


class MeanFieldELBO(_ELBOParts, TraceMeanField_ELBO):
    """Pyro's :class:`~pyro.infer.TraceMeanField_ELBO` with log-densities computed only where the
    loss reads them (observed sites, and latent sites without a closed-form KL) and the Normal KL
    of :func:`normal_kl`. Same value and gradients (tested against Pyro's class)."""

    def _get_trace(self, model, guide, args, kwargs):
        if isinstance(poutine.unwrap(guide), poutine.messenger.Messenger):
            return super()._get_trace(model, guide, args, kwargs)  # a GuideMessenger: Pyro's path
        model_trace, guide_trace = _run_pair(model, guide, args, kwargs)
        validate = is_validation_enabled()
        if validate:
            check_model_guide_match(model_trace, guide_trace, self.max_plate_nesting)
        guide_trace = prune_subsample_sites(guide_trace)
        model_trace = prune_subsample_sites(model_trace)
        model_trace.compute_log_prob(_observed)
        if validate:  # Pyro's shape checks read every site's log-density: computed here only
            model_trace.compute_log_prob()
            guide_trace.compute_score_parts()
            for trace in (model_trace, guide_trace):
                for site in trace.nodes.values():
                    if site["type"] == "sample":
                        check_site_shape(site, self.max_plate_nesting)
            check_if_enumerated(guide_trace)
            _check_mean_field_requirement(model_trace, guide_trace)
        return model_trace, guide_trace

    _surrogate_is_loss = True  # (closed-form KLs and reparameterised draws only)

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        validate = is_validation_enabled()
        elbo = None
        for name, model_site in model_trace.nodes.items():
            if model_site["type"] != "sample":
                continue
            if model_site["is_observed"]:
                if not is_deterministic(model_site):
                    elbo = _plus(elbo, model_site["log_prob_sum"])
                continue
            guide_site = guide_trace.nodes[name]
            if validate:
                check_fully_reparametrized(guide_site)
            kl = closed_form_kl(guide_site["fn"], model_site["fn"])
            if kl is not None:
                kl = scale_and_mask(kl, scale=guide_site["scale"], mask=guide_site["mask"])
                kl_sum = kl.sum() if torch.is_tensor(kl) else \
                    kl * torch.Size(guide_site["fn"].batch_shape).numel()
                elbo = -kl_sum if elbo is None else elbo - kl_sum
            else:  # Monte Carlo: log p(z) - log q(z) at the guide's (reparameterised) draw
                model_trace.compute_log_prob(_named(name))
                guide_trace.compute_log_prob(_named(name))
                elbo = _plus(elbo, model_site["log_prob_sum"]) - guide_site["log_prob_sum"]
        for name, guide_site in guide_trace.nodes.items():
            if guide_site["type"] == "sample" and name not in model_trace.nodes:
                if not guide_site["infer"].get("is_auxiliary"):
                    raise ValueError(f"guide site {name!r} is not in the model and not marked "
                                     "infer={'is_auxiliary': True}")
                if validate:
                    check_fully_reparametrized(guide_site)
                guide_trace.compute_log_prob(_named(name))
                elbo = -guide_site["log_prob_sum"] if elbo is None else elbo - guide_site["log_prob_sum"]
        loss = -torch.as_tensor(0.0 if elbo is None else elbo)
        return loss.detach(), loss


ELBOS = ("trace", "meanfield")


def make_elbo(name: str, num_particles: int = 1, max_plate_nesting: int = 1):
    """The ELBO ``name`` (``"trace"`` or ``"meanfield"``), particles vectorised when > 1."""
    cls = {"trace": TraceELBO, "meanfield": MeanFieldELBO}[name]
    return cls(num_particles=num_particles, vectorize_particles=num_particles > 1,
               max_plate_nesting=max_plate_nesting)
