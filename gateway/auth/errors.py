"""Errors of staff authentication. Each carries a stable ``code``.

    AuthError
    ├── Unauthorized    auth.unauthorized     no, malformed, unknown, revoked or expired token (401)
    ├── InvalidRole     auth.invalid_role     not one of treasury, clerk, auditor
    ├── InvalidName     auth.invalid_name     empty, too long or with control characters
    ├── InvalidExpiry   auth.invalid_expiry   lifetime not within 1 day … 10 years
    └── TokenNotFound   auth.token_not_found  no token with that id (revoke)

``Unauthorized.detail["reason"]`` says which: ``missing``, ``malformed``, ``invalid`` (unknown id
or wrong secret, deliberately not told apart), ``revoked``, ``expired``. Revoked and expired are
only said to a caller who presented the right secret, so they leak nothing.

A role lacking a permission is answered by the guard itself: 403 ``auth.forbidden``.
"""

from __future__ import annotations

from typing import Any


class AuthError(Exception):
    code = "auth.error"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class Unauthorized(AuthError):
    code = "auth.unauthorized"

    @property
    def reason(self) -> str:
        return str(self.detail.get("reason", "invalid"))


class InvalidRole(AuthError):
    code = "auth.invalid_role"


class InvalidName(AuthError):
    code = "auth.invalid_name"


class InvalidExpiry(AuthError):
    code = "auth.invalid_expiry"


class TokenNotFound(AuthError):
    code = "auth.token_not_found"
