"""Compute API errors in the real response shape, which ``googleapiclient`` turns into ``HttpError``
(``status_code``, ``reason`` = the message, ``error_details`` = the ``errors`` list)."""

from __future__ import annotations

from typing import Any

# The ``reason`` the real API puts in ``errors[0]`` for each status we produce.
DEFAULT_REASONS: dict[int, str] = {
    400: "invalid",
    401: "authError",
    403: "rateLimitExceeded",  # an injected 403 is a quota error; a permission error is ``forbidden``
    404: "notFound",
    409: "alreadyExists",
    429: "rateLimitExceeded",
    500: "backendError",
    502: "backendError",
    503: "backendError",
    504: "backendError",
}

_DEFAULT_MESSAGES: dict[str, str] = {
    "rateLimitExceeded": "Rate Limit Exceeded",
    "backendError": "Internal error. Please try again or contact Google Support.",
    "authError": "Invalid Credentials",
}


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message", "errors": [{domain, reason, message}]}}``."""

    def __init__(self, code: int, message: str, reason: str | None = None, **extra: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or DEFAULT_REASONS.get(code, "unknown")
        self.extra = extra  # e.g. location/locationType for auth errors

    def body(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"message": self.message, "domain": "global", "reason": self.reason}
        detail.update(self.extra)
        return {"error": {"code": self.code, "message": self.message, "errors": [detail]}}


def for_status(code: int, reason: str | None = None, message: str | None = None) -> ApiError:
    """An error for an injected fault: the usual reason and message for ``code`` unless given."""
    reason = reason or DEFAULT_REASONS.get(code, "unknown")
    return ApiError(code, message or _DEFAULT_MESSAGES.get(reason, f"Injected error {code}"), reason)


def not_found(resource: str) -> ApiError:
    """``resource`` is the path below the API root, e.g. ``projects/p/zones/z/instances/i``."""
    return ApiError(404, f"The resource '{resource}' was not found", "notFound")


def already_exists(resource: str) -> ApiError:
    return ApiError(409, f"The resource '{resource}' already exists", "alreadyExists")


def invalid_field(field: str, value: object, detail: str) -> ApiError:
    return ApiError(400, f"Invalid value for field '{field}': '{value}'. {detail}", "invalid")


def forbidden(permission: str, resource: str) -> ApiError:
    """The caller lacks an IAM permission on ``resource`` (below the API root)."""
    return ApiError(403, f"Required '{permission}' permission for '{resource}'", "forbidden")


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, "invalid")


def unauthenticated() -> ApiError:
    return ApiError(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
        "or other valid authentication credential.",
        "authError",
        location="Authorization",
        locationType="header",
    )
