"""Fault modes a sandbox partner can be switched into while it runs.

Each mode changes how the partner answers the hub (and, for ``invalid``, what it
pushes). docs/sandbox.md lists the effect each one has on the hub.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

#: mode -> what it does, as ``hub sandbox status`` and the docs show it.
MODES: dict[str, str] = {
    "slow": "answers after SECONDS (default 2), still within the hub's timeout if SECONDS is below it",
    "5xx": "answers HTTP 503 with an OCPI 3000 envelope",
    "429": "answers HTTP 429 with Retry-After: SECONDS (default 2)",
    "timeout": "holds every answer for SECONDS (default 30), past the hub's timeout",
    "invalid": "answers and pushes bodies that violate the OCPI 2.2.1 models",
    "pagination": "serves its Sender lists one object per page (Link, X-Total-Count, X-Limit)",
}
DEFAULT_SECONDS = {"slow": 2.0, "429": 2.0, "timeout": 30.0}
OFF = "off"


class FaultError(ValueError):
    """A fault that cannot be set; the message names the fix."""


@dataclass
class Fault:
    """The fault mode a partner is in (``None``: answers normally)."""

    mode: str | None = None
    seconds: float = 0.0
    _released: threading.Event = field(default_factory=threading.Event, repr=False)

    @classmethod
    def parse(cls, mode: str, seconds: float | None = None) -> Fault:
        mode = mode.lower()
        if mode == OFF:
            return cls()
        if mode not in MODES:
            raise FaultError(f"unknown fault mode {mode!r}: use one of {', '.join(MODES)} or off")
        if seconds is not None and not 0 <= seconds <= 600:
            raise FaultError(f"--seconds {seconds}: must be between 0 and 600")
        return cls(mode, DEFAULT_SECONDS.get(mode, 0.0) if seconds is None else float(seconds))

    def describe(self) -> str:
        if self.mode is None:
            return OFF
        return f"{self.mode} ({self.seconds:g} s)" if self.mode in DEFAULT_SECONDS else self.mode

    def as_dict(self) -> dict:
        return {"mode": self.mode or OFF, "seconds": self.seconds if self.mode in DEFAULT_SECONDS else None}

    def hold(self) -> None:
        """Wait as ``slow``/``timeout`` says; returns early when the fault is lifted or the partner stops."""
        if self.mode in ("slow", "timeout") and self.seconds:
            self._released.wait(self.seconds)

    def release(self) -> None:
        self._released.set()
