"""Whether a program fits the question it was written for (issue 20: held-out phrasings).

The parser (docs/lalm.md) reads the phrasings it was trained on almost perfectly; a phrasing it
never saw ("What turn gets me looking at the dog?", "Should I look up or down to find it?")
can come out as another task whose program does not fit the question at all: a sector nobody
said (`bind_direction sector=back`), arguments the task does not take (`distance_bin a=.. b=..`),
an answer of another kind than the options offer (a turn for "above / below" options). Such a
program is detectable without knowing the answer, from the question and its options alone;
agent/answer/programs.py then has the parser write the program again with its task fixed to
each task that could fit, and keeps the likeliest that does (checked decoding).

`problems(program, question, options)` lists what does not fit:
- the text is no program (parse_program);
- its arguments are not the task's (ARGS), or a claim where the task has no yes/no form;
- the form: a yes/no question (options yes, no) needs a claim; a choice question none, and its
  options must be of the kind the task answers (a sector, an elevation, a class ...);
- grounding: a sector, a distance or a turn that no word or number of the question gives.
Class names are not checked here: the sound-word table (agent/qa/resolve.py) mends those.
"""

from __future__ import annotations

import re

from agent.core.geometry import DISTANCE_BIN_NAMES, SECTOR_NAMES
from agent.core.labels import LABELS, display
from agent.qa.programs import PROGRAM_OF_TASK, Program, parse_program
from agent.qa.tasks import (
    ANSWER_TASKS_BY_NAME,
    CONSISTENCY_NAMES,
    ELEVATION_NAMES,
    NO,
    NOT_HEARD_TASK,
    RELATIVE_NAMES,
    SAME_DISTANCE,
    YES,
)

#: Each benchmark task's arguments besides a yes/no form's claim (Program.args keys).
ARGS: dict[str, frozenset[str]] = {
    name: frozenset(keys) for name, keys in {
        "l1_class_present": (), "l1_sector": ("a",), "l1_azimuth_deg": ("a",), "l1_elevation": ("a",),
        "l1_distance_bin": ("a",), "l1_distance_m": ("a",), "l1_count": (), "l1_first_onset": (),
        "l2_relative": ("a", "b"), "l2_closer": ("a", "b"), "l2_farthest": (), "l2_bind_direction": ("sector",),
        "l2_bind_distance": ("distance_m",), "l2_angle_between": ("a", "b"), "l3_rotate_face": ("a", "b"),
        "l3_rotate_by": ("a", "yaw_deg"), "l3_navigate": ("a",), "l3_remove": ("a",), "l3_priority": (),
        "l3_consistency": ("label", "sector", "distance_m"),
    }.items()}
#: The tasks a program can name (l1_not_heard is asked as l1_sector), in the parser's words.
PROGRAM_TASKS = tuple(PROGRAM_OF_TASK[t] for t in ARGS)

#: What a choice task's answer is: the kind of option it picks.
ANSWER_KIND = {
    "l1_class_present": "label", "l1_sector": "sector", "l1_elevation": "elevation", "l1_distance_bin": "distance",
    "l1_count": "count", "l1_first_onset": "label", "l2_relative": "relative", "l2_closer": "label",
    "l2_farthest": "label", "l2_bind_direction": "label", "l2_bind_distance": "label", "l3_rotate_face": "sector",
    "l3_rotate_by": "sector", "l3_remove": "label", "l3_priority": "label", "l3_consistency": "consistency",
}
_KINDS = (("sector", set(SECTOR_NAMES)), ("elevation", set(ELEVATION_NAMES)), ("distance", set(DISTANCE_BIN_NAMES)),
          ("count", {"1", "2", "3", "4"}), ("relative", set(RELATIVE_NAMES)), ("consistency", set(CONSISTENCY_NAMES)),
          ("label", {display(c) for c in LABELS} | {SAME_DISTANCE}))
#: Words that say a side: a sector (or a turn) is grounded when the question says one of its sides.
SIDE_WORDS = {"front": {"front", "ahead", "forward", "forwards", "before"},
              "back": {"behind", "back", "rear", "backward", "backwards"},
              "left": {"left"}, "right": {"right"}}
_CLAIM_WORDS = {"elevation": {"far above": {"far", "above", "high", "up", "overhead"},
                              "above": {"above", "up", "high", "over", "overhead"},
                              "at ear level": {"ear", "level", "height"}, "below": {"below", "down", "low", "under",
                                                                                     "beneath"}},
                "count": {"1": {"one", "1", "single"}, "2": {"two", "2"}, "3": {"three", "3"}, "4": {"four", "4"}}}
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def form_of(options: list[str] | None) -> str:
    """"yesno" for options yes / no, "choice" for other options, "open" for none."""
    if not options:
        return "open"
    return "yesno" if [o.lower() for o in options] == [YES, NO] else "choice"


def options_kind(options: list[str]) -> str | None:
    """The kind of answer a choice question's options offer (ANSWER_KIND's values); None when
    they are of no single kind. "I don't hear a ..." options are left out."""
    shown = {o for o in options if not o.lower().startswith("i don't hear")}
    return next((kind for kind, names in _KINDS if shown and shown <= names), None)


def fitting_tasks(options: list[str] | None) -> tuple[str, ...]:
    """The benchmark tasks whose programs could answer a question with these options (every task
    for an open question: a person asks "where is the dog?" without options)."""
    form = form_of(options)
    if form == "yesno":
        return tuple(t for t in ARGS if ANSWER_TASKS_BY_NAME[t].claim is not None)
    if form == "choice":
        kind = options_kind(options)
        return tuple(t for t in ARGS if ANSWER_KIND.get(t) is not None and (kind is None or ANSWER_KIND[t] == kind))
    return tuple(ARGS)


def _words(question: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", question.lower()))


def _says_side(sector: str, words: set[str]) -> bool:
    return any(words & SIDE_WORDS[part] for part in sector.split("-") if part in SIDE_WORDS)


def _numbers(question: str) -> list[float]:
    return [float(n) for n in _NUMBER.findall(question)]


def _grounding(program: Program, question: str) -> list[str]:
    words, out = _words(question), []
    sector = program.args.get("sector")
    if sector is not None and (sector not in SECTOR_NAMES or not _says_side(sector, words)):
        out.append(f"sector={sector} is not said in the question")
    if "distance_m" in program.args and not any(abs(n - program.args["distance_m"]) < 0.051
                                                for n in _numbers(question)):
        out.append(f"distance {program.args['distance_m']} m is not a number of the question")
    yaw = program.args.get("yaw_deg")
    if yaw is not None:
        if abs(abs(yaw) - 180) < 0.5:
            said = "around" in words or 180 in _numbers(question)
        else:
            said = _says_side("left" if yaw > 0 else "right", words) and any(abs(n - abs(yaw)) < 0.5
                                                                              for n in _numbers(question))
        if not said:
            out.append(f"the turn {yaw:+.0f} deg is not the question's")
    task = ANSWER_TASKS_BY_NAME[program.task]
    claim = program.args.get("claim")
    if claim is not None and task.claim == "sector" and not _says_side(str(claim), words):
        out.append(f"claim={claim} is not said in the question")
    if claim is not None and task.claim in _CLAIM_WORDS:
        said = _CLAIM_WORDS[task.claim].get(str(claim))
        if said is None or not words & said:
            out.append(f"claim={claim} is not said in the question")
    if claim is not None and task.claim == "distance" and (claim not in DISTANCE_BIN_NAMES or not _numbers(question)):
        out.append(f"claim={claim} is not said in the question")
    return out


def trimmed(text: str) -> str | None:
    """The program without the arguments its task does not take (`navigate a=dog b=music` ->
    `navigate a=dog`); None when it is no program or has none to drop."""
    program = parse_program(text)
    if program is None:
        return None
    words = text.split()
    keep = ARGS[program.task] | ({"claim"} if ANSWER_TASKS_BY_NAME[program.task].claim is not None else set())
    names = {"distance_m": "distance", "yaw_deg": "turn"}
    keys = {names.get(k, k) for k in keep}
    kept = [w for w in words[1:] if w.partition("=")[0] in keys]
    return " ".join([words[0], *kept]) if len(kept) < len(words) - 1 else None


def problems(text: str, question: str, options: list[str] | None) -> list[str]:
    """What does not fit between a program text and its question (empty: it fits)."""
    program = parse_program(text)
    if program is None:
        return ["not a program"]
    task = program.task
    keys = set(program.args)
    has_claim = "claim" in keys
    keys.discard("claim")
    out = []
    if keys != ARGS[task]:
        out.append(f"{PROGRAM_OF_TASK[task]} takes {sorted(ARGS[task]) or 'no arguments'}, got {sorted(keys)}")
    if has_claim and ANSWER_TASKS_BY_NAME[task].claim is None:
        out.append(f"{PROGRAM_OF_TASK[task]} has no yes/no form")
    if task not in fitting_tasks(options) and task != NOT_HEARD_TASK:
        out.append(f"{PROGRAM_OF_TASK[task]} does not answer options like {options}")
    form = form_of(options)
    if form == "yesno" and not has_claim:
        out.append("a yes/no question needs a claim")
    if form == "choice" and has_claim:
        out.append("a choice question has no claim")
    return out + _grounding(program, question)
