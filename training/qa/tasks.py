"""The QA tasks. Each task samples parameters from a scene, solves them from the
metadata (the oracle calls the same `solve`), and phrases a question with
physically plausible distractors (front/back mirrors, neighbouring sectors,
other sources of the same scene).

Answer types: choice (4 options, a letter), deg (degrees, +-DEG_TOLERANCE),
m (metres, +-M_TOLERANCE), turn ("left 60 deg"), label (a class name).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from agent.core.geometry import (
    DISTANCE_BIN_NAMES,
    SECTOR_NAMES,
    azimuth_diff_deg,
    distance_bin,
    great_circle_deg,
    mirror_front_back_deg,
    rotate_listener_deg,
    sector_centre_deg,
    sector_of,
    sph_to_cart,
)
from agent.core.labels import LABELS, URGENCY, display
from agent.core.scene import Scene, SourceLabel

DEG_TOLERANCE = 20.0
M_TOLERANCE = 0.5
ELEVATION_NAMES = ("far above", "above", "at ear level", "below")
RELATIVE_NAMES = ("to the left of", "to the right of", "in front of", "behind")
CONSISTENCY_NAMES = ("yes, it matches", "no, the direction is wrong", "no, the distance is wrong",
                     "no, that sound is not present")
SAME_DISTANCE = "about equally far"
SAME_DISTANCE_M = 0.25


def elevation_name(el: float) -> str:
    if el > 35:
        return "far above"
    if el > 15:
        return "above"
    if el >= -15:
        return "at ear level"
    return "below"


def relative_name(a: SourceLabel, b: SourceLabel) -> str:
    """Where a is relative to b, in the listener's horizontal frame (dominant axis)."""
    pa = sph_to_cart(a.azimuth_deg, 0.0, a.distance_m or 1.0)
    pb = sph_to_cart(b.azimuth_deg, 0.0, b.distance_m or 1.0)
    dx, dy = pa[0] - pb[0], pa[1] - pb[1]
    if abs(dy) >= abs(dx):
        return "to the left of" if dy > 0 else "to the right of"
    return "in front of" if dx > 0 else "behind"


def turn_text(yaw_deg: float) -> str:
    """Canonical navigation answer: 'left 60 deg' / 'right 30 deg' / 'ahead 0 deg'."""
    if abs(yaw_deg) < 0.5:
        return "ahead 0 deg"
    return f"{'left' if yaw_deg > 0 else 'right'} {abs(yaw_deg):.0f} deg"


def _src(scene: Scene, label: str) -> SourceLabel:
    return next(s for s in scene.sources if s.label == label)


def _absent(scene: Scene) -> list[str]:
    present = {s.label for s in scene.sources}
    return [c for c in LABELS if c not in present]


def _sector_distractors(true_sector: str, az: float) -> list[str]:
    mirror = sector_of(mirror_front_back_deg(az))
    i = SECTOR_NAMES.index(true_sector)
    cands = [mirror, SECTOR_NAMES[(i + 1) % 8], SECTOR_NAMES[(i - 1) % 8], SECTOR_NAMES[(i + 4) % 8],
             SECTOR_NAMES[(i + 2) % 8]]
    out = []
    for c in cands:
        if c != true_sector and c not in out:
            out.append(c)
    return out[:3]


def _fill_labels(scene: Scene, rng, exclude: list[str], k: int = 3) -> list[str]:
    """Distractor class names: other sources of the scene first, then absent classes."""
    others = [s.label for s in scene.sources if s.label not in exclude]
    rng.shuffle(others)
    absent = [c for c in _absent(scene) if c not in exclude]
    rng.shuffle(absent)
    return (others + absent)[:k]


@dataclass
class Task:
    name: str
    level: str
    answer_type: str
    phrasings: tuple[str, ...]
    sample: Callable[[Scene, np.random.Generator], dict | None]
    solve: Callable[[Scene, dict], str]
    distract: Callable[[Scene, dict, str, np.random.Generator], list[str]] | None = None

    @property
    def multiple_choice(self) -> bool:
        return self.answer_type == "choice"


def _one(scene, rng):
    s = scene.sources[rng.integers(len(scene.sources))]
    return {"a": s.label}


def _two(scene, rng):
    if len(scene.sources) < 2:
        return None
    a, b = rng.choice(len(scene.sources), 2, replace=False)
    return {"a": scene.sources[a].label, "b": scene.sources[b].label}


def _two_distances(scene, rng):
    p = _two(scene, rng)
    if p is None or any(_src(scene, p[k]).distance_m is None for k in "ab"):
        return None
    return p


def _with_distance(scene, rng):
    if any(s.distance_m is None for s in scene.sources):
        return None
    return _one(scene, rng)


def _closer(scene, p):
    da, db = _src(scene, p["a"]).distance_m, _src(scene, p["b"]).distance_m
    if abs(da - db) < SAME_DISTANCE_M:
        return SAME_DISTANCE
    return display(p["a"] if da < db else p["b"])


def _farthest(scene, p):
    return display(max(scene.sources, key=lambda s: s.distance_m).label)


def _first(scene, p):
    return display(min(scene.sources, key=lambda s: s.onset_s).label)


def _sample_first(scene, rng):
    if len(scene.sources) < 2:
        return None
    onsets = sorted(s.onset_s for s in scene.sources)
    return {} if onsets[1] - onsets[0] >= 0.3 else None  # a clear first onset


def _sample_bind_dir(scene, rng):
    s = scene.sources[rng.integers(len(scene.sources))]
    sector = sector_of(s.azimuth_deg)
    if sum(sector_of(o.azimuth_deg) == sector for o in scene.sources) != 1:
        return None
    return {"sector": sector}


def _solve_bind_dir(scene, p):
    return display(next(s for s in scene.sources if sector_of(s.azimuth_deg) == p["sector"]).label)


def _sample_bind_dist(scene, rng):
    p = _with_distance(scene, rng)
    if p is None:
        return None
    d = _src(scene, p["a"]).distance_m
    if any(abs(s.distance_m - d) < 0.75 for s in scene.sources if s.label != p["a"]):
        return None
    return {"distance_m": round(d, 1)}


def _solve_bind_dist(scene, p):
    return display(min(scene.sources, key=lambda s: abs(s.distance_m - p["distance_m"])).label)


def _sample_rotate_by(scene, rng):
    p = _one(scene, rng)
    p["yaw_deg"] = float(rng.choice([-135, -90, -45, 45, 90, 135, 180]))
    return p


def _turn_phrase(yaw: float) -> str:
    if yaw == 180:
        return "turn around"
    return f"turn {abs(yaw):.0f} degrees to your {'left' if yaw > 0 else 'right'}"


def _sample_remove(scene, rng):
    if len(scene.sources) < 2 or any(s.distance_m is None for s in scene.sources):
        return None
    return _one(scene, rng)


def _solve_remove(scene, p):
    rest = [s for s in scene.sources if s.label != p["a"]]
    return display(min(rest, key=lambda s: s.distance_m).label)


def _solve_priority(scene, p):
    return display(max(scene.sources, key=lambda s: (URGENCY.get(s.label, 0), -(s.distance_m or 99))).label)


def _sample_priority(scene, rng):
    if len(scene.sources) < 2:
        return None
    return {}


def _sample_consistency(scene, rng):
    s = scene.sources[rng.integers(len(scene.sources))]
    kind = CONSISTENCY_NAMES[rng.integers(4)]
    label, az, dist = s.label, s.azimuth_deg, s.distance_m or 2.0
    if kind == CONSISTENCY_NAMES[1]:
        # A wrong direction not in the true sector: the front/back mirror or the other side.
        az = mirror_front_back_deg(az) if abs(abs(az) - 90) > 45 else -az
        if sector_of(az) == sector_of(s.azimuth_deg):
            return None
    elif kind == CONSISTENCY_NAMES[2]:
        if s.distance_m is None:
            return None
        dist = dist + 2.0 if dist < 2.5 else dist / 3
    elif kind == CONSISTENCY_NAMES[3]:
        label = _absent(scene)[rng.integers(len(_absent(scene)))]
    return {"kind": kind, "label": label, "sector": sector_of(az), "distance_m": round(dist, 1)}


def _solve_consistency(scene, p):
    match = [s for s in scene.sources if s.label == p["label"]]
    if not match:
        return CONSISTENCY_NAMES[3]
    s = match[0]
    if sector_of(s.azimuth_deg) != p["sector"]:
        return CONSISTENCY_NAMES[1]
    if s.distance_m is not None and abs(s.distance_m - p["distance_m"]) > 1.0:
        return CONSISTENCY_NAMES[2]
    return CONSISTENCY_NAMES[0]


def _d_sector(scene, p, truth, rng):
    az = _src(scene, p["a"]).azimuth_deg if "a" in p else sector_centre_deg(truth)
    return _sector_distractors(truth, az)


def _d_rotated(scene, p, truth, rng):
    return _sector_distractors(truth, sector_centre_deg(truth))


def _d_labels(scene, p, truth, rng):
    truth_label = next((c for c in LABELS if display(c) == truth), truth)
    return [display(c) for c in _fill_labels(scene, rng, [truth_label])]


def _d_fixed(names):
    def d(scene, p, truth, rng):
        return [n for n in names if n != truth][:3]
    return d


def _d_closer(scene, p, truth, rng):
    cands = [display(p["a"]), display(p["b"]), SAME_DISTANCE]
    cands += [display(c) for c in _fill_labels(scene, rng, [p["a"], p["b"]], 1)]
    return [c for c in cands if c != truth][:3]


def _d_count(scene, p, truth, rng):
    return [str(k) for k in (1, 2, 3, 4) if str(k) != truth]


TASKS: tuple[Task, ...] = (
    # ---- L1: identification ----
    Task("l1_class_present", "L1", "choice",
         ("Which of these sounds can you hear?", "One of these sounds is in the scene. Which one?"),
         _one, lambda sc, p: display(p["a"]),
         lambda sc, p, t, rng: [display(c) for c in rng.permutation(_absent(sc))[:3]]),
    Task("l1_sector", "L1", "choice",
         ("From which direction does {a} come?", "Where is {a}?", "In which direction is {a}?"),
         _one, lambda sc, p: sector_of(_src(sc, p["a"]).azimuth_deg), _d_sector),
    Task("l1_azimuth_deg", "L1", "deg",
         ("What is the azimuth of {a} in degrees (0 ahead, positive to the left)?",
          "Give the direction of {a} as an azimuth in degrees, counter-clockwise from straight ahead."),
         _one, lambda sc, p: f"{_src(sc, p['a']).azimuth_deg:.0f} deg"),
    Task("l1_elevation", "L1", "choice",
         ("Is {a} above, at, or below ear level?", "How high is {a} relative to your ears?"),
         _one, lambda sc, p: elevation_name(_src(sc, p["a"]).elevation_deg), _d_fixed(ELEVATION_NAMES)),
    Task("l1_distance_bin", "L1", "choice",
         ("How far away is {a}?", "At what distance is {a}?"),
         _with_distance, lambda sc, p: distance_bin(_src(sc, p["a"]).distance_m),
         _d_fixed(DISTANCE_BIN_NAMES)),
    Task("l1_distance_m", "L1", "m",
         ("How many metres away is {a}?", "Estimate the distance to {a} in metres."),
         _with_distance, lambda sc, p: f"{_src(sc, p['a']).distance_m:.1f} m"),
    Task("l1_count", "L1", "choice",
         ("How many distinct sound sources are there?", "How many sounds are in the scene?"),
         lambda sc, rng: {}, lambda sc, p: str(len(sc.sources)), _d_count),
    Task("l1_first_onset", "L1", "choice",
         ("Which sound started first?", "Which of these sounds began earliest?"),
         _sample_first, _first, _d_labels),
    # ---- L2: relations and binding ----
    Task("l2_relative", "L2", "choice",
         ("Relative to {b}, where is {a}?", "Seen from above, where is {a} with respect to {b}?"),
         _two, lambda sc, p: relative_name(_src(sc, p["a"]), _src(sc, p["b"])), _d_fixed(RELATIVE_NAMES)),
    Task("l2_closer", "L2", "choice",
         ("Which is closer, {a} or {b}?", "Which of {a} and {b} is nearer to you?"),
         _two_distances, _closer, _d_closer),
    Task("l2_farthest", "L2", "choice",
         ("Which sound is farthest away?", "Which source is the most distant?"),
         lambda sc, rng: {} if len(sc.sources) >= 2 and all(s.distance_m for s in sc.sources) else None,
         _farthest, _d_labels),
    Task("l2_bind_direction", "L2", "choice",
         ("Which sound comes from the {sector}?", "What do you hear in the {sector} direction?"),
         _sample_bind_dir, _solve_bind_dir, _d_labels),
    Task("l2_bind_distance", "L2", "choice",
         ("Which sound is about {distance_m} metres away?", "What is roughly {distance_m} m from you?"),
         _sample_bind_dist, _solve_bind_dist, _d_labels),
    Task("l2_angle_between", "L2", "deg",
         ("What is the angle between {a} and {b}, in degrees?",
          "How many degrees apart are {a} and {b} as seen from your head?"),
         _two, lambda sc, p: f"{great_circle_deg(_src(sc, p['a']).azimuth_deg, _src(sc, p['a']).elevation_deg, _src(sc, p['b']).azimuth_deg, _src(sc, p['b']).elevation_deg):.0f} deg"),
    # ---- L3: reasoning ----
    Task("l3_rotate_face", "L3", "choice",
         ("If you turn to face {a}, where will {b} be?", "After turning towards {a}, in which direction is {b}?"),
         _two, lambda sc, p: sector_of(rotate_listener_deg(_src(sc, p["b"]).azimuth_deg, _src(sc, p["a"]).azimuth_deg)),
         _d_rotated),
    Task("l3_rotate_by", "L3", "choice",
         ("If you {turn}, where will {a} be?", "Suppose you {turn}. In which direction is {a} then?"),
         _sample_rotate_by, lambda sc, p: sector_of(rotate_listener_deg(_src(sc, p["a"]).azimuth_deg, p["yaw_deg"])),
         _d_rotated),
    Task("l3_navigate", "L3", "turn",
         ("Which way should you turn to face {a}, and by how many degrees?",
          "How do you turn your head to look at {a}? Answer left or right and degrees."),
         _one, lambda sc, p: turn_text(_src(sc, p["a"]).azimuth_deg)),
    Task("l3_remove", "L3", "choice",
         ("If {a} stopped, which sound would be the closest?", "Without {a}, which remaining sound is nearest?"),
         _sample_remove, _solve_remove, _d_labels),
    Task("l3_priority", "L3", "choice",
         ("Which sound needs your attention first?", "Which sound should you react to first?"),
         _sample_priority, _solve_priority, _d_labels),
    Task("l3_consistency", "L3", "choice",
         ("Someone says: '{label_d} is {sector_d}, about {distance_m} m away.' Does that match what you hear?",
          "Is this description right: '{label_d}, {sector_d}, roughly {distance_m} metres away'?"),
         _sample_consistency, _solve_consistency, _d_fixed(CONSISTENCY_NAMES)),
)
TASKS_BY_NAME = {t.name: t for t in TASKS}


def phrase(task: Task, template: str, params: dict) -> str:
    fmt = dict(params)
    for k in ("a", "b"):
        if k in fmt:
            fmt[k] = display(fmt[k])
    if "yaw_deg" in fmt:
        fmt["turn"] = _turn_phrase(fmt["yaw_deg"])
    if "label" in fmt:
        fmt["label_d"] = display(fmt["label"]).capitalize()
    if "sector" in fmt:
        fmt["sector_d"] = {"front": "in front of you", "back": "behind you"}.get(
            fmt["sector"], f"to your {fmt['sector']}") if "label" in fmt else fmt["sector"]
    return template.format(**fmt)


def azimuth_error(pred_deg: float, true_deg: float) -> float:
    return abs(float(azimuth_diff_deg(pred_deg, true_deg)))
