"""A device emulator: streams audio as a microcontroller would, with injectable faults.

DeviceEmulator turns a signal into the device's frame sequence in simulated
time (its own clock drifting by drift_ppm), with a head's orientation
interleaved as ORIENTATION frames when given one (firmware_bridge.trajectory).
FaultInjector damages that
sequence the way real links do. The links below carry it over a real
pseudo-terminal (pyserial sees a serial port) or UDP on loopback, in real time;
`simulate` gives the same events without waiting, for tests and the soak.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware_bridge import cobs
from firmware_bridge.protocol import (
    AUDIO,
    DISCONTINUITY,
    HEARTBEAT,
    HELLO,
    ORIENTATION,
    S16,
    SET_GAIN,
    START,
    STOP,
    DeviceInfo,
    Frame,
    encode_frame,
    float_to_pcm,
    orientation_payload,
)
from firmware_bridge.trajectory import NAN_QUATERNION, OrientationTrack, in_spans


@dataclass
class FaultConfig:
    byte_error_rate: float = 0.0  # probability that a byte has one bit flipped (stream links)
    drop_rate: float = 0.0  # whole frames lost
    duplicate_rate: float = 0.0  # frames sent twice
    reorder_rate: float = 0.0  # frames swapped with the next one (datagram links)
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (device time s, seconds): no audio
    disconnects: list[tuple[float, float]] = field(default_factory=list)  # (device time s, seconds): link down, device restarts
    orientation_dropouts: list[tuple[float, float]] = field(default_factory=list)  # (device time s, seconds): no orientation sent
    orientation_nan: list[tuple[float, float]] = field(default_factory=list)  # (device time s, seconds): NaN quaternions sent
    jitter_s: float = 0.0  # extra random delivery delay (exponential mean)
    latency_s: float = 0.002
    seed: int = 0


@dataclass
class SentFrame:
    """What the emulator sent, with the truth the tests check against."""

    host_time_s: float
    raw: bytes  # after faults
    frame: Frame
    damaged: bool
    dropped: bool


class DeviceEmulator:
    """A board streaming `signal` (n, 2: L, R) at rate_hz in frames of frame_samples.

    orientation: the head's path, to send as ORIENTATION frames on the audio's device clock: a
    callable t_s -> (w, x, y, z) read at orientation_rate_hz, or (t_s, (w, x, y, z)) samples
    (firmware_bridge.trajectory.OrientationTrack); t_s is device time since the first sample.
    A reading is sent when it is taken, so it goes out between the audio frames around it;
    none are sent while the device is stopped, stalled or disconnected.
    """

    def __init__(self, signal: np.ndarray, rate_hz: int = 48_000, frame_samples: int = 48,
                 sample_format: int = S16, drift_ppm: float = 0.0, heartbeat_s: float = 1.0,
                 device_id: str = "emulator", loop: bool = False, hello_s: float = 2.0,
                 orientation=None, orientation_rate_hz: float = 50.0):
        self.orientation = None if orientation is None else OrientationTrack(orientation, orientation_rate_hz)
        self.signal = np.asarray(signal, dtype=np.float32)
        if self.signal.ndim != 2 or self.signal.shape[1] != 2:
            raise ValueError(f"signal must be (n, 2) with channels L, R; got {self.signal.shape}")
        self.rate = rate_hz
        self.frame_samples = frame_samples
        self.format = sample_format
        self.drift_ppm = drift_ppm
        self.heartbeat_s = heartbeat_s
        self.hello_s = hello_s  # repeat HELLO so a host that attaches mid-stream learns the device
        self.loop = loop
        self.info = DeviceInfo((1, 0, 0), rate_hz, sample_format, 2, 0.0, 150, "kemar-mit", device_id)
        self.streaming = True  # START / STOP from the host
        self._announce = False  # send HELLO at the next chance (after SET_GAIN)

    def control(self, frame: Frame) -> None:
        """Apply a control message from the host, as firmware would."""
        if frame.type == STOP:
            self.streaming = False
        elif frame.type == START:
            self.streaming = True
        elif frame.type == SET_GAIN and len(frame.payload) == 2:
            self.info.gain_db = int.from_bytes(frame.payload, "little", signed=True) / 256.0
            self._announce = True

    def frames(self, faults: FaultConfig | None = None) -> Iterator[tuple[float, Frame | None]]:
        """(true/host send time, frame) in order; device time runs (1 + drift) faster.

        While stopped the device yields (time, None): a tick with nothing to send.
        """
        faults = faults or FaultConfig()
        seq = 0
        scale = 1.0 / (1.0 + self.drift_ppm * 1e-6)
        n = len(self.signal)
        sample = 0
        next_hb = 0.0
        next_hello = self.hello_s
        restart = True
        stalls = sorted(faults.stalls)
        downs = sorted(faults.disconnects)
        orient_from = 0.0  # device time from which orientation readings are still to be sent
        yield 0.0, Frame(HELLO, 0, 0, 0, seq, 0, self.rate, self.info.pack())
        seq += 1
        while self.loop or sample + self.frame_samples <= n:
            dev_t = sample / self.rate
            if downs and dev_t >= downs[0][0]:
                t0, dur = downs.pop(0)
                sample += int(dur * self.rate)  # device keeps time while the link is down
                seq = 0  # and restarts its counters on reconnect
                restart = True
                host = (sample / self.rate) * scale
                yield host, Frame(HELLO, 0, 0, 0, seq, int(sample * 1e6 / self.rate), self.rate, self.info.pack())
                seq += 1
                continue
            if stalls and dev_t >= stalls[0][0]:
                _, dur = stalls.pop(0)
                sample += int(dur * self.rate)  # nothing captured: a hole in device time
                continue
            if self._announce:
                self._announce = False
                yield (sample / self.rate) * scale, Frame(HELLO, 0, 0, 0, seq, int(sample * 1e6 / self.rate),
                                                          self.rate, self.info.pack())
                seq = (seq + 1) % (1 << 32)
            if not self.streaming:  # stopped: time passes, nothing is sent
                sample += self.frame_samples
                restart = True
                yield (sample / self.rate) * scale, None
                continue
            end_t = (sample + self.frame_samples) / self.rate
            if self.orientation is not None:  # read while this frame filled, sent at once
                for t, q in self.orientation.between(max(orient_from, dev_t), end_t):
                    if in_spans(t, faults.orientation_dropouts):
                        continue
                    q = NAN_QUATERNION if in_spans(t, faults.orientation_nan) else q
                    yield t * scale, Frame(ORIENTATION, 0, 0, 0, seq, int(round(t * 1e6)), 0, orientation_payload(q))
                    seq = (seq + 1) % (1 << 32)
                orient_from = end_t
            idx = np.arange(sample, sample + self.frame_samples) % n
            gain = np.float32(10 ** (self.info.gain_db / 20))
            payload = float_to_pcm(self.signal[idx] * gain, self.format)
            ts_us = int(round(sample * 1e6 / self.rate))
            host = end_t * scale  # sent once the frame is full
            yield host, Frame(AUDIO, DISCONTINUITY if restart else 0, 2, self.format, seq, ts_us, self.rate, payload)
            restart = False
            seq = (seq + 1) % (1 << 32)
            sample += self.frame_samples
            if dev_t >= next_hello:
                next_hello += self.hello_s
                yield host, Frame(HELLO, 0, 0, 0, seq, ts_us, self.rate, self.info.pack())
                seq = (seq + 1) % (1 << 32)
            if dev_t >= next_hb:
                next_hb += self.heartbeat_s
                yield host, Frame(HEARTBEAT, 0, 0, 0, seq, ts_us, self.rate, (int(dev_t * 1000) % (1 << 32)).to_bytes(4, "little"))
                seq = (seq + 1) % (1 << 32)

    @property
    def device_samples(self) -> int:
        return len(self.signal)


def simulate(emu: DeviceEmulator, faults: FaultConfig, stream: bool = True) -> Iterator[SentFrame]:
    """The frames as the host receives them (simulated time), with faults applied.

    stream=True: COBS + delimiter per frame (serial); bit flips hit the encoded
    bytes, delimiters included. stream=False: raw datagrams, which may also be
    duplicated and reordered.
    """
    rng = np.random.default_rng(faults.seed)
    held: SentFrame | None = None
    for host_t, frame in emu.frames(faults):
        if frame is None:
            yield SentFrame(host_t, b"", None, damaged=False, dropped=False)
            continue
        if rng.random() < faults.drop_rate:
            yield SentFrame(host_t, b"", frame, damaged=False, dropped=True)
            continue
        raw = encode_frame(frame)
        data = cobs.encode(raw) + b"\x00" if stream else raw
        damaged = False
        if faults.byte_error_rate > 0:
            hits = np.nonzero(rng.random(len(data)) < faults.byte_error_rate)[0]
            if len(hits):
                buf = bytearray(data)
                for h in hits:
                    buf[h] ^= 1 << int(rng.integers(8))
                data, damaged = bytes(buf), True
        arrive = host_t + faults.latency_s + (rng.exponential(faults.jitter_s) if faults.jitter_s else 0.0)
        sent = SentFrame(arrive, data, frame, damaged, dropped=False)
        if not stream and rng.random() < faults.duplicate_rate:
            yield sent
        if not stream and held is None and rng.random() < faults.reorder_rate:
            held = sent  # send after the next one
            continue
        yield sent
        if held is not None:
            yield SentFrame(max(held.host_time_s, sent.host_time_s), held.raw, held.frame, held.damaged, False)
            held = None
    if held is not None:
        yield held


class PtyLink:
    """Serve the emulator's byte stream on a pseudo-terminal, in real time.

    `port` is a stable symlink to the current slave (like a udev name); a
    disconnect closes the pty and a reconnect opens a new one behind the link.
    """

    def __init__(self, emu: DeviceEmulator, faults: FaultConfig | None = None, speed: float = 1.0,
                 link_dir: str | None = None):
        import tempfile  # noqa: PLC0415

        self.emu, self.faults, self.speed = emu, faults or FaultConfig(), speed
        self._dir = Path(link_dir or tempfile.mkdtemp(prefix="binaura-pty-"))
        self.port = str(self._dir / "ttyBINAURA0")
        self._stop = threading.Event()
        self._master = self._open()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self) -> int:
        import tty  # noqa: PLC0415

        master, slave = os.openpty()
        tty.setraw(slave)
        name = os.ttyname(slave)
        tmp = self.port + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(name, tmp)
        os.replace(tmp, self.port)
        self._slave = slave
        return master

    def start(self) -> PtyLink:
        self._thread.start()
        return self

    def _poll_commands(self, decoder) -> None:
        import select  # noqa: PLC0415

        while select.select([self._master], [], [], 0)[0]:
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            for f in decoder.feed(data):
                self.emu.control(f)

    def _run(self) -> None:
        from firmware_bridge.stream import StreamDecoder  # noqa: PLC0415

        t0 = time.monotonic()
        started = False
        commands = StreamDecoder()
        for sent in simulate(self.emu, self.faults, stream=True):
            if self._stop.is_set():
                break
            self._poll_commands(commands)
            if sent.frame is not None and sent.frame.type == HELLO and sent.frame.seq == 0 and started:
                # The emulated device restarted after a disconnect (FaultConfig.disconnects):
                # the old port vanished while it was down; a new one appears behind `port`.
                for fd in (self._master, self._slave):
                    os.close(fd)
                self._master = self._open()
            started = True
            wait = t0 + sent.host_time_s / self.speed - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if sent.raw:
                try:
                    os.write(self._master, sent.raw)
                except OSError:
                    break

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


class UdpLink:
    """Send the emulator's frames as datagrams to a host:port on loopback, in real time."""

    def __init__(self, emu: DeviceEmulator, host: str, port: int, faults: FaultConfig | None = None,
                 speed: float = 1.0):
        self.emu, self.faults, self.speed = emu, faults or FaultConfig(), speed
        self.addr = (host, port)
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _poll_commands(self) -> None:
        from firmware_bridge.stream import DecoderStats, decode_datagram  # noqa: PLC0415

        while True:
            try:
                data, _ = self._sock.recvfrom(65536)
            except (BlockingIOError, OSError):
                return
            f = decode_datagram(data, DecoderStats())
            if f is not None:
                self.emu.control(f)

    def start(self) -> UdpLink:
        self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.monotonic()
        for sent in simulate(self.emu, self.faults, stream=False):
            if self._stop.is_set():
                break
            self._poll_commands()
            wait = t0 + sent.host_time_s / self.speed - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if sent.raw:
                self._sock.sendto(sent.raw, self.addr)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
