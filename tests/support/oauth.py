"""A fake OAuth2 token endpoint on 127.0.0.1 and an aiosmtpd handler that accepts XOAUTH2 only
with a token that endpoint issued and has not revoked."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.smtp import AuthResult
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.smtp import RecordingHandler

CLIENT_ID = "relay-client"
CLIENT_SECRET = "s3cret-value"
SCOPE = "https://outlook.office365.com/.default"


@dataclass(frozen=True)
class Refusal:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass
class ServiceAccount:
    """What Google checks in a service-account assertion: the RS256 signature by the account's
    key, the issuer, the delegated user, the scope, the audience and the lifetime."""

    email: str
    public_key: rsa.RSAPublicKey
    subject: str
    scope: str
    claims: list[dict[str, Any]] = field(default_factory=list)

    def problem(self, assertion: str, audience: str) -> str | None:
        try:
            head, body, signature = assertion.split(".")
            header = json.loads(_unb64(head))
            claims = json.loads(_unb64(body))
            self.public_key.verify(
                _unb64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except (ValueError, InvalidSignature):
            return "Invalid JWT Signature."
        self.claims.append(claims)
        if header != {"alg": "RS256", "typ": "JWT", "kid": "key-1"}:
            return f"Invalid JWT header: {header}"
        if claims.get("iss") != self.email or claims.get("aud") != audience:
            return "Invalid JWT: iss or aud"
        if claims.get("sub") != self.subject or claims.get("scope") != self.scope:
            return "Client is unauthorized to retrieve access tokens using this method."
        if not 0 < claims["exp"] - claims["iat"] <= 3600:
            return "Invalid JWT: Token must be a short-lived token (60 minutes)"
        return None


class FakeTokenEndpoint:
    """Answers client-credentials POSTs: a new token ``tok-N`` for the right client id, secret
    and scope (``expires_in`` as set), RFC 6749 ``invalid_client`` for a wrong secret, or the
    scripted ``refusals`` first. ``valid`` holds the issued tokens not revoked."""

    def __init__(self, *, expires_in: int = 3600, scope: str = SCOPE) -> None:
        self.expires_in = expires_in
        self.scope = scope
        self.refusals: list[Refusal] = []
        self.requests: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.valid: set[str] = set()
        self.issued: list[str] = []
        # Set for Google's JWT bearer grant: whose signatures and claims are accepted.
        self.service_account: ServiceAccount | None = None
        self.assertions: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body, headers = endpoint.answer(self.path, self.headers, form)
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def answer(
        self, path: str, headers: Any, form: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            self.requests.append(form)
            self.paths.append(path)
            if self.refusals:
                refusal = self.refusals.pop(0)
                return refusal.status, refusal.body, refusal.headers
            if form.get("grant_type") == JWT_BEARER and self.service_account is not None:
                problem = self.service_account.problem(form.get("assertion", ""), self.url(path))
                if problem:
                    return 400, {"error": "invalid_grant", "error_description": problem}, {}
                return self.issue()
            if form.get("grant_type") != "client_credentials" or form.get("scope") != self.scope:
                return 400, {"error": "invalid_request", "error_description": "bad grant"}, {}
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                return (
                    401,
                    {
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided.",
                    },
                    {},
                )
            return self.issue()

    def issue(self) -> tuple[int, dict[str, Any], dict[str, str]]:
        token = f"tok-{len(self.issued) + 1}"
        self.issued.append(token)
        self.valid.add(token)
        body = {"token_type": "Bearer", "expires_in": self.expires_in, "access_token": token}
        return 200, body, {}

    def revoke(self, token: str) -> None:
        with self.lock:
            self.valid.discard(token)

    def is_valid(self, token: str) -> bool:
        with self.lock:
            return token in self.valid

    def url(self, path: str = "/tenant-1/oauth2/v2.0/token") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class XOAuth2Handler(RecordingHandler):
    """A RecordingHandler whose server offers AUTH XOAUTH2 and accepts a login only for
    ``user`` with a bearer token ``endpoint`` considers valid. A refused token gets Google's
    and Microsoft's answer: a 334 error challenge, then 535 after the client's empty line.
    Messages sent without logging in are refused (530)."""

    endpoint: FakeTokenEndpoint | None = None
    user: str = "relay@shop.test"
    logins: list[str] = field(default_factory=list)
    refused_tokens: list[str] = field(default_factory=list)

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        assert self.endpoint is not None
        blob = args[1] if len(args) > 1 else ""
        try:
            user_part, auth_part, *rest = base64.b64decode(blob).decode().split("\x01")
        except ValueError:
            return AuthResult(success=False, handled=False, message="501 5.5.2 bad XOAUTH2")
        token = auth_part.removeprefix("auth=Bearer ")
        if (
            user_part == f"user={self.user}"
            and auth_part.startswith("auth=Bearer ")
            and rest == ["", ""]
            and self.endpoint.is_valid(token)
        ):
            self.logins.append(token)
            return AuthResult(success=True, auth_data=token)
        self.refused_tokens.append(token)
        challenge = json.dumps({"status": "401", "schemes": "bearer"})
        await server.challenge_auth(challenge, encode_to_b64=True)
        return AuthResult(
            success=False, handled=False, message="535 5.7.3 Authentication unsuccessful"
        )

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: Any
    ) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"
