"""The public API: ``from experiments import fit, FitConfig, predict, ...``."""

import importlib

import pytest

import experiments


def test_every_public_name_resolves():
    for name in experiments.__all__:
        assert getattr(experiments, name) is not None, name
    assert experiments.fit is importlib.import_module("experiments.common.training").fit
    assert "fit" in dir(experiments)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'fitt'"):
        experiments.fitt  # noqa: B018


def test_readme_quickstart_imports_public_names_only():
    from tests.test_readme_quickstart import _quickstart

    assert "experiments.common" not in _quickstart()
