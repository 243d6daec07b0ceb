"""Plain-torch prediction for the MNIST BNN experiments (no Pyro trace: cheap enough to run every
epoch): a guide's weight means or draws, a ReLU MLP's logits from ``[W | b]`` layers, the error
rate and the Monte Carlo predictive's error."""

from __future__ import annotations

import torch


def bnn_weights(guide, kind: str = "mean") -> list[torch.Tensor]:
    """The guide's weight matrices ``[W | b]`` (out, in + 1), layer by layer: the means
    (``kind="mean"``) or one draw :math:`w = \\mu + \\sigma\\epsilon` (``kind="sample"``)."""
    names = sorted(guide._sites, key=lambda s: int(s[1:]))
    out = []
    for n in names:
        loc = getattr(guide, f"{n}_loc")
        if kind == "mean":
            out.append(loc)
        elif kind == "sample":
            out.append(loc + getattr(guide, f"{n}_scale") * torch.randn_like(loc))
        else:
            raise ValueError(f"kind must be 'mean' or 'sample', got {kind!r}")
    return out


def mlp_logits(weights: list[torch.Tensor], x: torch.Tensor, chunk: int = 10000) -> torch.Tensor:
    """Logits of a ReLU MLP with layers ``[W | b]`` (out, in + 1): (N, D) -> (N, C)."""
    outs = []
    for start in range(0, len(x), chunk):
        h = x[start:start + chunk]
        for i, w in enumerate(weights):
            h = h @ w[:, :-1].T + w[:, -1]  # (n, out)
            if i < len(weights) - 1:
                h = torch.relu(h)
        outs.append(h)
    return torch.cat(outs)


def linear_weights(model) -> list[torch.Tensor]:
    """The ``mlp``'s layers as ``[W | b]`` matrices (dropout nets predict with these, unmasked)."""
    return [torch.cat([lin.weight, lin.bias.unsqueeze(-1)], -1) for lin in model.layers]


@torch.no_grad()
def error_rate(logits_or_probs: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits_or_probs.argmax(-1) != y.to(logits_or_probs.device)).float().mean())


@torch.no_grad()
def mc_error(guide, x: torch.Tensor, y: torch.Tensor, num_samples: int, seed: int) -> float:
    """Error of the Monte Carlo predictive :math:`\\frac1S\\sum_s \\mathrm{softmax}(f(x; w_s))`."""
    torch.manual_seed(seed)
    probs = 0.0
    for _ in range(num_samples):
        probs = probs + torch.softmax(mlp_logits(bnn_weights(guide, "sample"), x), -1)
    return error_rate(probs, y)
