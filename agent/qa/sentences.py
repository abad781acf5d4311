"""Answer sentences: what a person wants to hear ("The dog is to your back-right, about 2
metres away."), written from the metadata for every QA item (issue 20) and, on the device,
from what was heard (agent/qa/programs.py).

`say(task, scene, params, value)` words any candidate answer `value` (an option's text, or a
canonical open answer) as a sentence. Every sentence of a choice item names its option's
text verbatim and no other option's, and every open sentence states its number first, so
training/qa/score.py reads a sentence as the answer it words; tests check this on every
generated item, for the right answer and for each wrong option.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.core.geometry import sector_of
from agent.core.labels import LABELS, display, is_plural, not_heard
from agent.core.scene import Scene, SourceLabel
from agent.qa.tasks import ANSWER_TASKS_BY_NAME, CONSISTENCY_NAMES, NO, SAME_DISTANCE, YES

_NOT_HEARD_PREFIX = not_heard("dog").removesuffix("a dog")
_ELEVATION = {"far above": "far above you", "above": "above you", "at ear level": "at ear level",
              "below": "below you"}
_LABEL_OF_DISPLAY = {display(c): c for c in LABELS}


def capitalise(text: str) -> str:
    """The text with its first character upper-cased (the rest kept: "the dog" -> "The dog")."""
    return text[:1].upper() + text[1:]


def where(sector: str) -> str:
    """A sector in an answer, holding the sector's name verbatim ('to your back-right')."""
    return {"front": "in front of you", "back": "at your back"}.get(sector, f"to your {sector}")


def metres(d: float) -> str:
    text = f"{d:.1f}".removesuffix(".0")
    return f"{text} metre" if text == "1" else f"{text} metres"


def _is(name: str) -> str:
    return "are" if is_plural(name) else "is"


def _source(scene: Scene, label: str) -> SourceLabel | None:
    return next((s for s in scene.sources if s.label == label), None)


def _subject(label: str) -> tuple[str, str]:
    name = display(label)
    return capitalise(name), _is(name)


def _away(scene: Scene, label: str) -> str:
    s = _source(scene, label)
    return "" if s is None or s.distance_m is None else f", about {metres(s.distance_m)} away"


def _sector(scene, p, v):
    a, verb = _subject(p["a"])
    return f"{a} {verb} {where(v)}{_away(scene, p['a'])}."


def _azimuth(scene, p, v):
    a, verb = _subject(p["a"])
    az = float(v.split()[0])
    side = ("straight ahead" if abs(az) < 1 else "straight behind" if abs(az) > 179
            else "to your left" if az > 0 else "to your right")
    return f"{a} {verb} at {az:.0f} degrees, {side}."


def _elevation(scene, p, v):
    a, verb = _subject(p["a"])
    return f"{a} {verb} {_ELEVATION[v]}."


def _distance_bin(scene, p, v):
    a, verb = _subject(p["a"])
    return f"{a} {verb} {v} of you." if v.startswith("within") else f"{a} {verb} {v} away."


def _distance_m(scene, p, v):
    a, verb = _subject(p["a"])
    return f"{a} {verb} about {metres(float(v.split()[0]))} away."


def _count(scene, p, v):
    return "I hear 1 sound." if v == "1" else f"I hear {v} sounds."


def _named(template: str) -> Callable:
    """A sentence about a label option: template with {X} (the option, capitalised) and {is}."""
    def say(scene, p, v):
        return template.format(X=capitalise(v), x=v, **{"is": _is(v)})
    return say


def _relative(scene, p, v):
    a, verb = _subject(p["a"])
    return f"{a} {verb} {v} {display(p['b'])}."


def _closer(scene, p, v):
    return "They are about equally far away." if v == SAME_DISTANCE else f"{capitalise(v)} {_is(v)} closer."


def _bind_direction(scene, p, v):
    return f"{capitalise(v)} {_is(v)} {where(p['sector'])}."


def _bind_distance(scene, p, v):
    return f"{capitalise(v)} {_is(v)} about {metres(p['distance_m'])} away."


def _angle_between(scene, p, v):
    return f"{capitalise(display(p['a']))} and {display(p['b'])} are about {v.split()[0]} degrees apart."


def _rotated(slot: str) -> Callable:
    def say(scene, p, v):
        x, verb = _subject(p[slot])
        return f"{x} will be {where(v)}."
    return say


def _navigate(scene, p, v):
    side, deg = v.split()[:2]  # canonical: "left 60 deg", "right 30 deg", "ahead 0 deg"
    yaw = 0.0 if side == "ahead" else float(deg) if side == "left" else -float(deg)
    if abs(yaw) < 0.5:
        a, verb = _subject(p["a"])
        return f"{a} {verb} straight ahead; no need to turn."
    return f"Turn {'left' if yaw > 0 else 'right'} by {abs(yaw):.0f} degrees to face {display(p['a'])}."


def _consistency(scene, p, v):
    """The verdict, then (for the true one) why: the sound's real direction or distance."""
    s = _source(scene, p["label"])
    why = ""
    if v == CONSISTENCY_NAMES[1] and s is not None:
        why = f": {display(s.label)} {_is(display(s.label))} {where(sector_of(s.azimuth_deg))}"
    elif v == CONSISTENCY_NAMES[2] and s is not None and s.distance_m is not None:
        why = f": {display(s.label)} {_is(display(s.label))} about {metres(s.distance_m)} away"
    elif v == CONSISTENCY_NAMES[3] and s is None:
        why = f": {not_heard(p['label'])}"
    return f"{capitalise(v)}{why}."


SAY: dict[str, Callable[[Scene, dict, str], str]] = {
    "l1_class_present": _named("I hear {x}."),
    "l1_sector": _sector,
    "l1_azimuth_deg": _azimuth,
    "l1_elevation": _elevation,
    "l1_distance_bin": _distance_bin,
    "l1_distance_m": _distance_m,
    "l1_count": _count,
    "l1_first_onset": _named("{X} started first."),
    "l1_not_heard": _sector,
    "l2_relative": _relative,
    "l2_closer": _closer,
    "l2_farthest": _named("{X} {is} the farthest away."),
    "l2_bind_direction": _bind_direction,
    "l2_bind_distance": _bind_distance,
    "l2_angle_between": _angle_between,
    "l3_rotate_face": _rotated("b"),
    "l3_rotate_by": _rotated("a"),
    "l3_navigate": _navigate,
    "l3_remove": _named("{X} would be the closest."),
    "l3_priority": _named("Deal with {x} first."),
    "l3_consistency": _consistency,
}
assert set(SAY) == set(ANSWER_TASKS_BY_NAME), "every task needs its answer sentence"


def _lower_first(sentence: str) -> str:
    return sentence if sentence.startswith("I ") else sentence[:1].lower() + sentence[1:]


def say(task_name: str, scene: Scene, params: dict, value: str) -> str:
    """The sentence that gives `value` as the answer to an item with these params."""
    if value.startswith(_NOT_HEARD_PREFIX):
        return f"{value}."
    task = ANSWER_TASKS_BY_NAME[task_name]
    if "claim" not in params:
        return SAY[task_name](scene, params, value)
    claim = params["claim"]
    if value == YES:
        return f"Yes, {_lower_first(SAY[task_name](scene, params, claim))}"
    truth = task.rule(scene, params)
    if value != NO or truth == claim:  # a wrong "no": nothing true to add
        return "No."
    if task.claim == "label" and task_name == "l1_class_present":
        return f"No, {_lower_first(not_heard(_LABEL_OF_DISPLAY[claim]))}."
    return f"No, {_lower_first(SAY[task_name](scene, params, truth))}"
