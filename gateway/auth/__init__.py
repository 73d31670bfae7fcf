"""Staff authentication: API tokens with roles, the ``require(permission)`` guard.

- ``permissions``: roles and the permission table (data; documented there).
- ``tokens``: issue, verify, list, revoke tokens; only SHA-256 digests are stored.
- ``authenticator``: header → identity, with a 5-second in-process cache (revocation delay).
- ``guard``: the Litestar guard factory, the ``staff`` dependency, ``StaffAuthPlugin``.
- ``audit_api``: ``GET /api/v1/audit``.

Errors are listed in ``errors``; every one carries a stable ``code`` (``auth.…``).
"""

from gateway.auth.authenticator import StaffAuthenticator, bearer_token
from gateway.auth.errors import (
    AuthError,
    InvalidExpiry,
    InvalidName,
    InvalidRole,
    TokenNotFound,
    Unauthorized,
)
from gateway.auth.guard import StaffAuthPlugin, authenticate, provide_staff, request_id, require
from gateway.auth.identity import StaffIdentity
from gateway.auth.permissions import PERMISSIONS, Permission, Role, allows, permissions_of
from gateway.auth.tokens import (
    DEFAULT_LIFETIME,
    IssuedToken,
    TokenInfo,
    create_token,
    get_token,
    list_tokens,
    revoke_token,
    staff_tokens,
    verify_token,
)

__all__ = [
    "DEFAULT_LIFETIME",
    "PERMISSIONS",
    "AuthError",
    "InvalidExpiry",
    "InvalidName",
    "InvalidRole",
    "IssuedToken",
    "Permission",
    "Role",
    "StaffAuthPlugin",
    "StaffAuthenticator",
    "StaffIdentity",
    "TokenInfo",
    "TokenNotFound",
    "Unauthorized",
    "allows",
    "authenticate",
    "bearer_token",
    "create_token",
    "get_token",
    "list_tokens",
    "permissions_of",
    "provide_staff",
    "request_id",
    "require",
    "revoke_token",
    "staff_tokens",
    "verify_token",
]
