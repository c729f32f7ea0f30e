"""The built-in pages, one module a center; each module has ``register(pages)``."""

from __future__ import annotations

import pkgutil
from importlib import import_module


def register(pages) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        import_module(f"{__name__}.{info.name}").register(pages)
