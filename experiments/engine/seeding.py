"""Seed every random stream of a run (python, numpy, torch, pyro) from one integer."""

from __future__ import annotations

import random

import numpy as np
import pyro
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy, torch (CPU and CUDA) and Pyro; return a fresh ``torch.Generator`` seeded
    with ``seed`` for the data order, so that the order does not depend on how many random numbers
    model code drew."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    pyro.set_rng_seed(seed)  # seeds torch (all devices), random and numpy again
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def rng_state(generator: torch.Generator | None = None) -> dict:
    """Every random stream's state, for checkpoints: tensors, ints, strings, floats and lists only,
    so that ``torch.load(..., weights_only=True)`` reads it back."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(internal), gauss],
             "numpy": [str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["data"] = generator.get_state()
    return state


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "data" in state:
        generator.set_state(state["data"])
