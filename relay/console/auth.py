"""Console access: argon2 password hashes, signed session cookies, CSRF tokens, login limits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from relay.console.settings import ConsoleSettings
from relay.ops.secretfile import check_secret, kept_secret

log = logging.getLogger(__name__)

KEY_FILE = "console_key"
MIN_KEY = 32  # bytes of a session key: a generated one has 43
KEY_WHAT = "a key to sign console sessions with (every session ends with a new one)"
NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_SESSION = re.compile(
    r"^([A-Za-z0-9_-]{1,100})\.(\d{1,12})\.([A-Za-z0-9_-]{16,32})\.([A-Za-z0-9_-]{43})$"
)


@cache
def _dummy() -> str:
    """A hash to verify against when the user does not exist: the answer takes as long either
    way. Made at the first login, not at import: argon2 takes tens of milliseconds and 64 MiB
    for each hash, and a relay whose console nobody uses imports no argon2."""
    return hash_password("relay console: no such user")


def valid_name(name: str) -> bool:
    return NAME.fullmatch(name) is not None


def hash_password(password: str) -> str:
    """An argon2id hash (argon2-cffi's defaults, RFC 9106's second recommended setting)."""
    from argon2 import PasswordHasher  # noqa: PLC0415 -- see _dummy

    return PasswordHasher().hash(password)


def password_ok(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None: no such user; still one verification)."""
    from argon2 import PasswordHasher  # noqa: PLC0415 -- see _dummy
    from argon2.exceptions import InvalidHashError, VerificationError  # noqa: PLC0415 -- as above

    try:
        return PasswordHasher().verify(stored or _dummy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


@dataclass(frozen=True)
class Session:
    user: str
    expires: int
    sid: str  # random per login: the CSRF token is bound to it


def new_session(user: str, now: float, hours: float) -> Session:
    return Session(user, int(now + hours * 3600), secrets.token_urlsafe(18))


def seal(
    key: bytes, session: Session, password_hash: str, signed_out_at: float | None = None
) -> str:
    """The cookie value: user, expiry and session id, signed with HMAC-SHA256 together with
    the user's password hash and when the user last signed out, so that a new password (or
    the user removed and added again) or signing out ends the sessions signed in before."""
    body = f"{_b64(session.user)}.{session.expires}.{session.sid}"
    return f"{body}.{_mac(key, _signed(body, password_hash, signed_out_at))}"


def _signed(body: str, password_hash: str, signed_out_at: float | None) -> str:
    # A user who never signed out: as cookies were signed before signing out was stored.
    out = "" if signed_out_at is None else f":signed-out:{float(signed_out_at)!r}"
    return f"console-session:{body}:{password_hash}{out}"


def claimed_user(value: str) -> str | None:
    """The user a cookie value names, not yet checked: whose password hash ``unseal`` needs."""
    found = _SESSION.fullmatch(value)
    if found is None:
        return None
    try:
        return _unb64(found.group(1))
    except (ValueError, UnicodeDecodeError):
        return None


def unseal(
    key: bytes,
    value: str,
    now: float,
    password_hash: str,
    signed_out_at: float | None = None,
) -> Session | None:
    """The session in a cookie value signed with ``key`` for the user's current
    ``password_hash`` and last sign-out, and not expired, else None."""
    found = _SESSION.fullmatch(value)
    if found is None:
        return None
    user, expires, sid, mac = found.groups()
    body = f"{user}.{expires}.{sid}"
    expected = _mac(key, _signed(body, password_hash, signed_out_at))
    if not hmac.compare_digest(expected.encode(), mac.encode()):
        return None
    if int(expires) <= now:
        return None
    try:
        return Session(_unb64(user), int(expires), sid)
    except (ValueError, UnicodeDecodeError):
        return None


def csrf_token(key: bytes, bound_to: str) -> str:
    """The form token for a session id (or a login form's nonce)."""
    return _mac(key, f"console-csrf:{bound_to}")


def csrf_ok(key: bytes, bound_to: str, given: str) -> bool:
    if not bound_to or not given:
        return False
    return hmac.compare_digest(csrf_token(key, bound_to).encode(), given.encode())


def session_key(settings: ConsoleSettings, state_dir: Path) -> bytes:
    """The configured key, or one generated once into ``<state_dir>/console_key`` (0600).
    ConfigError if that file holds too short a key to sign with."""
    if settings.session_key is not None:
        return settings.session_key.get_secret_value().encode()
    path = state_dir / KEY_FILE
    key, made = kept_secret(
        path, lambda: secrets.token_urlsafe(32), min_length=MIN_KEY, what=KEY_WHAT
    )
    if made:
        log.info("generated the console's session key in %s", path)
    return key.encode()


def check_key_file(settings: ConsoleSettings, state_dir: Path) -> None:
    """ConfigError if an existing ``console_key`` is too short to sign with (at start)."""
    if settings.session_key is None:
        check_secret(state_dir / KEY_FILE, min_length=MIN_KEY, what=KEY_WHAT)


def address_key(address: str) -> str:
    """What the limiter counts for a client address: an IPv6 address's /64 (a host has a
    whole /64 to pick from), an IPv4 address (also written IPv4-mapped) as it is."""
    try:
        found = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(found, ipaddress.IPv6Address):
        if found.ipv4_mapped is not None:
            return str(found.ipv4_mapped)
        return str(ipaddress.IPv6Network((found, 64), strict=False))
    return str(found)


@dataclass
class _Failures:
    count: int
    last: float


class LoginLimiter:
    """Wrong passwords per key (an address, a user name): after ``max_failures`` within the
    window, further logins for that key wait ``lockout`` seconds, doubled by each further
    failure (at most an hour). Time comes from ``clock``; nothing sleeps."""

    MAX_WAIT = 3600.0
    MAX_KEYS = 10_000

    def __init__(self, max_failures: int, lockout: float, clock: Callable[[], float]) -> None:
        self.max_failures = max_failures
        self.lockout = lockout
        self._clock = clock
        self._failures: dict[str, _Failures] = {}

    def _wait(self, failures: _Failures) -> float:
        over = failures.count - self.max_failures
        if over < 0:
            return 0.0
        return float(min(self.lockout * 2.0**over, self.MAX_WAIT))

    def retry_after(self, *keys: str) -> float | None:
        """Seconds until a login for these keys is heard again, or None if it is now."""
        now = self._clock()
        waits = []
        for key in keys:
            found = self._failures.get(key)
            if found is None:
                continue
            left = found.last + self._wait(found) - now
            if left > 0 and found.count >= self.max_failures:
                waits.append(left)
        return max(waits) if waits else None

    def failed(self, *keys: str) -> None:
        now = self._clock()
        if len(self._failures) >= self.MAX_KEYS:
            self._forget(now)
        for key in keys:
            found = self._failures.get(key)
            if found is None or now - found.last > self.MAX_WAIT:
                self._failures[key] = _Failures(1, now)
            else:
                found.count += 1
                found.last = now

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)

    def _forget(self, now: float) -> None:
        for key, found in list(self._failures.items()):
            if now - found.last > self.MAX_WAIT:
                del self._failures[key]

        # Still full: drop the oldest key that waits for nothing yet; a locked one only if every
        # key is (made-up user names sprayed to fill the table must not free a locked user).
        def rank(key: str) -> tuple[bool, float]:
            found = self._failures[key]
            return found.count >= self.max_failures, found.last

        while len(self._failures) >= self.MAX_KEYS:
            del self._failures[min(self._failures, key=rank)]
