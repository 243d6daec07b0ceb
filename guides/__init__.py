"""Variational side of the zoo's model/guide pairs. Every module of this package is imported so
that its ``@register_guide`` decorators run: dropping a file here registers its guides."""

import models  # noqa: F401  (register the models the guides refer to)
from models.registry import import_submodules

from .registry import GUIDES, create_guide, guide_builder, list_guides, list_pairs, register_guide

import_submodules(__name__)

__all__ = ["GUIDES", "create_guide", "guide_builder", "list_guides", "list_pairs", "register_guide"]
