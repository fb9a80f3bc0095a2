"""URLs as shown to people: credentials masked in logs, errors and CLI output (passwords,
credential parameters and every path segment after the first); http(s) checks."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

MASK = "***"
# Query (and fragment) parameters whose values are credentials, compared after lower-casing
# and turning "-" into "_"; names containing one of the fragments below count as well.
SECRET_PARAMETERS = frozenset(
    {
        "apikey", "api_key", "key", "token", "access_token", "refresh_token", "id_token",
        "auth", "authorization", "secret", "password", "passwd", "pwd", "pass", "sig",
        "signature", "code", "session", "sessionid", "jwt", "hash", "credential", "credentials",
    }
)  # fmt: skip
SECRET_FRAGMENTS = ("token", "secret", "passw", "apikey", "api_key", "signature", "credential")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/*")
# A URL inside free text: a scheme, a colon and at least one slash, up to whitespace or quotes.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/+[^\s'\"<>`]+")
_DIGITS = re.compile(r"[0-9]*")


def _secret_name(name: str) -> bool:
    key = unquote_plus(name).strip().lower().replace("-", "_")
    return (
        key in SECRET_PARAMETERS
        or key.endswith("_key")
        or any(fragment in key for fragment in SECRET_FRAGMENTS)
    )


def _mask_parameters(text: str) -> str:
    """``a=1&token=x`` as ``a=1&token=***``; pairs without ``=`` are kept as they are."""
    pairs = []
    for pair in text.split("&"):
        name, equals, value = pair.partition("=")
        pairs.append(f"{name}={MASK}" if equals and value and _secret_name(name) else pair)
    return "&".join(pairs)


def _mask_userinfo(authority: str) -> str:
    userinfo, at, host = authority.rpartition("@")
    if not at:
        return authority
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{MASK}@{host}" if colon else authority


def _mask_path(path: str) -> str:
    """``/api/webhooks/123/TOKEN`` as ``/api/***``: webhook URLs (Discord, Slack, Zapier)
    carry their token in the path, so only the first segment is shown."""
    first, slash, rest = path[1:].partition("/")
    return f"/{first}/{MASK}" if slash and rest else path


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo, every path segment after the first and the
    values of credential-like query or fragment parameters (apikey, token, secret, sig, ...)
    replaced by ``***``. Never raises: an invalid URL is masked the same way, as far as it
    can be split."""
    scheme = _SCHEME.match(url)
    head = scheme.group() if scheme else ""
    rest = url[len(head) :]
    rest, hash_mark, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    slash = rest.find("/")
    end = slash if slash >= 0 else len(rest)
    authority, path = rest[:end], rest[end:]
    # An unencoded "/" in a password ends the authority early ("user:pa/ss@host"): an "@"
    # later in the path then closes the userinfo, unless what follows ":" is a port.
    _, colon, after = authority.partition(":")
    if colon and "@" not in authority and "@" in path and not _DIGITS.fullmatch(after):
        extra, _, after_at = path.partition("@")
        host, separator, tail = after_at.partition("/")
        authority, path = f"{authority}{extra}@{host}", separator + tail
    shown = head + _mask_userinfo(authority) + _mask_path(path)
    if question:
        shown += "?" + _mask_parameters(query)
    if hash_mark:
        shown += "#" + _mask_parameters(fragment)
    return shown


def redact_text(text: str) -> str:
    """``text`` with every URL in it passed through ``redact_url``."""
    if ":/" not in text:  # every URL _URL_IN_TEXT finds has one: most log lines have none
        return text
    return _URL_IN_TEXT.sub(lambda found: redact_url(found.group()), text)


def http_url(value: str) -> str:
    """``value`` if it is an http(s) URL with a host and a valid port; otherwise ValueError
    naming the URL with its credentials masked (the message lands in logs and terminals)."""
    shown = redact_url(value)
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, got {shown!r}")
    import httpx  # noqa: PLC0415 -- only settings validation needs it; keeps the CLI quick

    try:
        parsed = httpx.URL(value)
        port = parsed.port
    except httpx.InvalidURL:
        # httpx's message quotes the offending part, which may be a password.
        raise ValueError(f"url {shown!r} is not a valid URL") from None
    if not parsed.host:
        raise ValueError(f"url {shown!r} has no host")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"url {shown!r} has an invalid port")
    return value
