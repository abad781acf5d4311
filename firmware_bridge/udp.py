"""The UDP side of a bridge: one socket, locked onto one device.

A listener that takes audio from whoever sends it, and answers whoever sent
last, lets any host on the network inject audio into the agent or steal its
control messages. So a UdpPort
- binds to loopback unless the URI names another interface
  (`bridge:udp://0.0.0.0:5005` for every interface);
- accepts datagrams from ONE device: the `device=IP:PORT` of the URI, or else
  the first address that sends a valid HELLO frame (a device repeats HELLO
  every few seconds, so a host that starts mid-stream still locks on);
- drops and counts everything else: `foreign_datagrams` (another address
  after the lock) and `datagrams_before_hello` (anything before it);
- sends control messages (START, STOP, SET_GAIN) only to the locked device.
The lock lasts as long as the port: a device that comes back from another
address (a reboot onto a new source port) needs `device=` or a new listener.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from firmware_bridge.protocol import HELLO, FrameError, decode_frame
from firmware_bridge.uri import BridgeUri, BridgeUriError

MAX_DATAGRAM = 65_536


@dataclass
class UdpStats:
    datagrams_in: int = 0
    foreign_datagrams: int = 0  # from an address other than the locked device: dropped
    datagrams_before_hello: int = 0  # arrived before any device was locked: dropped
    control_sent: int = 0


class UdpPort:
    """A bound UDP socket that yields only the locked device's datagrams."""

    def __init__(self, uri: BridgeUri, read_timeout_s: float = 0.05):
        self.stats = UdpStats()
        self.device: tuple[str, int] | None = uri.device
        self.locked_by: str | None = "uri" if uri.device else None
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # No SO_REUSEADDR: a second process must not be able to bind the same port and take the stream.
        try:
            self._sock.bind((uri.host, uri.port))
        except OSError as e:
            self._sock.close()
            raise BridgeUriError(f"cannot listen on udp {uri.host}:{uri.port}: {e}") from e
        self._sock.settimeout(read_timeout_s)

    @property
    def local_address(self) -> tuple[str, int]:
        return self._sock.getsockname()[:2]

    def receive(self) -> bytes | None:
        """The next datagram from the locked device; None on timeout or when it was dropped."""
        try:
            data, addr = self._sock.recvfrom(MAX_DATAGRAM)
        except (TimeoutError, BlockingIOError):
            return None
        self.stats.datagrams_in += 1
        addr = (addr[0], addr[1])
        if self.device is None:
            if not _is_hello(data):
                self.stats.datagrams_before_hello += 1
                return None
            self.device, self.locked_by = addr, "hello"
        elif addr != self.device:
            self.stats.foreign_datagrams += 1
            return None
        return data

    def send(self, raw: bytes) -> bool:
        """Send one raw frame to the locked device; False while no device is locked."""
        if self.device is None:
            return False
        self._sock.sendto(raw, self.device)
        self.stats.control_sent += 1
        return True

    def health(self) -> dict:
        host, port = self.local_address
        return {"listen": f"{host}:{port}",
                "device_address": None if self.device is None else f"{self.device[0]}:{self.device[1]}",
                "locked_by": self.locked_by, **self.stats.__dict__}

    def close(self) -> None:
        self._sock.close()


def _is_hello(data: bytes) -> bool:
    try:
        return decode_frame(data).type == HELLO
    except FrameError:
        return False
