"""The QA tasks. Each task samples parameters from a scene, solves them from the
metadata (the oracle calls the same `solve`), and is asked with physically plausible
distractors (front/back mirrors, neighbouring sectors, other sources of the same scene).
How a question is worded lives in phrasing.py, the answer sentence in sentences.py.

Answer types: choice (2-4 options, a letter), deg (degrees, +-DEG_TOLERANCE),
m (metres, +-M_TOLERANCE), turn ("left 60 deg"), label (a class name).

Two extensions of a choice task (issue 20):
- `claim`: the task also has yes/no forms. The claim is one of its options (the truth or a
  distractor); `solve` answers "yes" when the claim is the truth. The kind says how the
  claim is worded (a label claim is named through the params slot "c").
- `target`: the question is about the class in params["a"], which may be a class the scene
  does not hold; then the only right answer is `not_heard(a)` ("I don't hear a dog"), one of
  the options. A direction is never the answer for a sound that is not there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from agent.core.geometry import (
    DISTANCE_BIN_NAMES,
    SECTOR_NAMES,
    azimuth_diff_deg,
    distance_bin,
    elevation_name,
    great_circle_deg,
    mirror_front_back_deg,
    rotate_listener_deg,
    sector_centre_deg,
    sector_of,
    sph_to_cart,
)
from agent.core.labels import LABELS, URGENCY, display, not_heard
from agent.core.scene import Scene, SourceLabel
from training.qa.phrasing import PHRASINGS

DEG_TOLERANCE = 20.0
M_TOLERANCE = 0.5
ELEVATION_NAMES = ("far above", "above", "at ear level", "below")
RELATIVE_NAMES = ("to the left of", "to the right of", "in front of", "behind")
CONSISTENCY_NAMES = ("yes, it matches", "no, the direction is wrong", "no, the distance is wrong",
                     "no, that sound is not present")
SAME_DISTANCE = "about equally far"
SAME_DISTANCE_M = 0.25


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


def absent_classes(scene: Scene) -> list[str]:
    """The classes of the vocabulary that the scene does not hold, in LABELS order."""
    present = {s.label for s in scene.sources}
    return [c for c in LABELS if c not in present]


#: Where a phantom source of an absent class is placed (the benchmark's source ranges), so
#: the options of a question about it look like those of a question about a real source.
PHANTOM_ELEVATION_DEG = (-40.0, 60.0)
PHANTOM_DISTANCE_M = (0.5, 5.0)


def with_phantom(scene: Scene, label: str, rng: np.random.Generator) -> Scene:
    """The scene plus one source of `label` at a random place: only to draw distractors."""
    lo, hi = np.sin(np.deg2rad(PHANTOM_ELEVATION_DEG))
    phantom = SourceLabel(label, float(rng.uniform(-180.0, 180.0)), float(np.rad2deg(np.arcsin(rng.uniform(lo, hi)))),
                          float(np.exp(rng.uniform(*np.log(PHANTOM_DISTANCE_M)))), 0.0, scene.duration_s)
    return replace(scene, sources=[*scene.sources, phantom])


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
    absent = [c for c in absent_classes(scene) if c not in exclude]
    rng.shuffle(absent)
    return (others + absent)[:k]


YES, NO = "yes", "no"
YES_NO_OPTIONS = (YES, NO)
#: Claim kinds of yes/no forms: how the claim is worded (phrasing.claim_words).
CLAIM_KINDS = ("label", "sector", "elevation", "distance", "count", "relative")
NOT_HEARD_TASK = "l1_not_heard"


@dataclass
class Task:
    name: str
    level: str
    answer_type: str
    sample: Callable[[Scene, np.random.Generator], dict | None]
    rule: Callable[[Scene, dict], str]
    distract: Callable[[Scene, dict, str, np.random.Generator], list[str]] | None = None
    claim: str | None = None  # kind of the yes/no claim; None: no yes/no form
    target: bool = False  # asks about params["a"], which may be absent from the scene

    @property
    def multiple_choice(self) -> bool:
        return self.answer_type == "choice"

    @property
    def phrasings(self) -> tuple[str, ...]:
        return PHRASINGS[self.name].all

    def solve(self, scene: Scene, params: dict) -> str:
        """The answer's content (an option text or a canonical open answer), from metadata."""
        if self.target and params["a"] not in {s.label for s in scene.sources}:
            return not_heard(params["a"])
        truth = self.rule(scene, params)
        if "claim" in params:
            return YES if truth == params["claim"] else NO
        return truth


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
        label = absent_classes(scene)[rng.integers(len(absent_classes(scene)))]
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


def _sector(scene, p):
    return sector_of(_src(scene, p["a"]).azimuth_deg)


def _azimuth(scene, p):
    return f"{_src(scene, p['a']).azimuth_deg:.0f} deg"


def _angle_between(scene, p):
    a, b = _src(scene, p["a"]), _src(scene, p["b"])
    return f"{great_circle_deg(a.azimuth_deg, a.elevation_deg, b.azimuth_deg, b.elevation_deg):.0f} deg"


def _rotate_face(scene, p):
    return sector_of(rotate_listener_deg(_src(scene, p["b"]).azimuth_deg, _src(scene, p["a"]).azimuth_deg))


def _rotate_by(scene, p):
    return sector_of(rotate_listener_deg(_src(scene, p["a"]).azimuth_deg, p["yaw_deg"]))


def _sample_farthest(scene, rng):
    return {} if len(scene.sources) >= 2 and all(s.distance_m for s in scene.sources) else None


TASKS: tuple[Task, ...] = (
    # ---- L1: identification ----
    Task("l1_class_present", "L1", "choice", _one, lambda sc, p: display(p["a"]),
         lambda sc, p, t, rng: [display(c) for c in rng.permutation(absent_classes(sc))[:3]], claim="label"),
    Task("l1_sector", "L1", "choice", _one, _sector, _d_sector, claim="sector", target=True),
    Task("l1_azimuth_deg", "L1", "deg", _one, _azimuth),
    Task("l1_elevation", "L1", "choice", _one, lambda sc, p: elevation_name(_src(sc, p["a"]).elevation_deg),
         _d_fixed(ELEVATION_NAMES), claim="elevation", target=True),
    Task("l1_distance_bin", "L1", "choice", _with_distance, lambda sc, p: distance_bin(_src(sc, p["a"]).distance_m),
         _d_fixed(DISTANCE_BIN_NAMES), claim="distance", target=True),
    Task("l1_distance_m", "L1", "m", _with_distance, lambda sc, p: f"{_src(sc, p['a']).distance_m:.1f} m"),
    Task("l1_count", "L1", "choice", lambda sc, rng: {}, lambda sc, p: str(len(sc.sources)), _d_count,
         claim="count"),
    Task("l1_first_onset", "L1", "choice", _sample_first, _first, _d_labels, claim="label"),
    # A question about a class that may not be in the scene (L1: it needs only what is heard
    # and where, no relation between sources). Half its items ask about an absent class.
    Task(NOT_HEARD_TASK, "L1", "choice", _one, _sector, _d_sector, target=True),
    # ---- L2: relations and binding ----
    Task("l2_relative", "L2", "choice", _two, lambda sc, p: relative_name(_src(sc, p["a"]), _src(sc, p["b"])),
         _d_fixed(RELATIVE_NAMES), claim="relative"),
    Task("l2_closer", "L2", "choice", _two_distances, _closer, _d_closer),
    Task("l2_farthest", "L2", "choice", _sample_farthest, _farthest, _d_labels, claim="label"),
    Task("l2_bind_direction", "L2", "choice", _sample_bind_dir, _solve_bind_dir, _d_labels, claim="label"),
    Task("l2_bind_distance", "L2", "choice", _sample_bind_dist, _solve_bind_dist, _d_labels, claim="label"),
    Task("l2_angle_between", "L2", "deg", _two, _angle_between),
    # ---- L3: reasoning ----
    Task("l3_rotate_face", "L3", "choice", _two, _rotate_face, _d_rotated, claim="sector"),
    Task("l3_rotate_by", "L3", "choice", _sample_rotate_by, _rotate_by, _d_rotated, claim="sector"),
    Task("l3_navigate", "L3", "turn", _one, lambda sc, p: turn_text(_src(sc, p["a"]).azimuth_deg)),
    Task("l3_remove", "L3", "choice", _sample_remove, _solve_remove, _d_labels, claim="label"),
    Task("l3_priority", "L3", "choice", _sample_priority, _solve_priority, _d_labels, claim="label"),
    Task("l3_consistency", "L3", "choice", _sample_consistency, _solve_consistency, _d_fixed(CONSISTENCY_NAMES)),
)
TASKS_BY_NAME = {t.name: t for t in TASKS}
assert set(TASKS_BY_NAME) == set(PHRASINGS), "every task needs its phrasings (phrasing.py)"
assert all(t.claim in (None,) + CLAIM_KINDS for t in TASKS)


def azimuth_error(pred_deg: float, true_deg: float) -> float:
    return abs(float(azimuth_diff_deg(pred_deg, true_deg)))
