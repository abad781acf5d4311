"""Score answers to QA items: parse letters, option texts, degrees, metres, turns, labels."""

from __future__ import annotations

import re

from agent.core.geometry import azimuth_diff_deg
from agent.core.labels import DISPLAY, LABELS
from agent.core.scene import QAItem
from training.qa.tasks import DEG_TOLERANCE, M_TOLERANCE

_NUM = re.compile(r"[-+]?\d+(?:\.\d+)?")
_LETTER = re.compile(r"^\s*\(?([A-Da-d])\)?(?:[\s.,):]|$)")


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", " ", s.lower().replace("_", " ")).strip()


def parse_choice(item: QAItem, pred: str) -> str | None:
    """The option letter a prediction names: a letter, or an option's text."""
    m = _LETTER.match(pred)
    if m:
        return m.group(1).upper()
    p = _norm(pred)
    for i, opt in enumerate(item.options or []):
        if _norm(opt) == p:
            return "ABCD"[i]
    hits = [i for i, opt in enumerate(item.options or []) if _norm(opt) and _norm(opt) in p]
    if len(hits) == 1:
        return "ABCD"[hits[0]]
    return None


def parse_number(pred: str) -> float | None:
    m = _NUM.search(pred)
    return float(m.group()) if m else None


def parse_turn(pred: str) -> float | None:
    """'left 60 deg' -> +60, 'right 30' -> -30, 'ahead' -> 0."""
    p = pred.lower()
    num = parse_number(p)
    if "left" in p and num is not None:
        return abs(num)
    if "right" in p and num is not None:
        return -abs(num)
    if "ahead" in p or "straight" in p:
        return 0.0
    return num


def parse_label(pred: str) -> str | None:
    p = _norm(pred)
    for label in LABELS:
        if p in (_norm(label), _norm(DISPLAY[label]), _norm(DISPLAY[label]).removeprefix("the ")):
            return label
    return None


def is_correct(item: QAItem, pred: str | None) -> bool:
    if pred is None:
        return False
    kind = item.extra.get("answer_type", "choice" if item.options else "label")
    if item.options:
        return parse_choice(item, pred) == item.answer
    if kind == "deg":
        v, t = parse_number(pred), parse_number(item.answer)
        if v is None:
            return False
        if item.task.endswith("angle_between"):
            return abs(v - t) <= DEG_TOLERANCE
        return abs(float(azimuth_diff_deg(v, t))) <= DEG_TOLERANCE
    if kind == "m":
        v = parse_number(pred)
        return v is not None and abs(v - parse_number(item.answer)) <= M_TOLERANCE
    if kind == "turn":
        v, t = parse_turn(pred), parse_turn(item.answer)
        return v is not None and abs(float(azimuth_diff_deg(v, t))) <= DEG_TOLERANCE
    if kind == "label":
        return parse_label(pred) == parse_label(item.answer)
    return _norm(pred) == _norm(item.answer)
