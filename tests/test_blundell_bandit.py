"""The mushroom bandit of Blundell et al. (2015), Fig. 6: rewards, oracle, regret bookkeeping,
ε-greedy exploration, the agents' buffer and Thompson sampling."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from experiments import blundell_bandit as B
from experiments.engine.settings import FitConfig
from experiments.harness.spec import ConfigError, apply_overrides, validate_config


def _agent(key: str, in_features: int = 7, **bandit):
    cfg = B.get_config(smoke=True)
    cfg.bandit = dataclasses.replace(cfg.bandit, **bandit)
    return B.make_agent(B.agent_specs(cfg)[key], in_features, cfg.bandit, seed=3, device="cpu")


def test_rewards_and_oracle_by_hand():
    poisonous = torch.tensor([0, 0, 1, 1, 0, 1])
    action = torch.tensor([1, 0, 1, 1, 0, 0])  # eat, pass, eat, eat, pass, pass
    unlucky = torch.tensor([True, False, True, False, True, True])
    assert B.rewards(poisonous, action, unlucky).tolist() == [5.0, 0.0, -35.0, 5.0, 0.0, 0.0]
    assert B.oracle_rewards(poisonous).tolist() == [5.0, 5.0, 0.0, 0.0, 5.0, 0.0]


def test_poison_costs_35_half_of_the_time_under_a_seeded_generator():
    n = 20_000
    coins = B.poison_coins(n, torch.Generator().manual_seed(0))
    again = B.poison_coins(n, torch.Generator().manual_seed(0))
    assert torch.equal(coins, again)  # reproducible from the seed
    r = B.rewards(torch.ones(n, dtype=torch.long), torch.ones(n, dtype=torch.long), coins)
    assert set(r.unique().tolist()) == {-35.0, 5.0}
    frac = (r == -35.0).float().mean().item()
    assert abs(frac - 0.5) < 0.015  # binomial std is 0.0035
    assert abs(r.mean().item() - (-15.0)) < 0.6  # E[r] = (−35 + 5) / 2
    # edible mushrooms and passing ignore the coin
    assert B.rewards(torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long), coins).eq(5).all()
    assert B.rewards(torch.ones(n, dtype=torch.long), torch.zeros(n, dtype=torch.long), coins).eq(0).all()


def test_bad_actions_and_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="0 \\(pass\\) or 1 \\(eat\\)"):
        B.rewards(torch.tensor([0]), torch.tensor([2]), torch.tensor([False]))
    with pytest.raises(ValueError, match="one shape"):
        B.rewards(torch.tensor([0, 1]), torch.tensor([1]), torch.tensor([False]))
    with pytest.raises(ValueError, match="epsilon"):
        B.BanditAgent(None, None, FitConfig(), epsilon=1.5)
    cfg = B.get_config(smoke=True)
    cfg.epsilons = [-0.1]
    with pytest.raises(ConfigError, match=r"epsilons=\[-0.1\] is invalid"):
        validate_config(cfg)
    cfg = B.get_config(smoke=True)
    cfg.bandit.reward_scale = 0.0
    with pytest.raises(ConfigError, match="bandit.reward_scale=0.0"):
        validate_config(cfg)


class _Scripted:
    """A hand-scripted agent: eats (or not) regardless of the context, records what it is told."""

    def __init__(self, eat: bool):
        self.eat = eat
        self.seen = []

    def act(self, x):
        return B.EAT if self.eat else B.PASS

    def observe(self, x, action, reward):
        self.seen.append((action, reward))


def test_regret_bookkeeping_of_scripted_agents():
    x = torch.eye(4)
    poisonous = torch.tensor([0, 1, 1, 0])
    episode = B.Episode(index=torch.tensor([0, 1, 2, 3, 1]),
                        unlucky=torch.tensor([False, True, False, True, False]))
    # always eat: rewards 5, −35, 5, 5, 5; oracle 5, 0, 0, 5, 0; regret 0, 35, −5, 0, −5
    eater = _Scripted(eat=True)
    out = B.play(eater, x, poisonous, episode)
    assert out["reward"].tolist() == [5.0, -35.0, 5.0, 5.0, 5.0]
    assert out["regret"].tolist() == [0.0, 35.0, 30.0, 30.0, 25.0]
    assert eater.seen == [(1, 5.0), (1, -35.0), (1, 5.0), (1, 5.0), (1, 5.0)]
    # never eat: rewards 0; regret 5, 0, 0, 5, 0
    out = B.play(_Scripted(eat=False), x, poisonous, episode)
    assert out["regret"].tolist() == [5.0, 5.0, 5.0, 10.0, 10.0]
    assert out["action"].tolist() == [0] * 5


def test_episode_is_seeded_and_shared():
    a, b = B.Episode.draw(50, 10, seed=4), B.Episode.draw(50, 10, seed=4)
    assert torch.equal(a.index, b.index) and torch.equal(a.unlucky, b.unlucky)
    assert not torch.equal(a.index, B.Episode.draw(50, 10, seed=5).index)


@pytest.mark.parametrize("epsilon", [0.0, 0.2, 1.0])
def test_epsilon_greedy_explores_at_rate_epsilon(epsilon):
    agent = _agent("eps_0")
    agent.epsilon = epsilon
    agent.predicted_rewards = lambda x: torch.tensor([0.0, 1.0])  # greedy action: eat
    n = 4000
    passes = sum(agent.act(torch.zeros(5)) == B.PASS for _ in range(n)) / n
    # a uniformly random action differs from the greedy one half of the time
    assert abs(passes - epsilon / 2) < 0.025


def test_buffer_keeps_the_last_tuples_and_sizes_the_data_plate():
    agent = _agent("eps_0", buffer_size=4, num_minibatches=0)
    for t in range(6):
        agent.observe(torch.full((5,), float(t)), t % 2, float(t))
    assert agent.count == 6 and agent.buffer_len == 4
    assert sorted(agent.targets.tolist()) == [2.0, 3.0, 4.0, 5.0]
    assert agent.inputs[:, -2:].sum(-1).eq(1).all()  # one-hot action columns
    agent.train(2)
    assert agent.model.num_data == 4 and agent.state.step == 2


def test_untrained_bbb_thompson_sampling_picks_both_actions_but_greedy_does_not():
    torch.manual_seed(0)
    x = torch.zeros(5)
    x[[0, 3]] = 1.0
    bbb = _agent("bbb")
    assert bbb.num_samples == 1  # Thompson sampling: one posterior draw per decision
    actions = {bbb.act(x) for _ in range(60)}
    assert actions == {B.PASS, B.EAT}
    greedy = _agent("eps_0")
    assert len({greedy.act(x) for _ in range(10)}) == 1  # a deterministic net without ε


def test_training_moves_the_predicted_reward_towards_the_data():
    agent = _agent("eps_0", num_minibatches=0, buffer_size=64)
    x = torch.zeros(5)
    x[1] = 1.0
    for _ in range(32):
        agent.observe(x, B.EAT, 5.0)
        agent.observe(x, B.PASS, 0.0)
    agent.train(300)  # the net's initialisation is seeded by the agent's seed (3): gap ~5 here
    f = agent.predicted_rewards(x)
    assert f[B.EAT] - f[B.PASS] > 1.5  # from about 0 at initialisation (lr 1e-3)


def test_thompson_scores_match_the_posterior_predictive():
    """The agent's direct guide-draw-and-replay scoring has the law of ``posterior_predictive``
    (and equals it for a deterministic net); averaging S draws divides the variance by S."""
    from experiments.engine.predictive import posterior_predictive

    x = torch.zeros(5)
    x[[1, 4]] = 1.0
    inp = B.encode(x.expand(B.NUM_ACTIONS, -1), torch.arange(B.NUM_ACTIONS))
    greedy = _agent("eps_0")
    ref = posterior_predictive(greedy.model, greedy.guide, inp, num_samples=1, return_sites=("f",))
    assert torch.allclose(greedy.predicted_rewards(x), ref["f"][0, :, 0])

    bbb = _agent("bbb")
    bbb.num_samples = 2  # the paper's average of two draws
    bbb.guide.w0_scale = torch.full_like(bbb.guide.w0_scale, 0.5)  # a visibly random q
    torch.manual_seed(0)
    n = 3000
    ours = torch.stack([bbb.predicted_rewards(x) for _ in range(n)])  # (n, 2), S = 2
    ref = posterior_predictive(bbb.model, bbb.guide, inp, num_samples=n, return_sites=("f",))
    ref = ref["f"][:, :, 0]  # (n, 2), one draw each
    assert ours.shape == (n, 2)
    se = ref.std(0) / n ** 0.5
    assert ((ours.mean(0) - ref.mean(0)).abs() < 5 * se).all()
    # S = 2 independent draws averaged: variance ratio 1/2 (sampling error of the ratio ~4 %)
    ratio = ours.var(0) / ref.var(0)
    assert ((ratio - 0.5).abs() < 0.1).all(), ratio
    # one draw scores both actions with the same weights: the two scores are correlated
    assert torch.corrcoef(ours.T)[0, 1] > 0.2


def test_rewards_are_stored_in_units_of_reward_scale():
    agent = _agent("eps_0", num_minibatches=0, reward_scale=5.0)
    assert agent.reward_scale == 5.0
    agent.observe(torch.zeros(5), B.EAT, -35.0)
    agent.observe(torch.zeros(5), B.EAT, 5.0)
    assert agent.targets[:2].tolist() == [-7.0, 1.0]
    with pytest.raises(ValueError, match="reward_scale"):
        B.BanditAgent(None, None, FitConfig(), reward_scale=0.0)


@pytest.mark.parametrize("overrides", [B.QUICK_OVERRIDES, B.BUDGET_OVERRIDES])
def test_documented_overrides_name_existing_config_entries(overrides):
    cfg = apply_overrides(B.get_config(), overrides)  # unknown keys or wrong types would raise
    validate_config(cfg)
    for item in overrides:
        key, value = item.split("=")
        assert getattr(cfg.bandit, key.split(".")[1]) == int(value), item
    assert cfg.bbb_num_samples == 1  # one posterior draw per decision (the docstring's reason)


def test_config_is_typed_and_agents_share_the_greedy_pair():
    cfg = B.get_config(smoke=True)
    validate_config(cfg)
    agents = B.agent_specs(cfg)
    assert list(agents) == ["bbb", "eps_0", "eps_0.01", "eps_0.05"]
    assert agents["bbb"].pair is cfg.bbb and agents["eps_0.05"].pair is cfg.greedy
    assert agents["eps_0.05"].epsilon == 0.05 and agents["bbb"].num_samples == 1
    # the agent's fit config: the pair's, completed with the run's seed and device
    agent = _agent("bbb")
    assert agent.batch_size == cfg.bbb.fit.batch_size == 16
    assert agent.state.run.seed == 3 and agent.state.config.elbo == "meanfield"
