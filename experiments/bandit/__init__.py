"""The mushroom bandit of :mod:`experiments.blundell_bandit` (Blundell et al. 2015, Sec. 5.3):
its environment (:mod:`.environment`: rewards, the oracle, regret, the episodes' draws) and its
reward-regression agents (:mod:`.agent`). The experiment script itself (config, run, figure) is
:mod:`experiments.blundell_bandit`."""
