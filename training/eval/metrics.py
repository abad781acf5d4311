"""Localization metrics with Hungarian matching (as the DCASE SELD metrics do).

Per clip, predictions are matched to true sources by the Hungarian algorithm
on great-circle distance; the matched pairs feed every error metric. A matched
source is a front/back confusion when mirroring the prediction across the ear
axis more than halves its error.

Detection is scored three ways (every key always present, null where it does
not apply); in each, a true positive (TP) uses up one prediction and one
source, FP = predictions - TP and FN = sources - TP, and F1 = 2 TP / (2 TP +
FP + FN), pooled over all sources and clips:
- detection_f1: the DCASE SELD location-aware, class-dependent F-score within
  20 deg (Mesaros et al., "Joint measurement of localization and detection of
  sound events", WASPAA 2019; DCASE 2020-2024 Task 3, "F_20deg"). Within each
  class, the clip's predictions of that class are matched to its sources of
  that class by the Hungarian algorithm on the angle; a pair is a TP only if
  its great-circle error is <= DETECTION_GATE_DEG. A pair outside the gate is
  both an FP and an FN, a prediction of a class the clip does not hold (or of
  no class) an FP. Departures from DCASE: sources are clip-level lists, not
  1-s segments, and the F-score is pooled over classes (micro, DCASE 2020-2021)
  rather than averaged per class (macro, 2022-2024). Null for a class-less
  model (one that names no class in any prediction of the run, like GCC-PHAT):
  it cannot score a TP, and 0 would read as a model that tried.
- detection_f1_20deg_any_class: the same gate without the class check, on the
  direction pairs above; every model has it (the class-less ones' detection).
- detection_f1_unlocated: the count-only form, every direction pair a TP
  however far off (what detection_f1 was before the DCASE form); it measures
  whether the number of sources is right, not where they are.

Keys follow ARCHITECTURE.md. Extra keys: the two detection forms above and
lateral_error_mean_deg, the error of the interaural-polar lateral angle: the
part of the direction that ITD and ILD alone determine (free of front/back and
elevation ambiguity on the cone of confusion).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from agent.core.geometry import (
    azimuth_diff_deg,
    great_circle_deg,
    lateral_angle_deg,
    mirror_front_back_deg,
)
from agent.core.scene import Scene, SourceEstimate

ER20_DEG = 20.0
DISTANCE_ER_M = 0.5
#: the DCASE SELD gate: a detection is a true positive only within this great-circle angle of
#: its source (the "20" in F_20deg; DCASE 2020-2024 Task 3)
DETECTION_GATE_DEG = 20.0
METRIC_KEYS = ("n_sources", "angular_error_mean_deg", "azimuth_mae_deg", "elevation_mae_deg",
               "front_back_confusion", "er20", "distance_mae_m", "distance_er05",
               "class_accuracy", "detection_f1")
#: the detection F1 keys (see the module docstring), each with the true positives it counts
DETECTION_KEYS = ("detection_f1", "detection_f1_20deg_any_class", "detection_f1_unlocated")
#: keys every `aggregate` holds beside METRIC_KEYS
EXTRA_KEYS = ("detection_f1_20deg_any_class", "detection_f1_unlocated", "lateral_error_mean_deg")


@dataclass
class Pair:
    """One matched (true, predicted) source, with what it contributes to the metrics."""

    angular_deg: float
    azimuth_deg: float
    elevation_deg: float
    front_back: bool
    distance_err_m: float | None
    class_ok: bool | None
    true_azimuth_deg: float
    lateral_deg: float
    true_index: int = -1  # positions in the scene's sources and the prediction list
    pred_index: int = -1


@dataclass
class ClipResult:
    """One clip's matching. pairs: the direction pairs (or class pairs with by_label);
    class_pairs: (true index, prediction index, great-circle error in deg) of the DCASE
    within-class matching, whatever by_label was; n_labelled: predictions that name a class."""

    scene: Scene
    pairs: list[Pair]
    n_true: int
    n_pred: int
    class_pairs: list[tuple[int, int, float]] = field(default_factory=list)
    n_labelled: int = 0

    def true_positives(self, key: str) -> int:
        """The clip's true positives under one of DETECTION_KEYS (module docstring): class and
        direction within DETECTION_GATE_DEG, direction only within it, or any direction pair."""
        if key == "detection_f1":
            return sum(err <= DETECTION_GATE_DEG for _, _, err in self.class_pairs)
        if key == "detection_f1_20deg_any_class":
            return sum(p.angular_deg <= DETECTION_GATE_DEG for p in self.pairs)
        if key == "detection_f1_unlocated":
            return len(self.pairs)
        raise KeyError(f"{key!r} is not one of {', '.join(DETECTION_KEYS)}")

    def detection_counts(self, key: str) -> tuple[int, int, int]:
        """(TP, FP, FN) under one of DETECTION_KEYS: each TP uses up one prediction and one
        source, every other prediction is an FP and every other source an FN."""
        tp = self.true_positives(key)
        return tp, self.n_pred - tp, self.n_true - tp


def _class_pairs(truth, preds, cost: np.ndarray) -> list[tuple[int, int, float]]:
    """The DCASE SELD matching: within each class, the Hungarian assignment of that class's
    predictions to that class's sources on the great-circle angle (cost: (sources, predictions)
    deg). A prediction of no class, or of a class the clip does not hold, pairs with nothing."""
    out = []
    for label in sorted({t.label for t in truth}):
        ti = [i for i, t in enumerate(truth) if t.label == label]
        pi = [j for j, p in enumerate(preds) if p.label is not None and p.label == label]
        if not pi:
            continue
        sub = cost[np.ix_(ti, pi)]
        rows, cols = linear_sum_assignment(sub)
        out += [(ti[r], pi[c], float(sub[r, c])) for r, c in zip(rows, cols)]
    return sorted(out)


def match_clip(scene: Scene, preds: list[SourceEstimate], by_label: bool = False) -> ClipResult:
    """Pair true and predicted sources by direction (Hungarian on the great-circle angle), as
    the benchmark scores them, and class by class for detection_f1 (`_class_pairs`). by_label:
    make `pairs` the class pairs too (the same sound, wherever it was heard), as the demo
    reports a classifying model; the benchmark never sets it."""
    truth = scene.sources
    pairs: list[Pair] = []
    class_pairs: list[tuple[int, int, float]] = []
    if truth and preds:
        cost = np.array([[great_circle_deg(p.azimuth_deg, p.elevation_deg, t.azimuth_deg, t.elevation_deg)
                          for p in preds] for t in truth])
        class_pairs = _class_pairs(truth, preds, cost)
        other_class = np.array([[p.label != t.label for p in preds] for t in truth]) if by_label else None
        rows, cols = linear_sum_assignment(cost if other_class is None else cost + 1e6 * other_class)
        for r, c in zip(rows, cols):
            if other_class is not None and other_class[r, c]:
                continue
            t, p = truth[r], preds[c]
            err = cost[r, c]
            mirrored = great_circle_deg(mirror_front_back_deg(p.azimuth_deg), p.elevation_deg,
                                        t.azimuth_deg, t.elevation_deg)
            dist_err = (abs(p.distance_m - t.distance_m)
                        if p.distance_m is not None and t.distance_m is not None else None)
            pairs.append(Pair(float(err), abs(float(azimuth_diff_deg(p.azimuth_deg, t.azimuth_deg))),
                              abs(p.elevation_deg - t.elevation_deg), bool(mirrored < err / 2),
                              dist_err, None if p.label is None else p.label == t.label,
                              t.azimuth_deg,
                              abs(float(lateral_angle_deg(p.azimuth_deg, p.elevation_deg))
                                  - float(lateral_angle_deg(t.azimuth_deg, t.elevation_deg))),
                              int(r), int(c)))
    return ClipResult(scene, pairs, len(truth), len(preds), class_pairs,
                      sum(p.label is not None for p in preds))


def _mean(xs) -> float | None:
    """The mean, or None (a null metric) when nothing was measured."""
    return float(np.mean(xs)) if len(xs) else None


def is_classless(results: list[ClipResult]) -> bool:
    """True for a model that names no class: it made predictions and none of them has a label
    (GCC-PHAT). A run without any prediction is not class-less: it just detected nothing."""
    return sum(r.n_pred for r in results) > 0 and not any(r.n_labelled for r in results)


def detection_f1(results: list[ClipResult], key: str = "detection_f1",
                 classless: bool | None = None) -> float | None:
    """F1 = 2 TP / (2 TP + FP + FN) under one of DETECTION_KEYS, with TP, FP and FN summed over
    all clips (pooled, never a mean of per-clip F1s). None when the clips hold no source and no
    prediction, and for detection_f1 (class-aware) when the model is class-less (classless:
    None reads it from these results; `localization_metrics` passes the whole run's, so that
    every condition of one model reports alike)."""
    if key == "detection_f1" and (is_classless(results) if classless is None else classless):
        return None
    tp, fp, fn = np.array([r.detection_counts(key) for r in results], int).reshape(-1, 3).sum(axis=0)
    return float(2 * tp / (2 * tp + fp + fn)) if 2 * tp + fp + fn else None


def aggregate(results: list[ClipResult], classless: bool | None = None) -> dict:
    """METRIC_KEYS and EXTRA_KEYS over the clips; a metric nothing measured is None. classless:
    as in `detection_f1`."""
    pairs = [p for r in results for p in r.pairs]
    tp = len(pairs)
    n_true = sum(r.n_true for r in results)
    dist = [p.distance_err_m for p in pairs if p.distance_err_m is not None]
    cls = [p.class_ok for p in pairs if p.class_ok is not None]
    return {
        "n_sources": n_true,
        "angular_error_mean_deg": _mean([p.angular_deg for p in pairs]),
        "azimuth_mae_deg": _mean([p.azimuth_deg for p in pairs]),
        "elevation_mae_deg": _mean([p.elevation_deg for p in pairs]),
        "front_back_confusion": _mean([p.front_back for p in pairs]),
        "er20": _mean([p.angular_deg > ER20_DEG for p in pairs]),
        "distance_mae_m": _mean(dist),
        "distance_er05": _mean([d > DISTANCE_ER_M for d in dist]),
        # Unlabelled predictions count as misses once a model names any class at all.
        "class_accuracy": (sum(1 for p in pairs if p.class_ok) / tp) if cls and tp else None,
        **{key: detection_f1(results, key, classless) for key in DETECTION_KEYS},
        "lateral_error_mean_deg": _mean([p.lateral_deg for p in pairs]),
    }


def conditions(scene: Scene) -> list[str]:
    n = f"n_sources={len(scene.sources)}"
    room = f"room={scene.room_kind}"
    head = f"head={scene.hrtf}"
    # dict.fromkeys: a one-source clip's "n_sources=1,head=..." appears twice in the list
    # below and must be counted once
    few = f"n_sources={'1' if len(scene.sources) == 1 else '2-3'}"
    return list(dict.fromkeys([n, room, head, f"{n},{head}", f"{room},{head}", f"{few},{head}",
                               # the floors hold for one source over both rooms; this
                               # splits them, as the rooms differ in what cues they leave
                               f"{few},{room},{head}"]))


def class_metrics(results: list[ClipResult]) -> dict[str, dict]:
    """Per true class, over every source of that class in every clip: how often it was
    matched (recall) and, for the matched ones, the direction errors and class accuracy."""
    by: dict[str, list] = defaultdict(list)
    n_true: dict[str, int] = defaultdict(int)
    for r in results:
        for s in r.scene.sources:
            n_true[s.label] += 1
        for p in r.pairs:
            by[r.scene.sources[p.true_index].label].append(p)
    out = {}
    for label in sorted(n_true):
        ps = by.get(label, [])
        cls = [p.class_ok for p in ps if p.class_ok is not None]
        out[label] = {
            "n_sources": n_true[label], "recall": len(ps) / n_true[label],
            "angular_error_mean_deg": _mean([p.angular_deg for p in ps]),
            "elevation_mae_deg": _mean([p.elevation_deg for p in ps]),
            "front_back_confusion": _mean([p.front_back for p in ps]),
            "class_accuracy": _mean(cls)}
    return out


#: The encoder issue's floors on the training head (kemar-mit), as (condition, metric, floor,
#: short name for tables): one source over both rooms, and 2-3 sources. "class_error" is
#: 1 - class_accuracy.
FLOORS = (
    ("n_sources=1,head=kemar-mit", "angular_error_mean_deg", 10.0, "1src ang"),
    ("n_sources=1,head=kemar-mit", "front_back_confusion", 0.08, "1src fb"),
    ("n_sources=1,head=kemar-mit", "distance_er05", 0.30, "1src der05"),
    ("n_sources=1,head=kemar-mit", "class_error", 0.10, "1src cls_err"),
    ("n_sources=2-3,head=kemar-mit", "angular_error_mean_deg", 25.0, "2-3src ang"),
)


def floor_terms(metrics: dict) -> dict[str, float | None]:
    """Each floor's metric in units of its floor (1.0: exactly at the floor, lower is better),
    from `localization_metrics` output; None where it was not measured: the clips hold no
    such condition, or the model does not produce the metric (no classes, no distance)."""
    out = {}
    for cond, key, floor, _ in FLOORS:
        m = metrics["by_condition"].get(cond, {})
        if key == "class_error":
            v = m.get("class_accuracy")
            v = None if v is None else 1.0 - v
        else:
            v = m.get(key)
        out[f"{cond}:{key}"] = None if v is None else float(v) / floor
    return out


def floor_score(metrics: dict) -> float | None:
    """The mean of `floor_terms` (each metric over its floor): one number in which one degree of
    single-source angular error, 0.8 points of front/back confusion, 3 points of distance error
    rate, one point of class accuracy and 2.5 degrees with 2-3 sources weigh the same. Every
    floor is met when each term is <= 1. Floors whose condition the clips lack are left out;
    None when there is none, or when the model leaves a measured condition's metric empty (a
    localizer without classes or distance is not scored on fewer floors than one with them)."""
    terms = []
    for (cond, *_), v in zip(FLOORS, floor_terms(metrics).values()):
        if v is None and cond in metrics["by_condition"]:
            return None
        if v is not None:
            terms.append(v)
    return float(np.mean(terms)) if terms else None


def _by_condition(results: list[ClipResult]) -> dict[str, list[ClipResult]]:
    groups: dict[str, list[ClipResult]] = defaultdict(list)
    for r in results:
        for c in conditions(r.scene):
            groups[c].append(r)
    return groups


def localization_metrics(results: list[ClipResult]) -> dict:
    """`aggregate` over all clips, the same keys per condition (`by_condition`) and per true
    class (`by_class`). Whether the model is class-less is read once from all clips, so a
    condition where a classifying model predicted nothing scores detection_f1 0, not null."""
    classless = is_classless(results)
    out = aggregate(results, classless)
    out["by_condition"] = {k: aggregate(v, classless) for k, v in sorted(_by_condition(results).items())}
    out["by_class"] = class_metrics(results)
    return out


def _ratio_parts(clips: list[ClipResult], key: str,
                 classless: bool | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Per clip, the numerator and denominator of a floor metric or a detection F1 as
    `aggregate` computes it (the metric over clips = sum of numerators / sum of denominators),
    which is what a clip bootstrap resamples; None where nothing was measured (no clips, no
    matched pairs, or a model without that output). For DETECTION_KEYS: 2 TP and
    n_true + n_pred (= 2 TP + FP + FN), classless as in `detection_f1`."""
    if key in DETECTION_KEYS:
        if key == "detection_f1" and (is_classless(clips) if classless is None else classless):
            return None
        num = [2 * r.true_positives(key) for r in clips]
        den = [r.n_true + r.n_pred for r in clips]
    elif key == "angular_error_mean_deg":
        num = [sum(p.angular_deg for p in r.pairs) for r in clips]
        den = [len(r.pairs) for r in clips]
    elif key == "front_back_confusion":
        num = [sum(p.front_back for p in r.pairs) for r in clips]
        den = [len(r.pairs) for r in clips]
    elif key == "distance_er05":
        num = [sum(p.distance_err_m > DISTANCE_ER_M for p in r.pairs if p.distance_err_m is not None)
               for r in clips]
        den = [sum(p.distance_err_m is not None for p in r.pairs) for r in clips]
    elif key == "class_error":
        if not any(p.class_ok is not None for r in clips for p in r.pairs):
            return None
        num = [sum(not p.class_ok for p in r.pairs) for r in clips]
        den = [len(r.pairs) for r in clips]
    else:  # pragma: no cover - FLOORS and DETECTION_KEYS name only the keys above
        raise KeyError(key)
    num_a, den_a = np.asarray(num, float), np.asarray(den, float)
    return (num_a, den_a) if len(clips) and den_a.sum() > 0 else None


def _check_bootstrap(results: list[ClipResult], minus: list[ClipResult] | None, n_boot: int,
                     level: float) -> None:
    if n_boot < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"n_boot must be >= 1 and level in (0, 1), got {n_boot}, {level}")
    if minus is not None and [r.scene.id for r in minus] != [r.scene.id for r in results]:
        raise ValueError("minus must hold results for the same clips in the same order "
                         f"({len(results)} clips against {len(minus)})")


def floor_intervals(results: list[ClipResult], minus: list[ClipResult] | None = None,
                    n_boot: int = 2000, level: float = 0.95,
                    seed: int = 0) -> dict[str, list[float] | None]:
    """A percentile bootstrap interval for each floor's metric (in the metric's own units, not
    over its floor), resampling whole clips of the floor's condition with replacement: sources
    of one clip share a room and a mix, so clips, not sources, are the independent draws. Keys
    as in `floor_terms`; None where the point metric is None (the condition is absent or the
    model does not produce the metric). A benchmark of 97 one-source clips gives intervals of
    several degrees: read differences between models against them.

    minus: another model's results on the same clips, in the same order. The interval is then
    of the paired difference (this model's metric minus that one's), both read on the same
    resampled clips, which is much narrower than comparing two separate intervals."""
    _check_bootstrap(results, minus, n_boot, level)
    groups = _by_condition(results)
    other = _by_condition(minus) if minus is not None else None
    rng = np.random.default_rng(seed)
    out: dict[str, list[float] | None] = {}
    for cond, key, _, _ in FLOORS:
        a = _ratio_parts(groups.get(cond, []), key)
        b = _ratio_parts(other.get(cond, []), key) if other is not None else None
        if a is None or (other is not None and b is None):
            out[f"{cond}:{key}"] = None
            continue
        idx = rng.integers(0, len(a[0]), size=(n_boot, len(a[0])))
        na, da = a[0][idx].sum(axis=1), a[1][idx].sum(axis=1)
        keep = da > 0  # a draw of clips that matched nothing measures nothing
        if b is None:
            vals = na[keep] / da[keep]
        else:
            nb, db = b[0][idx].sum(axis=1), b[1][idx].sum(axis=1)
            keep &= db > 0
            vals = na[keep] / da[keep] - nb[keep] / db[keep]
        lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
        out[f"{cond}:{key}"] = [float(lo), float(hi)]
    return out


def floor_score_interval(results: list[ClipResult], minus: list[ClipResult] | None = None,
                         n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> list[float] | None:
    """A percentile bootstrap interval for `floor_score` itself (what the shipping rule reads),
    or, with minus (another model's results on the same clips, in the same order), for the
    paired difference of the two scores. Clips are resampled within each floor's condition
    (a stratified bootstrap), once per condition and draw, so the terms that share the
    one-source clips move together as they do in the point score. None where the point score
    is None."""
    _check_bootstrap(results, minus, n_boot, level)
    runs = [_by_condition(results)] + ([_by_condition(minus)] if minus is not None else [])
    rng = np.random.default_rng(seed)
    draws: dict[str, np.ndarray] = {}
    scores = []
    for groups in runs:
        terms, keep = [], np.ones(n_boot, bool)
        for cond, key, floor, _ in FLOORS:
            if cond not in groups:
                continue  # floor_score leaves out floors whose condition the clips lack
            parts = _ratio_parts(groups[cond], key)
            if parts is None:
                return None
            if cond not in draws:
                draws[cond] = rng.integers(0, len(groups[cond]), size=(n_boot, len(groups[cond])))
            num, den = parts[0][draws[cond]].sum(axis=1), parts[1][draws[cond]].sum(axis=1)
            keep &= den > 0
            terms.append(np.where(den > 0, num / np.maximum(den, 1e-12), 0.0) / floor)
        if not terms:
            return None
        scores.append((np.mean(terms, axis=0), keep))
    vals = scores[0][0] if minus is None else scores[0][0] - scores[1][0]
    keep = scores[0][1] if minus is None else scores[0][1] & scores[1][1]
    lo, hi = np.quantile(vals[keep], [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]
