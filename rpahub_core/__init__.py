"""rpahub core: hook specifications, plugin manager, configuration, database, bus, app, CLI.

The core holds no feature: everything a user sees comes from plugins.
"""

__version__ = "0.1.0"

from .plugins import hookimpl  # noqa: E402

__all__ = ["__version__", "hookimpl"]
