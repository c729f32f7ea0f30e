"""A minimal local designer: an HTTP service that admits a person only with a session
token the hub confirms is a live lease on *this* registered designer (6.2.3a).

It stands in for a vendor's cloud designer when the ``images`` plugin's ``local``
provider starts a designer image; run ``python -m rpahub_contrib.designer --help``.
"""
