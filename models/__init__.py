"""Generative side of the zoo's model/guide pairs. Every module of this package is imported so
that its ``@register_model`` decorators run: dropping a file here registers its models.

Importing the zoo switches Pyro to module-local parameters
(``pyro.settings.set(module_local_params=True)``): every parameter is owned by its model or guide
module, nothing is shared through Pyro's global param store, so two models of one class in a
process never alias each other's parameters, and ``module.state_dict()`` is the whole state.
"""

import pyro

pyro.settings.set(module_local_params=True)

from .registry import (  # noqa: E402
    MODELS,
    create_model,
    import_submodules,
    list_models,
    register_model,
)

import_submodules(__name__)

__all__ = ["MODELS", "create_model", "list_models", "register_model"]
