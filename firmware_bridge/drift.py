"""Device-vs-host clock drift: estimate it, and resample it away.

Each good audio frame gives a pair (device time of its first sample, host
arrival time). Transport delay only ever adds to the arrival time, so the
lower envelope of (host - device) follows the clock offset: per bin of device
time the minimum is kept, and a least-squares line through the bin minima
gives the rate ratio. drift_ppm > 0 means the device clock (and so its sample
rate) runs fast relative to the host.
"""

from __future__ import annotations

from collections import deque

import numpy as np


class DriftEstimator:
    def __init__(self, bin_s: float = 1.0, window_bins: int = 600, min_bins: int = 8):
        self.bin_s = bin_s
        self.min_bins = min_bins
        self._bins: deque[tuple[float, float]] = deque(maxlen=window_bins)  # (device t, min offset)
        self._cur_bin: int | None = None
        self._cur: tuple[float, float] | None = None
        self.ppm: float | None = None

    def add(self, device_s: float, host_s: float) -> None:
        b = int(device_s // self.bin_s)
        off = host_s - device_s
        if b != self._cur_bin:
            if self._cur is not None:
                self._bins.append(self._cur)
                self._update()
            self._cur_bin, self._cur = b, (device_s, off)
        elif off < self._cur[1]:
            self._cur = (device_s, off)

    def _update(self) -> None:
        if len(self._bins) < self.min_bins:
            return
        d = np.array(self._bins)
        t, off = d[:, 0] - d[0, 0], d[:, 1]
        slope = np.polyfit(t, off, 1)[0]  # d(host - device)/d(device) = host/device rate - 1
        # host/device = 1 + slope; device runs fast by device/host - 1.
        self.ppm = float((1.0 / (1.0 + slope) - 1.0) * 1e6)


class DriftResampler:
    """Streaming band-limited resampler for ratios near 1 (clock-drift correction).

    Output rate / input rate = ratio, changeable between blocks. A Kaiser-windowed
    sinc with `taps` taps and `phases` fractional positions keeps the band up to
    ~0.9 x Nyquist flat, so pinna cues above 8 kHz survive the correction.
    Channels are resampled identically, which keeps interaural time and level
    differences intact.
    """

    def __init__(self, channels: int, taps: int = 16, phases: int = 512, beta: float = 8.0):
        self.taps = taps
        self.phases = phases
        half = taps // 2
        frac = np.arange(phases) / phases
        k = np.arange(-half + 1, half + 1)  # tap offsets relative to floor(position)
        x = k[None, :] - frac[:, None]
        w = np.kaiser(2 * half + 1, beta)
        win = np.interp(x, np.arange(-half, half + 1), w)
        table = np.sinc(x * 0.95) * 0.95 * win
        self.table = (table / table.sum(axis=1, keepdims=True)).astype(np.float32)  # (phases, taps)
        self.offsets = k
        self.ratio = 1.0
        self._hist = np.zeros((taps, channels), np.float32)  # past input for the filter
        self._pos = float(half - 1)  # position of the next output sample in the history+input frame

    def process(self, x: np.ndarray) -> np.ndarray:
        """Resample a block (n, channels) with the current ratio; returns (m, channels)."""
        buf = np.concatenate([self._hist, x.astype(np.float32)])
        step = 1.0 / self.ratio
        half = self.taps // 2
        last = len(buf) - half - 1  # the newest position whose filter taps are all available
        if self._pos > last:
            n_out = 0
        else:
            n_out = int(np.floor((last - self._pos) / step)) + 1
        pos = self._pos + step * np.arange(n_out)
        base = np.floor(pos).astype(np.int64)
        phase = np.minimum(((pos - base) * self.phases).astype(np.int64), self.phases - 1)
        idx = base[:, None] + self.offsets[None, :]
        out = np.einsum("nt,ntc->nc", self.table[phase], buf[idx])
        self._pos = (self._pos + step * n_out) - (len(buf) - self.taps)
        self._hist = buf[-self.taps:]
        return out.astype(np.float32)
