"""Generative side of the zoo's model/guide pairs. Every module of this package is imported so
that its ``@register_model`` decorators run: dropping a file here registers its models."""

from .registry import MODELS, create_model, import_submodules, list_models, register_model

import_submodules(__name__)

__all__ = ["MODELS", "create_model", "list_models", "register_model"]
