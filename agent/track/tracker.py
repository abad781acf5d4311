"""Source tracks from frame detections: stable ids, smoothed directions, onset/offset events.

Per class, every frame's detections are matched to the class's tracks by the Hungarian
algorithm on the great-circle angle between a detection and the track's *predicted*
direction (gated): two sources of one class keep two tracks, and two that cross keep their
ids because each track's prediction carries on along its own path. Each track's direction
runs two Kalman filters on the tangent plane of the sphere, "still" and "moving" (constant
angular velocity), mixed as an interacting multiple model (`_State`): still sources are
smoothed hard, moving ones followed. Distances are smoothed in log space, where the encoder
predicts them.

A track is tentative until `confirm_hits` detections (a one-frame blip makes no event),
then confirmed: an onset event, t_start = its first detection. It ends, with an offset
event and t_end = its last detection, once unheard for `hold_s`; a source that pauses for
less keeps its id. Everything runs per frame on the frames' own timestamps, so how frames
are grouped into hops does not change the tracks (tests/agent/test_tracker.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from agent.core.errors import BinauraError, ConfigError, check_known_keys, check_numbers
from agent.core.geometry import cart_to_sph, sph_to_cart
from agent.core.scene import SourceEstimate
from agent.core.seld import DecodeConfig, merge_same_label
from agent.track.events import Event, OffsetEvent, OnsetEvent, UpdateEvent

#: Slack on time comparisons: frame times are sums of float periods.
_TIME_EPS_S = 1e-6


@dataclass(frozen=True)
class Detection:
    """One sound heard in one frame: class, direction (deg), distance (m, None when unknown)
    and confidence (the encoder's activity, 0..1)."""

    label: str
    azimuth_deg: float
    elevation_deg: float
    distance_m: float | None
    confidence: float


@dataclass(frozen=True)
class DetectionFrame:
    """The detections of one frame, stamped with the frame's start on the stream's clock."""

    t_s: float
    detections: tuple[Detection, ...]


def detections_from_frames(frames, labels: Sequence[str], frame_rate_hz: float, t0_s: float = 0.0,
                           threshold: float = 0.5, merge_deg: float = DecodeConfig.merge_deg) -> list[DetectionFrame]:
    """Encoder frames (agent.localize.encoder.EncoderFrames: accdoa (T, S, 3), log_distance
    (T, S), first frame index `start`) with a label per slot (EncoderRuntime.slot_labels) ->
    one DetectionFrame per frame, empty ones included (they tell the tracker that time passed).
    Frame `start + k` is stamped t0_s + (start + k) / frame_rate_hz; a slot is detected where its
    ACCDOA length (the activity) is >= threshold, in the direction the vector points. Two slots
    of one label (a multi-track encoder) within merge_deg of each other in a frame are one
    detection, the more active one (agent.core.seld.merge_same_label)."""
    accdoa = np.asarray(frames.accdoa, dtype=np.float64)
    if accdoa.ndim != 3 or accdoa.shape[1:] != (len(labels), 3):
        raise BinauraError(f"accdoa must be (T, {len(labels)}, 3) for {len(labels)} labels, got {accdoa.shape}")
    if not frame_rate_hz > 0:
        raise BinauraError(f"frame_rate_hz must be > 0, got {frame_rate_hz}")
    log_d = np.asarray(frames.log_distance, dtype=np.float64)
    act = np.linalg.norm(accdoa, axis=-1)
    out = []
    for k in range(accdoa.shape[0]):
        dets = []
        for c in np.flatnonzero(act[k] >= threshold):
            az, el, _ = cart_to_sph(accdoa[k, c])
            dets.append(Detection(labels[c], float(az), float(el), float(np.exp(log_d[k, c])), float(act[k, c])))
        if len({d.label for d in dets}) < len(dets):  # one source on two tracks: keep the more active
            est = [(d.confidence, i, SourceEstimate(d.azimuth_deg, d.elevation_deg, d.distance_m, d.label))
                   for i, d in enumerate(dets)]
            keep = {i for _, i, _ in merge_same_label(sorted(est, key=lambda e: -e[0]), merge_deg)}
            dets = [d for i, d in enumerate(dets) if i in keep]
        out.append(DetectionFrame(t0_s + (frames.start + k) / frame_rate_hz, tuple(dets)))
    return out


@dataclass
class TrackerConfig:
    """Every threshold of the tracker. Defaults are set for the shipped encoder's 10 frames/s
    (see docs/events.md, "Tracker defaults", for the reasons)."""

    gate_deg: float = 40.0  # widest angle between a track's predicted direction and a detection it takes
    gate_growth_deg_per_s: float = 20.0  # the gate widens while a track is unheard: the source may move
    confirm_hits: int = 3  # detections before a track is confirmed (onset); 0.3 s at 10 frames/s
    tentative_hold_s: float = 0.15  # a tentative track unheard this long is dropped silently
    hold_s: float = 1.0  # a confirmed track unheard this long ends (offset); shorter pauses keep the id
    observation_noise_deg: float = 10.0  # RMS angle between a detection and the true direction (encoder scatter)
    position_walk_deg_per_s: float = 2.0  # "still" model: RMS drift of a still source's direction over 1 s
    velocity_walk_deg_per_s: float = 30.0  # "moving" model: RMS change of its angular velocity over 1 s
    initial_speed_deg_per_s: float = 45.0  # prior RMS angular speed of a source not known to move
    initial_moving_probability: float = 0.5  # a new track's prior of being in the "moving" model
    model_switch_s: float = 2.0  # mean time between a source starting and stopping to move
    distance_gain: float = 0.2  # smoothing gain of log-distance (a running mean until 1 / gain hits)
    confidence_gain: float = 0.3  # smoothing gain of the confidence, the same way
    spread_window_hits: int = 20  # recent detections the uncertainty is measured over
    update_min_move_deg: float = 10.0  # an update event when the direction moved this far since the last event
    update_max_interval_s: float = 2.0  # ... or when this long passed since it
    max_tracks: int = 64  # live tracks at most (bounded memory); further detections are counted, not tracked

    def validate(self) -> TrackerConfig:
        """Check every field; raise one ConfigError that names every bad value."""
        p: list[str] = []

        def check(names, ok, rule):
            check_numbers(self, names, ok, rule, p)

        check(("gate_deg",), lambda v: 0 < v <= 180, "in (0, 180]")
        check(("hold_s", "observation_noise_deg", "model_switch_s", "update_max_interval_s"),
              lambda v: 0 < v < math.inf, "> 0")
        check(("gate_growth_deg_per_s", "tentative_hold_s", "position_walk_deg_per_s", "velocity_walk_deg_per_s",
               "initial_speed_deg_per_s", "update_min_move_deg"), lambda v: 0 <= v < math.inf, ">= 0")
        check(("distance_gain", "confidence_gain"), lambda v: 0 < v <= 1, "in (0, 1]")
        check(("initial_moving_probability",), lambda v: 0 < v < 1, "in (0, 1)")
        check(("confirm_hits", "spread_window_hits", "max_tracks"), lambda v: isinstance(v, int) and v >= 1,
              "an integer >= 1")
        if p:
            raise ConfigError(p, "tracker config")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> TrackerConfig:
        check_known_keys(cls, d, "tracker config")
        return cls(**d).validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Track:
    """A confirmed track as seen from outside (a snapshot): smoothed direction (deg),
    distance (m, None when never heard), confidence, uncertainty_deg (RMS angle between its
    recent detections and where it predicted them: how scattered they are), angular speed
    (deg/s) and the probability that it moves, first and last detection times (s), and
    whether this frame heard it."""

    track_id: int
    label: str
    azimuth_deg: float
    elevation_deg: float
    distance_m: float | None
    confidence: float
    uncertainty_deg: float
    speed_deg_per_s: float
    moving_probability: float
    t_start: float
    t_last_hit: float
    hits: int
    heard: bool


class _State:
    """One track (private): identity, counters, and its direction filter.

    The direction filter is an interacting multiple model (IMM; Blom & Bar-Shalom, IEEE TAC
    1988) of two Kalman filters sharing the state [position, velocity] on the tangent plane
    of the sphere at the track's direction (radians, radians/s; the two axes in basis E):
    "still" (the position drifts by `position_walk_deg_per_s`, the velocity is unknown,
    mean zero) and "moving" (constant velocity, `velocity_walk_deg_per_s`). A still source
    is smoothed as well as a position-only filter would (a constant-velocity filter alone
    doubles the noise of a source that does not move); a moving one is followed, and its
    prediction lets two crossing tracks keep their ids. After every step the plane is
    re-centred on the combined direction and its basis carried along by the same rotation,
    so angles on the plane stay small.
    """

    def __init__(self, key: int, det: Detection, t_s: float, cfg: TrackerConfig):
        self.key = key  # creation order: ties in matching break on it
        self.track_id: int | None = None  # given at confirmation, so public ids run 1, 2, 3, ...
        self.label = det.label
        self.u = sph_to_cart(det.azimuth_deg, det.elevation_deg)
        helper = np.array([0.0, 0.0, 1.0]) if abs(self.u[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        e1 = _cross(helper, self.u)
        e1 /= np.linalg.norm(e1)
        self.E = np.stack([e1, _cross(self.u, e1)])  # (2, 3) tangent basis at u
        self.r = math.radians(cfg.observation_noise_deg) ** 2 / 2  # per tangent axis
        self.v0 = math.radians(cfg.initial_speed_deg_per_s) ** 2 / 2
        self.x = np.zeros((2, 4))  # per model: [px, py, vx, vy]
        self.P = np.tile(np.diag([self.r, self.r, self.v0, self.v0]), (2, 1, 1))
        self.mu = np.array([1.0 - cfg.initial_moving_probability, cfg.initial_moving_probability])
        self.t = self.t_first = self.t_last_hit = t_s
        self.hits = 1
        self.log_d = None if det.distance_m is None or not det.distance_m > 0 else math.log(det.distance_m)
        self.n_d = int(self.log_d is not None)
        self.confidence = float(det.confidence)
        self.innov_deg: deque[float] = deque(maxlen=cfg.spread_window_hits)
        self.prior_spread_deg = cfg.observation_noise_deg
        self.heard = True
        self.reported_u: np.ndarray | None = None
        self.reported_t = t_s

    def predict(self, t_s: float, cfg: TrackerConfig) -> None:
        """Mix the models, move each to time t_s, re-centre: self.u is then the prediction."""
        dt = t_s - self.t
        switch = 0.5 * (1.0 - math.exp(-2.0 * dt / cfg.model_switch_s))  # two-state Markov chain
        trans = np.array([[1.0 - switch, switch], [switch, 1.0 - switch]])
        c = trans.T @ self.mu
        w = trans * self.mu[:, None] / np.maximum(c, 1e-300)  # w[i, j] = P(model i before | j now)
        x0 = w.T @ self.x
        P0 = [sum(w[i, j] * (self.P[i] + np.outer(self.x[i] - x0[j], self.x[i] - x0[j])) for i in range(2))
              for j in range(2)]
        qv = math.radians(cfg.velocity_walk_deg_per_s) ** 2 / 2
        qp = math.radians(cfg.position_walk_deg_per_s) ** 2 / 2
        a, b = dt**3 / 3, dt**2 / 2
        f_move = np.array([[1.0, 0, dt, 0], [0, 1.0, 0, dt], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
        q_move = qv * np.array([[a, 0, b, 0], [0, a, 0, b], [b, 0, dt, 0], [0, b, 0, dt]])
        f_still = np.diag([1.0, 1.0, 0.0, 0.0])
        q_still = np.diag([qp * dt, qp * dt, self.v0, self.v0])
        for j, (f, q) in enumerate(((f_still, q_still), (f_move, q_move))):
            self.x[j] = f @ x0[j]
            self.P[j] = f @ P0[j] @ f.T + q
        self.mu = c
        self.t = t_s
        self._recentre()

    def correct(self, det: Detection, cfg: TrackerConfig) -> None:
        z = sph_to_cart(det.azimuth_deg, det.elevation_deg)
        cos = float(np.clip(self.u @ z, -1.0, 1.0))
        tangent = z - cos * self.u
        n = float(np.linalg.norm(tangent))
        angle = math.acos(cos)
        zt = self.E @ tangent * (angle / n) if n > 1e-12 else np.zeros(2)  # log map of z at u
        self.innov_deg.append(math.degrees(angle))
        log_like = np.empty(2)
        for j in range(2):
            y = zt - self.x[j, :2]
            s = self.P[j, :2, :2] + self.r * np.eye(2)
            s_inv = np.linalg.inv(s)
            k = self.P[j, :, :2] @ s_inv
            self.x[j] += k @ y
            self.P[j] -= k @ self.P[j, :2, :]
            self.P[j] = 0.5 * (self.P[j] + self.P[j].T)
            log_like[j] = -0.5 * (y @ s_inv @ y) - 0.5 * math.log(np.linalg.det(s))
        mu = self.mu * np.exp(log_like - log_like.max())
        self.mu = np.clip(mu / mu.sum(), 1e-6, 1.0)
        self.mu /= self.mu.sum()
        self._recentre()
        if det.distance_m is not None and det.distance_m > 0:
            self.n_d += 1
            g = max(cfg.distance_gain, 1.0 / self.n_d)
            xd = math.log(det.distance_m)
            self.log_d = xd if self.log_d is None else self.log_d + g * (xd - self.log_d)
        self.hits += 1
        self.confidence += max(cfg.confidence_gain, 1.0 / self.hits) * (det.confidence - self.confidence)
        self.t_last_hit = self.t
        self.heard = True

    def _recentre(self) -> None:
        """Move the tangent plane to the combined position: rotate u and the basis by it."""
        p = self.mu @ self.x[:, :2]
        th = float(np.hypot(*p))
        if th < 1e-12:
            return
        d = (p @ self.E) / th
        axis = _cross(self.u, d)  # unit: u and d are orthonormal
        c, s = math.cos(th), math.sin(th)
        self.u = self.u * c + d * s
        self.u /= np.linalg.norm(self.u)
        e = self.E[0]
        e1 = e * c + _cross(axis, e) * s + axis * ((axis @ e) * (1 - c))  # Rodrigues
        e1 -= (e1 @ self.u) * self.u
        e1 /= np.linalg.norm(e1)
        self.E = np.stack([e1, _cross(self.u, e1)])
        self.x[:, :2] -= p

    @property
    def spread_deg(self) -> float:
        if not self.innov_deg:
            return self.prior_spread_deg
        return math.sqrt(sum(a * a for a in self.innov_deg) / len(self.innov_deg))

    def snapshot(self) -> Track:
        az, el, _ = cart_to_sph(self.u)
        speed = math.degrees(float(np.linalg.norm(self.mu @ self.x[:, 2:])))
        return Track(int(self.track_id), self.label, float(az), float(el),
                     None if self.log_d is None else math.exp(self.log_d), self.confidence, self.spread_deg,
                     speed, float(self.mu[1]), self.t_first, self.t_last_hit, self.hits, self.heard)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a x b for two 3-vectors (np.cross costs ten times more on vectors this small)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost matching of every row of an (n, m) cost matrix to distinct columns
    (n <= m; the caller transposes): the Hungarian method with potentials, O(n^2 m).
    Deterministic: ties go to the lower index."""
    n, m = cost.shape
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    p, way = [0] * (m + 1), [0] * (m + 1)  # p[j]: row matched to column j (1-based, 0 = none)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = [inf] * (m + 1), [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = cost[i0 - 1, j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    return sorted((p[j] - 1, j - 1) for j in range(1, m + 1) if p[j])


def match(cost: np.ndarray, gate: np.ndarray) -> list[tuple[int, int]]:
    """(tracks, detections) angles and per-track gates (deg) -> matched (track, detection)
    pairs: the most pairs within their gates, then the least total angle."""
    n, m = cost.shape
    if n == 0 or m == 0:
        return []
    inside = cost <= gate[:, None]
    # outside the gate costs more than any set of inside pairs could: maximise pairs first
    big = 1.0 + 180.0 * min(n, m)
    c = np.where(inside, cost, big)
    pairs = _assign(c) if n <= m else [(i, j) for j, i in _assign(c.T)]
    return [(i, j) for i, j in pairs if inside[i, j]]


class Tracker:
    """Frame detections in, track events out. Call `update` once per frame, in time order,
    with every frame (empty ones too); `finish` ends the stream; `reset` starts afresh."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = (config or TrackerConfig()).validate()
        self.reset()

    def reset(self) -> None:
        self._live: list[_State] = []
        self._next_key = 0
        self._next_id = 1
        self.t_s: float | None = None
        #: detections not tracked because max_tracks live tracks were full
        self.n_dropped = 0

    @property
    def tracks(self) -> list[Track]:
        """The confirmed live tracks, by id."""
        return [s.snapshot() for s in self._live if s.track_id is not None]

    def update(self, t_s: float, detections: Iterable[Detection]) -> list[Event]:
        """One frame's detections at time t_s (s, strictly after the previous frame) -> the
        events it causes, in the order offsets, onsets, updates (each by track id)."""
        t_s = float(t_s)
        dets = [self._checked(d) for d in detections]
        if not math.isfinite(t_s) or (self.t_s is not None and t_s <= self.t_s):
            raise BinauraError(f"frame time {t_s} s must be finite and after the previous frame's ({self.t_s} s)")
        cfg = self.config
        for s in self._live:
            s.predict(t_s, cfg)
        hit: set[int] = set()
        born: list[_State] = []
        for label in sorted({d.label for d in dets}):
            tracks = [s for s in self._live if s.label == label]
            mine = [d for d in dets if d.label == label]
            pairs = self._match(tracks, mine, t_s) if tracks else []
            for i, j in pairs:
                tracks[i].correct(mine[j], cfg)
                hit.add(tracks[i].key)
            taken = {j for _, j in pairs}
            for j, d in enumerate(mine):
                if j in taken:
                    continue
                if len(self._live) + len(born) >= cfg.max_tracks:
                    self.n_dropped += 1
                    continue
                born.append(_State(self._next_key, d, t_s, cfg))
                self._next_key += 1
        for s in self._live:
            if s.key not in hit:
                s.heard = False
        self._live.extend(born)
        self.t_s = t_s
        return self._events(t_s, hit)

    def update_frames(self, frames: Iterable[DetectionFrame]) -> list[Event]:
        """Several frames (one hop) in order -> all their events."""
        out: list[Event] = []
        for f in frames:
            out.extend(self.update(f.t_s, f.detections))
        return out

    def finish(self, t_s: float | None = None) -> list[Event]:
        """The stream ended at t_s (default: the last frame's time): every confirmed track
        gets its offset now; tentative ones are dropped. Ids keep counting until `reset`."""
        t = self.t_s if t_s is None else float(t_s)
        out = [self._track_event(OffsetEvent, s, t, s.t_last_hit) for s in self._live if s.track_id is not None]
        self._live = []
        return out

    def _match(self, tracks: list[_State], dets: list[Detection], t_s: float) -> list[tuple[int, int]]:
        cfg = self.config
        z = sph_to_cart([d.azimuth_deg for d in dets], [d.elevation_deg for d in dets])
        u = np.stack([s.u for s in tracks])  # already predicted to t_s
        cost = np.degrees(np.arccos(np.clip(u @ z.T, -1.0, 1.0)))
        gate = np.array([min(180.0, cfg.gate_deg + cfg.gate_growth_deg_per_s * (t_s - s.t_last_hit))
                         for s in tracks])
        return match(cost, gate)

    def _events(self, t_s: float, hit: set[int]) -> list[Event]:
        cfg = self.config
        offsets, onsets, updates, keep = [], [], [], []
        for s in self._live:
            unheard_s = t_s - s.t_last_hit
            if s.track_id is None:
                if unheard_s > cfg.tentative_hold_s + _TIME_EPS_S:
                    continue  # dropped without a word: never confirmed
                if s.hits >= cfg.confirm_hits:
                    s.track_id = self._next_id
                    self._next_id += 1
                    onsets.append(self._track_event(OnsetEvent, s, t_s))
                    s.reported_u, s.reported_t = s.u.copy(), t_s
            elif unheard_s >= cfg.hold_s - _TIME_EPS_S:
                offsets.append(self._track_event(OffsetEvent, s, t_s, s.t_last_hit))
                continue
            elif s.key in hit and s.reported_u is not None:
                moved = math.degrees(math.acos(float(np.clip(s.u @ s.reported_u, -1.0, 1.0))))
                if moved >= cfg.update_min_move_deg or t_s - s.reported_t >= cfg.update_max_interval_s - _TIME_EPS_S:
                    updates.append(self._track_event(UpdateEvent, s, t_s))
                    s.reported_u, s.reported_t = s.u.copy(), t_s
            keep.append(s)
        self._live = keep
        by_id = lambda e: e.track_id  # noqa: E731
        return sorted(offsets, key=by_id) + sorted(onsets, key=by_id) + sorted(updates, key=by_id)

    @staticmethod
    def _track_event(kind, s: _State, t_s: float, t_end: float | None = None):
        tr = s.snapshot()
        return kind(t_s=t_s, track_id=tr.track_id, label=tr.label, azimuth_deg=tr.azimuth_deg,
                    elevation_deg=tr.elevation_deg, distance_m=tr.distance_m, confidence=tr.confidence,
                    uncertainty_deg=tr.uncertainty_deg, t_start=tr.t_start, t_end=t_end)

    @staticmethod
    def _checked(d: Detection) -> Detection:
        if not isinstance(d, Detection):
            raise BinauraError(f"the tracker takes Detection objects, got {type(d).__name__}")
        if not isinstance(d.label, str) or not d.label:
            raise BinauraError(f"a detection needs a class name, got {d.label!r}")
        if not (math.isfinite(d.azimuth_deg) and -90.0 <= d.elevation_deg <= 90.0 and math.isfinite(d.confidence)):
            raise BinauraError(f"detection {d}: azimuth must be finite, elevation in [-90, 90], confidence finite")
        return d
