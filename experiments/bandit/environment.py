"""The mushroom bandit's environment: the two actions, the rewards of eating or passing (an eaten
poisonous mushroom is unlucky with probability 1/2), the oracle's rewards, the cumulative regret,
an episode's draws (:class:`Episode`) and the encoding of (context, action) as a network input."""

from __future__ import annotations

from dataclasses import dataclass

import torch

PASS, EAT = 0, 1
NUM_ACTIONS = 2
EDIBLE_REWARD = 5.0
POISON_PENALTY = -35.0


def rewards(poisonous: torch.Tensor, action: torch.Tensor, unlucky: torch.Tensor) -> torch.Tensor:
    r"""Realised rewards :math:`r(x, a)` (see :mod:`experiments.blundell_bandit`).

    :param torch.Tensor poisonous: ``(T,)`` bool/int, 1 = poisonous.
    :param torch.Tensor action: ``(T,)`` int, 0 = pass, 1 = eat.
    :param torch.Tensor unlucky: ``(T,)`` bool, the poison coin: eating a poisonous mushroom costs
        −35 where it is true, else pays +5 (draw it with :func:`poison_coins`).
    :returns: ``(T,)`` float32 rewards in {−35, 0, 5}.
    """
    poisonous, action, unlucky = (torch.as_tensor(t) for t in (poisonous, action, unlucky))
    if poisonous.shape != action.shape or unlucky.shape != action.shape:
        raise ValueError(f"poisonous, action and unlucky must have one shape, got "
                         f"{tuple(poisonous.shape)}, {tuple(action.shape)}, {tuple(unlucky.shape)}")
    if ((action != PASS) & (action != EAT)).any():
        raise ValueError(f"actions must be 0 (pass) or 1 (eat), got {action.unique().tolist()}")
    eat_reward = torch.where(poisonous.bool() & unlucky.bool(), POISON_PENALTY, EDIBLE_REWARD)
    return torch.where(action == EAT, eat_reward, 0.0).float()


def poison_coins(num: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(num,)`` bool, each true with probability ½: whether eating a poisonous mushroom hurts."""
    return torch.rand(num, generator=generator) < 0.5


def oracle_rewards(poisonous: torch.Tensor) -> torch.Tensor:
    r""":math:`r^\star(x) = 5` for edible, 0 for poisonous mushrooms (the oracle eats the edible)."""
    return torch.where(torch.as_tensor(poisonous).bool(), 0.0, EDIBLE_REWARD).float()


def cumulative_regret(poisonous: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
    r""":math:`R_T = \sum_{t \le T} (r^\star(x_t) - r_t)` for every T: ``(T,)`` float64."""
    reward = torch.as_tensor(reward)
    if reward.shape != torch.as_tensor(poisonous).shape:
        raise ValueError(f"poisonous and reward must have one shape, got "
                         f"{tuple(torch.as_tensor(poisonous).shape)}, {tuple(reward.shape)}")
    return (oracle_rewards(poisonous).double() - reward.double()).cumsum(0)


@dataclass
class Episode:
    """The environment's randomness for one run, shared by every agent of the run.

    :ivar torch.Tensor index: ``(T,)`` int64 row of the mushroom shown at each step.
    :ivar torch.Tensor unlucky: ``(T,)`` bool poison coins.
    """

    index: torch.Tensor
    unlucky: torch.Tensor

    @classmethod
    def draw(cls, num_steps: int, num_mushrooms: int, seed: int) -> Episode:
        if num_steps < 1 or num_mushrooms < 1:
            raise ValueError(f"num_steps and num_mushrooms must be >= 1, got {num_steps}, "
                             f"{num_mushrooms}")
        gen = torch.Generator().manual_seed(seed)
        index = torch.randint(num_mushrooms, (num_steps,), generator=gen)
        return cls(index=index, unlucky=poison_coins(num_steps, gen))


def encode(x: torch.Tensor, action: torch.Tensor | int) -> torch.Tensor:
    """Network input ``[x, onehot(action)]``: ``(..., D) -> (..., D + 2)``."""
    action = torch.as_tensor(action, device=x.device).expand(x.shape[:-1])
    return torch.cat([x, torch.nn.functional.one_hot(action, NUM_ACTIONS).to(x.dtype)], -1)
