"""Transports: serial (USB CDC / UART via pyserial) and UDP, addressed by URI.

    bridge:serial:///dev/ttyACM0?baud=921600
    bridge:udp://0.0.0.0:5005

A serial port that disappears (unplugged, board reset) is reopened every
`reconnect_s` until it is back; the reassembler sees the device's
DISCONTINUITY flag and starts a new segment.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

from firmware_bridge.link import BridgeLink, LinkConfig
from firmware_bridge.reassembly import AudioBlock


class BridgeUriError(ValueError):
    pass


@dataclass
class BridgeUri:
    kind: str  # "serial" or "udp"
    path: str = ""
    baud: int = 921_600
    host: str = "0.0.0.0"
    port: int = 0
    jitter_frames: int = 8


def parse_uri(uri: str) -> BridgeUri:
    expected = "expected bridge:serial:///dev/ttyACM0?baud=921600 or bridge:udp://0.0.0.0:5005"
    if not uri.startswith("bridge:"):
        raise BridgeUriError(f"{uri!r}: {expected}")
    u = urlparse(uri[len("bridge:"):])
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    try:
        if u.scheme == "serial":
            if not u.path:
                raise BridgeUriError(f"{uri!r}: no device path; {expected}")
            return BridgeUri("serial", path=u.path, baud=int(q.get("baud", 921_600)))
        if u.scheme == "udp":
            if u.port is None:
                raise BridgeUriError(f"{uri!r}: no port; {expected}")
            return BridgeUri("udp", host=u.hostname or "0.0.0.0", port=u.port,
                             jitter_frames=int(q.get("jitter", 8)))
    except ValueError as e:
        if isinstance(e, BridgeUriError):
            raise
        raise BridgeUriError(f"{uri!r}: {e}; {expected}") from e
    raise BridgeUriError(f"{uri!r}: unknown transport {u.scheme!r}; {expected}")


class BridgeSource:
    """Iterate audio blocks from a device; `health()` gives the counters."""

    def __init__(self, uri: str, correct_drift: bool = True, reconnect_s: float = 0.5, read_timeout_s: float = 0.05):
        self.uri = parse_uri(uri)
        jitter = 0 if self.uri.kind == "serial" else self.uri.jitter_frames
        self.link = BridgeLink(LinkConfig(jitter_frames=jitter, correct_drift=correct_drift),
                               datagrams=self.uri.kind == "udp")
        self.reconnect_s = reconnect_s
        self.read_timeout_s = read_timeout_s
        self.reconnects = 0
        self._serial = None
        self._sock = None
        self._peer = None
        self._host_seq = 0
        self._closed = False

    def health(self) -> dict:
        h = self.link.health().__dict__
        h["reconnects"] = self.reconnects
        h["uri"] = self.uri.__dict__
        return h

    def blocks(self, until_s: float | None = None) -> Iterator[AudioBlock]:
        """Yield blocks until `until_s` seconds have passed (forever if None) or close()."""
        end = None if until_s is None else time.monotonic() + until_s
        while not self._closed and (end is None or time.monotonic() < end):
            yield from self._read_once()
        yield from self.link.flush()

    def _read_once(self) -> list[AudioBlock]:
        if self.uri.kind == "udp":
            if self._sock is None:
                self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self._sock.bind((self.uri.host, self.uri.port))
                self._sock.settimeout(self.read_timeout_s)
            try:
                data, self._peer = self._sock.recvfrom(65536)
            except TimeoutError:
                return []
            return self.link.feed_datagram(data)
        import serial  # noqa: PLC0415  (pyserial)

        if self._serial is None:
            try:
                self._serial = serial.Serial(self.uri.path, self.uri.baud, timeout=self.read_timeout_s)
            except (serial.SerialException, OSError):
                time.sleep(self.reconnect_s)
                return []
        try:
            data = self._serial.read(max(self._serial.in_waiting, 1))
        except (serial.SerialException, OSError):
            self._serial.close()
            self._serial = None
            self.reconnects += 1
            self.link.decoder.reset()
            return []
        return self.link.feed_bytes(data) if data else []

    def send(self, msg_type: int, payload: bytes = b"") -> bool:
        """Send a control message (START, STOP, SET_GAIN) to the device.

        Serial: on the open port. UDP: to the address the device streams from
        (known once a datagram has arrived). Returns False when there is no
        device to send to yet.
        """
        from firmware_bridge import cobs  # noqa: PLC0415
        from firmware_bridge.protocol import Frame, encode_frame  # noqa: PLC0415

        raw = encode_frame(Frame(msg_type, 0, 0, 0, self._host_seq, int(time.monotonic() * 1e6), 0, payload))
        self._host_seq = (self._host_seq + 1) % (1 << 32)
        if self.uri.kind == "udp":
            if self._sock is None or self._peer is None:
                return False
            self._sock.sendto(raw, self._peer)
            return True
        if self._serial is None:
            self._read_once()  # opens the port
        if self._serial is None:
            return False
        self._serial.write(cobs.encode(raw) + b"\x00")
        self._serial.flush()
        return True

    def close(self) -> None:
        self._closed = True
        if self._serial is not None:
            self._serial.close()
        if self._sock is not None:
            self._sock.close()
