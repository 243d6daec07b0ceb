r"""Bayes by Backprop: the mean-field Gaussian guide, with local reparameterisation and flipout.

.. math::
    q(w \mid \theta) = \prod_i \mathcal N(w_i \mid \mu_i, \sigma_i^2), \qquad
    \sigma_i = \log(1 + e^{\rho_i}),\qquad w = \mu + \sigma \circ \epsilon,\;
    \epsilon \sim \mathcal N(0, I).

The guide samples ``Normal`` sites itself (one per weight matrix) rather than through
:class:`~pyro.infer.autoguide.AutoNormal`, whose sites are ``Delta`` draws around auxiliary
variables: only genuine ``Normal`` guide sites give :class:`~pyro.infer.TraceMeanField_ELBO` its
closed-form KL and let the local reparameterisation handler see :math:`(\mu, \sigma)`.

*Local reparameterisation* (Kingma, Salimans & Welling 2015): for ``b = W h`` with Gaussian
``W``, each pre-activation is Gaussian, ``b_j ~ N(Σ_i μ_ji h_i, Σ_i σ_ji² h_i²)``; sampling ``b``
per example instead of ``W`` per batch gives the same marginal per example with a much smaller
gradient variance. *Flipout* (Wen et al. 2018) keeps the weight sample ``ΔW = W − μ`` but
decorrelates examples with random signs: ``b = μ h + (ΔW (h ∘ s)) ∘ r``.
Both are estimators of the same ELBO; they change the noise, not the objective. Under local
reparameterisation with a closed-form KL (``fit`` with ``elbo="meanfield"`` and a Gaussian prior)
nothing reads the weight draw :math:`w = \mu + \sigma\epsilon`, so the guide does not make it
(:meth:`MeanFieldGuide.elbo_context`).

References

[1] Blundell et al. *Weight Uncertainty in Neural Networks*. ICML 2015.
[2] Kingma, Salimans, Welling. *Variational Dropout and the Local Reparameterization Trick*. 2015.
[3] Wen, Vicol, Ba, Tran, Grosse. *Flipout*. ICLR 2018.
"""

from __future__ import annotations

import contextlib
from collections.abc import Container

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam
from pyro.poutine.messenger import Messenger

from models.base import _drop_data_dim, is_subsample, with_ones

from .base import ZooGuide, warn_init_scale
from .registry import register_guide


class LocalReparameterization(Messenger):
    """Effect handler that computes :func:`models.base.bayes_linear` from the Gaussian that
    produced its weight: by sampling pre-activations (default) or by flipout.

    It remembers, per sample site, the value and the ``Normal`` distribution it was drawn from (the
    guide runs first under SVI, and the model replays the very same tensor), then intercepts
    ``bayes_linear(h, w, name=site)``. Weights it has not seen, or not drawn from a ``Normal``, go
    through unchanged.
    """

    def __init__(self, flipout: bool = False, skip_draws: Container[str] = ()):
        super().__init__()
        if flipout and skip_draws:
            raise ValueError("flipout perturbs the drawn weight: it cannot skip the draw")
        self.flipout = flipout
        self.skip_draws = skip_draws
        self._q: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._skipped: set[str] = set()
        self._consumed: set[str] = set()

    def _pyro_sample(self, msg):
        # The guide's draw of a weight that nothing will read: the closed-form KL uses q's
        # parameters and bayes_linear samples pre-activations from them. Its value is q's mean
        # (a view, no arithmetic), so the model's replay still finds the guide's tensor.
        if (msg["done"] or msg["is_observed"] or msg["value"] is not None
                or msg["name"] not in self.skip_draws):
            return
        fn = msg["fn"]
        base = fn
        while isinstance(base, torch.distributions.Independent):
            base = base.base_dist
        if not isinstance(base, torch.distributions.Normal):
            return
        msg["value"] = fn.mean
        msg["done"] = True
        self._skipped.add(msg["name"])

    def __exit__(self, exc_type, exc_value, traceback):
        out = super().__exit__(exc_type, exc_value, traceback)
        unread = self._skipped - self._consumed
        if exc_type is None and unread:
            raise RuntimeError(
                f"the mean-field guide did not draw {sorted(unread)} (local reparameterisation "
                "with a closed-form KL reads only q's parameters), but the model never passed them "
                "to models.base.bayes_linear(h, w, name=site); route those weights through "
                "bayes_linear or use the guide with local_reparam=False")
        return out

    def _pyro_post_sample(self, msg):
        if msg["is_observed"]:
            return
        name, value = msg["name"], msg["value"]
        seen = self._q.get(name)
        if seen is not None and seen[0] is value:
            return  # the model replaying the guide's draw: keep the guide's distribution
        fn = msg["fn"]
        while isinstance(fn, torch.distributions.Independent):
            fn = fn.base_dist
        if isinstance(fn, torch.distributions.Normal):
            self._q[name] = (value, fn.loc, fn.scale)

    def _pyro_bayes_linear(self, msg):
        h, w = msg["args"]
        seen = self._q.get(msg["name"])
        if seen is None or seen[0] is not w:
            return
        loc, scale = _drop_data_dim(seen[1]), _drop_data_dim(seen[2])
        w = _drop_data_dim(w)
        self._consumed.add(msg["name"])
        mean = with_ones(h) @ loc.transpose(-1, -2)  # (*b, N, out)
        out_shape = mean.shape  # (torch.broadcast_shapes is slow Python: only when needed)
        if w.shape[:-2] != mean.shape[:-2]:
            out_shape = torch.broadcast_shapes(mean.shape, w.shape[:-2] + (1, w.shape[-2]))
        if self.flipout:
            delta = w - loc  # (*b, out, in + 1), the reparameterised perturbation σ ∘ ε
            in_shape = out_shape[:-1] + (h.shape[-1],)
            s = _signs(in_shape, h)
            r = _signs(out_shape, h)
            h_pert = with_ones(h * s) @ delta.transpose(-1, -2)
            # the bias perturbation carries no input sign; flipping it by r keeps its law
            value = mean + h_pert * r
        else:
            var_w = scale * scale
            var = with_ones(h * h) @ var_w.transpose(-1, -2)
            eps = _standard_normal(out_shape, mean)
            value = mean + var.clamp_min(1e-30).sqrt() * eps
        msg["value"] = value
        msg["done"] = True


def _standard_normal(shape, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, dtype=like.dtype, device=like.device)


def _signs(shape, like: torch.Tensor) -> torch.Tensor:
    return torch.randint(0, 2, shape, device=like.device).to(like.dtype) * 2 - 1


class MeanFieldGuide(ZooGuide, PyroModule):
    """Blundell's diagonal Gaussian guide over every latent site of a model with global latents.

    :param model: the model (a :class:`~models.base.ZooModel`); only its latent sites' shapes and
        :meth:`initial_values` are read.
    :param float init_scale: initial :math:`\\sigma` of every weight (ρ is set to
        :math:`\\mathrm{softplus}^{-1}` of it). Small values (1e-3 to 1e-2) start the optimisation
        near a deterministic net, which Blundell et al. and most follow-ups find necessary.
    :param bool local_reparam: sample pre-activations instead of weights in training.
    :param bool flipout: use flipout perturbations in training (exclusive with local_reparam).
    """

    def __init__(self, model, init_scale: float = 1e-2, local_reparam: bool = False,
                 flipout: bool = False):
        super().__init__()
        if local_reparam and flipout:
            raise ValueError("choose one of local_reparam=True or flipout=True, not both")
        if not init_scale > 0:
            raise ValueError(f"init_scale must be > 0, got {init_scale!r}")
        warn_init_scale(init_scale)
        self._model = (model,)  # a tuple, so the model's parameters are not registered here
        self.init_scale = float(init_scale)
        self.local_reparam = bool(local_reparam)
        self.flipout = bool(flipout)
        self._sites: dict[str, int] = {}  # site -> event dim
        self._closed_form_kl: set[str] = set()  # sites whose KL[q || prior] torch registers
        self._setup_done = False

    def _setup(self, *args, **kwargs):
        model = self._model[0]
        trace = poutine.block(poutine.trace(model).get_trace)(*args, **kwargs)
        init = model.initial_values()
        for name, site in trace.iter_stochastic_nodes():
            if is_subsample(site):
                continue  # the data plate's subsample site, not a latent
            if any(f.name == "data" for f in site["cond_indep_stack"]):
                raise ValueError(
                    f"latent site {name!r} is inside the data plate; the mean-field guide handles "
                    "global latents only (use an amortised guide for local latents). If it is the "
                    "observation site, call the guide with y the first time: guide(x, y)"
                )
            value = site["value"].detach()
            loc = init[name] if name in init else value
            loc = loc.to(value.device, value.dtype).clone()
            scale = torch.full_like(loc, self.init_scale)
            setattr(self, f"{name}_loc", PyroParam(loc))
            setattr(self, f"{name}_scale", PyroParam(scale, constraints.softplus_positive))
            self._sites[name] = site["fn"].event_dim
            q = dist.Normal(loc, scale).to_event(site["fn"].event_dim)
            try:
                with torch.no_grad():
                    torch.distributions.kl_divergence(q, site["fn"])
                self._closed_form_kl.add(name)
            except NotImplementedError:
                pass
        self._setup_done = True

    def forward(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        if not self._setup_done:
            self._setup(*args, **kwargs)
        return {
            name: pyro.sample(name, dist.Normal(getattr(self, f"{name}_loc"),
                                                getattr(self, f"{name}_scale")).to_event(event_dim))
            for name, event_dim in self._sites.items()
        }

    def elbo_context(self, closed_form_kl: bool = False):
        r"""The handler that :func:`fit` enters around each loss evaluation.

        :param bool closed_form_kl: the ELBO takes :math:`\mathrm{KL}[q \| p]` in closed form
            wherever torch registers it and reads a latent's value nowhere else
            (:class:`~experiments.engine.elbo.MeanFieldELBO`; ``fit`` passes ``True`` for
            ``elbo="meanfield"``). With local reparameterisation the guide then skips drawing
            those weights: the pre-activations are sampled from :math:`(\mu, \sigma)` and the
            KL reads only :math:`(\mu, \sigma)`, so the draw :math:`\mu + \sigma\epsilon`
            (one Gaussian per weight) would be thrown away. This presumes the model reads each
            such weight only through :func:`~models.base.bayes_linear`; a weight skipped but
            never passed to it raises an error at the end of the step.
        """
        if self.local_reparam or self.flipout:
            skip = self._closed_form_kl if closed_form_kl and self.local_reparam else ()
            return LocalReparameterization(flipout=self.flipout, skip_draws=skip)
        return contextlib.nullcontext()

    @torch.no_grad()
    def signal_to_noise(self) -> dict[str, torch.Tensor]:
        """:math:`|\\mu| / \\sigma` per weight (Blundell's pruning criterion, Table 2)."""
        return {n: getattr(self, f"{n}_loc").abs() / getattr(self, f"{n}_scale")
                for n in self._sites}


@register_guide("mean-field", models=("bnn", "rff-gp", "cnn"), family="bnn")
def build_mean_field(model, init_scale: float = 1e-2, local_reparam: bool = False,
                     flipout: bool = False) -> MeanFieldGuide:
    """Bayes by Backprop (see :class:`MeanFieldGuide` for the arguments)."""
    return MeanFieldGuide(model, init_scale=init_scale, local_reparam=local_reparam,
                          flipout=flipout)
