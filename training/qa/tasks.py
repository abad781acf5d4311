"""The QA tasks as questions: each task samples parameters from a scene and is asked with
physically plausible distractors (front/back mirrors, neighbouring sectors, other sources of the
same scene). Its answer (the rule, `solve`, yes/no claims, questions about an absent class)
lives in agent/qa/tasks.py, which the device runs too; how a question is worded lives in
phrasing.py, the answer sentence in agent/qa/sentences.py.

Open answers are scored within DEG_TOLERANCE degrees or M_TOLERANCE metres (score.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import numpy as np

from agent.core.geometry import (
    DISTANCE_BIN_NAMES,
    SECTOR_NAMES,
    azimuth_diff_deg,
    mirror_front_back_deg,
    sector_centre_deg,
    sector_of,
)
from agent.core.labels import LABELS, display
from agent.core.scene import Scene, SourceLabel
from agent.qa.tasks import (
    ANSWER_TASKS,
    CONSISTENCY_NAMES,
    ELEVATION_NAMES,
    NO,
    NOT_HEARD_TASK,
    RELATIVE_NAMES,
    SAME_DISTANCE,
    YES,
    AnswerTask,
    source_of,
)
from training.qa.phrasing import PHRASINGS

DEG_TOLERANCE = 20.0
M_TOLERANCE = 0.5
YES_NO_OPTIONS = (YES, NO)


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


@dataclass
class Task(AnswerTask):
    """A task as the generator asks it: its answer (AnswerTask) plus sample(scene, rng) ->
    params or None (the scene cannot ask it) and distract(scene, params, truth, rng) -> wrong
    options."""

    sample: Callable[[Scene, np.random.Generator], dict | None] = field(kw_only=True)
    distract: Callable[[Scene, dict, str, np.random.Generator], list[str]] | None = field(default=None, kw_only=True)

    @property
    def phrasings(self) -> tuple[str, ...]:
        return PHRASINGS[self.name].all


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
    if p is None or any(source_of(scene, p[k]).distance_m is None for k in "ab"):
        return None
    return p


def _with_distance(scene, rng):
    if any(s.distance_m is None for s in scene.sources):
        return None
    return _one(scene, rng)


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


def _sample_bind_dist(scene, rng):
    p = _with_distance(scene, rng)
    if p is None:
        return None
    d = source_of(scene, p["a"]).distance_m
    if any(abs(s.distance_m - d) < 0.75 for s in scene.sources if s.label != p["a"]):
        return None
    return {"distance_m": round(d, 1)}


def _sample_rotate_by(scene, rng):
    p = _one(scene, rng)
    p["yaw_deg"] = float(rng.choice([-135, -90, -45, 45, 90, 135, 180]))
    return p


def _sample_remove(scene, rng):
    if len(scene.sources) < 2 or any(s.distance_m is None for s in scene.sources):
        return None
    return _one(scene, rng)


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


def _sample_farthest(scene, rng):
    return {} if len(scene.sources) >= 2 and all(s.distance_m for s in scene.sources) else None


def _d_sector(scene, p, truth, rng):
    az = source_of(scene, p["a"]).azimuth_deg if "a" in p else sector_centre_deg(truth)
    return _sector_distractors(truth, az)


def _d_rotated(scene, p, truth, rng):
    return _sector_distractors(truth, sector_centre_deg(truth))


def _d_labels(scene, p, truth, rng):
    truth_label = next((c for c in LABELS if display(c) == truth), truth)
    return [display(c) for c in _fill_labels(scene, rng, [truth_label])]


def _d_absent(scene, p, truth, rng):
    return [display(c) for c in rng.permutation(absent_classes(scene))[:3]]


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


#: task -> (sample, distract): how each answer task is asked.
_ASKED: dict[str, tuple[Callable, Callable | None]] = {
    "l1_class_present": (_one, _d_absent),
    "l1_sector": (_one, _d_sector),
    "l1_azimuth_deg": (_one, None),
    "l1_elevation": (_one, _d_fixed(ELEVATION_NAMES)),
    "l1_distance_bin": (_with_distance, _d_fixed(DISTANCE_BIN_NAMES)),
    "l1_distance_m": (_with_distance, None),
    "l1_count": (lambda sc, rng: {}, _d_count),
    "l1_first_onset": (_sample_first, _d_labels),
    # half its items ask about an absent class (generate.py)
    NOT_HEARD_TASK: (_one, _d_sector),
    "l2_relative": (_two, _d_fixed(RELATIVE_NAMES)),
    "l2_closer": (_two_distances, _d_closer),
    "l2_farthest": (_sample_farthest, _d_labels),
    "l2_bind_direction": (_sample_bind_dir, _d_labels),
    "l2_bind_distance": (_sample_bind_dist, _d_labels),
    "l2_angle_between": (_two, None),
    "l3_rotate_face": (_two, _d_rotated),
    "l3_rotate_by": (_sample_rotate_by, _d_rotated),
    "l3_navigate": (_one, None),
    "l3_remove": (_sample_remove, _d_labels),
    "l3_priority": (_sample_priority, _d_labels),
    "l3_consistency": (_sample_consistency, _d_fixed(CONSISTENCY_NAMES)),
}
assert set(_ASKED) == {t.name for t in ANSWER_TASKS}, "every answer task needs its sampler (and distractors)"


def _asked(answer: AnswerTask) -> Task:
    sample, distract = _ASKED[answer.name]
    return Task(**{f.name: getattr(answer, f.name) for f in fields(AnswerTask)}, sample=sample, distract=distract)


TASKS: tuple[Task, ...] = tuple(_asked(t) for t in ANSWER_TASKS)
TASKS_BY_NAME = {t.name: t for t in TASKS}
assert set(TASKS_BY_NAME) == set(PHRASINGS), "every task needs its phrasings (phrasing.py)"


def azimuth_error(pred_deg: float, true_deg: float) -> float:
    return abs(float(azimuth_diff_deg(pred_deg, true_deg)))
