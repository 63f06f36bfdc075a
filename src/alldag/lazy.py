"""Functions named by "module:function" in a registry, imported only when first called (keeps registries light)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def function_of(ref: Callable | str) -> Callable:
    """ref itself when it is callable, else the function "module:function" names (importing its module)."""
    if callable(ref):
        return ref
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)
