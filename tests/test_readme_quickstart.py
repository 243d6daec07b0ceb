"""README's "Python API quick start" block runs as written (CPU, seconds), so it cannot go stale."""

from __future__ import annotations

from tests.helpers import readme_quickstart


def test_readme_quickstart_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # it must not need (or write) files
    namespace: dict = {"__name__": "__quickstart__"}
    exec(compile(readme_quickstart(), "README.md quickstart", "exec"), namespace)
    out = capsys.readouterr().out
    assert "RMSE" in out and "epistemic sd" in out
    pred = namespace["pred"]
    assert pred.mean.shape == (50,) and pred.log_likelihood > -1.0
    # what the section claims: uncertainty grows away from the training inputs [-3, 3]
    assert pred.epistemic[-1] > pred.epistemic[25]
    # the SVGP part: its start and fit give a sensible predictive too
    gp_pred = namespace["gp_pred"]
    assert "SVGP" in out and gp_pred.log_likelihood > -1.0
    assert not list(tmp_path.iterdir())
