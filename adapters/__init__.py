"""Vendor adapters, loaded with stevedore from the ``rpahub.adapters`` namespace."""
