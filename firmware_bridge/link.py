"""The host side of a link: transport -> decoder -> reassembly -> drift correction.

BridgeLink is transport-agnostic and single-threaded: feed it bytes (stream) or
datagrams with the host time they arrived, and it returns audio blocks. The
transports in firmware_bridge.transport drive it from a serial port or a UDP
socket; tests and the soak drive it directly with emulated time.

Orientation samples (ORIENTATION frames) come out beside the audio: in sequence
order, on the device clock, from `take_orientation()`. Placing them on a
stream's clock is the consumer's business (agent.capture.bridge does it with
the audio blocks' device times and the drift estimate).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from firmware_bridge.drift import DriftEstimator, DriftResampler
from firmware_bridge.protocol import AUDIO, HEARTBEAT, HELLO, DeviceInfo, Frame, FrameError, crc32c
from firmware_bridge.reassembly import AudioBlock, Reassembler
from firmware_bridge.stream import DecoderStats, StreamDecoder, decode_datagram


@dataclass
class LinkConfig:
    jitter_frames: int = 0  # 0 for ordered byte streams; a few for UDP
    correct_drift: bool = True
    drift_bin_s: float = 1.0
    max_gap_s: float = 10.0


@dataclass(frozen=True)
class OrientationSample:
    """One ORIENTATION frame: the head-to-world quaternion (w, x, y, z, as sent: finite, not
    normalised) at device_time_s (s, the device clock that stamps the audio) and when it arrived
    (host_time_s, the host's monotonic clock; None when the feeder gave no time)."""

    device_time_s: float
    quaternion: tuple[float, float, float, float]
    host_time_s: float | None


@dataclass
class LinkHealth:
    """Counters for the agent's health output (all cumulative)."""

    decoder: dict = field(default_factory=dict)
    reassembly: dict = field(default_factory=dict)
    drift_ppm: float | None = None
    device: dict | None = None
    heartbeats: int = 0
    last_frame_host_s: float | None = None


class BridgeLink:
    def __init__(self, config: LinkConfig | None = None, datagrams: bool = False, crc=crc32c):
        self.config = config or LinkConfig()
        self.datagrams = datagrams
        self.crc = crc
        self.decoder = StreamDecoder(crc=crc)
        self.dstats = self.decoder.stats if not datagrams else DecoderStats()
        self.reassembler = Reassembler(self.config.jitter_frames, self.config.max_gap_s)
        self.drift = DriftEstimator(self.config.drift_bin_s)
        self.device: DeviceInfo | None = None
        self.heartbeats = 0
        self.last_frame_host_s: float | None = None
        self._resampler: DriftResampler | None = None

    # -- input ----------------------------------------------------------------
    def feed_bytes(self, data: bytes, host_time_s: float | None = None) -> list[AudioBlock]:
        return self._frames(self.decoder.feed(data), host_time_s)

    def feed_datagram(self, data: bytes, host_time_s: float | None = None) -> list[AudioBlock]:
        frame = decode_datagram(data, self.dstats, self.crc)
        return self._frames([frame] if frame else [], host_time_s)

    def flush(self) -> list[AudioBlock]:
        return self._post(self.reassembler.flush())

    def take_orientation(self) -> list[OrientationSample]:
        """The orientation samples released since the last call, oldest first (the reassembler
        keeps the latest 1024 for a consumer that takes none)."""
        q = self.reassembler.orientation
        out = []
        while q:
            frame, host_t = q.popleft()
            out.append(OrientationSample(frame.timestamp_us / 1e6, frame.quaternion(), host_t))
        return out

    # -- internals --------------------------------------------------------------
    def _frames(self, frames: list[Frame], host_time_s: float | None) -> list[AudioBlock]:
        host = time.monotonic() if host_time_s is None else host_time_s
        blocks: list[AudioBlock] = []
        for f in frames:
            self.last_frame_host_s = host
            if f.type == HELLO:
                try:
                    self.device = DeviceInfo.unpack(f.payload)
                except FrameError:
                    pass
            elif f.type == HEARTBEAT:
                self.heartbeats += 1
            elif f.type == AUDIO:
                self.drift.add(f.timestamp_us / 1e6, host)
            blocks += self.reassembler.push(f, host)
        return self._post(blocks)

    def _post(self, blocks: list[AudioBlock]) -> list[AudioBlock]:
        if not self.config.correct_drift or not blocks:
            return blocks
        out = []
        for b in _merge_contiguous(blocks):
            if self._resampler is None:
                self._resampler = DriftResampler(b.samples.shape[1])
            if self.drift.ppm is not None:
                self._resampler.ratio = 1.0 / (1.0 + self.drift.ppm * 1e-6)
            y = self._resampler.process(b.samples)
            if len(y):
                out.append(AudioBlock(b.device_time_s, b.sample_rate_hz, y, b.gap, b.host_time_s))
        return out

    def health(self) -> LinkHealth:
        return LinkHealth(asdict(self.dstats), asdict(self.reassembler.stats), self.drift.ppm,
                          None if self.device is None else asdict(self.device), self.heartbeats,
                          self.last_frame_host_s)


def _merge_contiguous(blocks: list[AudioBlock]) -> list[AudioBlock]:
    """Join runs of back-to-back blocks of the same kind (audio or gap): one resampler call each."""
    merged: list[AudioBlock] = []
    run: list[AudioBlock] = []
    for b in blocks + [None]:
        if run and (b is None or b.gap != run[0].gap or b.sample_rate_hz != run[0].sample_rate_hz):
            first = run[0]
            samples = first.samples if len(run) == 1 else np.concatenate([r.samples for r in run])
            merged.append(AudioBlock(first.device_time_s, first.sample_rate_hz, samples, first.gap, first.host_time_s))
            run = []
        if b is not None:
            run.append(b)
    return merged


def concat(blocks: list[AudioBlock]) -> np.ndarray:
    if not blocks:
        return np.zeros((0, 2), np.float32)
    return np.concatenate([b.samples for b in blocks])
