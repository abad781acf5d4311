"""Frames -> a continuous, time-true audio stream.

- Sequence numbers (u32, serial-number arithmetic) drop duplicates and, for
  datagram links, reorder within a small jitter buffer.
- Device timestamps say where every frame's first sample belongs; a missing
  stretch (lost frames, a device stall) becomes flagged silence of exactly that
  length, so sample counts stay equal to device time. Late audio is never
  spliced back in (it would shift everything after it).
- A DISCONTINUITY flag (device restart), a sequence jump too large to be loss,
  or a device timestamp that jumps forward past max_gap_s or backwards behind
  audio already delivered starts a new segment.
- ORIENTATION frames share the sequence counter, so they come out in order and
  de-duplicated too: released ones wait in `orientation` (bounded) for the link
  to take. One that arrives before the first audio frame (nothing to place it
  against yet), twice, or behind frames already released is dropped and counted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from firmware_bridge.protocol import AUDIO, DISCONTINUITY, ORIENTATION, Frame

SEQ_MOD = 1 << 32


def seq_delta(a: int, b: int) -> int:
    """a - b in serial-number arithmetic (RFC 1982): negative when a is older."""
    d = (a - b) % SEQ_MOD
    return d - SEQ_MOD if d >= SEQ_MOD // 2 else d


@dataclass
class AudioBlock:
    """A stretch of the device's audio. samples: (n, channels) float32.

    device_time_s: device clock time of the first sample. gap: True when the
    block is fill for audio that never arrived (silence).
    """

    device_time_s: float
    sample_rate_hz: int
    samples: np.ndarray
    gap: bool = False
    host_time_s: float | None = None


@dataclass
class ReassemblyStats:
    audio_frames: int = 0
    control_frames: int = 0
    duplicates: int = 0
    reordered: int = 0
    late_dropped: int = 0
    gaps: int = 0
    gap_samples: int = 0
    lost_frames: int = 0
    segments: int = 0
    timestamp_jumps: int = 0  # device time jumped past max_gap_s or backwards: a new segment
    delivered_samples: int = 0
    orientation_frames: int = 0  # released in sequence order (to BridgeLink.take_orientation)
    orientation_dropped: int = 0  # before the first audio frame, duplicated, or behind frames released


class Reassembler:
    """Order, de-duplicate and gap-fill audio frames of one device.

    jitter_frames: how many frames may be held back waiting for a missing one
    (0 for ordered byte streams; a few for UDP).
    """

    def __init__(self, jitter_frames: int = 0, max_gap_s: float = 10.0, history: int = 4096,
                 keep_orientation: int = 1024):
        self.jitter_frames = jitter_frames
        self.max_gap_s = max_gap_s
        self.stats = ReassemblyStats()
        self.gap_log: deque[tuple[float, int]] = deque(maxlen=10_000)  # (device time s, samples)
        self._pending: dict[int, tuple[Frame, float | None]] = {}
        self._seen: deque[int] = deque(maxlen=history)
        self._seen_set: set[int] = set()
        self._next_seq: int | None = None
        self._next_sample: int | None = None  # device sample index expected next
        self._rate = 0
        self._channels = 0
        self._segment_start: tuple[int, int] | None = None
        #: released ORIENTATION frames (frame, host arrival s), oldest first; the oldest fall off
        #: when nobody takes them
        self.orientation: deque[tuple[Frame, float | None]] = deque(maxlen=keep_orientation)

    def push(self, frame: Frame, host_time_s: float | None = None) -> list[AudioBlock]:
        if frame.type != AUDIO:
            self.stats.control_frames += 1
            # Control frames share the sequence counter: advance past them in order.
            if self._next_seq is not None and seq_delta(frame.seq, self._next_seq) >= 0 \
                    and frame.seq not in self._pending:
                self._pending[frame.seq] = (frame, host_time_s)
                return self._release(force=False)
            if frame.type == ORIENTATION:
                self.stats.orientation_dropped += 1
            return []
        self.stats.audio_frames += 1
        new_segment = bool(frame.flags & DISCONTINUITY) and (frame.seq, frame.timestamp_us) != self._segment_start
        if not new_segment and (frame.seq in self._seen_set or frame.seq in self._pending):
            self.stats.duplicates += 1
            return []
        out: list[AudioBlock] = []
        restart = self._next_seq is None or new_segment or \
            frame.sample_rate_hz != self._rate or frame.channels != self._channels
        if not restart:
            d = seq_delta(frame.seq, self._next_seq)
            if d < 0:
                self.stats.late_dropped += 1
                return []
            if d > SEQ_MOD // 4:
                restart = True
        if restart:
            out += self.flush()
            self._start(frame)
        if any(seq_delta(s, frame.seq) > 0 for s in self._pending):
            self.stats.reordered += 1  # arrived after a later frame, still in time
        self._pending[frame.seq] = (frame, host_time_s)
        out += self._release(force=False)
        return out

    def flush(self) -> list[AudioBlock]:
        """Release everything held, filling holes (call at end of stream or on timeout)."""
        return self._release(force=True)

    def _start(self, frame: Frame) -> None:
        self.stats.segments += 1
        self._segment_start = (frame.seq, frame.timestamp_us)
        self._seen.clear()
        self._seen_set.clear()
        self._next_seq = frame.seq
        self._rate = frame.sample_rate_hz
        self._channels = frame.channels
        self._next_sample = self._sample_index(frame.timestamp_us)

    def _sample_index(self, ts_us: int) -> int:
        return int(round(ts_us * self._rate / 1_000_000))

    def _release(self, force: bool) -> list[AudioBlock]:
        out: list[AudioBlock] = []
        while self._pending:
            if self._next_seq in self._pending:
                frame, host_t = self._pending.pop(self._next_seq)
                self._mark_seen(frame.seq)
                self._next_seq = (self._next_seq + 1) % SEQ_MOD
                if frame.type == AUDIO:
                    out += self._emit(frame, host_t)
                elif frame.type == ORIENTATION:
                    self.stats.orientation_frames += 1
                    self.orientation.append((frame, host_t))
                continue
            if not force and len(self._pending) <= self.jitter_frames:
                break
            # Give up on the missing frame(s): jump to the oldest one we hold.
            oldest = min(self._pending, key=lambda s: seq_delta(s, self._next_seq))
            self.stats.lost_frames += seq_delta(oldest, self._next_seq)
            self._next_seq = oldest
        return out

    def _mark_seen(self, seq: int) -> None:
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(seq)
        self._seen_set.add(seq)

    def _emit(self, frame: Frame, host_t: float | None) -> list[AudioBlock]:
        out = []
        start = self._sample_index(frame.timestamp_us)
        missing = start - self._next_sample
        if missing > self.max_gap_s * self._rate or start + max(frame.n_samples, 1) <= self._next_sample:
            # A jump forward longer than any loss we bridge, or back past all of this frame's
            # samples: the device clock was reset (or one frame carried a wild timestamp).
            # Re-anchor on this frame as a new segment; never discard audio because its
            # timestamp lies behind a wild one (that would silence the rest of the stream).
            self.stats.segments += 1
            self.stats.timestamp_jumps += 1
            self._next_sample = start
            missing = 0
        if missing > 0:
            self.stats.gaps += 1
            self.stats.gap_samples += missing
            self.gap_log.append((self._next_sample / self._rate, missing))
            out.append(AudioBlock(self._next_sample / self._rate, self._rate,
                                  np.zeros((missing, self._channels), np.float32), gap=True))
            self.stats.delivered_samples += missing
        pcm = frame.pcm()
        if missing < 0:  # overlaps what was delivered: keep only the new part
            pcm = pcm[-missing:]
            start = self._next_sample
        if len(pcm):
            out.append(AudioBlock(start / self._rate, self._rate, pcm, gap=False, host_time_s=host_t))
            self.stats.delivered_samples += len(pcm)
        self._next_sample = start + len(pcm)
        return out
