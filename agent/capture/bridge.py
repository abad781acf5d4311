"""A microcontroller's ear microphones over the firmware bridge (`bridge:URI`), as PcmBlocks.

firmware_bridge.BridgeSource already turns the link into a time-true stream: it drops
duplicates, reorders, and fills lost frames with flagged silence of their exact length,
within one *segment* of the device's stream. Across segments (the device restarted, the
link was down, its clock jumped) it starts afresh; here the stream clock goes on:
- the device kept its clock (a link outage: the new segment's device time lies up to
  `max_fill_s` ahead of where the last one ended): the difference is filled with silence
  (`segment_gaps`, `segment_gap_samples`);
- the device clock was reset or jumped too far: the host's arrival times tell how long the
  device was away (`clock_resets`).
The stream clock is 0 at the first sample delivered. The bridge's own counters (decoder,
reassembly, UDP lock, heartbeats, reconnects) pass through `counters()` flattened. Blocks
are the frames as they come (about 10 ms each from the reference firmware).

`rate_hz` is 0 until the device's first audio arrives (a bridge learns the rate from the
device); every PcmBlock carries its rate.

Orientation: a device that also sends the head's orientation (ORIENTATION frames, stamped on
the clock of its audio) has each sample placed on the stream clock and handed to
`on_orientation(t_s, (w, x, y, z))`: the device time is mapped through the latest audio
block's (device time, stream time) pair and scaled by the drift correction, so the sample
sits where the audio recorded at that moment sits in the stream. It is called on the thread
that iterates `blocks()`, before the block that placed it is yielded (wire it to
agent.track.orientation.OrientationInput.push). Counters: `orientation_frames` (valid, in
order), `orientation_invalid` (refused by the protocol checks: wrong length, NaN or Inf),
`orientation_dropped` (before the first audio, duplicated, late), `orientation_placed`,
`orientation_unplaced` (more than ORIENTATION_REACH_S behind the audio: another segment's).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np

from agent.capture.block import PcmBlock
from agent.core.audio import MIN_SAMPLE_RATE_HZ, N_CHANNELS
from agent.core.errors import BinauraError

#: Device-time mismatch between consecutive blocks still taken as contiguous: drift correction
#: resamples a few samples in or out per block; a lost frame is already filled upstream.
CONTIGUOUS_TOLERANCE_S = 0.02
#: A new segment this far ahead on the device clock is a link outage the device kept time through.
MAX_FILL_S = 600.0
#: An orientation sample within this much device time of the latest audio block is placed against
#: it; one further ahead waits for its own audio (up to ORIENTATION_WAIT samples), one further
#: behind belongs to an earlier segment and is dropped (`orientation_unplaced`).
ORIENTATION_REACH_S = 1.0
ORIENTATION_WAIT = 256


class BridgeAudioSource:
    """Blocks from `firmware_bridge.BridgeSource(uri)` on the agent's stream clock; the UDP
    port is bound (or the URI refused, as a BinauraError) when this is created."""

    live = True

    def __init__(self, uri: str, correct_drift: bool = True, max_fill_s: float = MAX_FILL_S,
                 on_orientation: Callable[[float, tuple[float, float, float, float]], object] | None = None):
        from firmware_bridge import BridgeSource, BridgeUriError  # noqa: PLC0415

        try:
            self.bridge = BridgeSource(uri, correct_drift=correct_drift)
        except BridgeUriError as e:
            raise BinauraError(str(e)) from e
        self.name = uri
        #: UDP: the (host, port) bound (port 0 in the URI picks a free one); None for serial
        self.local_address = self.bridge.local_address
        self.max_fill_s = float(max_fill_s)
        self._rate = 0
        self._t_samples = 0
        self._dev_end_s: float | None = None  # device time where the last block ended
        self._host_s: float | None = None  # host arrival time of the last audio block ...
        self._host_t_samples = 0  # ... and where it started on the stream clock
        self._closed = threading.Event()
        self._final: dict[str, int] | None = None
        self._c = {"samples_out": 0, "segment_gaps": 0, "segment_gap_samples": 0, "clock_resets": 0,
                   "orientation_placed": 0, "orientation_unplaced": 0}
        #: (t_s, (w, x, y, z)) -> anything: each orientation sample on the stream clock; may be set later
        self.on_orientation = on_orientation
        self._orientation_wait: deque = deque()  # samples ahead of the audio delivered so far

    @property
    def rate_hz(self) -> int:
        return self._rate

    def blocks(self) -> Iterator[PcmBlock]:
        """Until close(). Raises BinauraError when the device sends audio binaura cannot use."""
        it = self.bridge.blocks()
        while not self._closed.is_set():
            try:
                b = next(it)
            except StopIteration:
                return
            except OSError:
                if self._closed.is_set():  # close() shut the socket under a read in progress
                    return
                raise
            x = b.samples
            if x.ndim != 2 or x.shape[1] != N_CHANNELS:
                raise BinauraError(f"{self.name}: the device sends {x.shape[1] if x.ndim == 2 else '?'} "
                                   f"channel(s); binaura needs {N_CHANNELS} (L, R)")
            if not self._rate:
                if b.sample_rate_hz < MIN_SAMPLE_RATE_HZ:
                    raise BinauraError(f"{self.name}: the device streams at {b.sample_rate_hz} Hz, below "
                                       f"the minimum {MIN_SAMPLE_RATE_HZ} Hz")
                self._rate = b.sample_rate_hz
            elif b.sample_rate_hz != self._rate:
                raise BinauraError(f"{self.name}: the device changed its rate from {self._rate} to "
                                   f"{b.sample_rate_hz} Hz mid-stream; restart the listener")
            if not len(x):
                continue
            gap = self._missing(b.device_time_s, b.host_time_s)
            if gap:
                yield self._emit(np.zeros((N_CHANNELS, gap), np.float32), gap=True)
            if b.host_time_s is not None and not b.gap:
                self._host_s, self._host_t_samples = b.host_time_s, self._t_samples
            self._dev_end_s = b.device_time_s + len(x) / self._rate
            block = self._emit(np.ascontiguousarray(x.T, dtype=np.float32), gap=b.gap)
            self._place_orientation(b.device_time_s, block.t_s)
            yield block

    @property
    def stream_s(self) -> float:
        """The stream clock at the end of the audio delivered so far (s)."""
        return self._t_samples / self._rate if self._rate else 0.0

    def orientation_input(self, config=None):
        """A new agent.track.orientation.OrientationInput fed by this device's ORIENTATION frames
        (what `binaura listen --orientation bridge` uses); its "future" is measured from the audio
        delivered, which the encoder's frames trail."""
        from agent.track.orientation import OrientationInput  # noqa: PLC0415

        orientation = OrientationInput(config, clock=lambda: self.stream_s)
        self.on_orientation = lambda t_s, q: orientation.push(t_s, quaternion=q)
        return orientation

    def _place_orientation(self, device_s: float, stream_s: float) -> None:
        """Map the link's orientation samples onto the stream clock against a block that starts
        at device time device_s and stream time stream_s; hand them to on_orientation."""
        self._orientation_wait.extend(self.bridge.link.take_orientation())
        link = self.bridge.link
        ppm = link.drift.ppm if link.config.correct_drift else None
        scale = 1.0 if ppm is None else 1.0 / (1.0 + ppm * 1e-6)  # device seconds -> host (stream) seconds
        while self._orientation_wait:
            o = self._orientation_wait[0]
            if o.device_time_s > self._dev_end_s + ORIENTATION_REACH_S:  # ahead of the audio: wait for it
                while len(self._orientation_wait) > ORIENTATION_WAIT:
                    self._orientation_wait.popleft()
                    self._c["orientation_unplaced"] += 1
                return
            self._orientation_wait.popleft()
            if o.device_time_s < device_s - ORIENTATION_REACH_S:
                self._c["orientation_unplaced"] += 1
                continue
            self._c["orientation_placed"] += 1
            if self.on_orientation is not None:
                self.on_orientation(stream_s + (o.device_time_s - device_s) * scale, o.quaternion)

    def _missing(self, device_s: float, host_s: float | None) -> int:
        """Samples of silence the stream needs before a block starting at device time device_s."""
        if self._dev_end_s is None:
            return 0
        d = device_s - self._dev_end_s
        if abs(d) <= CONTIGUOUS_TOLERANCE_S:
            return 0
        if 0 < d <= self.max_fill_s:  # the device kept time while the link was down
            n = int(round(d * self._rate))
            self._c["segment_gaps"] += 1
            self._c["segment_gap_samples"] += n
            return n
        self._c["clock_resets"] += 1
        if host_s is None or self._host_s is None:
            return 0
        # The host clock: when this block arrived against when the last one did, less the
        # audio delivered since then.
        away = (host_s - self._host_s) * self._rate - (self._t_samples - self._host_t_samples)
        return max(0, int(round(away)))

    def _emit(self, samples: np.ndarray, gap: bool) -> PcmBlock:
        block = PcmBlock(self._t_samples / self._rate, self._rate, samples, gap)
        self._t_samples += samples.shape[1]
        self._c["samples_out"] = self._t_samples
        return block

    def counters(self) -> dict[str, int]:
        """The bridge's integer health counters (decoder: frames_ok, crc_errors, ...,
        orientation_invalid; reassembly: gaps, gap_samples, lost_frames, duplicates, segments,
        ..., orientation_frames, orientation_dropped; heartbeats, reconnects; UDP:
        foreign_datagrams, ...) and this adapter's own (samples_out, segment_gaps,
        segment_gap_samples, clock_resets, orientation_placed, orientation_unplaced). After
        close(): as they were then."""
        if self._final is not None:
            return {**self._final, **self._c}
        h = self.bridge.health()
        out: dict[str, int] = {}
        for section in ("decoder", "reassembly", "udp"):
            for k, v in (h.get(section) or {}).items():
                if isinstance(v, int) and not isinstance(v, bool):
                    out[k] = v
        out["heartbeats"] = int(h.get("heartbeats", 0))
        out["reconnects"] = int(h.get("reconnects", 0))
        out.update(self._c)
        return out

    def describe(self) -> str:
        dev = self.bridge.link.device
        who = f"{dev.device_id}, {dev.sample_rate_hz} Hz" if dev is not None else "waiting for the device"
        where = self.local_address
        at = f" (listening on {where[0]}:{where[1]})" if where else ""
        return f"bridge: {self.name}{at}, {who}"

    def close(self) -> None:
        """Stop: `blocks()` returns once the bridge's read times out (50 ms). Any thread."""
        if self._final is None:
            self._final = self.counters()  # a closed socket has no health to ask (the last health event)
        self._closed.set()
        self.bridge.close()
