"""The fleet simulator: many simulated executors speaking T/CES 130 to one hub.

Deployers size a hub with it; the benchmarks drive it. Every simulated executor is a
pair of greenlets (gevent) on one real connection, so one process carries thousands.
"""
