"""Google's service-account token grant (RFC 7523 JWT bearer): an RS256-signed assertion that
names the service account, the scope and the Workspace user it acts for."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600  # the longest Google accepts


class ServiceAccountKeyError(ValueError):
    """The key is not a usable service-account JSON key."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class ServiceAccountKey:
    client_email: str
    private_key: rsa.RSAPrivateKey = field(repr=False)
    key_id: str | None
    token_uri: str | None

    @classmethod
    def from_json(cls, text: str) -> ServiceAccountKey:
        """The JSON key file a Google Cloud console offers for a service account."""
        try:
            data = json.loads(text)
        except ValueError:
            raise ServiceAccountKeyError("the service-account key is not JSON") from None
        if not isinstance(data, dict):
            raise ServiceAccountKeyError("the service-account key is not a JSON object")
        email, pem = data.get("client_email"), data.get("private_key")
        if not isinstance(email, str) or not isinstance(pem, str):
            raise ServiceAccountKeyError(
                "the service-account key lacks client_email or private_key"
            )
        try:
            key = serialization.load_pem_private_key(pem.encode(), password=None)
        except (ValueError, TypeError):
            raise ServiceAccountKeyError(
                "the service-account private_key is not a PEM key"
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ServiceAccountKeyError("the service-account private_key is not an RSA key")
        key_id, uri = data.get("private_key_id"), data.get("token_uri")
        return cls(
            email,
            key,
            key_id if isinstance(key_id, str) else None,
            uri if isinstance(uri, str) else None,
        )


def signed_jwt(header: dict[str, Any], claims: dict[str, Any], key: rsa.RSAPrivateKey) -> str:
    """A compact JWS: base64url(header).base64url(claims).base64url(RS256 signature)."""
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{head}.{body}".encode("ascii")
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{b64url(signature)}"


@dataclass(frozen=True)
class ServiceAccountGrant:
    """The token request of a service account with domain-wide delegation acting as
    ``subject`` (the Workspace mailbox that sends)."""

    token_url: str
    key: ServiceAccountKey
    scope: str
    subject: str
    wall_clock: Callable[[], float] = time.time

    def assertion(self) -> str:
        now = int(self.wall_clock())
        header = {"alg": "RS256", "typ": "JWT"}
        if self.key.key_id:
            header["kid"] = self.key.key_id
        claims = {
            "iss": self.key.client_email,
            "sub": self.subject,
            "scope": self.scope,
            "aud": self.token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        return signed_jwt(header, claims, self.key.private_key)

    def form(self) -> dict[str, str]:
        return {"grant_type": JWT_BEARER, "assertion": self.assertion()}
