"""The contract of a vendor adapter (``rpahub.adapters`` entry points, loaded by stevedore).

A supplier record names the adapter that speaks for its executors. The adapter
decides how the executor proves it belongs to the supplier (``supplierSecret`` of
``Register``), which packages its executors can run, and may adjust the ``Execute``
body for its runtime. ``docs/vendor_adapters.md`` walks through writing one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class AdmissionRefused(Exception):
    """The executor's proof of identity is not acceptable; the message says why."""


class VendorAdapter:
    #: the adapter's own name, for messages; suppliers name adapters by their entry point
    name = "base"
    #: seconds a proof stays acceptable on either side of the hub's clock (nonces are kept longer)
    replay_window_s = 300
    #: package kinds this vendor's executors run ("python", "robot", ...); empty means any
    package_kinds: tuple[str, ...] = ()

    def verify_secret(
        self,
        *,
        secret: str,
        robot_id: str,
        presented: str,
        now: float,
        remember_nonce: Callable[[str], bool],
    ) -> None:
        """Raise :class:`AdmissionRefused` unless ``presented`` proves knowledge of ``secret``.

        ``secret`` is the supplier secret in clear (decrypted for this call only);
        ``remember_nonce(nonce)`` returns False when the nonce was already used inside
        the replay window, on any hub process.
        """
        raise AdmissionRefused("this adapter admits no executor")

    def accepts_package(self, kind: str) -> bool:
        return not self.package_kinds or kind in self.package_kinds

    def execute_body(self, body: dict[str, Any], run: Any) -> dict[str, Any]:
        """The ``Execute`` body for this vendor (default: the standard's, unchanged)."""
        return body
