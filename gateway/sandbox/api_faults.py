"""Injected API failures, to test what a client does when Stripe errs or a response is lost.

- when="before": the request is refused with a 5xx and nothing happens (an outage);
  Stripe saves nothing, so a retry runs normally.
- when="after": the request runs (and its idempotent response is saved), but the client
  gets a 5xx instead of the result: the "did my payment go through?" case. The SDK retries
  5xx with the same Idempotency-Key and receives the saved response.
"""

from __future__ import annotations

from dataclasses import dataclass


class ApiFaultError(ValueError):
    """A refused fault definition; `code` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class ApiFault:
    """Fail the next `count` API requests whose "METHOD path" starts with `match`."""

    count: int
    when: str = "after"
    status: int = 500
    match: str = ""

    def __post_init__(self) -> None:
        if self.when not in ("before", "after"):
            raise ApiFaultError("api_fault_invalid", "when must be before or after")
        if not 500 <= self.status <= 599:
            raise ApiFaultError("api_fault_invalid", "status must be a 5xx")
        if self.count < 0:
            raise ApiFaultError("api_fault_invalid", "count must be ≥ 0")


@dataclass(slots=True)
class _Armed:
    fault: ApiFault
    remaining: int


class ApiFaults:
    """Armed faults, consumed in order. Callers hold the sandbox lock."""

    def __init__(self) -> None:
        self._armed: list[_Armed] = []

    def arm(self, fault: ApiFault) -> None:
        if fault.count:
            self._armed.append(_Armed(fault, fault.count))

    def take(self, method: str, path: str) -> ApiFault | None:
        """The fault that applies to this request, if any (and one use of it)."""
        target = f"{method} {path}"
        for armed in self._armed:
            if target.startswith(armed.fault.match):
                armed.remaining -= 1
                if armed.remaining == 0:
                    self._armed.remove(armed)
                return armed.fault
        return None

    def clear(self) -> None:
        self._armed.clear()
