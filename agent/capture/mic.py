"""A live two-channel microphone (`mic[:DEVICE]`) through PortAudio (sounddevice).

Threads: PortAudio calls `_callback` on its own real-time thread for every block; the
consumer iterates `blocks()` on another. The callback only copies the block into a
preallocated slot and puts (slot, count, time, flags) into a bounded queue: no allocation
of audio, no logging, nothing that could block and make the driver lose input. When the
queue is full the block is dropped and counted (`queue_overflows`).

Nothing moves the stream clock but samples: audio that was lost is replaced by a `gap`
block of silence of the same length, so time on the stream stays time in the room:
- blocks dropped on a full queue: their exact length;
- a driver input overflow (`input_overflows`; PortAudio does not say how much was lost):
  the wall-clock time between this callback and the last one beyond the block's length;
- a device lost (the stream ends with an error, no callback comes for `stall_s`, or none
  within START_TIMEOUT_S of opening it): silence
  is emitted in real time while it is away (the pipeline keeps time, tracks end), the stream
  is reopened with exponential backoff (0.5 s doubling to 8 s), and when audio comes back
  the rest of the outage, by the wall clock, is filled (`device_lost`, `reconnects`).
A reopened device is the same PortAudio device (index and name): PortAudio does not re-scan
while streams are open (agent.capture.devices.refresh_devices).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from functools import partial
from types import ModuleType

import numpy as np

from agent.capture.block import BLOCK_S, PcmBlock, check_block_s
from agent.capture.devices import (
    check_capture_rate,
    format_devices,
    input_devices,
    portaudio,
    resolve_input_device,
)
from agent.core.audio import N_CHANNELS
from agent.core.errors import BinauraError

#: No callback for this long means the device is gone (issue 21: "stops delivering for > 2 s").
STALL_S = 2.0
#: A stream that has not delivered its first block this long after opening is lost. Longer than
#: STALL_S: ALSA's pulse PCM takes about 1 s to start (2 s on a loaded machine).
START_TIMEOUT_S = 5.0
#: Reopen a lost device after 0.5 s, then 1, 2, 4, 8, 8, ... s.
BACKOFF_S = (0.5, 8.0)
#: How often the consumer looks at the device's health while no block arrives.
POLL_S = 0.05


class MicSource:
    """Two-channel capture from one input device, at the device's default rate unless
    `rate_hz` is given. `device`: None (the system default), a PortAudio index, or part of a
    device name. `queue_blocks` blocks of `block_s` seconds are the slack between the driver
    and the consumer. Refusals (no such device, fewer than 2 input channels, a rate below
    16 kHz) are one BinauraError listing the input devices."""

    live = True

    def __init__(self, device: str | int | None = None, block_s: float = BLOCK_S, queue_blocks: int = 50,
                 rate_hz: int | None = None, stall_s: float = STALL_S,
                 backoff_s: tuple[float, float] = BACKOFF_S, backend: ModuleType | None = None):
        """backend: the sounddevice module, or a stand-in with its API (tests)."""
        self._sd = backend or portaudio()
        self.device = resolve_input_device(device, self._sd)
        self.rate_hz = check_capture_rate(self.device, self.device.default_rate_hz if rate_hz is None else int(rate_hz))
        self.block_s = check_block_s(block_s)
        self.block_samples = max(1, int(round(self.block_s * self.rate_hz)))
        if not isinstance(queue_blocks, int) or queue_blocks < 2:
            raise BinauraError(f"queue_blocks must be an integer >= 2, got {queue_blocks!r}")
        if not stall_s > 0 or not 0 < backoff_s[0] <= backoff_s[1]:
            raise BinauraError(f"need stall_s > 0 and 0 < backoff start <= max, got {stall_s}, {backoff_s}")
        self.stall_s, self.backoff_s = float(stall_s), (float(backoff_s[0]), float(backoff_s[1]))
        try:
            self._sd.check_input_settings(device=self.device.index, channels=N_CHANNELS, dtype="float32",
                                          samplerate=self.rate_hz)
        except Exception as e:  # noqa: BLE001 - PortAudioError / ValueError, reported with the devices
            raise BinauraError(f"input device {self.device} cannot record {N_CHANNELS} channels at "
                               f"{self.rate_hz} Hz ({e}). {format_devices(input_devices(self._sd))}") from e
        self.name = f"mic:{self.device.name}"
        # -- shared with the PortAudio thread (written there, read here) -------------------
        # Slots: the queue holds at most queue_blocks, the consumer converts one, so a slot
        # is rewritten only queue_blocks + 2 writes later, when nobody reads it any more.
        self._pool = np.zeros((queue_blocks + 2, self.block_samples, N_CHANNELS), np.float32)
        self._slot = 0
        self._q: queue.Queue = queue.Queue(maxsize=queue_blocks)
        self._generation = 0  # one per opened stream
        self._pending_drop = 0  # samples dropped on a full queue since the last queued block
        self._last_cb_s = 0.0
        self._finished_gen = -1  # the generation whose stream ended (error or stop)
        self._c = {"samples_out": 0, "gap_samples": 0, "queue_overflows": 0, "input_overflows": 0,
                   "device_lost": 0, "reconnects": 0, "reconnect_attempts": 0}
        # -- the consumer's state -------------------------------------------------------------
        self._lock = threading.Lock()  # the stream object: opened here, closed from close() too
        self._stream = None
        self._started = False
        self._opened_s = 0.0
        self._closed = threading.Event()
        self._t_samples = 0  # the stream clock, in samples
        self._last_wall: float | None = None  # wall time of the last delivered block's callback
        self._outage: float | None = None  # wall time the lost audio began (None: no outage)
        self._outage_sent = 0  # silence already emitted for it, in samples
        self._backoff = self.backoff_s[0]
        self._next_try = 0.0

    # -- PortAudio's thread ------------------------------------------------------------------
    def _callback(self, indata, frames, time_info, status) -> None:
        now = time.monotonic()
        self._last_cb_s = now
        overflow = bool(status.input_overflow)
        if overflow:
            self._c["input_overflows"] += 1
        if self._q.full():  # only this thread puts: the check cannot go stale before the put
            self._pending_drop += frames
            self._c["queue_overflows"] += 1
            return
        slot = self._slot
        self._pool[slot, :frames] = indata
        self._slot = (slot + 1) % len(self._pool)
        self._q.put_nowait((slot, frames, now, overflow, self._pending_drop, self._generation))
        self._pending_drop = 0

    def _on_finished(self, generation: int) -> None:
        self._finished_gen = generation

    # -- the stream ------------------------------------------------------------------------------
    def _open(self) -> None:
        """Open and start a new stream (raises what PortAudio raises)."""
        with self._lock:
            if self._closed.is_set():
                return
            gen = self._generation + 1
            stream = self._sd.InputStream(
                device=self.device.index, samplerate=self.rate_hz, blocksize=self.block_samples,
                channels=N_CHANNELS, dtype="float32", callback=self._callback,
                finished_callback=partial(self._on_finished, gen))
            self._pending_drop = 0  # drops of an old stream are covered by the outage's silence
            self._generation = gen  # before start(): the first callback tags its block with it
            try:
                stream.start()
            except BaseException:
                stream.close()
                raise
            self._stream, self._opened_s = stream, time.monotonic()

    def _close_stream(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:  # noqa: BLE001, S110 - a vanished device may refuse to close; it is gone either way
                pass

    def start(self) -> None:
        """Start capturing now (blocks() does it if not called): audio queues from here on."""
        if self._started or self._closed.is_set():
            return  # started before (a lost device is reopened by blocks(), not here)
        try:
            self._open()
            self._started = True
        except Exception as e:  # noqa: BLE001
            raise BinauraError(f"cannot open input device {self.device} at {self.rate_hz} Hz ({e}). "
                               f"{format_devices(input_devices(self._sd))}") from e

    def close(self) -> None:
        """Stop capturing; `blocks()` returns within POLL_S. Safe from any thread (Ctrl-C)."""
        self._closed.set()
        self._close_stream()

    def blocks(self) -> Iterator[PcmBlock]:
        """Captured audio, gap-filled, until close()."""
        self.start()
        while not self._closed.is_set():
            try:
                item = self._q.get(timeout=POLL_S)
            except queue.Empty:
                item = None
            if item is not None:
                yield from self._deliver(*item)
                continue
            now = time.monotonic()
            if self._is_dead(now):
                self._lose(now)
            if self._outage is not None:
                yield from self._gap(int((now - self._outage) * self.rate_hz) // self.block_samples
                                     * self.block_samples - self._outage_sent, outage=True)
                if self._stream is None and now >= self._next_try and not self._closed.is_set():
                    self._retry(now)

    # -- the consumer's side -------------------------------------------------------------------
    def _is_dead(self, now: float) -> bool:
        if self._stream is None:
            return False
        if self._finished_gen == self._generation:
            return True
        if self._last_cb_s >= self._opened_s:  # delivering: silent for stall_s means gone
            return now - self._last_cb_s > self.stall_s
        return now - self._opened_s > max(self.stall_s, START_TIMEOUT_S)

    def _lose(self, now: float) -> None:
        if self._outage is None:
            self._c["device_lost"] += 1
            self._outage = self._last_wall if self._last_wall is not None else self._opened_s
            self._outage_sent = 0
            self._backoff = self.backoff_s[0]
        self._close_stream()
        self._next_try = now + self._backoff
        self._backoff = min(2 * self._backoff, self.backoff_s[1])

    def _retry(self, now: float) -> None:
        self._c["reconnect_attempts"] += 1
        try:
            self._open()
        except Exception:  # noqa: BLE001 - still gone: try again later
            self._next_try = now + self._backoff
            self._backoff = min(2 * self._backoff, self.backoff_s[1])

    def _deliver(self, slot: int, frames: int, wall: float, overflow: bool, dropped: int,
                 generation: int) -> Iterator[PcmBlock]:
        trim = 0
        if self._outage is not None:
            if generation != self._generation or self._stream is None:
                return  # queued by a stream since given up: its time is inside the outage's silence
            missing = int(round((wall - frames / self.rate_hz - self._outage) * self.rate_hz))
            rest = missing - self._outage_sent
            gap, trim = max(rest, 0), min(max(-rest, 0), frames)  # trim: silence already sent for it
            self._outage = None
            self._backoff = self.backoff_s[0]
            self._c["reconnects"] += 1
        elif overflow and self._last_wall is not None:
            late = int(round((wall - self._last_wall) * self.rate_hz)) - frames
            gap = max(late, dropped)  # the wall clock saw the dropped blocks' time too
        else:
            gap = dropped
        self._last_wall = wall
        yield from self._gap(gap)
        samples = np.ascontiguousarray(self._pool[slot, trim:frames].T)
        if samples.shape[1]:
            yield self._emit(samples, gap=False)

    def _gap(self, n: int, outage: bool = False) -> Iterator[PcmBlock]:
        """n samples of silence, in blocks of at most block_samples."""
        while n > 0:
            m = min(n, self.block_samples)
            n -= m
            if outage:
                self._outage_sent += m
            self._c["gap_samples"] += m
            yield self._emit(np.zeros((N_CHANNELS, m), np.float32), gap=True)

    def _emit(self, samples: np.ndarray, gap: bool) -> PcmBlock:
        block = PcmBlock(self._t_samples / self.rate_hz, self.rate_hz, samples, gap)
        self._t_samples += samples.shape[1]
        self._c["samples_out"] = self._t_samples
        return block

    def counters(self) -> dict[str, int]:
        """samples_out and gap_samples (per channel, gap included in samples_out),
        queue_overflows (blocks dropped: the consumer was behind), input_overflows (the driver
        lost input), device_lost (outages), reconnects (outages that ended), reconnect_attempts."""
        return dict(self._c)

    def describe(self) -> str:
        return (f"mic: {self.device.name} [{self.device.index}, {self.device.hostapi}], {self.rate_hz} Hz, "
                f"2 of {self.device.max_input_channels} input channels, blocks of {self.block_s:g} s")
