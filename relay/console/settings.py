"""The ``[console]`` settings: its own listener, sessions, login limits, a proxy's user header."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from relay.config.section import Section


class ConsoleSettings(Section):
    # The console is on once `relay user add` created a user. With ``port`` set it answers only
    # on that listener (``host``, default [server] host), so it need not be reachable where the
    # hook is; without, under /console on the hook's listener.
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    # A header naming the signed-in user, believed only from [server] trusted_proxies (an SSO
    # proxy in front, e.g. "X-Remote-User"); None: users sign in with their password.
    user_header: str | None = None
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Mark cookies Secure even when the request arrives over plain HTTP (a TLS proxy in front
    # that is not in trusted_proxies); a request over HTTPS, or from a trusted proxy saying
    # X-Forwarded-Proto: https, always gets Secure cookies.
    secure_cookies: bool = False
    # Wrong passwords per address or user before logins are slowed down, and the first wait;
    # each further wrong password doubles it (at most an hour).
    max_failures: int = Field(default=5, ge=1, le=100)
    lockout_seconds: float = Field(default=60.0, gt=0, le=3600)
    # The key signing session cookies: the credential console__session_key, else one generated
    # once into <state_dir>/console_key (mode 0600); at least 32 characters.
    session_key: SecretStr | None = Field(default=None, min_length=32)

    @field_validator("user_header")
    @classmethod
    def _header(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c in value for c in " :\r\n")):
            raise ValueError(f"{value!r} is not a header name")
        return value
