"""What an emulated board's orientation sensor reads: a head trajectory on the device clock.

A headset or a robot head with an IMU sends ORIENTATION frames beside its audio, stamped on
the clock that stamps the audio (docs/bridge-protocol.md). DeviceEmulator takes one of these
to interleave them with its audio frames. Plain numbers only (this package imports nothing
from the agent): a quaternion is (w, x, y, z), the head-to-world rotation, yaw + = turned
left (docs/turning.md); agent.core.rotation.quat_from_ypr builds one from angles.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Sequence

Quaternion = tuple[float, float, float, float]
NAN_QUATERNION: Quaternion = (math.nan, math.nan, math.nan, math.nan)


class OrientationTrack:
    """Orientation samples on the device clock (s since the device's first audio sample).

    path: a callable t_s -> (w, x, y, z), read every 1 / rate_hz s from t = 0 (as an IMU
    polled at a fixed rate; it runs on for a looping emulator), or a sequence of
    (t_s, (w, x, y, z)) samples with strictly increasing t_s, each read at its time.
    Values are sent as given (not normalised), so a test can send a bad one.
    """

    def __init__(self, path: Callable[[float], Sequence[float]] | Sequence[tuple[float, Sequence[float]]],
                 rate_hz: float = 50.0):
        if callable(path):
            if not (isinstance(rate_hz, (int, float)) and 0 < rate_hz < math.inf):
                raise ValueError(f"orientation rate must be a positive number of Hz, got {rate_hz!r}")
            self._fn, self._t, self._q = path, None, None
        else:
            samples = list(path)
            t = [float(s[0]) for s in samples]
            if any(b <= a for a, b in zip(t, t[1:])) or any(not math.isfinite(v) or v < 0 for v in t):
                raise ValueError("orientation samples need finite times >= 0 s in strictly increasing order")
            self._fn, self._t, self._q = None, t, [_quaternion(s[1]) for s in samples]
        self.rate_hz = float(rate_hz)

    def between(self, t0_s: float, t1_s: float) -> Iterator[tuple[float, Quaternion]]:
        """(t_s, quaternion) of the readings with t0_s <= t_s < t1_s, in time order."""
        if self._fn is not None:
            k = max(0, math.ceil(t0_s * self.rate_hz - 1e-9))
            while (t := k / self.rate_hz) < t1_s:
                yield t, _quaternion(self._fn(t))
                k += 1
            return
        for i in range(bisect.bisect_left(self._t, t0_s), bisect.bisect_left(self._t, t1_s)):
            yield self._t[i], self._q[i]


def in_spans(t_s: float, spans: Sequence[tuple[float, float]]) -> bool:
    """Whether t_s lies in one of the (start s, seconds) spans."""
    return any(a <= t_s < a + d for a, d in spans)


def _quaternion(q: Sequence[float]) -> Quaternion:
    v = tuple(float(x) for x in q)
    if len(v) != 4:
        raise ValueError(f"a quaternion is 4 numbers (w, x, y, z), got {len(v)}")
    return v
