"""Head-orientation input: samples checked at the boundary, held briefly, then given up on.

A robot posts its head yaw, a headset's IMU streams quaternions; the samples are stamped on
the audio stream's clock (s since its first sample). `OrientationInput.push` takes one from
any thread and refuses, with a warning, what cannot be right: a sample out of order (not
after the last one), one from the future (stamped beyond the stream clock plus
`future_slack_s`), a quaternion whose norm is off by more than `unit_tolerance` (a smaller
error is normalised away), a non-finite value. `at(t_s)` gives the orientation at a frame's
time: interpolated between samples (slerp), the last good one held while it is younger than
`hold_s`, held with a warning until `fallback_s`, and after that nothing: the fusion falls
back to head-frame tracks and says so, and resumes (afresh) when samples return.

Angles follow agent.core.rotation (yaw + = turn left, pitch + = nose up, roll + = left ear
up); a quaternion (w, x, y, z) rotates head-frame vectors into the world frame.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from agent.core.errors import BinauraError, ConfigError, check_known_keys, check_numbers
from agent.core.rotation import matrix_to_ypr, quat_from_ypr, quat_to_matrix

MODES = ("none", "world", "held", "fallback")


@dataclass
class OrientationConfig:
    hold_s: float = 0.5  # a last sample younger than this is simply held (IMUs send at 20-200 Hz)
    fallback_s: float = 2.0  # no sample for this long: head-frame mode (the head may have turned meanwhile)
    future_slack_s: float = 0.25  # how far past the stream clock a sample's stamp may lie (clock jitter)
    unit_tolerance: float = 0.05  # a quaternion's norm may differ from 1 by this; it is then normalised
    warn_every_s: float = 5.0  # a repeated warning of one kind is said at most this often (with a count)
    keep_samples: int = 512  # samples kept for interpolation (bounded memory)

    def validate(self) -> OrientationConfig:
        p: list[str] = []
        check_numbers(self, ("hold_s", "future_slack_s", "warn_every_s"), lambda v: 0 <= v < math.inf, ">= 0", p)
        check_numbers(self, ("unit_tolerance",), lambda v: 0 < v < 1, "in (0, 1)", p)
        check_numbers(self, ("keep_samples",), lambda v: isinstance(v, int) and v >= 2, "an integer >= 2", p)
        if not (isinstance(self.fallback_s, (int, float)) and self.fallback_s > self.hold_s):
            p.append(f"fallback_s must be > hold_s ({self.hold_s}), got {self.fallback_s!r}")
        if p:
            raise ConfigError(p, "orientation config")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> OrientationConfig:
        check_known_keys(cls, d, "orientation config")
        return cls(**d).validate()


@dataclass(frozen=True)
class HeadPose:
    """The orientation at one time: the head-to-world rotation (3, 3) or None (no usable
    orientation), the mode (MODES), the age of the sample it comes from (s) and the epoch
    (counts returns from fallback: the world frame of one epoch means nothing in the next)."""

    matrix: np.ndarray | None
    mode: str
    age_s: float
    epoch: int


class OrientationInput:
    """Orientation samples in (any thread), the pose at a frame's time out (the pipeline).

    clock: () -> s, how far the audio has arrived on the stream clock, for samples stamped by
    the capture side (a firmware bridge places each on the audio's clock as the audio comes
    in, about half a second ahead of the frames the encoder has got to): a sample is then
    from the future only beyond the later of the two, plus future_slack_s."""

    def __init__(self, config: OrientationConfig | None = None, clock: Callable[[], float] | None = None):
        self.config = (config or OrientationConfig()).validate()
        self.clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self._t: deque[float] = deque(maxlen=self.config.keep_samples)
        self._q: deque[np.ndarray] = deque(maxlen=self.config.keep_samples)
        self._now_s: float | None = None  # the latest frame time asked about: the stream clock
        self._mode = "none"
        self._epoch = 0
        self._warnings: list[tuple[float, str]] = []
        self._last_warned: dict[str, float] = {}
        self._unsaid: dict[str, int] = {}
        self.counters = {"orientation_samples": 0, "orientation_refused": 0, "orientation_fallbacks": 0}

    # -- input ------------------------------------------------------------------------------
    def push(self, t_s: float, yaw_deg: float | None = None, pitch_deg: float = 0.0, roll_deg: float = 0.0,
             quaternion=None) -> bool:
        """One sample: angles (deg) or a quaternion (w, x, y, z). Returns whether it was kept."""
        with self._lock:
            problem, q = self._check(t_s, yaw_deg, pitch_deg, roll_deg, quaternion)
            if problem is not None:
                self.counters["orientation_refused"] += 1
                kind, text = problem
                self._warn(kind, self._now_s if self._now_s is not None else float(t_s or 0.0), text)
                return False
            self._t.append(float(t_s))
            self._q.append(q)
            self.counters["orientation_samples"] += 1
            return True

    def push_json(self, obj, t_default_s: float | None = None) -> bool:
        """A decoded JSON sample: {"t_s", "yaw_deg", "pitch_deg"?, "roll_deg"?} or
        {"t_s", "quaternion": [w, x, y, z]}; t_s may be left out when t_default_s is given
        (the caller's stream clock). Malformed objects raise BinauraError naming the form."""
        form = ('{"t_s": 1.5, "yaw_deg": 40} or {"t_s": 1.5, "quaternion": [w, x, y, z]} '
                "(t_s on the audio stream's clock)")
        if not isinstance(obj, dict) or not ("yaw_deg" in obj or "quaternion" in obj):
            raise BinauraError(f"orientation sample {str(obj)[:80]!r}: expected {form}")
        t = obj.get("t_s", t_default_s)
        if t is None:
            raise BinauraError(f"orientation sample {str(obj)[:80]!r}: no t_s; expected {form}")
        try:
            if "quaternion" in obj:
                q = [float(v) for v in obj["quaternion"]]
                return self.push(float(t), quaternion=q)
            return self.push(float(t), float(obj["yaw_deg"]), float(obj.get("pitch_deg", 0.0)),
                             float(obj.get("roll_deg", 0.0)))
        except (TypeError, ValueError) as e:
            raise BinauraError(f"orientation sample {str(obj)[:80]!r}: {e}; expected {form}") from e

    def push_line(self, line: str, t_default_s: float | None = None) -> bool:
        """One JSON line (push_json's forms); a malformed one becomes a warning, not an error
        (a script's stray line must not stop the listener)."""
        if not line.strip():
            return False
        try:
            return self.push_json(json.loads(line), t_default_s)
        except (ValueError, BinauraError) as e:
            with self._lock:
                self.counters["orientation_refused"] += 1
                self._warn("bad", self._now_s or 0.0, f"orientation line refused: {e}")
            return False

    def follow(self, stream, clock=None) -> threading.Thread:
        """Read JSON lines from a text stream (stdin) on a daemon thread until it ends; lines
        without t_s are stamped with clock() (the pipeline's stream clock)."""
        def loop():
            for line in stream:
                self.push_line(line, None if clock is None else clock())

        th = threading.Thread(target=loop, name="orientation-reader", daemon=True)
        th.start()
        return th

    def _check(self, t_s, yaw, pitch, roll, quaternion):
        cfg = self.config
        if not isinstance(t_s, (int, float)) or not math.isfinite(t_s):
            return ("bad", f"orientation sample refused: t_s must be a finite time in seconds, got {t_s!r}"), None
        if self._t and t_s <= self._t[-1]:
            return ("order", f"orientation sample at {t_s:.3f} s refused: out of order (the last one was at "
                             f"{self._t[-1]:.3f} s); samples must arrive in time order"), None
        now = self._now_s
        if self.clock is not None:
            now = float(self.clock()) if now is None else max(now, float(self.clock()))
        if now is not None and t_s > now + cfg.future_slack_s:
            return ("future", f"orientation sample at {t_s:.3f} s refused: from the future (the stream is at "
                              f"{now:.3f} s); stamp samples on the audio stream's clock"), None
        if quaternion is not None:
            q = np.asarray(quaternion, dtype=np.float64).reshape(-1)
            if q.shape != (4,) or not np.all(np.isfinite(q)):
                return ("bad", f"orientation sample refused: a quaternion is 4 finite numbers (w, x, y, z), "
                               f"got {list(q)}"), None
            norm = float(np.linalg.norm(q))
            if abs(norm - 1.0) > cfg.unit_tolerance:
                return ("norm", f"orientation sample at {t_s:.3f} s refused: quaternion norm {norm:.3f}, expected "
                                f"1 +- {cfg.unit_tolerance}"), None
            return None, q / norm
        vals = (yaw, pitch, roll)
        if any(not isinstance(v, (int, float)) or not math.isfinite(v) for v in vals) or abs(pitch) > 90:
            return ("bad", f"orientation sample refused: yaw, pitch, roll must be finite degrees with "
                           f"|pitch| <= 90, got {vals}"), None
        return None, quat_from_ypr(yaw, pitch, roll)

    # -- output -----------------------------------------------------------------------------
    def at(self, t_s: float) -> HeadPose:
        """The pose at frame time t_s (the stream clock moves on to t_s)."""
        cfg = self.config
        with self._lock:
            self._now_s = t_s if self._now_s is None else max(self._now_s, t_s)
            if not self._t:
                mode = "fallback" if t_s >= cfg.fallback_s else "none"
                return self._pose(None, mode, math.inf, t_s)
            ts = np.fromiter(self._t, dtype=np.float64)
            age = t_s - ts[-1]
            if age <= 0:
                i = int(np.searchsorted(ts, t_s))
                if i == 0:
                    q = self._q[0]
                else:
                    q = _slerp(self._q[i - 1], self._q[i], (t_s - ts[i - 1]) / (ts[i] - ts[i - 1]))
                return self._pose(quat_to_matrix(q), "world", 0.0, t_s)
            if age <= cfg.hold_s:
                return self._pose(quat_to_matrix(self._q[-1]), "world", age, t_s)
            if age <= cfg.fallback_s:
                return self._pose(quat_to_matrix(self._q[-1]), "held", age, t_s)
            return self._pose(None, "fallback", age, t_s)

    def _pose(self, m, mode: str, age: float, t_s: float) -> HeadPose:
        if mode != self._mode:
            if mode == "held":
                yaw = float(matrix_to_ypr(m)[0])
                self._say(t_s, f"orientation: no sample for {age:.1f} s; holding the last one (yaw {yaw:.0f} deg) "
                               f"for up to {self.config.fallback_s:g} s")
            elif mode == "fallback":
                self.counters["orientation_fallbacks"] += 1
                self._say(t_s, f"orientation lost ({'none received' if age == math.inf else f'no sample for {age:.1f} s'}): "
                               "tracking in the head frame; front and back are not resolved until it returns")
            elif mode == "world" and self._mode in ("held", "fallback"):
                if self._mode == "fallback":
                    self._epoch += 1
                self._say(t_s, "orientation back: world-frame tracking resumes")
            self._mode = mode
        return HeadPose(m, mode, age, self._epoch)

    def _warn(self, kind: str, t_s: float, text: str) -> None:
        """Say a refusal at once, then at most every warn_every_s per kind with a count."""
        last = self._last_warned.get(kind)
        if last is not None and t_s - last < self.config.warn_every_s:
            self._unsaid[kind] = self._unsaid.get(kind, 0) + 1
            return
        more = self._unsaid.pop(kind, 0)
        self._last_warned[kind] = t_s
        self._say(t_s, text + (f" ({more} more like it since the last warning)" if more else ""))

    def _say(self, t_s: float, text: str) -> None:
        self._warnings.append((t_s, text))

    def take_warnings(self) -> list[tuple[float, str]]:
        """(t_s, text) of the warnings since the last call."""
        with self._lock:
            out, self._warnings = self._warnings, []
            return out


class PathOrientation:
    """A known head path (agent.core.rotation.HeadPath: a scene's truth, a replay) as an
    orientation input: always in world mode."""

    counters: dict = {}

    def __init__(self, path):
        self.path = path

    def at(self, t_s: float) -> HeadPose:
        return HeadPose(self.path.matrices(float(t_s)), "world", 0.0, 0)

    def take_warnings(self) -> list[tuple[float, str]]:
        return []


def _slerp(q0: np.ndarray, q1: np.ndarray, u: float) -> np.ndarray:
    """Spherical interpolation between unit quaternions (the shorter way round)."""
    d = float(q0 @ q1)
    if d < 0:
        q1, d = -q1, -d
    if d > 0.9995:  # nearly equal: linear is exact enough and stable
        q = q0 + u * (q1 - q0)
        return q / np.linalg.norm(q)
    th = math.acos(d)
    return (math.sin((1 - u) * th) * q0 + math.sin(u * th) * q1) / math.sin(th)
