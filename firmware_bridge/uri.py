"""Bridge URIs: which transport, where, and which device (docs/bridge-protocol.md, "Transports").

    bridge:serial:///dev/ttyACM0?baud=921600
    bridge:udp://127.0.0.1:5005                          loopback only (also bridge:udp://:5005)
    bridge:udp://0.0.0.0:5005                            every interface: say so explicitly
    bridge:udp://0.0.0.0:5005?device=192.168.1.40:5005   and accept only that device

A UDP listener with no `device=` locks onto the first address that sends a
valid HELLO frame. Port 0 asks the system for a free port
(`BridgeSource.local_address` says which). Unknown parameters are refused, so
a misspelt `device=` can never leave a listener open to every sender.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

DEFAULT_BAUD = 921_600
DEFAULT_UDP_HOST = "127.0.0.1"  # loopback unless the URI names another interface
DEFAULT_JITTER_FRAMES = 8
MAX_JITTER_FRAMES = 1024
PARAMS = {"serial": ("baud",), "udp": ("device", "jitter")}
EXPECTED = ("expected bridge:serial:///dev/ttyACM0?baud=921600 or "
            "bridge:udp://[HOST]:PORT[?device=IP:PORT&jitter=N] "
            "(HOST defaults to 127.0.0.1; 0.0.0.0 listens on every interface)")


class BridgeUriError(ValueError):
    """A bridge URI that cannot be used; the message names what was expected."""


@dataclass
class BridgeUri:
    kind: str  # "serial" or "udp"
    path: str = ""
    baud: int = DEFAULT_BAUD
    host: str = DEFAULT_UDP_HOST
    port: int = 0
    jitter_frames: int = DEFAULT_JITTER_FRAMES
    device: tuple[str, int] | None = None  # UDP: the only address accepted (IPv4, port)


def parse_uri(uri: str) -> BridgeUri:
    """Parse a bridge URI; raise BridgeUriError naming the problem and the accepted forms."""

    def fail(problem: str) -> BridgeUriError:
        return BridgeUriError(f"{uri!r}: {problem}; {EXPECTED}")

    if not isinstance(uri, str) or not uri.startswith("bridge:"):
        raise fail("not a bridge URI")
    u = urlparse(uri[len("bridge:"):])
    if u.scheme not in PARAMS:
        raise fail(f"unknown transport {u.scheme!r}")
    q = {k: v[-1] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
    unknown = sorted(set(q) - set(PARAMS[u.scheme]))
    if unknown:
        raise fail(f"unknown parameter(s) {', '.join(unknown)} for {u.scheme} "
                   f"(allowed: {', '.join(PARAMS[u.scheme])})")
    if u.scheme == "serial":
        if u.netloc:
            raise fail(f"serial URIs name a device path after three slashes, got host {u.netloc!r}")
        if not u.path:
            raise fail("no device path")
        return BridgeUri("serial", path=u.path, baud=_int(q, "baud", DEFAULT_BAUD, 1, None, fail))
    try:
        port = u.port
    except ValueError as e:
        raise fail(f"port: {e}") from e
    if port is None:
        raise fail("no port")
    if u.path not in ("", "/"):
        raise fail(f"unexpected path {u.path!r} after the port")
    device = _device(q["device"], fail) if "device" in q else None
    return BridgeUri("udp", host=u.hostname or DEFAULT_UDP_HOST, port=port, device=device,
                     jitter_frames=_int(q, "jitter", DEFAULT_JITTER_FRAMES, 0, MAX_JITTER_FRAMES, fail))


def _int(q: dict, key: str, default: int, lo: int, hi: int | None, fail) -> int:
    if key not in q:
        return default
    bound = f">= {lo}" if hi is None else f"in {lo}..{hi}"
    try:
        v = int(q[key])
    except ValueError:
        raise fail(f"{key}={q[key]!r} is not an integer {bound}") from None
    if v < lo or (hi is not None and v > hi):
        raise fail(f"{key}={v} is out of range; expected an integer {bound}")
    return v


def _device(text: str, fail) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    want = "device=IP:PORT with an IPv4 address and a port in 1..65535, e.g. device=192.168.1.40:5005"
    try:
        ip = ipaddress.IPv4Address(host)
        p = int(port)
    except ValueError:
        raise fail(f"device={text!r}: expected {want}") from None
    if not sep or not 1 <= p <= 65535:
        raise fail(f"device={text!r}: expected {want}")
    return str(ip), p
