"""The declared contracts (issue 24): code reads what a likelihood, a model and a guide declare
(models.likelihood_base.Likelihood, models.base.ZooModel, guides.base.ZooGuide) and never
branches on a likelihood's class or probes a model or guide with hasattr."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

import guides
import models
from guides.base import ZooGuide, has_q_u
from guides.registry import guide_name_of
from models.likelihoods import LIKELIHOODS, PREDICTIVE_KINDS, Likelihood, make_likelihood

REPO = Path(__file__).resolve().parents[1]
LIKELIHOOD_CLASSES = {c.__name__ for c in LIKELIHOODS.values()} | {"Likelihood", "ImageLikelihood"}
#: the modules that define the contracts (and may look at their own classes)
OWNERS = {"models/likelihoods.py", "models/likelihood_base.py", "models/image_likelihoods.py",
          "models/base.py", "guides/base.py"}


def _sources():
    for pkg in ("models", "guides", "experiments"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel not in OWNERS:
                yield rel, ast.parse(path.read_text())


def _name(node) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) \
        else None


def test_no_code_branches_on_a_likelihood_class():
    found = []
    for rel, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) == "isinstance" and len(node.args) == 2:
                classes = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
                if any(_name(c) in LIKELIHOOD_CLASSES for c in classes):
                    found.append(f"{rel}:{node.lineno}")
    assert not found, f"isinstance on a likelihood class (use the Likelihood contract): {found}"


def test_no_code_probes_a_model_or_a_guide():
    """No ``hasattr(model, ...)``, ``hasattr(guide, ...)`` or ``getattr(guide, name, default)``:
    what is read is declared (a model's ``likelihood``, an ``nn.Module`` child, cannot be a class
    attribute and is still read with ``getattr(model, "likelihood", None)``)."""
    found = []
    for rel, tree in _sources():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
                continue
            target = _name(node.args[0])
            if (node.func.id == "hasattr" and target in ("model", "guide")) or \
                    (node.func.id == "getattr" and target == "guide" and len(node.args) == 3):
                found.append(f"{rel}:{node.lineno}")
    assert not found, f"hasattr on a model or guide, or getattr with a default on a guide: {found}"


def _likelihood(name: str) -> Likelihood:
    if name.startswith("image-"):
        return make_likelihood(name, num_pixels=3)
    return make_likelihood(name, num_classes=3) if name in ("categorical", "softmax") \
        else make_likelihood(name)


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_every_likelihood_declares_its_kind_and_predictive_moments(name):
    lik = _likelihood(name)
    assert lik.kind in (*PREDICTIVE_KINDS, "image")
    f = torch.randn(4, 5, lik.num_outputs)  # (S, N, L)
    if lik.kind in ("binary", "classification"):
        p = lik.class_probabilities(f)
        assert p.shape == (4, 5, 2 if lik.kind == "binary" else lik.num_outputs)
        assert torch.allclose(p.sum(-1), torch.ones(4, 5))
    elif lik.kind == "regression":
        assert lik.noise_variance(f).shape == (5,)
        scale = lik.noise_scale(f)
        assert scale is None or scale.shape == (4, 5)
    signal = torch.randn(5)
    y = lik.example_targets(signal, torch.Generator().manual_seed(0))
    assert y.shape == (5,)
    if lik.kind != "image":
        lik.check_targets(y)
        assert lik.integer_targets == (not y.is_floating_point())


def test_gaussian_expected_log_prob_is_the_monte_carlo_limit():
    """E_{N(f; mu, s^2)} log N(y | f, sigma^2) = log N(y | mu, sigma^2) - s^2 / (2 sigma^2)."""
    import pyro.poutine as poutine

    lik = make_likelihood("gaussian", noise_std=0.5, learn_noise=False)
    assert lik.conjugate
    loc, var, y = torch.tensor([[0.3]]), torch.tensor([[0.2]]), torch.tensor([0.1])
    tr = poutine.trace(lik.expected_log_prob).get_trace(loc, var, y)
    closed = float(sum(site["fn"].log_prob(site["value"]).sum() for site in tr.nodes.values()
                       if site["type"] == "sample"))
    f = 0.3 + math.sqrt(0.2) * torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    mc = float(torch.distributions.Normal(f, 0.5).log_prob(torch.tensor(0.1)).mean())
    assert abs(closed - mc) < 0.01


def test_models_declare_inputs_latents_and_inducing_inputs():
    svgp = models.create_model("svgp", input_dim=3, num_inducing=4)
    assert svgp.in_features == 3 and svgp.has_inducing and not svgp.latent_sites
    bnn = models.create_model("bnn", in_features=2, widths=(4,), out_features=1)
    assert bnn.in_features == 2 and not bnn.has_inducing and list(bnn.latent_sites)
    with pytest.raises(NotImplementedError):
        bnn.initialize_inducing(torch.randn(10, 2))
    assert models.create_model("vae", image_shape=(2, 2), z_dim=1, hidden=(3,)).in_features is None


def test_guides_declare_q_u_natural_gradients_and_their_name():
    svgp = models.create_model("svgp", input_dim=1, num_inducing=4)
    natural = guides.create_guide("cholesky", svgp, natural_gradient=True, ngd_lr=0.3)
    assert has_q_u(natural) and natural.ngd_lr == 0.3 and guide_name_of(natural) == "cholesky"
    bnn = models.create_model("bnn", in_features=1, widths=(4,), out_features=1)
    weights = guides.create_guide("mean-field", bnn)
    assert isinstance(weights, ZooGuide) and not has_q_u(weights) and weights.ngd_lr is None
    assert guide_name_of(weights) == "mean-field"
    with pytest.raises(NotImplementedError):
        weights.q_u()
    assert guide_name_of(lambda *a: None) is None and not has_q_u(object())
