"""The mushroom bandit's agents: :class:`BanditAgent` (a zoo model/guide pair, a buffer of recent
(context, action, reward) tuples and an action rule, trained by the engine's SVI steps) and
:func:`play`, one episode of an agent against the environment."""

from __future__ import annotations

import os

import pyro
import torch
from pyro import poutine

from experiments.engine.guards import check_finite
from experiments.engine.step import train_step
from experiments.engine.training import FitConfig, RunOptions, setup

from .environment import NUM_ACTIONS, Episode, cumulative_regret, encode, rewards


class BanditAgent:
    """A reward-regression agent: a zoo model/guide pair, a buffer, and an action rule.

    :param model: ``bnn`` or ``mlp`` regression model on ``D + 2`` inputs.
    :param guide: its guide (``mean-field`` or ``deterministic``).
    :param FitConfig fit_config: for :func:`~experiments.engine.training.setup` (lr, optimizer,
        elbo, ...); its ``batch_size`` is B, the tuples per SVI step.
    :param RunOptions run: the seed (of setup, and of the agent's batch and exploration draws)
        and the device (``None``: the defaults).
    :param int buffer_size: K, the buffer keeps the last K tuples.
    :param int num_minibatches: SVI steps after each interaction.
    :param float epsilon: probability of a uniformly random action.
    :param int num_samples: weight samples averaged to score actions (1 is Thompson sampling;
        the paper averages 2 with BbB; deterministic nets' samples are all equal).
    :param float reward_scale: c, rewards are stored and regressed as :math:`r / c` (1: raw).
    """

    def __init__(self, model, guide, fit_config: FitConfig, run: RunOptions | None = None, *,
                 buffer_size: int = 4096, num_minibatches: int = 64, epsilon: float = 0.0,
                 num_samples: int = 1, reward_scale: float = 1.0):
        if not reward_scale > 0:
            raise ValueError(f"reward_scale must be > 0, got {reward_scale!r}")
        self.reward_scale = float(reward_scale)
        if buffer_size < 1 or num_minibatches < 0 or num_samples < 1:
            raise ValueError(
                f"need buffer_size >= 1, num_minibatches >= 0, num_samples >= 1; "
                f"got {buffer_size}, {num_minibatches}, {num_samples}")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
        self.buffer_size, self.num_minibatches = int(buffer_size), int(num_minibatches)
        self.batch_size = int(fit_config.batch_size)
        self.epsilon, self.num_samples = float(epsilon), int(num_samples)
        in_features = model.in_features
        # setup() seeds Pyro/torch from run.seed, moves to run.device, creates the guide's
        # parameters on a placeholder row, and builds the optimiser; num_data is reset per step
        placeholder = (torch.zeros(1, in_features), torch.zeros(1))
        self.state = setup(model, guide, placeholder, fit_config, run)
        self.model, self.guide = self.state.model, self.state.guide
        self.device = next(iter(self.state.loss_fn.parameters())).device
        seed = self.state.run.seed
        self.batch_gen = torch.Generator().manual_seed(seed + 1)
        self.explore_gen = torch.Generator().manual_seed(seed + 2)
        self.inputs = torch.zeros(self.buffer_size, in_features, device=self.device)
        self.targets = torch.zeros(self.buffer_size, device=self.device)
        self.count = 0  # tuples seen so far; the buffer holds min(count, K)
        validate = self.state.config.validate
        if validate is None:
            validate = os.environ.get("VBZOO_PYRO_VALIDATION", "0") == "1"
        self.validate = validate
        self.last_loss = float("nan")

    @property
    def buffer_len(self) -> int:
        return min(self.count, self.buffer_size)

    @torch.no_grad()
    def predicted_rewards(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\bar f(x, a)` for both actions, averaged over ``num_samples`` draws of q: ``(2,)``.

        One vectorised guide draw of ``num_samples`` weight samples (a plate left of the data
        plate), replayed through the model; every draw scores both actions with the same weights
        (a coherent Thompson sample). Predictions are in the scaled units of the targets.
        """
        inp = encode(x.to(self.device).expand(NUM_ACTIONS, -1), torch.arange(NUM_ACTIONS))
        with pyro.validation_enabled(self.validate), \
                pyro.plate("thompson", self.num_samples, dim=-2):
            guide_trace = poutine.trace(self.guide).get_trace(inp)
            trace = poutine.trace(poutine.replay(self.model, trace=guide_trace)).get_trace(inp)
        f = trace.nodes["f"]["value"]  # (S, 1, 2, 1) for BbB, (2, 1) for a deterministic net
        return f.reshape(-1, NUM_ACTIONS).mean(0)

    def act(self, x: torch.Tensor) -> int:
        """ε-greedy in :meth:`predicted_rewards` (Thompson sampling when q is random, ε = 0)."""
        if self.epsilon > 0 and torch.rand((), generator=self.explore_gen) < self.epsilon:
            return int(torch.randint(NUM_ACTIONS, (), generator=self.explore_gen))
        return int(self.predicted_rewards(x).argmax())

    def observe(self, x: torch.Tensor, action: int, reward: float) -> None:
        """Store ``(x, a, r)`` (overwriting the oldest tuple once the buffer is full), then train."""
        slot = self.count % self.buffer_size
        self.inputs[slot] = encode(x.to(self.device), action)
        self.targets[slot] = float(reward) / self.reward_scale
        self.count += 1
        self.train(self.num_minibatches)

    def train(self, num_steps: int) -> None:
        """``num_steps`` SVI steps on minibatches of the buffer, the data plate sized to the buffer."""
        n = self.buffer_len
        if n == 0 or num_steps == 0:
            return
        state = self.state
        self.model.num_data = n  # the plate scales a batch's log-likelihood by N_t / B
        b = min(self.batch_size, n)
        with pyro.validation_enabled(self.validate):
            for _ in range(num_steps):
                idx = torch.randperm(n, generator=self.batch_gen)[:b].to(self.device)
                # fit's step: elbo_context, finite-loss check before the update, optimiser step
                loss = train_step(state, (self.inputs[idx], self.targets[idx]))
                check_finite(state)
        self.last_loss = loss.item()


def play(agent: BanditAgent, x: torch.Tensor, poisonous: torch.Tensor, episode: Episode,
         ) -> dict[str, torch.Tensor]:
    """Let ``agent`` play ``episode``: act, receive the reward, store and train, T times.

    :returns: ``action`` ``(T,)`` int64, ``reward`` ``(T,)`` float32 and ``regret`` ``(T,)``
        float64 (cumulative).
    """
    num_steps = len(episode.index)
    actions = torch.zeros(num_steps, dtype=torch.int64)
    for t in range(num_steps):
        i = int(episode.index[t])
        a = agent.act(x[i])
        actions[t] = a
        r = rewards(poisonous[i:i + 1], actions[t:t + 1], episode.unlucky[t:t + 1])
        agent.observe(x[i], a, float(r))
    pois = poisonous[episode.index]
    reward = rewards(pois, actions, episode.unlucky)
    return {"action": actions, "reward": reward, "regret": cumulative_regret(pois, reward)}
