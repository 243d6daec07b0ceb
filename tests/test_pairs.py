"""Every registered (model, guide) pair gets the full :class:`PairTestBase` suite: registering a
pair is enough for it to be tested."""

import guides
from tests.pair_base import PairTestBase

for _model, _guide in guides.list_pairs():
    _name = f"TestPair_{_model}_{_guide}".replace("-", "_")
    globals()[_name] = type(_name, (PairTestBase,), {"model_name": _model, "guide_name": _guide})


def test_registry_has_the_bnn_pairs():
    pairs = set(guides.list_pairs())
    for g in ("mean-field", "auto-normal", "auto-lowrank", "auto-iaf", "laplace", "map"):
        assert ("bnn", g) in pairs
    assert ("mlp", "deterministic") in pairs
