"""Program-aided answers (issue 20, docs/lalm.md): a question becomes a short program, its task
and arguments, and the benchmark's own answer programs (agent/qa/tasks.py) run it on what was
heard, on the device as in the benchmark (issue 23: no torch here).

The language model learns only the language part: "Is the barking behind me on the left?" ->
`sector a=dog claim=back-left`. The spatial reasoning is the tasks' `solve`, applied to the
encoder's sources instead of the truth (the perception bound's program, with arguments read
from the question instead of taken from the metadata).

Program text: a task name (the benchmark task without its level prefix; l1_not_heard asks the
same as l1_sector) then `key=value` arguments, spaces inside a value written as `_`:
  a, b      class labels (agent.core.labels.LABELS)
  claim     a yes/no form's claim: a class label, a sector, an elevation or distance-bin name,
            a count or a relation ("to_the_left_of")
  sector    l2_bind_direction's sector; distance: l2_bind_distance's metres
  turn      l3_rotate_by's turn in the question's own words: left_90, right_135, around (copying
            the side and the number is easier to learn than a signed yaw)
  label, sector, distance   l3_consistency's statement
"""

from __future__ import annotations

import dataclasses
import re

from agent.core.geometry import (
    DISTANCE_BIN_NAMES,
    SECTOR_NAMES,
    azimuth_diff_deg,
    sector_centre_deg,
)
from agent.core.labels import LABELS, display, not_heard
from agent.core.scene import QAItem, Scene, option_letter
from agent.qa.sentences import capitalise, say
from agent.qa.tasks import ANSWER_TASKS_BY_NAME, ELEVATION_NAMES, NO, NOT_HEARD_TASK, YES

#: Program task name -> benchmark task name.
TASK_OF_PROGRAM = {name.split("_", 1)[1]: name for name in ANSWER_TASKS_BY_NAME if name != NOT_HEARD_TASK}
PROGRAM_OF_TASK = {task: prog for prog, task in TASK_OF_PROGRAM.items()} | {NOT_HEARD_TASK: "sector"}
_LABEL_OF_DISPLAY = {display(c): c for c in LABELS}
#: Arguments each program takes, in the order they are written.
ARG_ORDER = ("a", "b", "label", "sector", "distance", "turn", "claim")
_FLOAT_ARGS = {"distance": "distance_m"}
_ORDERED = (SECTOR_NAMES, ELEVATION_NAMES, DISTANCE_BIN_NAMES, ("1", "2", "3", "4"))


@dataclasses.dataclass(frozen=True)
class Program:
    task: str  # the benchmark task (agent.qa.tasks.ANSWER_TASKS_BY_NAME)
    args: dict  # the task's params, in agent/qa/tasks.py's keys (a, b, claim, sector, distance_m, yaw_deg, label)

    def text(self) -> str:
        parts = [PROGRAM_OF_TASK[self.task]]
        keyed = {k: self.args[v] for k, v in _FLOAT_ARGS.items() if v in self.args}
        keyed.update({k: self.args[k] for k in ("a", "b", "label", "sector", "claim") if k in self.args})
        if "yaw_deg" in self.args:
            keyed["turn"] = turn_word(self.args["yaw_deg"])
        for k in ARG_ORDER:
            if k in keyed:
                v = f"{keyed[k]:.1f}" if k == "distance" else keyed[k]
                parts.append(f"{k}={str(v).replace(' ', '_')}")
        return " ".join(parts)


def turn_word(yaw_deg: float) -> str:
    """A turn as the question words it: +90 -> left_90, -135 -> right_135, 180 -> around."""
    if abs(abs(yaw_deg) - 180.0) < 0.5:
        return "around"
    return f"{'left' if yaw_deg > 0 else 'right'}_{abs(yaw_deg):.0f}"


def turn_yaw(word: str) -> float | None:
    """turn_word's inverse; None for anything else."""
    if word == "around":
        return 180.0
    side, _, amount = word.partition("_")
    if side not in ("left", "right") or not amount.isdigit():
        return None
    return float(amount) if side == "left" else -float(amount)


def program_of(item: QAItem) -> Program:
    """The program that asks what a generated item asks (its task and params)."""
    p = item.extra["params"]
    args = {k: p[k] for k in ("a", "b", "sector", "distance_m", "yaw_deg") if k in p}
    if item.task == "l1_class_present":
        args.pop("a", None)  # which class is heard is the answer, not an argument
    if item.task == "l3_consistency":
        args = {"label": p["label"], "sector": p["sector"], "distance_m": p["distance_m"]}
    if "claim" in p:  # a label claim is named by its label ("c"), every other one by its text
        args["claim"] = p.get("c", p["claim"])
    task = "l1_sector" if item.task == NOT_HEARD_TASK else item.task
    return Program(task, args)


_TOKEN = re.compile(r"(\w+)=(\S+)")


def parse_program(text: str) -> Program | None:
    """A model's program text -> Program, or None when it is not one (unknown task or label,
    a malformed number)."""
    words = text.strip().split()
    if not words or words[0] not in TASK_OF_PROGRAM:
        return None
    task = TASK_OF_PROGRAM[words[0]]
    args: dict = {}
    for word in words[1:]:
        m = _TOKEN.fullmatch(word)
        if m is None or m.group(1) not in (*ARG_ORDER, "yaw"):
            return None
        key, value = m.group(1), m.group(2).replace("_", " ")
        if key == "yaw":  # the first format's signed turn (runs/lalm-program)
            try:
                args["yaw_deg"] = float(value)
            except ValueError:
                return None
        elif key == "turn":
            yaw = turn_yaw(m.group(2))
            if yaw is None:
                return None
            args["yaw_deg"] = yaw
        elif key in _FLOAT_ARGS:
            try:
                args[_FLOAT_ARGS[key]] = float(value)
            except ValueError:
                return None
        elif key in ("a", "b", "label"):
            value = value.replace(" ", "_")
            if value not in LABELS:
                return None
            args[key] = value
        else:
            args[key] = value.replace(" ", "_") if value.replace(" ", "_") in LABELS else value
    return Program(task, args)


def _params(program: Program, heard: Scene, options: list[str] | None) -> dict:
    """The task's params for the heard scene (the claim in the words the task compares)."""
    p = dict(program.args)
    claim = p.get("claim")
    if claim in LABELS:
        p["c"], p["claim"] = claim, display(claim)
    if program.task == "l1_class_present":
        heard_labels = [s.label for s in heard.sources]
        if claim is not None:
            p["a"] = p["c"] if p.get("c") in heard_labels else None
        else:
            shown = [_LABEL_OF_DISPLAY.get(o) for o in options or []]
            p["a"] = next((c for c in heard_labels if c in shown), heard_labels[0] if heard_labels else None)
    return p


def _nearest_option(value: str, options: list[str], heard: Scene) -> int:
    """The option closest to a value that is not among them (a sector next to it, a count or a
    bin one step away, a class that was heard), else the first."""
    if value in SECTOR_NAMES:
        sectors = [(abs(azimuth_diff_deg(sector_centre_deg(o), sector_centre_deg(value))), i)
                   for i, o in enumerate(options) if o in SECTOR_NAMES]
        if sectors:
            return min(sectors)[1]
    for names in _ORDERED:
        if value in names:
            ranked = [(abs(names.index(o) - names.index(value)), i) for i, o in enumerate(options) if o in names]
            if ranked:
                return min(ranked)[1]
    heard_names = {display(s.label) for s in heard.sources}
    return next((i for i, o in enumerate(options) if o in heard_names), 0)


def run_program(program: Program, heard: Scene, options: list[str] | None = None) -> tuple[str, str]:
    """(the answer's content, the answer as the reply a person hears: "B. The dog is ...")
    for `program` on the heard scene. A question about a class not heard gets "I don't hear
    a dog" (or "no"); a program that needs a source nobody heard gets the not-heard reply."""
    task = ANSWER_TASKS_BY_NAME[program.task]
    p = _params(program, heard, options)
    value: str | None
    if program.task == "l1_class_present" and p.get("a") is None:
        value = NO if "claim" in p else None
    else:
        try:
            value = task.solve(heard, p)
        except (StopIteration, KeyError, TypeError, ValueError):  # e.g. the program's class was not heard
            value = None
    if "claim" in p and value not in (YES, NO):
        value = NO  # "Is the dog behind me?" about a dog not heard
    if value is None:
        missing = next((p[k] for k in ("a", "b", "label") if k in p and p[k] not in {s.label for s in heard.sources}),
                       None)
        value = not_heard(missing) if missing else "I don't hear a distinct sound"
    if program.task == "l1_class_present" and p.get("c") and p.get("a") is None:
        sentence = f"No, {not_heard(p['c'])}."
    else:
        sentence = _sentence(program.task, heard, p, value)
    if not options:
        return value, sentence
    i = options.index(value) if value in options else _nearest_option(value, options, heard)
    if options[i] != value:
        sentence = _sentence(program.task, heard, p, options[i])
    return options[i], f"{option_letter(i)}. {sentence}"


def right_on_truth(program_text: str, item: QAItem, truth: Scene) -> bool:
    """Whether a program text, run on the true scene, gives the item's answer (any program
    that asks the same thing does: how `bench qa` and GRPO's reward judge a written program)."""
    program = parse_program(program_text)
    if program is None or "answer_text" not in item.extra:
        return False
    try:
        return run_program(program, truth, item.options)[0] == item.extra["answer_text"]
    except (KeyError, ValueError):  # an argument the task cannot use (e.g. a sector word it never says)
        return False


def _sentence(task: str, heard: Scene, p: dict, value: str) -> str:
    """The answer sentence for value, or the value itself when the sentence needs a source that
    was not heard."""
    try:
        return say(task, heard, p, value)
    except (StopIteration, KeyError, TypeError, ValueError, AttributeError):
        return f"{capitalise(value)}."
