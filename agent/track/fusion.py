"""World-frame fusion: the head's orientation resolves front from back.

Two ears hear a source and its front/back mirror (x -> -x in the head frame) nearly alike,
and the encoder sometimes reports the mirror. Turning the head separates them: a still
source in front and its mirror behind move in opposite ways across the interaural axis
(turn 40 deg left, and a source at 30 deg moves to -10 while its mirror at 150 moves to
110). So each of the tracker's head-frame tracks gets two world-frame hypotheses, the
direction as first heard and its mirror, both rotated into the world frame with the
head's orientation at that moment. Every later observation is compared with what each
hypothesis predicts in the current head frame, on the two components the mirror leaves
unchanged (the lateral angle, from the ear axis, and the elevation), so a confused
observation is no evidence against the right hypothesis; the log-odds add up (Bayes) and
the report flips to the right hypothesis within a turn and stays. The encoder's own
front/back calls add a little, capped (`call_max`): its errors are consistent for one
source, so they cannot settle anything by repetition. Without a turn the track stays
ambiguous; after `suggest_after_s` a suggestion event says which way to turn.

Sources are taken to be still in the world (a hypothesis' direction follows its
observations slowly, `world_gain`), and a track is reported where its settled hypothesis
says (`report="world"`: the mean of many observations heard from several head angles, whose
errors partly cancel; on the selection set 2.6 deg better than the latest observation,
docs/turning.md). Tracks are reported in the current head frame
(narration and answers say "behind you on the left" now), with the world direction beside.
When the orientation is lost (agent/track/orientation.py) the tracks pass through unchanged
(head-frame mode) and every hypothesis starts afresh when it returns.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from agent.core.errors import ConfigError, check_known_keys, check_numbers
from agent.core.geometry import cart_to_sph, sph_to_cart
from agent.core.labels import display
from agent.core.rotation import rotation_angle_deg, to_head, to_world
from agent.track.events import Event, SuggestionEvent, WarningEvent
from agent.track.orientation import HeadPose
from agent.track.tracker import Detection, Track

_MIRROR = np.array([-1.0, 1.0, 1.0])  # front/back mirror in the head frame


@dataclass
class FusionConfig:
    lateral_noise_deg: float = 10.0  # RMS error of an observation's lateral angle (encoder scatter and bias)
    elevation_noise_deg: float = 25.0  # the same for elevation (two ears judge it worse)
    outlier_deg: float = 30.0  # a residual counts at most this much (one wild detection decides nothing)
    call_step: float = 0.15  # log-odds one observation's own front/back call adds ...
    call_max: float = 1.5  # ... in all at most (below resolve: only a turn resolves)
    resolve_probability: float = 0.95  # front/back is settled when one hypothesis is this likely
    max_log_odds: float = 25.0  # evidence is capped so a wrong settlement can still be undone
    world_gain: float = 0.05  # a hypothesis' world direction follows its observations this fast (still sources)
    report: str = "world"  # "world": the hypothesis' world direction (its running mean, still sources);
    #                        "heard": the tracker's latest direction, or its mirror (sources that move)
    same_deg: float = 20.0  # a direction this close to its mirror (beside an ear) is not ambiguous
    match_deg: float = 45.0  # a detection (or its mirror) within this of a track is its observation
    inherit_s: float = 2.0  # a new track inherits the evidence of one of its class that ended this recently ...
    suggest_after_s: float = 1.5  # a track ambiguous this long while the head keeps still gets a suggestion
    still_turn_deg: float = 10.0  # "kept still": turned less than this since the track began
    suggest_turn_deg: float = 40.0  # the turn suggested (a few tens of degrees separate the hypotheses)
    suggest_repeat_s: float = 10.0  # not again for the same track before this

    def validate(self) -> FusionConfig:
        p: list[str] = []
        check_numbers(self, ("lateral_noise_deg", "elevation_noise_deg", "outlier_deg", "max_log_odds",
                             "suggest_repeat_s"), lambda v: 0 < v < math.inf, "> 0", p)
        check_numbers(self, ("call_step", "call_max", "inherit_s", "suggest_after_s", "still_turn_deg"),
                      lambda v: 0 <= v < math.inf, ">= 0", p)
        check_numbers(self, ("resolve_probability",), lambda v: 0.5 < v < 1, "in (0.5, 1)", p)
        check_numbers(self, ("world_gain",), lambda v: 0 < v <= 1, "in (0, 1]", p)
        check_numbers(self, ("same_deg", "match_deg", "suggest_turn_deg"), lambda v: 0 < v <= 180, "in (0, 180]", p)
        if self.report not in ("world", "heard"):
            p.append(f"report must be 'world' or 'heard', got {self.report!r}")
        if not p and self.call_max >= math.log(self.resolve_probability / (1 - self.resolve_probability)):
            p.append("call_max must stay below the log-odds of resolve_probability: the encoder's own calls "
                     "must not settle front/back without a turn")
        if p:
            raise ConfigError(p, "fusion config")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> FusionConfig:
        check_known_keys(cls, d, "fusion config")
        return cls(**d).validate()


@dataclass(frozen=True)
class FusedTrack:
    """A track after fusion: `track` in the current head frame (front/back as fused),
    its world direction (deg; None in head-frame mode), the probability of the reported
    hypothesis, whether front/back is settled, and how far the head turned since it began."""

    track: Track
    world_azimuth_deg: float | None
    world_elevation_deg: float | None
    probability: float
    resolved: bool
    turned_deg: float


class _Hypotheses:
    """One track's two world-frame directions and the evidence between them (log-odds of 1 over 0)."""

    def __init__(self, label: str, w_heard: np.ndarray, w_mirror: np.ndarray, m: np.ndarray, t_s: float):
        self.label = label
        self.w = np.stack([w_heard, w_mirror])
        self.n = 1
        self.log_odds_turn = 0.0
        self.log_odds_call = 0.0
        self.m0 = m
        self.turned_deg = 0.0
        self.t_start = t_s
        self.t_suggested: float | None = None
        self.t_last = t_s

    def observe(self, m: np.ndarray, z: np.ndarray, cfg: FusionConfig) -> None:
        p = to_head(m, self.w)  # (2, 3) what each hypothesis predicts now
        lat_z, el_z = math.degrees(math.asin(np.clip(z[1], -1, 1))), math.degrees(math.asin(np.clip(z[2], -1, 1)))
        ll = np.empty(2)
        for h in range(2):
            r_lat = np.clip(lat_z - math.degrees(math.asin(np.clip(p[h, 1], -1, 1))), -cfg.outlier_deg, cfg.outlier_deg)
            r_el = np.clip(el_z - math.degrees(math.asin(np.clip(p[h, 2], -1, 1))), -cfg.outlier_deg, cfg.outlier_deg)
            ll[h] = -0.5 * (r_lat / cfg.lateral_noise_deg) ** 2 - 0.5 * (r_el / cfg.elevation_noise_deg) ** 2
        self.log_odds_turn = float(np.clip(self.log_odds_turn + ll[1] - ll[0], -cfg.max_log_odds, cfg.max_log_odds))
        d = np.degrees(np.arccos(np.clip(p @ z, -1, 1)))  # the observation as reported, not mirrored
        if abs(d[0] - d[1]) > cfg.same_deg:
            step = cfg.call_step if d[1] < d[0] else -cfg.call_step
            self.log_odds_call = float(np.clip(self.log_odds_call + step, -cfg.call_max, cfg.call_max))
        g = max(cfg.world_gain, 1.0 / (self.n + 1))
        for h in range(2):  # each hypothesis follows the version of z it explains
            v = z if p[h] @ z >= p[h] @ (z * _MIRROR) else z * _MIRROR
            w = self.w[h] + g * (to_world(m, v) - self.w[h])
            self.w[h] = w / np.linalg.norm(w)
        self.n += 1

    @property
    def log_odds(self) -> float:
        return self.log_odds_turn + self.log_odds_call

    def separated(self, cfg: FusionConfig) -> bool:
        return math.degrees(math.acos(float(np.clip(self.w[0] @ self.w[1], -1, 1)))) >= cfg.same_deg


class Fusion:
    """Per frame: the tracker's tracks and detections and the head pose in, suggestion and
    warning events out; `fused` / `tracks` hold the result. `reset` starts afresh."""

    def __init__(self, config: FusionConfig | None = None):
        self.config = (config or FusionConfig()).validate()
        self.reset()

    def reset(self) -> None:
        self._states: dict[int, _Hypotheses] = {}
        self._ended: list[tuple[float, _Hypotheses]] = []
        self._epoch: int | None = None
        self.mode = "none"
        self.fused: list[FusedTrack] = []

    @property
    def tracks(self) -> list[Track]:
        """The tracks in the current head frame, front/back as fused (what narration reads)."""
        return [f.track for f in self.fused]

    def update(self, t_s: float, detections, tracks: list[Track], pose: HeadPose) -> list[Event]:
        cfg = self.config
        self.mode = pose.mode
        if pose.matrix is None or pose.epoch != self._epoch:
            self._states, self._ended = {}, []  # a new world frame: no evidence carries over
            self._epoch = pose.epoch
        if pose.matrix is None:
            self.fused = [FusedTrack(tr, None, None, 0.5, False, 0.0) for tr in tracks]
            return []
        m = pose.matrix
        live = {tr.track_id for tr in tracks}
        for tid in [k for k in self._states if k not in live]:
            self._ended.append((t_s, self._states.pop(tid)))
        self._ended = [(t, s) for t, s in self._ended if t_s - t <= cfg.inherit_s]
        events: list[Event] = []
        fused = []
        for tr in tracks:
            u = sph_to_cart(tr.azimuth_deg, tr.elevation_deg)
            z = _observation(u, tr, detections, cfg) if tr.heard else None
            st = self._states.get(tr.track_id)
            if st is None:
                st = self._states[tr.track_id] = self._inherit(tr.label, m, u) or \
                    _Hypotheses(tr.label, to_world(m, u), to_world(m, u * _MIRROR), m, t_s)
            elif z is not None:
                st.observe(m, z, cfg)
            st.t_last = t_s
            st.turned_deg = max(st.turned_deg, rotation_angle_deg(st.m0, m))
            fused.append(self._fuse(tr, st, u, m))
            events += self._suggest(t_s, tr, st, fused[-1])
        self.fused = fused
        return events

    def _inherit(self, label: str, m: np.ndarray, u: np.ndarray) -> _Hypotheses | None:
        """A recently ended state of this class whose world hypotheses hold this direction
        (a quick turn can make the head-frame tracker start a new track for one source)."""
        cfg = self.config
        for i, (_, s) in enumerate(self._ended):
            if s.label != label:
                continue
            near = np.degrees(np.arccos(np.clip(s.w @ to_world(m, u), -1, 1))).min()
            near_mirror = np.degrees(np.arccos(np.clip(s.w @ to_world(m, u * _MIRROR), -1, 1))).min()
            if min(near, near_mirror) <= cfg.match_deg:
                del self._ended[i]
                return s
        return None

    def _fuse(self, tr: Track, st: _Hypotheses, u: np.ndarray, m: np.ndarray) -> FusedTrack:
        cfg = self.config
        if not st.separated(cfg):
            prob, resolved, best = 1.0, True, 0
        else:
            lo = st.log_odds
            best = int(lo > 0)
            prob = 1.0 / (1.0 + math.exp(-abs(lo)))
            resolved = prob >= cfg.resolve_probability
        p = to_head(m, st.w[best])
        if cfg.report == "world":
            v = p
        else:
            v = u if p @ u >= p @ (u * _MIRROR) else u * _MIRROR  # the tracker's direction, or its mirror
        az, el, _ = cart_to_sph(v)
        waz, wel, _ = cart_to_sph(to_world(m, v))
        track = dataclasses.replace(tr, azimuth_deg=float(az), elevation_deg=float(el))
        return FusedTrack(track, float(waz), float(wel), prob, resolved, st.turned_deg)

    def _suggest(self, t_s: float, tr: Track, st: _Hypotheses, f: FusedTrack) -> list[Event]:
        cfg = self.config
        if f.resolved or st.turned_deg >= cfg.still_turn_deg or t_s - st.t_start < cfg.suggest_after_s:
            return []
        if st.t_suggested is not None and t_s - st.t_suggested < cfg.suggest_repeat_s:
            return []
        st.t_suggested = t_s
        # turn toward the source's side: it crosses the front while its mirror goes round the back
        left = not -180.0 < f.track.azimuth_deg < 0.0  # straight ahead or behind: left, as good as right
        turn = cfg.suggest_turn_deg if left else -cfg.suggest_turn_deg
        text = (f"turn {cfg.suggest_turn_deg:.0f} deg {'left' if left else 'right'} to confirm whether "
                f"{display(tr.label)} is in front or behind")
        return [SuggestionEvent(t_s, text, tr.track_id, tr.label, turn)]


def _observation(u: np.ndarray, tr: Track, detections, cfg: FusionConfig) -> np.ndarray | None:
    """The frame's detection of the track's class nearest to its direction or to its mirror."""
    best, best_cos = None, math.cos(math.radians(cfg.match_deg))
    for d in detections:
        if not isinstance(d, Detection) or d.label != tr.label:
            continue
        z = sph_to_cart(d.azimuth_deg, d.elevation_deg)
        c = max(float(u @ z), float(u @ (z * _MIRROR)))
        if c >= best_cos:
            best, best_cos = z, c
    return best


def warning_events(warnings: list[tuple[float, str]]) -> list[Event]:
    """Orientation warnings (agent/track/orientation.py) as events."""
    return [WarningEvent(t, text) for t, text in warnings]
