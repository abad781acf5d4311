"""Who may talk to the server: the bind policy, the token check, and the Host/Origin checks.

The API shows what the microphones hear, so it is private by default (issue 21): it binds
127.0.0.1, and any other address needs a token that every request must carry, as
`Authorization: Bearer T` or `?token=T`. On loopback without a token two browser attacks
remain, and both are closed here: DNS rebinding (a foreign name resolving to 127.0.0.1; the
Host header must name the loopback) and cross-site requests from another page the user has
open (a WebSocket or POST whose Origin is not this server is refused).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from urllib.parse import parse_qs, urlsplit

from agent.core.errors import BinauraError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
#: A token travels in URLs and headers: printable ASCII, no spaces, no quoting needed.
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~+/=-]+$")


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    h = host.strip("[]").lower()
    if h in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def parse_bind(spec: str) -> tuple[str, int]:
    """`--serve [HOST:]PORT` -> (host, port): "8765", "0.0.0.0:8765", "[::1]:8765"."""
    s = str(spec).strip()
    host, sep, port_s = s.rpartition(":")
    if not sep:
        host, port_s = DEFAULT_HOST, s
    elif host.count(":") and not host.startswith("["):
        raise BinauraError(f"--serve {spec!r}: write an IPv6 address in brackets, e.g. [::1]:8765")
    host = host.strip("[]") or DEFAULT_HOST
    try:
        port = int(port_s)
    except ValueError:
        raise BinauraError(f"--serve {spec!r}: expected [HOST:]PORT, e.g. 8765 or 0.0.0.0:8765") from None
    check_port(port)
    return host, port


def check_port(port: int) -> None:
    if not 0 <= int(port) <= 65535:
        raise BinauraError(f"port must be in 0..65535 (0 picks a free one), got {port}")


def check_bind(host: str, token: str | None) -> None:
    """Refuse a bind the policy forbids, before anything listens."""
    if token is not None and not _TOKEN_RE.match(token):
        raise BinauraError("--token must be non-empty and use only letters, digits and . _ ~ + / = -")
    if token is None and not is_loopback(host):
        raise BinauraError(
            f"serving on {host} would let other machines hear this microphone: give a token "
            "with --token T (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(16))'), "
            "or bind 127.0.0.1")


def request_token(target: str, headers: dict[str, str]) -> str | None:
    """The token a request carries: the Authorization bearer, else the `token` query value."""
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    values = parse_qs(urlsplit(target).query).get("token")
    return values[0] if values else None


def token_ok(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; with no token configured every request passes."""
    if expected is None:
        return True
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _hostname(netloc: str) -> str:
    return (urlsplit("//" + netloc).hostname or "").lower()


def host_ok(host_header: str | None, bound_host: str, token: str | None) -> bool:
    """DNS-rebinding guard: without a token, a loopback server answers only loopback Host names."""
    if token is not None or not is_loopback(bound_host):
        return True
    return bool(host_header) and is_loopback(_hostname(host_header))


def origin_ok(origin: str | None, host_header: str | None) -> bool:
    """A browser request from another site (Origin not this server) is refused; requests
    without an Origin (curl, scripts) pass and are judged by the token alone."""
    if origin is None:
        return True
    if not host_header:
        return False
    return urlsplit(origin).netloc.lower() == host_header.lower()
