"""`SandboxControl`: a typed Python client for the `/sandbox/*` control endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

Obj = dict[str, Any]


class SandboxControlError(RuntimeError):
    """A control call was refused; `code` is the stable code from the error body."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


class SandboxControl:
    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: Obj | None = None) -> Obj:
        response = self._http.request(method, path, json=body)
        data: Obj = response.json()
        if response.status_code >= 400:
            error = data.get("error", {})
            raise SandboxControlError(response.status_code, error.get("code"), error.get("message", ""))
        return data

    # clock
    def now(self) -> int:
        return int(self._call("GET", "/sandbox/clock")["now"])

    def set_clock(self, now: int | datetime, *, frozen: bool = True) -> int:
        """Jump to `now` (unix seconds or an aware datetime); frozen by default."""
        stamp = int(now.timestamp()) if isinstance(now, datetime) else now
        return int(self._call("POST", "/sandbox/clock", {"now": stamp, "frozen": frozen})["now"])

    def advance_clock(self, seconds: int) -> int:
        return int(self._call("POST", "/sandbox/clock", {"advance": seconds})["now"])

    # payouts
    def run_payouts(self, *, through: str = "pending") -> list[Obj]:
        """Pay out the available balance; `through` = pending | in_transit | paid."""
        return list(self._call("POST", "/sandbox/payouts/run", {"through": through})["payouts"])

    def set_payout_status(self, payout_id: str, status: str, *, failure_code: str | None = None) -> Obj:
        body: Obj = {"status": status}
        if failure_code is not None:
            body["failure_code"] = failure_code
        return self._call("POST", f"/sandbox/payouts/{payout_id}/status", body)

    # webhooks
    def set_webhook_endpoint(self, url: str | None, *, secret: str | None = None) -> Obj:
        body: Obj = {"url": url}
        if secret is not None:
            body["secret"] = secret
        return self._call("POST", "/sandbox/webhook_endpoint", body)

    def set_delivery_mode(self, mode: str) -> None:
        """"automatic" (background delivery) or "manual" (queued until flush)."""
        self._call("POST", "/sandbox/deliveries/mode", {"mode": mode})

    def set_delivery_faults(
        self,
        *,
        drop: float = 0.0,
        duplicate: float = 0.0,
        delay: float = 0.0,
        reorder: float = 0.0,
        delay_seconds: float = 0.5,
        seed: int | None = None,
        rules: Sequence[Obj] = (),
        retry_delays: Sequence[float] | None = None,
    ) -> Obj:
        """Rules: {"action": drop|duplicate|delay|reorder, "event_type"?, "event_id"?,
        "times"?: int (0 = always), "delay_seconds"?}; consulted before the probabilities."""
        body: Obj = {
            "drop": drop, "duplicate": duplicate, "delay": delay, "reorder": reorder,
            "delay_seconds": delay_seconds, "seed": seed, "rules": list(rules),
        }
        if retry_delays is not None:
            body["retry_delays"] = list(retry_delays)
        return self._call("POST", "/sandbox/deliveries/faults", body)

    def flush_deliveries(
        self,
        events: Sequence[str] | None = None,
        *,
        order: str = "fifo",
        drop: Sequence[str] = (),
        duplicate: Sequence[str] = (),
        seed: int | None = None,
    ) -> list[Obj]:
        """Manual mode: send queued events now; returns the attempts made."""
        body: Obj = {"order": order, "drop": list(drop), "duplicate": list(duplicate), "seed": seed}
        if events is not None:
            body["events"] = list(events)
        return list(self._call("POST", "/sandbox/deliveries/flush", body)["attempts"])

    def deliveries(self) -> Obj:
        """{"mode", "queued": [event ids], "busy": n, "attempts": [...]}."""
        return self._call("GET", "/sandbox/deliveries")

    def wait_for_deliveries(self, timeout: float = 5.0) -> bool:
        """Block until nothing is scheduled or in flight; False on timeout."""
        return bool(self._call("POST", "/sandbox/deliveries/wait", {"timeout": timeout})["idle"])

    # API faults
    def fail_api_requests(self, count: int = 1, *, when: str = "after", status: int = 500, match: str = "") -> Obj:
        """Make the next `count` API requests matching "METHOD /path" prefix `match` answer
        `status`; "after" runs them first (a lost response), "before" does not (an outage)."""
        return self._call("POST", "/sandbox/api_faults", {"count": count, "when": when, "status": status, "match": match})

    def reset(self) -> None:
        self._call("POST", "/sandbox/reset")
