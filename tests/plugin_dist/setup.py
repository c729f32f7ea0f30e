"""A third-party plugin, packaged on its own: the hub must pick it up through its
entry point with no change to the core (tests/test_thirdparty_plugin.py)."""

from setuptools import setup

setup(
    name="rpahub-hello",
    version="1.0",
    packages=["rpahub_hello"],
    entry_points={
        "rpahub": ["hello = rpahub_hello"],
        # An adapter that cannot load: the hub must report it, not swallow it.
        "rpahub.adapters": ["broken_vendor = rpahub_hello.broken_adapter:Adapter"],
    },
)
