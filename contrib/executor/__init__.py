"""Reference executor for rpahub: registers over WebSocket or HTTP (T/CES 130 clause 7,
Appendix A), runs Python and Robot Framework packages, streams their logs, checkpoints
and recordings back to the hub. See README.md in this folder for package authors.
"""

__version__ = "0.1.0"
