"""The OAuth2 token endpoint google-auth's service-account flow calls, and the tokens it issued.

The JWT assertion is decoded but not verified: the point is to see that a client ran the flow and
then sent the token it got, not to check keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class OAuthError(Exception):
    """Answered 400 as ``{"error": code, "error_description": ...}`` (RFC 6749 section 5.2)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    claims: dict[str, Any]
    issued_at: float
    expires_at: float


class TokenIssuer:
    def __init__(self, lifetime: float = 3600.0) -> None:
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}
        self._revoked: set[str] = set()

    def issue(self, form_body: bytes) -> dict[str, Any]:
        form = {k: v[-1] for k, v in parse_qs(form_body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != JWT_BEARER:
            raise OAuthError("unsupported_grant_type", f"grant_type must be {JWT_BEARER}")
        claims = _jwt_claims(form.get("assertion", ""))
        now = time.time()
        token = IssuedToken("ya29.emulator-" + secrets.token_urlsafe(24), claims, now, now + self.lifetime)
        with self._lock:
            self._tokens[token.access_token] = token
        return {"access_token": token.access_token, "expires_in": int(self.lifetime), "token_type": "Bearer"}

    def is_valid(self, authorization: str | None) -> bool:
        """True for ``Bearer <token>`` with a token this endpoint issued, unexpired and not revoked."""
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return False
        with self._lock:
            issued = self._tokens.get(token.strip())
            revoked = token.strip() in self._revoked
        return issued is not None and not revoked and issued.expires_at > time.time()

    def revoke_all(self) -> int:
        """Make every token issued so far invalid (clients must fetch a new one); returns how many."""
        with self._lock:
            fresh = set(self._tokens) - self._revoked
            self._revoked |= fresh
            return len(fresh)

    def issued(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(t) | {"revoked": t.access_token in self._revoked} for t in self._tokens.values()]


def _jwt_claims(assertion: str) -> dict[str, Any]:
    parts = assertion.split(".")
    if len(parts) != 3:
        raise OAuthError("invalid_grant", "assertion is not a JWT (want header.payload.signature)")
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except (binascii.Error, ValueError):
        raise OAuthError("invalid_grant", "assertion payload is not base64url JSON") from None
    if not isinstance(claims, dict):
        raise OAuthError("invalid_grant", "assertion payload is not a JSON object")
    for claim in ("iss", "aud", "exp", "iat"):
        if claim not in claims:
            raise OAuthError("invalid_grant", f"assertion lacks the {claim!r} claim")
    return claims
