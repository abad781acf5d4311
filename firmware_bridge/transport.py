"""Transports: serial (USB CDC / UART via pyserial) and UDP, addressed by URI (firmware_bridge.uri).

    bridge:serial:///dev/ttyACM0?baud=921600
    bridge:udp://127.0.0.1:5005?device=127.0.0.1:6000

A serial port that disappears (unplugged, board reset) is reopened every
`reconnect_s` until it is back; the reassembler sees the device's
DISCONTINUITY flag and starts a new segment. A UDP source binds its port when
it is created and takes datagrams from one device only (firmware_bridge.udp).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from firmware_bridge.link import BridgeLink, LinkConfig
from firmware_bridge.reassembly import AudioBlock
from firmware_bridge.udp import UdpPort
from firmware_bridge.uri import BridgeUri, BridgeUriError, parse_uri

__all__ = ["BridgeSource", "BridgeUri", "BridgeUriError", "parse_uri"]


class BridgeSource:
    """Iterate audio blocks from a device; `health()` gives the counters."""

    def __init__(self, uri: str, correct_drift: bool = True, reconnect_s: float = 0.5, read_timeout_s: float = 0.05):
        """Parse the URI (BridgeUriError if it is bad) and, for UDP, bind the port now."""
        self.uri = parse_uri(uri)
        jitter = 0 if self.uri.kind == "serial" else self.uri.jitter_frames
        self.link = BridgeLink(LinkConfig(jitter_frames=jitter, correct_drift=correct_drift),
                               datagrams=self.uri.kind == "udp")
        self.reconnect_s = reconnect_s
        self.read_timeout_s = read_timeout_s
        self.reconnects = 0
        self._serial = None
        self._host_seq = 0
        self._closed = False
        self._udp = UdpPort(self.uri, read_timeout_s) if self.uri.kind == "udp" else None

    @property
    def local_address(self) -> tuple[str, int] | None:
        """UDP: the (host, port) actually bound (port 0 in the URI picks a free one)."""
        return None if self._udp is None else self._udp.local_address

    @property
    def device_address(self) -> tuple[str, int] | None:
        """UDP: the one device address accepted, once known (from the URI or its first HELLO)."""
        return None if self._udp is None else self._udp.device

    def health(self) -> dict:
        h = self.link.health().__dict__
        h["reconnects"] = self.reconnects
        h["uri"] = self.uri.__dict__
        if self._udp is not None:
            h["udp"] = self._udp.health()
        return h

    def blocks(self, until_s: float | None = None) -> Iterator[AudioBlock]:
        """Yield blocks until `until_s` seconds have passed (forever if None) or close()."""
        end = None if until_s is None else time.monotonic() + until_s
        while not self._closed and (end is None or time.monotonic() < end):
            yield from self._read_once()
        yield from self.link.flush()

    def _read_once(self) -> list[AudioBlock]:
        if self._udp is not None:
            data = self._udp.receive()
            return [] if data is None else self.link.feed_datagram(data)
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

        Serial: on the open port. UDP: to the locked device only (the URI's
        `device=`, or the sender of the first valid HELLO). Returns False when
        there is no device to send to yet.
        """
        from firmware_bridge import cobs  # noqa: PLC0415
        from firmware_bridge.protocol import Frame, encode_frame  # noqa: PLC0415

        raw = encode_frame(Frame(msg_type, 0, 0, 0, self._host_seq, int(time.monotonic() * 1e6), 0, payload))
        self._host_seq = (self._host_seq + 1) % (1 << 32)
        if self._udp is not None:
            return self._udp.send(raw)
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
        if self._udp is not None:
            self._udp.close()
