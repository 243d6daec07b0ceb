"""The public API: ``from experiments import fit, FitConfig, predict, ...``."""

import importlib

import pytest

import experiments


def test_every_public_name_resolves():
    for name in experiments.__all__:
        assert getattr(experiments, name) is not None, name
    assert experiments.fit is importlib.import_module("experiments.engine.training").fit
    assert "fit" in dir(experiments)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'fitt'"):
        experiments.fitt  # noqa: B018


def test_readme_quickstart_imports_public_names_only():
    from tests.helpers import readme_quickstart

    assert "experiments.common" not in readme_quickstart()


def test_old_import_paths_warn_and_give_the_moved_module():
    """``experiments.common`` was split into engine / data / harness; its old paths keep working
    for one release, with a DeprecationWarning naming the new module (issue 24)."""
    import subprocess
    import sys

    code = ("import warnings, experiments.engine.training as new\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    from experiments.common.training import fit\n"
            "    from experiments.common.data import load_table\n"
            "assert fit is new.fit\n"
            "import experiments.data\n"
            "assert load_table is experiments.data.load_table\n"
            "print([str(x.message).split(' ')[:3] for x in w if x.category is DeprecationWarning])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "['experiments.common.training', 'moved', 'to']" in out.stdout
    assert "['experiments.common.data', 'moved', 'to']" in out.stdout
